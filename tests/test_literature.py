"""Validation against published results on LLM scheduling.

Li, Dai, Peng, "Throughput-optimal scheduling algorithms for LLM inference and AI agents"
(arXiv 2504.07347): with token budget K per iteration, prompt L and D decode iterations per
request, one GPU serves at most K / ((L + D) * S(K)) requests per second, and any
work-conserving policy that fills every iteration up to K (Sarathi-Serve's hybrid batching)
reaches it (their Theorem 2, stability iff lambda (m_p + m_d) < b / t_b).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_config

import llm_serving_env as lse
from llm_serving_env.analysis.stability import (
    STABLE_REL_TOL,
    backlog_slope,
    judge_stable,
    work_conserving_capacity,
)
from llm_serving_env.analysis.stats import t_interval
from llm_serving_env.hardware.service import ServiceModel

L, B = 200, 11  # prompt tokens; output tokens = 1 (with the prefill) + D decodes
D = B - 1
K = 1024  # token limit per iteration (and hybrid's token budget)
N = 3000


def saturated_config(rate_per_s: float):
    """Fixed L and B, deterministic Llama-3-70B service, arrivals far above capacity."""
    return make_config(**{
        "num_requests": N,
        "workload.arrival.rate_per_s": rate_per_s,
        "workload.prompt_tokens": {"dist": "fixed", "value": L},
        "workload.output_tokens": {"dist": "fixed", "value": B},
        "service": {"preset": "llama3_70b_a100_tp2"},
        "gpus.max_batch_tokens": K,
        "scheduler": {"name": "hybrid", "token_budget": K},
    })


def saturated_throughput(result: lse.RunResult) -> tuple[float, float]:
    """Completions per second between the N/3-th and 2N/3-th finish, and that window (s).

    Arrivals (at 3x capacity) end before the window opens, with two thirds of the requests
    still queued, so the GPU is saturated throughout the window.
    """
    finish = np.sort(result.finish_s)
    i1, i2 = N // 3, 2 * N // 3
    span = finish[i2] - finish[i1]
    return (i2 - i1) / span, span


def test_hybrid_reaches_the_work_conserving_capacity():
    service = ServiceModel.from_config(saturated_config(1.0).service)
    s_k = float(service.mean_s(K))  # 45.5 + 0.30 * (1024 - 64) ms = 333.5 ms
    capacity = K / ((L + D) * s_k)  # 1024 / (210 * 0.3335) = 14.62 requests/s
    assert capacity == pytest.approx(14.621, rel=1e-3)
    res = lse.simulate(saturated_config(3 * capacity), "hybrid", seed=0)
    measured, span = saturated_throughput(res)
    # Completions come at iteration ends, so the count in the window can be off by at most
    # the requests finishing in one iteration at each edge: relative error <= 2 S(K) / span.
    tolerance = 2 * s_k / span
    assert measured == pytest.approx(capacity, rel=tolerance)
    # work conservation: every iteration inside the saturated window carries exactly K tokens
    finish = np.sort(res.finish_s)
    b = res.batches
    inside = b[(b["start_s"] >= finish[N // 3]) & (b["end_s"] <= finish[2 * N // 3])]
    assert len(inside) > 100
    assert (inside["token_load"] == K).all()


def test_request_level_capacity_closed_form_and_shortfall():
    """FasterTransformer-style batching: a cohort of n = min(floor(K / L), max requests)
    requests is prefilled in one batch of load nL, then decoded D times with load n, and
    only then is the next cohort admitted: capacity n / (S(nL) + D S(n))."""
    cfg = saturated_config(1.0)
    service = ServiceModel.from_config(cfg.service)
    n = min(K // L, cfg.gpus.max_batch_requests)  # 5
    cycle = float(service.mean_s(n * L)) + D * float(service.mean_s(n))  # 326.3 + 455 ms
    capacity = n / cycle  # 6.40 requests/s
    assert capacity == pytest.approx(5 / 0.7813, rel=1e-3)
    res = lse.simulate(cfg.replace({"workload.arrival.rate_per_s": 3 * capacity}),
                       "request_level", seed=0)
    measured, span = saturated_throughput(res)
    # cohorts finish together: at most one cohort miscounted at each edge of the window
    assert measured == pytest.approx(capacity, rel=2 * cycle / span)
    # ... and it falls well short of the work-conserving bound (14.62/s): less than half
    hybrid_capacity = K / ((L + D) * float(service.mean_s(K)))
    assert capacity < 0.5 * hybrid_capacity


# Li et al. also report that FasterTransformer-style (request-level) and vanilla-vLLM-style
# (prefill-first) schedulers are not maximally stable while Orca- and Sarathi-style ones are.
# configs/li_chat.yaml is a scenario where it shows: short prompts and long outputs (L = 64,
# B = 201) and no request-count limit, so a work-conserving policy fills every iteration to K;
# vLLM-style decode-only iterations carry far fewer than K tokens and so waste the per-iteration
# cost c.


def test_li_chat_capacity_formula():
    cfg = lse.load_config("li_chat")
    assert work_conserving_capacity(cfg) == pytest.approx(1024 / (264 * 0.3335), rel=1e-9)


SEEDS = range(4)


def replicated_growth(cfg: lse.SimConfig, policy: str) -> np.ndarray:
    """Backlog growth (requests/s) of independent replications, one per seed: the mean of its
    segment slopes (analysis.stability.backlog_slope)."""
    return np.array([backlog_slope(lse.simulate(cfg, policy, seed=s)).mean for s in SEEDS])


def test_only_work_conserving_policies_stay_stable_near_capacity():
    """Verdicts from 4 replications each, by the rule of judge_stable applied to the
    replications' 95% interval: unstable iff the whole interval lies above 1% of the arrival
    rate. A stable policy must also have 0 inside its 99% interval; request_level's interval
    must contain its closed-form growth."""
    base = lse.load_config("li_chat")
    capacity = work_conserving_capacity(base)
    service = ServiceModel.from_config(base.service)
    n = min(1024 // 64, base.gpus.max_batch_requests)  # request-level cohort: 16 prompts
    rl_capacity = n / (float(service.mean_s(n * 64)) + 200 * float(service.mean_s(n)))
    for load in (0.5, 0.95):
        rate = load * capacity
        cfg = base.replace({"workload.arrival.rate_per_s": rate})
        growth = {p: replicated_growth(cfg, p) for p in ("prefill_first", "orca", "hybrid")}
        tol = STABLE_REL_TOL * rate
        # Theorem 2: work-conserving policies are stable below capacity
        for policy in ("orca", "hybrid"):
            ci = t_interval(growth[policy], 0.95)
            assert judge_stable(ci, rate), (load, policy, ci)
            wide = t_interval(growth[policy], 0.99)
            assert wide.low <= 0 <= wide.high, (load, policy, wide)
        # vLLM-style prefill-first is stable at half load but not at 95%
        pf = t_interval(growth["prefill_first"], 0.95)
        assert (pf.low > tol) == (load == 0.95), (load, pf)
        # request-level: capacity n / (S(nL) + D S(n)) = 1.70/s, 15% of the bound, so its
        # backlog grows at lambda - 1.70/s at both loads. Its queue only grows, so shorter
        # runs suffice.
        short = cfg.replace({"num_requests": 3000, "warmup_requests": 300})
        rl = t_interval(replicated_growth(short, "request_level"), 0.99)
        assert rl.low > tol
        assert rl.low <= rate - rl_capacity <= rl.high, (load, rl, rate - rl_capacity)
