"""Tests for llm_serving_env.analysis.stats."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from llm_serving_env.analysis.stats import (
    Estimate,
    batch_means,
    paired_difference,
    summarize_replications,
    t_interval,
)

T_975_4 = 2.776445  # Student t table, 0.975 quantile, 4 degrees of freedom
T_975_3 = 3.182446  # 3 degrees of freedom

# ----------------------------------------------------------------------------- Estimate


def test_estimate_properties() -> None:
    e = Estimate(mean=2.013, half_width=0.041, n=10, level=0.95)
    assert e.low == pytest.approx(1.972)
    assert e.high == pytest.approx(2.054)
    assert e.contains(2.0) and e.contains(1.972) and not e.contains(2.06)
    assert e.relative_half_width == pytest.approx(0.041 / 2.013)
    assert str(e) == "2.013 ± 0.041"
    assert str(Estimate(0.002013, 0.00041, 5, 0.95)) == "0.00201 ± 0.00041"
    assert Estimate(0.0, 0.0, 3, 0.95).relative_half_width == 0.0
    assert Estimate(0.0, 1.0, 3, 0.95).relative_half_width == math.inf
    assert Estimate(-4.0, 1.0, 3, 0.95).relative_half_width == 0.25
    with pytest.raises(AttributeError):
        e.mean = 3.0  # type: ignore[misc]  # frozen


# ----------------------------------------------------------------------------- t_interval


def test_t_interval_hand_example() -> None:
    e = t_interval([1, 2, 3, 4, 5])
    # mean 3, s^2 = 2.5, half width = t_{0.975,4} sqrt(2.5) / sqrt(5) = 2.776 * 0.7071 = 1.963
    assert e.mean == 3.0
    assert e.half_width == pytest.approx(T_975_4 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert e.half_width == pytest.approx(1.963, abs=5e-4)
    assert e.n == 5 and e.level == 0.95
    assert e.low == pytest.approx(3 - 1.963, abs=5e-4)


def test_t_interval_other_level() -> None:
    e = t_interval([1, 2, 3, 4, 5], level=0.90)
    # t_{0.95,4} = 2.131847
    assert e.half_width == pytest.approx(2.131847 * math.sqrt(0.5), rel=1e-6)


def test_t_interval_zero_variance_and_errors() -> None:
    e = t_interval([4.2, 4.2, 4.2])
    assert e.mean == pytest.approx(4.2) and e.half_width == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([1.0])
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([])
    with pytest.raises(ValueError, match="samples"):
        t_interval([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="samples"):
        t_interval([[1.0, 2.0], [3.0, 4.0]])
    for bad in (0.0, 1.0, 95, -0.5):
        with pytest.raises(ValueError, match="level"):
            t_interval([1.0, 2.0], level=bad)


def test_t_interval_coverage() -> None:
    """400 intervals at 95% on normal data: the count covering the truth must lie in the
    central 99.9% range of Binomial(400, 0.95)."""
    rng = np.random.default_rng(12345)
    truth, trials = 5.0, 400
    data = rng.normal(truth, 2.0, size=(trials, 10))
    covered = sum(t_interval(row).contains(truth) for row in data)
    low = sps.binom.ppf(0.0005, trials, 0.95)
    high = sps.binom.ppf(0.9995, trials, 0.95)
    assert low <= covered <= high, (covered, low, high)


# ----------------------------------------------------------------------------- batch means


def test_batch_means_by_hand_and_remainder_dropped_at_start() -> None:
    # 11 values in 3 batches: batches of 3, and the 2 leftover values at the start (huge, like
    # a transient) are dropped
    series = [1e6, 1e6, 1, 2, 3, 5, 6, 7, 1, 2, 3]
    e = batch_means(series, num_batches=3)
    # batch means 2, 6, 2: mean 10/3, s^2 = ((4/3)^2 + (8/3)^2 + (4/3)^2) / 2 = 16/3
    assert e.n == 3
    assert e.mean == pytest.approx(10 / 3)
    assert e.half_width == pytest.approx(
        sps.t.ppf(0.975, 2) * math.sqrt(16 / 3) / math.sqrt(3), rel=1e-12
    )


def test_batch_means_of_iid_data_agree_with_t_interval() -> None:
    """For iid data both intervals estimate sigma / sqrt(n); batch means only loses degrees of
    freedom (k - 1 = 19 instead of n - 1): a larger t quantile and a noisier standard error."""
    rng = np.random.default_rng(7)
    k, n = 20, 20_000
    x = rng.normal(3.0, 1.5, size=n)
    bm = batch_means(x, num_batches=k)
    ti = t_interval(x)
    assert bm.mean == pytest.approx(ti.mean, rel=1e-12)  # no remainder: same data
    t_k = sps.t.ppf(0.975, k - 1)
    t_n = sps.t.ppf(0.975, n - 1)
    se_ratio = (bm.half_width / t_k) / (ti.half_width / t_n)
    # (se_bm / se_t)^2 ~ chi2_{k-1} / (k-1) up to O(1/n): check its central 99.9% range
    lo = math.sqrt(sps.chi2.ppf(0.0005, k - 1) / (k - 1))
    hi = math.sqrt(sps.chi2.ppf(0.9995, k - 1) / (k - 1))
    assert lo <= se_ratio <= hi, se_ratio
    # i.e. the half widths differ by the expected loss factor t_19 / t_n = 1.066 times that noise
    ratio = bm.half_width / ti.half_width
    assert (t_k / t_n) * lo <= ratio <= (t_k / t_n) * hi


def test_batch_means_errors() -> None:
    with pytest.raises(ValueError, match="num_batches"):
        batch_means([1.0] * 10, num_batches=1)
    with pytest.raises(ValueError, match="num_batches"):
        batch_means([1.0] * 10, num_batches=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least num_batches"):
        batch_means([1.0, 2.0, 3.0], num_batches=5)
    with pytest.raises(ValueError, match="series"):
        batch_means([1.0, float("inf"), 3.0, 4.0], num_batches=2)


# ----------------------------------------------------------------------------- paired difference


def test_paired_difference_by_hand() -> None:
    a = [5.0, 7.0, 9.0, 6.0]
    b = [4.0, 5.0, 8.0, 3.0]
    # d = 1, 2, 1, 3: mean 1.75, s^2 = 2.75 / 3, half width = t_{0.975,3} s / 2 = 1.5235
    e = paired_difference(a, b)
    assert e.mean == pytest.approx(1.75)
    assert e.half_width == pytest.approx(T_975_3 * math.sqrt(2.75 / 3) / 2, rel=1e-6)
    assert e.half_width == pytest.approx(1.5235, abs=1e-4)
    assert e.n == 4
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])


# ----------------------------------------------------------------------------- summarize


def test_summarize_replications() -> None:
    rows = [
        {"ttft_p95_s": 1.0, "throughput": 10.0, "rare": float("nan"), "once": 7.0},
        {"ttft_p95_s": 2.0, "throughput": 12.0, "rare": 4.0, "once": float("nan")},
        {"ttft_p95_s": 3.0, "throughput": 11.0, "rare": 6.0, "once": float("nan")},
        {"ttft_p95_s": 4.0, "throughput": 13.0, "rare": float("nan"), "once": float("nan")},
        {"ttft_p95_s": 5.0, "throughput": 14.0, "rare": 8.0, "once": float("nan")},
    ]
    df = summarize_replications(rows)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["mean", "half_width", "low", "high", "n"]
    assert list(df.index) == ["ttft_p95_s", "throughput", "rare", "once"]
    assert df.index.name == "metric"
    assert df.loc["ttft_p95_s", "mean"] == pytest.approx(3.0)
    assert df.loc["ttft_p95_s", "half_width"] == pytest.approx(T_975_4 * math.sqrt(0.5), rel=1e-6)
    assert df.loc["ttft_p95_s", "low"] == pytest.approx(3.0 - T_975_4 * math.sqrt(0.5), rel=1e-6)
    assert int(df.loc["ttft_p95_s", "n"]) == 5
    # NaN-safe: 'rare' uses its 3 values 4, 6, 8 (mean 6, s = 2)
    assert int(df.loc["rare", "n"]) == 3
    assert df.loc["rare", "mean"] == pytest.approx(6.0)
    assert df.loc["rare", "half_width"] == pytest.approx(
        sps.t.ppf(0.975, 2) * 2.0 / math.sqrt(3), rel=1e-12
    )
    # one value: mean only
    assert int(df.loc["once", "n"]) == 1
    assert df.loc["once", "mean"] == 7.0
    assert math.isnan(df.loc["once", "half_width"]) and math.isnan(df.loc["once", "high"])
    ti = t_interval([10.0, 12.0, 11.0, 13.0, 14.0], level=0.9)
    df90 = summarize_replications(rows, level=0.9)
    assert df90.loc["throughput", "half_width"] == pytest.approx(ti.half_width, rel=1e-12)
    assert df["n"].dtype == np.int64


def test_summarize_replications_all_nan_and_errors() -> None:
    df = summarize_replications([{"x": float("nan")}, {"x": float("nan")}])
    assert int(df.loc["x", "n"]) == 0 and math.isnan(df.loc["x", "mean"])
    with pytest.raises(ValueError, match="at least one"):
        summarize_replications([])
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        summarize_replications([{"x": 1.0, "y": 2.0}, {"x": 1.0}])
    with pytest.raises(ValueError, match="'x'"):
        summarize_replications([{"x": "fast"}, {"x": 1.0}])
