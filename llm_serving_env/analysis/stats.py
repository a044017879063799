"""Confidence intervals for simulation output (first version).

- :func:`t_interval`: Student-t interval for the mean of iid observations (e.g. one summary
  value per independent replication).
- :func:`batch_means`: the non-overlapping batch-means interval for the steady-state mean of
  one long, autocorrelated, ordered series (e.g. sojourn times of consecutive customers after
  warm-up deletion).
- :func:`paired_difference`: interval for the mean difference of paired replications, as
  produced with common random numbers.
- :func:`summarize_replications`: one interval per metric over many replication summaries.
- :func:`mser_truncation` (MSER-5) and :func:`welch_average` (Welch's plot): warm-up length.

References: A. M. Law, *Simulation Modeling and Analysis*, 5th ed., McGraw-Hill, 2015
(Sec. 9.4.1 fixed-sample-size replications, Sec. 9.5.3 batch means, Sec. 10.2.2 paired-t);
S. Asmussen & P. W. Glynn, *Stochastic Simulation*, Springer, 2007 (Ch. III, IV).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as _sps

__all__ = [
    "Estimate",
    "batch_means",
    "mser_truncation",
    "paired_difference",
    "summarize_replications",
    "t_interval",
    "welch_average",
]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a symmetric confidence interval ``mean ± half_width``.

    ``n`` is the number of (approximately) iid observations the interval rests on (replications,
    batches or pairs) and ``level`` the nominal coverage, e.g. 0.95. Units are those of the data.
    """

    mean: float
    half_width: float
    n: int
    level: float

    @property
    def low(self) -> float:
        """Lower end ``mean - half_width``."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Upper end ``mean + half_width``."""
        return self.mean + self.half_width

    def contains(self, x: float) -> bool:
        """True when ``low <= x <= high`` (closed interval)."""
        return bool(self.low <= x <= self.high)

    @property
    def relative_half_width(self) -> float:
        """``half_width / |mean|`` (dimensionless); ``inf`` when the mean is 0 and the half
        width is not, 0 when both are 0."""
        if self.mean == 0.0:
            return 0.0 if self.half_width == 0.0 else math.inf
        return self.half_width / abs(self.mean)

    def __str__(self) -> str:
        """``"2.013 ± 0.041"``: three decimals, more when needed to show two significant
        digits of the half width."""
        decimals = 3
        hw = self.half_width
        if math.isfinite(hw) and hw > 0.0:
            decimals = min(12, max(3, 1 - math.floor(math.log10(hw))))
        return f"{self.mean:.{decimals}f} ± {hw:.{decimals}f}"


def _level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)):
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def _vector(name: str, values: ArrayLike) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite (no NaN or inf); {int((~np.isfinite(x)).sum())} "
                         f"of {x.size} values are not")
    return x


def _t_estimate(x: np.ndarray, level: float) -> Estimate:
    n = x.size
    mean = float(x.mean())
    sd = float(x.std(ddof=1))
    t_quantile = float(_sps.t.ppf(0.5 + level / 2.0, n - 1))
    return Estimate(mean=mean, half_width=t_quantile * sd / math.sqrt(n), n=n, level=level)


def t_interval(samples: ArrayLike, level: float = 0.95) -> Estimate:
    """Student-t confidence interval for the mean of iid samples.

    ``mean ± t_{(1+level)/2, n-1} s / sqrt(n)`` with ``s`` the sample standard deviation
    (divisor ``n - 1``) (Law 2015, Eq. 4.12). Needs ``n >= 2`` finite samples; identical samples
    give ``half_width = 0``.
    """
    lv = _level(level)
    x = _vector("samples", samples)
    if x.size < 2:
        raise ValueError(f"samples must hold at least 2 values for a t-interval, got {x.size}")
    return _t_estimate(x, lv)


def batch_means(series: ArrayLike, num_batches: int = 20, level: float = 0.95) -> Estimate:
    """Batch-means confidence interval for the steady-state mean of an ordered series.

    The series (e.g. sojourn times of consecutive customers, warm-up already deleted) is split
    into ``k = num_batches`` contiguous batches of equal size ``m = len(series) // k``; the
    ``len(series) - k m`` leftover observations are dropped from the *start* of the series (the
    end nearest the initial transient). The interval is the t-interval over the ``k`` batch
    means, ``Ybar ± t_{(1+level)/2, k-1} s_b / sqrt(k)`` (Law 2015, Sec. 9.5.3); it is valid when
    batches are long enough for their means to be nearly independent and normal. The returned
    ``n`` is ``k``.
    """
    lv = _level(level)
    if isinstance(num_batches, bool) or not isinstance(num_batches, (int, np.integer)):
        raise ValueError(f"num_batches must be an integer >= 2, got {num_batches!r}")
    k = int(num_batches)
    if k < 2:
        raise ValueError(f"num_batches must be an integer >= 2, got {num_batches!r}")
    x = _vector("series", series)
    if x.size < k:
        raise ValueError(
            f"series must hold at least num_batches = {k} values, got {x.size}"
        )
    m = x.size // k
    kept = x[x.size - k * m:]
    means = kept.reshape(k, m).mean(axis=1)
    return _t_estimate(means, lv)


