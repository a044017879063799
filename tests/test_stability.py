"""Backlog growth and the stability rule, against the M/M/1 queue (configs/mm1.yaml, mu = 2.5/s).

An overloaded M/M/1 (lambda > mu) has its server always busy once the queue builds up, so the
number in system grows at lambda - mu per second; a stable one (rho < 1) has no drift.
"""

from __future__ import annotations

import numpy as np
import pytest

from llm_serving_env.analysis.stability import (
    backlog_series,
    backlog_slope,
    is_stable,
    judge_stable,
    measured_window,
    segment_slopes,
)
from llm_serving_env.analysis.stats import Estimate
from llm_serving_env.config.files import load_config
from llm_serving_env.sim.simulate import simulate

MU = 2.5  # service rate of configs/mm1.yaml (mean service 0.4 s), requests per second


def mm1(rate_per_s: float, num_requests: int, warmup: int):
    cfg = load_config("configs/mm1.yaml").replace({
        "workload.arrival.rate_per_s": rate_per_s,
        "num_requests": num_requests,
        "warmup_requests": warmup,
    })
    return simulate(cfg, seed=0)


@pytest.fixture(scope="module")
def overloaded():
    """lambda = 3 > mu = 2.5: ~6,300 s of measured arrivals, backlog grows at 0.5/s."""
    return mm1(3.0, 20_000, 1_000)


@pytest.fixture(scope="module")
def half_loaded():
    """rho = 0.5: lambda = 1.25/s."""
    return mm1(1.25, 20_000, 1_000)


def test_overloaded_mm1_backlog_grows_at_lambda_minus_mu(overloaded):
    slope = backlog_slope(overloaded)
    # Random-walk noise: Var(slope) ~ 1.2 (lambda + mu) / T = 1.2 * 5.5 / 6300 s -> SE ~ 0.03/s;
    # the CI must be that tight, not merely wide enough to contain 0.5.
    assert slope.contains(3.0 - MU), slope
    assert slope.half_width < 0.15, slope
    assert slope.low > 0.25
    assert not is_stable(overloaded)


def test_half_loaded_mm1_is_stable(half_loaded):
    slope = backlog_slope(half_loaded)
    assert slope.contains(0.0), slope
    assert slope.half_width < 0.01 * 1.25, slope  # the 1% tolerance is many SEs wide here
    assert is_stable(half_loaded)
    assert is_stable(half_loaded, arrival_rate_per_s=1.25)


def test_window_ends_at_last_arrival_not_last_finish(overloaded):
    t0, t1 = measured_window(overloaded)
    assert t0 == overloaded.arrival_s[1_000]
    assert t1 == overloaded.arrival_s.max()
    # the overloaded queue drains for a long time after the last arrival ...
    assert overloaded.finish_s.max() - t1 > 1_000.0
    # ... and that drain would make a whole-run fit fall: the series ends empty
    series = backlog_series(overloaded)
    assert series["in_system"].iloc[-1] <= 2
    assert series["in_system"].max() > 2_500


def test_backlog_series_matches_a_direct_count():
    result = mm1(2.0, 400, 0)
    series = backlog_series(result, bin_s=0.7)
    assert list(series.columns) == ["time_s", "in_system"]
    assert np.allclose(np.diff(series["time_s"]), 0.7)
    assert series["time_s"].iloc[0] == result.arrival_s[0]
    assert series["time_s"].iloc[-1] <= result.finish_s.max()
    for t, n in zip(series["time_s"], series["in_system"], strict=True):
        direct = int(((result.arrival_s <= t) & (result.finish_s > t)).sum())
        assert n == direct


def test_backlog_series_obeys_littles_law_on_a_fine_grid(half_loaded):
    """Integral of N(t) dt over the run = total time spent in system = sum of sojourn times."""
    series = backlog_series(half_loaded, bin_s=0.01)
    area = series["in_system"].sum() * 0.01
    total_sojourn = float((half_loaded.finish_s - half_loaded.arrival_s).sum())
    assert area == pytest.approx(total_sojourn, rel=1e-3)


def test_segment_slopes_shape_and_arguments(overloaded):
    slopes = segment_slopes(overloaded, num_segments=8)
    assert slopes.shape == (8,)
    assert backlog_slope(overloaded, num_segments=8).mean == pytest.approx(slopes.mean())
    with pytest.raises(ValueError, match="num_segments"):
        segment_slopes(overloaded, num_segments=1)
    with pytest.raises(ValueError, match="grid point"):
        segment_slopes(overloaded, bin_s=1.0e6)


def test_judge_stable_rule():
    rate = 2.0  # tolerance 1% -> 0.02/s
    assert judge_stable(Estimate(0.0, 0.01, 10, 0.95), rate)
    assert judge_stable(Estimate(0.04, 0.03, 10, 0.95), rate)  # low = 0.01 <= 0.02
    assert not judge_stable(Estimate(0.06, 0.03, 10, 0.95), rate)  # low = 0.03 > 0.02
    assert judge_stable(Estimate(0.06, 0.03, 10, 0.95), rate, rel_tol=0.02)
    with pytest.raises(ValueError, match="arrival_rate_per_s"):
        judge_stable(Estimate(0.0, 0.01, 10, 0.95), 0.0)
