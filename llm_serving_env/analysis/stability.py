"""Is the backlog growing? A stability check on one run.

A queue whose arrival rate exceeds its throughput capacity never settles: the number of
requests in the system, ``N(t)`` (arrived by ``t`` and not finished by ``t``), grows on average
at ``lambda - capacity`` requests per second. Over a finite run such a queue can still show good
latencies early on, so summary metrics alone do not reveal it; the slope of ``N(t)`` does.

- :func:`backlog_series`: ``N(t)`` on a regular time grid (vectorized, ``searchsorted``).
- :func:`segment_slopes`: least-squares slopes of ``N(t)`` on ``K`` contiguous segments of the
  measured window.
- :func:`backlog_slope`: the growth rate (requests per second) with a confidence interval.
- :func:`is_stable` / :func:`judge_stable`: the decision rule.

**Window.** From the first measured arrival (after the warm-up) to the *last arrival* of the run.
After the last arrival the system only drains, so ``N(t)`` falls whatever the load; including
the drain would bias every slope downwards.

**Confidence interval (choice: batch means over segment slopes).** ``N(t)`` is strongly
autocorrelated, so the residuals of one regression over the whole window are not independent
and its textbook standard error is far too small. Instead the window is cut into ``K``
contiguous segments of equal length; the least-squares slope is fitted in each segment and the
interval is the Student-t interval over the ``K`` slopes (the batch-means method of
:func:`llm_serving_env.analysis.stats.batch_means`, applied to slopes instead of means). Why this is
valid in both regimes:

- unstable queue: ``N(t)`` behaves like a random walk with drift; a segment's slope depends only
  on the increments inside that segment, and increments over disjoint segments are independent,
  so the ``K`` slopes are nearly iid with mean = the drift;
- stable queue: ``N(t)`` is stationary and the slopes have mean 0; they are nearly independent
  once a segment is much longer than the queue's relaxation time (long runs, moderate ``K``).

For a random walk the mean of the ``K`` segment slopes is as efficient as the single slope over
the whole window (both have variance ``1.2 sigma^2 / T``), so nothing is lost by batching.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from llm_serving_env.analysis.stats import Estimate, t_interval
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.simulate import simulate

__all__ = [
    "STABLE_REL_TOL",
    "backlog_series",
    "backlog_table",
    "backlog_slope",
    "is_stable",
    "judge_stable",
    "measured_window",
    "segment_slopes",
    "work_conserving_capacity",
]

#: Default tolerance of :func:`judge_stable`: growth up to 1% of the arrival rate is not
#: counted as instability.
STABLE_REL_TOL = 0.01

#: Default number of grid points per segment in :func:`segment_slopes`.
POINTS_PER_SEGMENT = 200


def _sorted_times(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """Arrival and finish times (s), each sorted; an unfinished request finishes at ``inf``."""
    arrival = np.sort(np.asarray(result.arrival_s, dtype=np.float64))
    finish = np.asarray(result.finish_s, dtype=np.float64)
    finish = np.sort(np.where(np.isfinite(finish), finish, np.inf))
    return arrival, finish


def _in_system(arrival: np.ndarray, finish: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``N(t)`` = #{arrival <= t} - #{finish <= t} for each grid time in ``t`` (both sorted)."""
    return (np.searchsorted(arrival, t, side="right")
            - np.searchsorted(finish, t, side="right")).astype(np.int64)


