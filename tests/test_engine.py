"""The engine on cases small enough to compute by hand, and its rule checks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_config

import llm_serving_env as lse
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, SchedulingError, Wait
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.workload.generate import Workload


def workload(arrivals, prompts, outputs) -> Workload:
    return Workload(arrival_s=np.asarray(arrivals, dtype=float),
                    prompt_tokens=np.asarray(prompts, dtype=np.int64),
                    output_tokens=np.asarray(outputs, dtype=np.int64))


# Service in these tests: S(b) = 10 ms + 1 ms * b (c = 10, a = 1, b0 = 0), deterministic.


def test_single_request_whole_prefill_then_decodes():
    cfg = make_config(num_requests=1)
    res = lse.simulate(cfg, "hybrid", workload=workload([1.0], [100], [3]))
    # prefill b = 100 -> 110 ms; first token at 1.110; two decodes of b = 1 -> 11 ms each.
    assert res.first_token_s[0] == pytest.approx(1.110)
    assert res.finish_s[0] == pytest.approx(1.132)
    np.testing.assert_allclose(res.tbt_gaps_s, [0.011, 0.011])
    assert res.queue_wait_s[0] == 0.0
    assert res.batches["token_load"].tolist() == [100, 1, 1]


def test_chunked_prefill_splits_prompt_by_token_budget():
    cfg = make_config(num_requests=1, **{"scheduler.token_budget": 40})
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0], [100], [1]))
    # chunks 40, 40, 20 -> 50 + 50 + 30 ms; the last chunk emits the only token.
    assert res.batches["prefill_tokens"].tolist() == [40, 40, 20]
    assert res.first_token_s[0] == pytest.approx(0.130)
    assert res.finish_s[0] == pytest.approx(0.130)
    assert res.tbt_gaps_s.size == 0


def test_hybrid_puts_decodes_first_and_fills_budget_with_a_chunk():
    cfg = make_config(num_requests=2, **{"scheduler.token_budget": 64})
    # r0: prompt 50 arrives at 0; r1: prompt 100 arrives at 0.01 while r0's prefill runs.
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0, 0.01], [50, 100], [3, 2]))
    b = res.batches
    # 1: r0 prefill 50 (60 ms, ends 0.060).  2: r0 decode + r1 chunk 63 (74 ms, ends 0.134).
    # 3: r0 decode + r1 chunk 37 (48 ms, ends 0.182; r0 done, r1's first token).
    # 4: r1 decode (11 ms, ends 0.193).
    assert b["prefill_tokens"].tolist() == [50, 63, 37, 0]
    assert b["num_decodes"].tolist() == [0, 1, 1, 1]
    np.testing.assert_allclose(b["end_s"], [0.060, 0.134, 0.182, 0.193])
    np.testing.assert_allclose(res.finish_s, [0.182, 0.193])
    np.testing.assert_allclose(res.ttft_s, [0.060, 0.172])


def test_request_level_runs_cohort_to_completion_before_admitting():
    cfg = make_config(num_requests=3)
    # r0 and r1 arrive together; r2 arrives during their decodes and must wait for the cohort.
    res = lse.simulate(cfg, "request_level",
                       workload=workload([0.0, 0.0, 0.05], [100, 100, 10], [2, 4, 1]))
    b = res.batches
    # cohort prefill b = 200 -> 210 ms; decodes: b = 2 (12 ms), then r0 done, b = 1 (11 ms) x2.
    assert b["prefill_tokens"].tolist() == [200, 0, 0, 0, 10]
    assert b["num_decodes"].tolist() == [0, 2, 1, 1, 0]
    np.testing.assert_allclose(res.finish_s, [0.222, 0.244, 0.264])
    assert res.queue_wait_s[2] == pytest.approx(0.244 - 0.05)


def test_max_batch_requests_limits_residents():
    cfg = make_config(num_requests=3, **{"gpus.max_batch_requests": 2})
    res = lse.simulate(cfg, "hybrid", workload=workload([0, 0, 0], [10, 10, 10], [2, 2, 2]))
    # two admitted (b = 20, 30 ms), then their decodes (12 ms), then the third.
    assert res.batches["num_prefills"].tolist() == [2, 0, 1, 0]
    assert res.first_scheduled_s[2] == pytest.approx(0.042)


def test_infeasible_whole_prompt_policy_fails_at_start():
    cfg = make_config(num_requests=1, **{"gpus.max_batch_tokens": 64,
                                         "scheduler.token_budget": 64})
    with pytest.raises(ConfigError, match="max_batch_tokens"):
        lse.simulate(cfg, "request_level", workload=workload([0.0], [100], [1]))
    # hybrid chunks the same prompt and finishes it
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0], [100], [1]))
    assert res.batches["prefill_tokens"].tolist() == [64, 36]


def first_view(cfg, wl):
    sim = Simulator(cfg, seed=0, workload=wl)
    sim.reset()
    return sim, sim.next_decision()


@pytest.mark.parametrize(
    ("batch", "rule"),
    [
        (Batch(), "empty"),
        (Batch.of({5: 10}), "unknown_request"),
        (Batch.of({0: 0}), "chunk_size"),
        (Batch.of({0: 101}), "chunk_size"),
        (Batch(prefill_ids=[0, 0], prefill_tokens=[10, 10]), "duplicate_prefill"),
        (Batch.of(decode=[0]), "not_decodable"),
        (Batch.of({0: 100, 1: 100}, decode=[]), "token_budget"),
    ],
)
def test_rule_violations_are_named(batch, rule):
    cfg = make_config(num_requests=2, **{"gpus.max_batch_tokens": 150,
                                         "scheduler.token_budget": 150})
    sim, view = first_view(cfg, workload([0.0, 0.0], [100, 100], [3, 3]))
    with pytest.raises(SchedulingError) as err:
        sim.execute(batch)
    assert err.value.rule == rule


def test_duplicate_decode_and_max_requests_rules():
    cfg = make_config(num_requests=2, **{"gpus.max_batch_requests": 1})
    sim, view = first_view(cfg, workload([0.0, 0.0], [10, 10], [3, 3]))
    with pytest.raises(SchedulingError) as err:
        sim.execute(Batch.of({0: 10, 1: 10}))
    assert err.value.rule == "max_requests"
    sim.execute(Batch.of({0: 10}))
    view = sim.next_decision()
    assert view.decoding.tolist() == [0]
    with pytest.raises(SchedulingError) as err:
        sim.execute(Batch(decode_ids=[0, 0]))
    assert err.value.rule == "duplicate_decode"


def test_wait_must_be_in_future_and_a_forever_waiting_policy_is_a_deadlock():
    cfg = make_config(num_requests=1)
    sim, view = first_view(cfg, workload([1.0], [10], [1]))
    with pytest.raises(SchedulingError) as err:
        sim.execute(Wait(until_s=view.now_s))
    assert err.value.rule == "wait"
    sim.execute(Wait())
    with pytest.raises(SchedulingError) as err:
        sim.next_decision()
    assert err.value.rule == "deadlock"


def test_wait_until_reoffers_the_gpu_at_that_time():
    cfg = make_config(num_requests=1)
    sim, view = first_view(cfg, workload([1.0], [10], [1]))
    assert view.now_s == 1.0
    sim.execute(Wait(until_s=1.5))
    view = sim.next_decision()
    assert view.now_s == 1.5
    sim.execute(Batch.of({0: 10}))
    assert sim.next_decision() is None
    assert sim.result().finish_s[0] == pytest.approx(1.52)


def test_central_router_binds_a_request_to_the_gpu_that_first_serves_it():
    cfg = make_config(num_requests=2, **{"gpus.count": 2, "scheduler.token_budget": 40})
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0, 0.0], [100, 100], [2, 2]))
    b = res.batches
    # GPU 0 takes r0's first chunk and GPU 1 r1's; every later chunk stays on the same GPU.
    assert res.gpu.tolist() == [0, 1]
    assert (b.groupby("gpu")["prefill_tokens"].sum() == 100).all()


def test_kv_pressure_preempts_latest_arrival_by_recompute():
    # 1-token blocks, room for 12 tokens; two requests of prompt 4 and 6 output tokens
    # (peak KV 4 + 6 - 1 = 9 tokens each, so both cannot finish side by side).
    cfg = make_config(num_requests=2, **{"gpus.kv_capacity_tokens": 12,
                                         "gpus.kv_block_tokens": 1})
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0, 0.0], [4, 4], [6, 6]))
    b = res.batches
    # t=0: both prefill (b=8, 18 ms; KV 8). Two decode pairs (12 ms each; KV 10, then 12).
    # 0.042: decodes need 2 blocks, none free -> r1 (latest arrival) is preempted; r0 decodes
    #   alone (11 ms). 0.053: r0 decode + r1 recompute chunk of the 4 tokens that fit (of
    #   4 + 3 = 7; 15 ms). 0.068: r0's decode needs a block -> r1 preempted again; r0 decodes
    #   (11 ms) and finishes at 0.079. Then r1 recomputes 7 tokens (17 ms), emitting its 4th
    #   token at 0.096, and decodes twice more (11 ms each).
    assert b["prefill_tokens"].tolist() == [8, 0, 0, 0, 4, 0, 7, 0, 0]
    assert b["num_decodes"].tolist() == [0, 2, 2, 1, 1, 1, 0, 1, 1]
    np.testing.assert_allclose(res.finish_s, [0.079, 0.118])
    assert res.preemptions.tolist() == [0, 2]
    np.testing.assert_allclose(res.ttft_s, [0.018, 0.018])  # the first token is not redone
    assert res.request_max_tbt_s[1] == pytest.approx(0.096 - 0.042)
    assert res.summary()["num_preemptions"] == 2


def test_kv_capacity_too_small_for_one_request_is_a_clear_error():
    cfg = make_config(num_requests=1, **{"gpus.kv_capacity_tokens": 8,
                                         "gpus.kv_block_tokens": 1})
    with pytest.raises(ConfigError, match="kv_capacity_tokens"):
        lse.simulate(cfg, "hybrid", workload=workload([0.0], [4], [6]))
