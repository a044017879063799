"""Warm-up detection (MSER-5, Welch) and the coverage of the simulator's confidence intervals."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from scipy import stats as sps

import llm_serving_env as lse
from llm_serving_env.analysis.stats import batch_means, mser_truncation, welch_average


def test_mser5_deletes_a_decaying_transient_and_little_of_a_stationary_series():
    rng = np.random.default_rng(7)
    i = np.arange(5000)
    noise = rng.normal(0.0, 1.0, i.size)
    transient = 10.0 * np.exp(-i / 40.0)
    d = mser_truncation(transient + noise)
    assert d % 5 == 0
    # MSER's goal: the bias the transient leaves in the truncated mean is below that mean's
    # standard error (1/sqrt(n - d)); without truncation it is 5x above it.
    standard_error = 1.0 / np.sqrt(i.size - d)
    assert transient[d:].mean() < standard_error
    assert transient.mean() > 5 * (1.0 / np.sqrt(i.size))
    assert mser_truncation(noise) < 500  # stationary: at most a tenth is cut


def test_mser_needs_two_batches():
    with pytest.raises(ValueError, match="at least 2 batches"):
        mser_truncation([1.0, 2.0, 3.0])


def test_welch_average_by_hand():
    reps = np.array([[0.0, 0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 4.0, 0.0, 0.0]])
    np.testing.assert_allclose(welch_average(reps), [0, 0, 3, 0, 0])
    # window 1: centered 3-point averages, the ends keep a 1-point window
    np.testing.assert_allclose(welch_average(reps, window=1), [0, 1, 1, 1, 0])


LAMBDA, MU = 1.25, 2.5  # M/M/1 at rho = 0.5: mean sojourn 1 / (mu - lambda) = 0.8 s
RUNS, WARMUP, MEASURED, BATCHES = 200, 200, 2500, 10


def _interval(seed: int) -> tuple[float, float]:
    cfg = lse.load_config("mm1").replace({
        "num_requests": WARMUP + MEASURED, "warmup_requests": WARMUP,
        "workload.arrival.rate_per_s": LAMBDA})
    res = lse.simulate(cfg, seed=seed)
    est = batch_means(res.e2e_s[res.measured], num_batches=BATCHES)
    return est.low, est.high


def test_batch_means_intervals_cover_the_mm1_mean_about_95_percent_of_the_time():
    """200 independent runs, each giving a 95% batch-means interval (10 batches of 250
    customers, far longer than the 4.7 s relaxation time 1/(mu (1 - sqrt(rho))^2) at rho =
    0.5) for the mean sojourn. The number of intervals containing 0.8 s must lie in the central
    99.9% range of Binomial(200, 0.95)."""
    workers = min(2, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            intervals = list(pool.map(_interval, range(RUNS), chunksize=10))
    else:
        intervals = [_interval(s) for s in range(RUNS)]
    truth = 1.0 / (MU - LAMBDA)
    covered = sum(low <= truth <= high for low, high in intervals)
    low, high = sps.binom.ppf([0.0005, 0.9995], RUNS, 0.95)
    assert low <= covered <= high, (covered, low, high)