def backlog_series(result: RunResult, bin_s: float | None = None) -> pd.DataFrame:
    """Number of requests in the system on a regular time grid over the whole run.

    ``in_system`` at ``time_s = t`` counts requests with ``arrival <= t < finish`` (warm-up
    requests included: they occupy the system like any other). The grid starts at the first
    arrival and runs, every ``bin_s`` seconds, up to the last finish (the final point is at
    most ``bin_s`` before it). Computed with two ``searchsorted`` calls, no loop over requests.

    Args:
        result: a finished run.
        bin_s: grid spacing in seconds; default ``(last finish - first arrival) / 1000``.

    Returns:
        DataFrame with columns ``time_s`` (s) and ``in_system`` (requests).
    """
    arrival, finish = _sorted_times(result)
    if arrival.size == 0:
        raise ValueError("backlog_series needs a run with at least one request")
    start = float(arrival[0])
    finite = finish[np.isfinite(finish)]
    end = float(max(finite.max(), start)) if finite.size else float(arrival[-1])
    span = end - start
    if bin_s is None:
        bin_s = span / 1000.0 if span > 0 else 1.0
    if not (isinstance(bin_s, (int, float, np.floating)) and math.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be a number > 0 (seconds), got {bin_s!r}")
    num_points = int(math.floor(span / float(bin_s) + 1e-9)) + 1
    t = start + float(bin_s) * np.arange(num_points, dtype=np.float64)
    return pd.DataFrame({"time_s": t, "in_system": _in_system(arrival, finish, t)})


def measured_window(result: RunResult) -> tuple[float, float]:
    """``(t0, t1)`` in seconds: first measured arrival (after warm-up) and last arrival."""
    arrival = np.asarray(result.arrival_s, dtype=np.float64)
    if result.warmup >= arrival.size:
        raise ValueError("the run has no measured request (warm-up covers every arrival)")
    return float(arrival[result.warmup:].min()), float(arrival.max())


def segment_slopes(
    result: RunResult, num_segments: int = 10, bin_s: float | None = None
) -> np.ndarray:
    """Least-squares slopes of ``N(t)`` (requests per second) on contiguous segments.

    The window of :func:`measured_window` is cut into ``num_segments`` segments of equal
    length; each is sampled at ``m`` equally spaced grid points and the ordinary least-squares
    slope of ``N`` against time is fitted in each segment (all segments at once, vectorized).

    Args:
        result: a finished run.
        num_segments: ``K >= 2``.
        bin_s: grid spacing in seconds; default: window / (K * 200), i.e. 200 points per
            segment. With an explicit value ``m = floor(window / (K * bin_s))`` must be >= 2.

    Returns:
        Array of shape (K,), requests per second, in time order.
    """
    if isinstance(num_segments, bool) or not isinstance(num_segments, (int, np.integer)) \
            or num_segments < 2:
        raise ValueError(f"num_segments must be an integer >= 2, got {num_segments!r}")
    k = int(num_segments)
    t0, t1 = measured_window(result)
    window = t1 - t0
    if not window > 0:
        raise ValueError(f"the measured window [{t0}, {t1}] s is empty; run more requests")
    if bin_s is None:
        m = POINTS_PER_SEGMENT
    else:
        if not (isinstance(bin_s, (int, float, np.floating)) and math.isfinite(bin_s)
                and bin_s > 0):
            raise ValueError(f"bin_s must be a number > 0 (seconds), got {bin_s!r}")
        m = int(window / (k * float(bin_s)))
        if m < 2:
            raise ValueError(f"bin_s = {bin_s} s leaves {m} grid point(s) per segment of "
                             f"{window / k:.4g} s; need at least 2")
    seg_len = window / k
    step = seg_len / m
    # Grid point j of segment i sits at t0 + i * seg_len + (j + 0.5) * step (mid-bin sampling).
    offsets = (np.arange(m, dtype=np.float64) + 0.5) * step
    t = t0 + seg_len * np.arange(k, dtype=np.float64)[:, None] + offsets[None, :]
    arrival, finish = _sorted_times(result)
    n = _in_system(arrival, finish, t.ravel()).reshape(k, m).astype(np.float64)
    x = offsets - offsets.mean()
    return (n - n.mean(axis=1, keepdims=True)) @ x / float(x @ x)


def backlog_slope(
    result: RunResult, num_segments: int = 10, level: float = 0.95, bin_s: float | None = None
) -> Estimate:
    """Growth rate of the number in system (requests per second) with a confidence interval.

    The point estimate is the mean of the :func:`segment_slopes` and the interval the Student-t
    interval over them (``n`` = number of segments); see the module docstring for why the
    batch-means interval over segment slopes accounts for autocorrelation. For an unstable
    queue the slope estimates ``lambda - throughput capacity``; for a stable one, 0.
    """
    return t_interval(segment_slopes(result, num_segments, bin_s), level)


def judge_stable(
    slope: Estimate, arrival_rate_per_s: float, rel_tol: float = STABLE_REL_TOL
) -> bool:
    """The stability rule: stable unless the backlog grows *significantly* faster than
    ``rel_tol * arrival_rate_per_s`` requests per second.

    Precisely: unstable iff ``slope.low > rel_tol * arrival_rate_per_s``, i.e. the whole
    confidence interval of the growth rate lies above the tolerance. A stable queue (true slope
    0) is therefore declared unstable with probability below ``(1 - level) / 2`` (a one-sided
    test), while an overloaded one growing at ``lambda - capacity`` is caught once the run is
    long enough for the interval to be narrower than that growth.
    """
    if not (math.isfinite(arrival_rate_per_s) and arrival_rate_per_s > 0):
        raise ValueError(f"arrival_rate_per_s must be a number > 0, got {arrival_rate_per_s!r}")
    if not (math.isfinite(rel_tol) and rel_tol >= 0):
        raise ValueError(f"rel_tol must be a number >= 0, got {rel_tol!r}")
    return not slope.low > rel_tol * arrival_rate_per_s


def is_stable(
    result: RunResult,
    rel_tol: float = STABLE_REL_TOL,
    num_segments: int = 10,
    level: float = 0.95,
    arrival_rate_per_s: float | None = None,
) -> bool:
    """True unless the run's backlog grows significantly (rule of :func:`judge_stable`).

    Args:
        result: a finished run.
        rel_tol: growth tolerance as a fraction of the arrival rate (default 1%).
        num_segments: segments of :func:`backlog_slope`.
        level: confidence level of the slope interval.
        arrival_rate_per_s: arrival rate lambda in requests per second; default: measured,
            (arrivals in the window - 1) / window length.
    """
    if arrival_rate_per_s is None:
        t0, t1 = measured_window(result)
        count = result.arrival_s.size - result.warmup
        arrival_rate_per_s = (count - 1) / (t1 - t0) if t1 > t0 else math.nan
    slope = backlog_slope(result, num_segments, level)
    return judge_stable(slope, float(arrival_rate_per_s), rel_tol)


def work_conserving_capacity(cfg: SimConfig, token_budget: int | None = None) -> float:
    """Li, Dai, Peng (arXiv 2504.07347, Theorem 2): the most requests per second one GPU can
    serve with ``K`` tokens per iteration, ``K / ((E[L] + E[B] - 1) * S(K))``, times
    ``gpus.count``. Any work-conserving policy that fills every iteration to K reaches it (e.g.
    ``hybrid`` with ``token_budget = K``); none exceeds its value at ``K =
    gpus.max_batch_tokens``, the default.

    Uses the mean deterministic S(K) and the mean prompt and output lengths; assumes no
    binding limit on running requests or KV memory.
    """
    k = cfg.gpus.max_batch_tokens if token_budget is None else int(token_budget)
    s_k = float(ServiceModel.from_config(cfg.service).mean_s(k))
    work = cfg.workload.prompt_tokens.mean() + cfg.workload.output_tokens.mean() - 1.0
    return cfg.gpus.count * k / (work * s_k)


def backlog_table(cfg: SimConfig, loads: Sequence[float], policies: Sequence[str],
                  seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Backlog growth by policy and load, loads as fractions of
    :func:`work_conserving_capacity`. Columns: ``load, rate_per_s, policy, growth_per_s,
    half_width`` (95% CI of the growth, requests/s), ``stable`` (:func:`is_stable`)."""
    from tqdm.auto import tqdm


    capacity = work_conserving_capacity(cfg)
    rows = []
    jobs = [(load, p) for load in loads for p in policies]
    for load, policy in tqdm(jobs, desc="backlog", unit="run", disable=not progress):
        run_cfg = cfg.replace({"workload.arrival.rate_per_s": load * capacity})
        res = simulate(run_cfg, policy, seed=seed)
        slope = backlog_slope(res)
        rows.append({"load": load, "rate_per_s": load * capacity, "policy": policy,
                     "growth_per_s": slope.mean, "half_width": slope.half_width,
                     "stable": is_stable(res)})
    return pd.DataFrame(rows)