def paired_difference(a: ArrayLike, b: ArrayLike, level: float = 0.95) -> Estimate:
    """Paired-t confidence interval for ``E[a - b]`` over paired replications.

    ``a[i]`` and ``b[i]`` come from the same replication (e.g. two policies run with one seed,
    i.e. common random numbers); the interval is :func:`t_interval` of ``d = a - b``
    (Law 2015, Sec. 10.2.1).
    """
    xa = _vector("a", a)
    xb = _vector("b", b)
    if xa.shape != xb.shape:
        raise ValueError(f"a and b must have the same length, got {xa.size} and {xb.size}")
    return t_interval(xa - xb, level)


def summarize_replications(
    rows: Sequence[Mapping[str, float]], level: float = 0.95
) -> pd.DataFrame:
    """One t-interval per metric over replication summaries.

    ``rows`` holds one summary dict per replication, all with the same keys. Returns a DataFrame
    indexed by metric (in the order of the first row's keys) with columns
    ``mean, half_width, low, high, n``. NaN values are treated as missing: each metric uses the
    rows where it is not NaN and ``n`` counts them. With ``n == 1`` (or a non-finite value such
    as ``inf`` among them) the mean is reported and ``half_width``, ``low``, ``high`` are NaN;
    with ``n == 0`` everything but ``n`` is NaN.
    """
    lv = _level(level)
    if len(rows) == 0:
        raise ValueError("rows must hold at least one replication summary, got 0")
    keys = list(rows[0].keys())
    key_set = set(keys)
    for i, row in enumerate(rows):
        if set(row.keys()) != key_set:
            missing = sorted(key_set - set(row.keys()))
            extra = sorted(set(row.keys()) - key_set)
            raise ValueError(
                f"rows[{i}] must have the same keys as rows[0]; missing {missing}, extra {extra}"
            )
    records = []
    for key in keys:
        try:
            values = np.array([float(row[key]) for row in rows], dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"metric {key!r} must be numeric in every row") from None
        valid = values[~np.isnan(values)]
        n = int(valid.size)
        if n >= 2 and np.isfinite(valid).all():
            est = _t_estimate(valid, lv)
            mean, hw = est.mean, est.half_width
        else:
            mean = float(valid.mean()) if n > 0 else math.nan
            hw = math.nan
        records.append(
            {"mean": mean, "half_width": hw, "low": mean - hw, "high": mean + hw, "n": n}
        )
    frame = pd.DataFrame.from_records(records, index=pd.Index(keys, name="metric"))
    return frame.astype({"n": "int64"})


# ---------------------------------------------------------------------------- warm-up


def mser_truncation(series: ArrayLike, batch_size: int = 5, max_fraction: float = 0.5) -> int:
    """MSER-5 warm-up length: how many leading observations to delete.

    The series is cut into batches of ``batch_size`` (5 gives MSER-5; a trailing partial batch
    is dropped) with means ``Z_1..Z_k``. For each truncation ``d`` (in batches) the statistic is
    ``MSER(d) = sum_{i>d} (Z_i - mean(Z_{d+1..k}))^2 / (k - d)^2``, the squared standard error
    of the truncated mean up to a constant; the chosen ``d*`` minimizes it over
    ``0 <= d <= max_fraction * k`` (White 1997; White, Cobb & Spratt 2000). Returns
    ``batch_size * d*`` observations. Vectorized with cumulative sums.
    """
    x = _vector("series", series)
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size}: must be an integer >= 1")
    k = x.size // batch_size
    if k < 2:
        raise ValueError(f"series has {x.size} values: MSER needs at least 2 batches of "
                         f"{batch_size}")
    z = x[: k * batch_size].reshape(k, batch_size).mean(axis=1)
    # suffix sums of z and z^2 give every truncated mean and sum of squares at once
    s1 = np.cumsum(z[::-1])[::-1]
    s2 = np.cumsum((z * z)[::-1])[::-1]
    remaining = k - np.arange(k)
    sse = s2 - s1 * s1 / remaining
    mser = sse / remaining.astype(float) ** 2
    last = max(0, min(k - 2, int(max_fraction * k)))
    return int(np.argmin(mser[: last + 1])) * batch_size


def welch_average(replications: ArrayLike, window: int = 0) -> np.ndarray:
    """Welch's procedure: the mean over replications of an output series, then a centered
    moving average of half-width ``window`` (shrinking near the start, as Welch prescribes).

    ``replications``: array (R, n), one row per replication (e.g. sojourn time of the j-th
    customer). Returns shape (n,). Plot it to choose the warm-up by eye (see
    ``llm_serving_env.plots.plot_welch``).
    """
    y = np.asarray(replications, dtype=float)
    if y.ndim != 2 or y.shape[0] < 1 or y.shape[1] < 1:
        raise ValueError(f"replications has shape {y.shape}: must be 2-D (R, n) with R, n >= 1")
    if window < 0:
        raise ValueError(f"window = {window}: must be an integer >= 0")
    mean = y.mean(axis=0)
    if window == 0:
        return mean
    n = mean.size
    c = np.concatenate(([0.0], np.cumsum(mean)))
    i = np.arange(n)
    half = np.minimum(np.minimum(i, n - 1 - i), window)
    return (c[i + half + 1] - c[i - half]) / (2 * half + 1)
