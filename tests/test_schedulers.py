"""The baseline schedulers beyond request_level and hybrid, on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_config

import llm_serving_env as lse
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.scheduler import make_scheduler, scheduler_class
from llm_serving_env.workload.generate import Workload


def workload(arrivals, prompts, outputs) -> Workload:
    return Workload(arrival_s=np.asarray(arrivals, dtype=float),
                    prompt_tokens=np.asarray(prompts, dtype=np.int64),
                    output_tokens=np.asarray(outputs, dtype=np.int64))


# Service in these tests: S(b) = 10 ms + 1 ms * b (c = 10, a = 1, b0 = 0), deterministic.


# ---------------------------------------------------------------- decode_first


def test_decode_first_is_request_level():
    assert scheduler_class("decode_first") is scheduler_class("request_level")
    wl = workload([0.0, 0.0, 0.05], [100, 100, 10], [2, 4, 1])
    a = lse.simulate(make_config(num_requests=3), "decode_first", workload=wl)
    b = lse.simulate(make_config(num_requests=3), "request_level", workload=wl)
    np.testing.assert_array_equal(a.finish_s, b.finish_s)
    np.testing.assert_allclose(a.finish_s, [0.222, 0.244, 0.264])  # as in test_engine


# ---------------------------------------------------------------- prefill_first

# r0: prompt 50, 4 output tokens, arrives at 0; r1: prompt 20, 2 output tokens, arrives at
# 0.070 while r0 decodes.
TWO = workload([0.0, 0.07], [50, 20], [4, 2])


def test_prefill_first_interrupts_decodes_with_a_prefill_only_batch():
    res = lse.simulate(make_config(num_requests=2), "prefill_first", workload=TWO)
    b = res.batches
    # 1: r0 prefill b = 50 -> 60 ms, ends 0.060 (r0's 1st token).
    # 2: r0 decode, b = 1 -> 11 ms, ends 0.071 (2nd token); r1 arrived at 0.070.
    # 3: r1 fits, so a prefill-only batch: b = 20 -> 30 ms, ends 0.101 (r1's 1st token);
    #    r0 does not decode in it (a 42 ms TBT gap for r0).
    # 4: decodes r0, r1, b = 2 -> 12 ms, ends 0.113 (r0's 3rd token; r1 done).
    # 5: r0 decode, 11 ms, ends 0.124 (r0's 4th token: done).
    assert b["prefill_tokens"].tolist() == [50, 0, 20, 0, 0]
    assert b["num_decodes"].tolist() == [0, 1, 0, 2, 1]
    np.testing.assert_allclose(b["end_s"], [0.060, 0.071, 0.101, 0.113, 0.124])
    np.testing.assert_allclose(res.finish_s, [0.124, 0.113])
    np.testing.assert_allclose(res.ttft_s, [0.060, 0.031])
    np.testing.assert_allclose(res.request_max_tbt_s, [0.042, 0.012])


def test_prefill_first_decodes_when_no_slot_is_free():
    cfg = make_config(num_requests=3, **{"gpus.max_batch_requests": 2})
    res = lse.simulate(cfg, "prefill_first",
                       workload=workload([0.0, 0.0, 0.0], [10, 10, 10], [2, 2, 2]))
    # r0 and r1 take both slots (b = 20, 30 ms); r2 must wait, so the GPU decodes them
    # (b = 2, 12 ms, both done at 0.042); then r2's prefill (20 ms) and decode (11 ms).
    assert res.batches["num_prefills"].tolist() == [2, 0, 1, 0]
    np.testing.assert_allclose(res.finish_s, [0.042, 0.042, 0.073])


# ---------------------------------------------------------------- orca


def test_orca_adds_a_whole_new_prompt_to_the_decodes():
    res = lse.simulate(make_config(num_requests=2), "orca", workload=TWO)
    b = res.batches
    # 1: r0 prefill, 60 ms, ends 0.060.   2: r0 decode, 11 ms, ends 0.071.
    # 3: r0 decode + r1's whole prompt, b = 21 -> 31 ms, ends 0.102 (r0's 3rd token,
    #    r1's 1st).   4: decodes r0, r1, b = 2 -> 12 ms, ends 0.114: both done.
    assert b["prefill_tokens"].tolist() == [50, 0, 20, 0]
    assert b["num_decodes"].tolist() == [0, 1, 1, 2]
    np.testing.assert_allclose(b["end_s"], [0.060, 0.071, 0.102, 0.114])
    np.testing.assert_allclose(res.finish_s, [0.114, 0.114])
    np.testing.assert_allclose(res.ttft_s, [0.060, 0.032])


def test_orca_does_not_chunk_a_prompt_that_does_not_fit_beside_the_decodes():
    cfg = make_config(num_requests=2, **{"gpus.max_batch_tokens": 60,
                                         "scheduler.token_budget": 60})
    res = lse.simulate(cfg, "orca", workload=workload([0.0, 0.01], [50, 60], [3, 1]))
    b = res.batches
    # K = 60. 1: r0 prefill 50 (60 ms, ends 0.060). r1 (prompt 60) arrived at 0.010, but
    # 1 decode + 60 > 60, so it waits, whole, while r0 decodes twice (11 ms each: 0.071,
    # 0.082, r0 done); 4: r1's prefill alone, b = 60 -> 70 ms, ends 0.152 (r1 done).
    assert b["prefill_tokens"].tolist() == [50, 0, 0, 60]
    assert b["num_decodes"].tolist() == [0, 1, 1, 0]
    np.testing.assert_allclose(res.finish_s, [0.082, 0.152])
    # hybrid with the same limit chunks r1 beside r0's decode instead: 1 + 59 tokens
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0, 0.01], [50, 60], [3, 1]))
    assert res.batches["prefill_tokens"].tolist()[:2] == [50, 59]


def test_orca_admits_a_prompt_only_if_its_kv_fits_beside_the_decodes_growth():
    # 1-token blocks, 8 tokens of KV. r0: prompt 4, 4 output tokens (peak KV 7);
    # r1: prompt 4, 2 output tokens, arrives at 0.001.
    cfg = make_config(num_requests=2, **{"gpus.kv_capacity_tokens": 8,
                                         "gpus.kv_block_tokens": 1})
    res = lse.simulate(cfg, "orca", workload=workload([0.0, 0.001], [4, 4], [4, 2]))
    b = res.batches
    # 1: r0 prefill 4 (14 ms, ends 0.014; KV 4). At 0.014 4 blocks are free but r0's decode
    # takes one, leaving 3 < 4: r1 waits (admitting it would break the kv_memory rule).
    # r0 decodes alone three times (11 ms each; room left 2, then 1): ends 0.025, 0.036,
    # 0.047, r0 done and its KV freed. 5: r1 prefill (14 ms, 0.061); 6: r1 decode (0.072).
    assert b["prefill_tokens"].tolist() == [4, 0, 0, 0, 4, 0]
    assert b["num_decodes"].tolist() == [0, 1, 1, 1, 0, 1]
    np.testing.assert_allclose(res.finish_s, [0.047, 0.072])
    assert res.preemptions.sum() == 0


# ---------------------------------------------------------------- fixed_batch


def test_fixed_batch_waits_for_min_tokens_or_the_timeout():
    cfg = make_config(num_requests=3,
                      scheduler={"name": "fixed_batch", "min_batch_tokens": 100,
                                 "timeout_ms": 200})
    res = lse.simulate(cfg, workload=workload([0.0, 0.05, 0.30], [40, 70, 30], [1, 1, 2]))
    b = res.batches
    # 0.00: r0 (40 tokens < 100) waits, Wait(until 0.200).
    # 0.05: r1 arrives: 110 tokens >= 100 -> prefill r0 + r1, b = 110 -> 120 ms, ends 0.170.
    # 0.30: r2 (30 tokens) waits until its timeout at 0.500, then prefill (40 ms, 0.540) and
    #       its decode (11 ms, 0.551).
    assert b["prefill_tokens"].tolist() == [110, 30, 0]
    np.testing.assert_allclose(b["start_s"], [0.05, 0.50, 0.54])
    np.testing.assert_allclose(res.finish_s, [0.170, 0.170, 0.551])
    np.testing.assert_allclose(res.queue_wait_s, [0.05, 0.0, 0.20])


def test_fixed_batch_dispatches_a_full_batch_at_once_and_runs_it_to_completion():
    cfg = make_config(num_requests=3, scheduler={"name": "fixed_batch"},
                      **{"gpus.max_batch_requests": 2})
    res = lse.simulate(cfg, workload=workload([0.0, 0.0, 0.01], [10, 10, 10], [3, 1, 1]))
    b = res.batches
    # min_batch_tokens 512, timeout 200 ms. 0.0: r0 and r1 (20 tokens) take both slots: no
    # request could join, so they go at once (b = 20, 30 ms, ends 0.030; r1 done).
    # r2 (0.010) does not interrupt the cohort: r0 decodes twice (0.041, 0.052, done).
    # 0.052: r2 alone (10 tokens, a slot free) waits for its timeout 0.010 + 0.2 = 0.210;
    # prefill 20 ms, done 0.230.
    assert b["prefill_tokens"].tolist() == [20, 0, 0, 10]
    assert b["num_decodes"].tolist() == [0, 1, 1, 0]
    np.testing.assert_allclose(b["start_s"], [0.0, 0.030, 0.041, 0.210])
    np.testing.assert_allclose(res.finish_s, [0.052, 0.030, 0.230])


# ---------------------------------------------------------------- dynamic_batch


def test_dynamic_batch_holds_while_the_oldest_expected_ttft_meets_the_budget():
    cfg = make_config(num_requests=4,
                      scheduler={"name": "dynamic_batch", "target_ttft_ms": 200,
                                 "safety_factor": 0.5},
                      **{"gpus.max_batch_tokens": 80})
    res = lse.simulate(cfg, workload=workload([0.0, 0.03, 0.5, 1.0], [40, 30, 20, 80],
                                              [1, 1, 1, 1]))
    b = res.batches
    # budget = 0.5 * 200 ms = 100 ms; deadline = oldest arrival + 0.100 - S(cohort tokens).
    # 0.00: r0 alone, S(40) = 50 ms: deadline 0.050 -> Wait(until 0.050).
    # 0.03: r1 arrives; cohort r0 + r1, S(70) = 80 ms: deadline 0.020 has passed -> prefill
    #       now, ends 0.110 (r0's TTFT 110 ms: the arrival grew S after the timer was set).
    # 0.50: r2, S(20) = 30 ms: deadline 0.570; nothing arrives, so it goes at 0.570 and its
    #       TTFT is exactly the budget, 100 ms (ends 0.600).
    # 1.00: r3's 80 tokens reach K = 80: the cohort is full and goes at once (deadline would
    #       be 1.010), 90 ms, ends 1.090.
    assert b["prefill_tokens"].tolist() == [70, 20, 80]
    np.testing.assert_allclose(b["start_s"], [0.03, 0.57, 1.0])
    np.testing.assert_allclose(res.finish_s, [0.110, 0.110, 0.600, 1.090])
    np.testing.assert_allclose(res.ttft_s, [0.110, 0.080, 0.100, 0.090])


def test_dynamic_batch_sends_requests_that_are_already_late_at_once():
    cfg = make_config(num_requests=3,
                      scheduler={"name": "dynamic_batch", "target_ttft_ms": 200})
    # r0: a long cohort (prompt 100, 11 output tokens); r1 and r2 arrive during it.
    res = lse.simulate(cfg, workload=workload([0.0, 0.02, 0.1], [100, 10, 10], [11, 1, 1]))
    b = res.batches
    # 0.0: S(100) = 110 ms > the 100 ms budget: r0 goes at once (ends 0.110), then 10 decodes
    # of 11 ms (ends 0.220). r1 has then waited 200 ms: deadline 0.02 + 0.1 - S(20) = 0.090
    # has passed, so r1 + r2 go at 0.220 (30 ms, end 0.250) without holding.
    assert b["prefill_tokens"].tolist() == [100] + [0] * 10 + [20]
    np.testing.assert_allclose(res.finish_s, [0.220, 0.250, 0.250])


def test_dynamic_batch_target_defaults_to_the_slo_else_one_second():
    no_slo = make_scheduler(make_config(scheduler={"name": "dynamic_batch"}))
    assert no_slo.target_ttft_s == pytest.approx(1.0) and no_slo.budget_s == pytest.approx(0.5)
    slo = make_scheduler(make_config(scheduler={"name": "dynamic_batch", "safety_factor": 0.8},
                                     slo={"ttft_ms": 2000, "tbt_ms": 200}))
    assert slo.target_ttft_s == pytest.approx(2.0) and slo.budget_s == pytest.approx(1.6)
    own = make_scheduler(make_config(scheduler={"name": "dynamic_batch", "target_ttft_ms": 300},
                                     slo={"ttft_ms": 2000, "tbt_ms": 200}))
    assert own.target_ttft_s == pytest.approx(0.3)


def test_dynamic_batch_uses_the_mean_of_a_noisy_service_model():
    cfg = make_config(scheduler={"name": "dynamic_batch"}, **{"service.noise": "exponential"})
    sched = make_scheduler(cfg)
    assert sched.service.mean_s(40) == pytest.approx(0.050)
    res = lse.simulate(cfg.replace(num_requests=30), seed=1)
    assert np.isfinite(res.finish_s).all()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("scheduler", "field"),
    [
        ({"name": "fixed_batch", "min_batch_tokens": 0}, "scheduler.min_batch_tokens"),
        ({"name": "fixed_batch", "min_batch_tokens": 1.5}, "scheduler.min_batch_tokens"),
        ({"name": "fixed_batch", "min_batch_tokens": True}, "scheduler.min_batch_tokens"),
        ({"name": "fixed_batch", "timeout_ms": 0}, "scheduler.timeout_ms"),
        ({"name": "fixed_batch", "timeout_ms": -5.0}, "scheduler.timeout_ms"),
        ({"name": "fixed_batch", "timeout_ms": float("inf")}, "scheduler.timeout_ms"),
        ({"name": "fixed_batch", "timeout_ms": "200"}, "scheduler.timeout_ms"),
        ({"name": "fixed_batch", "timeout": 200}, "scheduler.timeout"),
        ({"name": "dynamic_batch", "target_ttft_ms": 0}, "scheduler.target_ttft_ms"),
        ({"name": "dynamic_batch", "target_ttft_ms": float("inf")}, "scheduler.target_ttft_ms"),
        ({"name": "dynamic_batch", "safety_factor": 0}, "scheduler.safety_factor"),
        ({"name": "dynamic_batch", "safety_factor": 1.5}, "scheduler.safety_factor"),
        ({"name": "dynamic_batch", "safety_factor": None}, "scheduler.safety_factor"),
        ({"name": "prefill_first", "token_budget": 512}, "scheduler.token_budget"),
        ({"name": "orca", "min_batch_tokens": 1}, "scheduler.min_batch_tokens"),
    ],
)
def test_bad_scheduler_parameters_are_named(scheduler, field):
    with pytest.raises(ConfigError, match=field):
        make_scheduler(make_config(scheduler=scheduler))


@pytest.mark.parametrize("policy", ["prefill_first", "orca", "fixed_batch", "dynamic_batch"])
def test_whole_prompt_policies_reject_a_prompt_above_the_token_limit(policy):
    cfg = make_config(num_requests=1, **{"gpus.max_batch_tokens": 64,
                                         "scheduler.token_budget": 64})
    with pytest.raises(ConfigError, match="max_batch_tokens"):
        lse.simulate(cfg, policy, workload=workload([0.0], [100], [1]))
