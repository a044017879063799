"""Prefix caching: the hit rate a trace allows, shared system prompts, LRU eviction under KV
pressure, KV accounting, and the prefix_affinity router."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_config
from test_invariants import POLICIES, run_and_record

import llm_serving_env as lse
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.workload.generate import Workload

TRACE = (Path(__file__).resolve().parents[1] / "data" / "traces"
         / "mooncake_conversation_trace.jsonl")


def test_light_replay_with_unlimited_memory_hits_what_the_trace_allows():
    """One GPU, no KV limit, requests far apart: each full 512-token block misses at its first
    appearance and hits at every later one (the last prompt token is always computed)."""
    rows = [json.loads(line) for line in TRACE.read_text().splitlines()[:200]]
    seen: set[int] = set()
    expected = []
    for row in rows:
        length = row["input_length"]
        full = row["hash_ids"][: length // 512]
        hits = sum(1 for h in full if h in seen)
        expected.append(min(512 * hits, length - 1))
        seen.update(full)
    chains = [row["hash_ids"] for row in rows]
    offsets = np.concatenate(([0], np.cumsum([len(c) for c in chains])))
    wl = Workload(arrival_s=np.arange(len(rows)) * 1000.0,
                  prompt_tokens=np.array([r["input_length"] for r in rows]),
                  output_tokens=np.array([min(r["output_length"], 8) for r in rows]),
                  prefix_block_tokens=512, prefix_offsets=offsets,
                  prefix_ids=np.concatenate(chains))
    cfg = make_config(num_requests=len(rows), **{"gpus.prefix_caching": True})
    res = lse.simulate(cfg, "hybrid", workload=wl)
    assert res.requests["cached_tokens"].tolist() == expected
    prompt = sum(r["input_length"] for r in rows)
    assert res.summary()["prefix_hit_rate"] == sum(expected) / prompt
    assert sum(expected) > 0.05 * prompt  # the case is not vacuous (5.9% here)
    # the cached tokens were not prefilled
    assert int(res.batches["prefill_tokens"].sum()) == prompt - sum(expected)


def test_shared_system_prompt_hit_rate_in_light_load():
    n, prompt, system = 40, 300, 256
    cfg = make_config(num_requests=n, **{
        "workload.arrival": {"process": "deterministic", "rate_per_s": 0.5},
        "workload.prompt_tokens": {"dist": "fixed", "value": prompt},
        "workload.prefix_sharing": {"system_prompts": 1, "system_prompt_tokens": system,
                                    "share": 1.0, "block_tokens": 16},
        "gpus.prefix_caching": True})
    res = lse.simulate(cfg, "hybrid", seed=0)
    assert res.requests["cached_tokens"].tolist() == [0] + [system] * (n - 1)
    assert res.summary()["prefix_hit_rate"] == (n - 1) * system / (n * prompt)
    off = lse.simulate(cfg.replace({"gpus.prefix_caching": False}), "hybrid", seed=0)
    assert "prefix_hit_rate" not in off.summary()
    assert off.requests["cached_tokens"].sum() == 0
    # the workload itself does not depend on caching
    np.testing.assert_array_equal(off.arrival_s, res.arrival_s)


def test_unreferenced_blocks_are_evicted_before_anything_is_preempted():
    """KV for two requests of 256 tokens; ten distinct prefixes one after another: the cache
    keeps filling memory and every admission must evict, never preempt."""
    cfg = make_config(num_requests=10, **{
        "workload.arrival": {"process": "deterministic", "rate_per_s": 0.2},
        "workload.prompt_tokens": {"dist": "fixed", "value": 256},
        "workload.output_tokens": {"dist": "fixed", "value": 4},
        "workload.prefix_sharing": {"system_prompts": 10, "system_prompt_tokens": 256,
                                    "share": 0.0, "block_tokens": 16},
        "gpus.kv_capacity_tokens": 512, "gpus.prefix_caching": True})
    res, _ = run_and_record(cfg, "hybrid", 0)
    assert res.summary()["num_preemptions"] == 0
    assert res.requests["cached_tokens"].sum() == 0


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("layout", ["one", "jsq", "affinity", "disaggregated"])
def test_kv_accounting_balances_with_prefix_caching_under_pressure(policy, layout):
    changes = {
        "num_requests": 300, "workload.arrival.rate_per_s": 40.0,
        "workload.prompt_tokens": {"dist": "uniform", "low": 8, "high": 96},
        "workload.output_tokens": {"dist": "geometric", "mean": 8, "max": 24},
        "workload.prefix_sharing": {"system_prompts": 3, "system_prompt_tokens": 48,
                                    "share": 0.7, "block_tokens": 16},
        "gpus.kv_capacity_tokens": 320, "gpus.prefix_caching": True,
        "slo": {"ttft_ms": 2000, "tbt_ms": 200}}
    if layout == "jsq":
        changes.update({"gpus.count": 2, "gpus.router": "jsq"})
    elif layout == "affinity":
        changes.update({"gpus.count": 3, "gpus.router": "prefix_affinity"})
    elif layout == "disaggregated":
        changes.update({"gpus.count": 3, "disaggregation": {
            "prefill": {"count": 1}, "decode": {"count": 2}, "kv_bytes_per_token": 1000,
            "bandwidth_gb_per_s": 1.0}})
    try:
        cfg = make_config(**changes)
        res, _ = run_and_record(cfg, policy, 1)
    except ConfigError as err:  # a whole-prompt scheduler that cannot run this workload
        pytest.skip(str(err))
    assert res.summary()["prefix_hit_rate"] > 0


def test_prefix_affinity_misses_fewer_prefixes_than_jsq():
    """40 system prompts over 2 GPUs, unlimited memory, light load: every prompt misses at
    least once (40) and at most once per GPU (80) under any router; the cache-aware router
    sends a prompt back where it was cached, so it misses fewer than jsq."""
    changes = {
        "num_requests": 400, "workload.arrival.rate_per_s": 4.0,
        "workload.prompt_tokens": {"dist": "fixed", "value": 200},
        "workload.output_tokens": {"dist": "fixed", "value": 2},
        "workload.prefix_sharing": {"system_prompts": 40, "system_prompt_tokens": 160,
                                    "share": 1.0, "block_tokens": 16},
        "gpus.count": 2, "gpus.prefix_caching": True}
    misses = {}
    for router in ("prefix_affinity", "jsq"):
        res = lse.simulate(make_config(**changes, **{"gpus.router": router}), "hybrid", seed=0)
        misses[router] = int(res.requests["cached_tokens"].eq(0).sum())
        assert 40 <= misses[router] <= 80
    assert misses["prefix_affinity"] < misses["jsq"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"gpus.router": "prefix_affinity", "gpus.count": 2}, "router"),
    ({"gpus.prefix_caching": "yes"}, "prefix_caching"),
    ({"workload.prefix_sharing": {"system_prompts": 2, "system_prompt_tokens": 64,
                                  "share": 1.5}}, "share"),
])
def test_bad_prefix_settings_are_named(changes, field):
    with pytest.raises(ConfigError) as err:
        make_config(**changes)
    assert field in str(err.value)


def test_a_trace_with_prefix_ids_refuses_synthetic_sharing():
    cfg = lse.load_config("configs/mooncake.yaml")
    with pytest.raises(ConfigError) as err:
        cfg.replace({"workload.prefix_sharing": {"system_prompts": 2,
                                                 "system_prompt_tokens": 64, "share": 1.0}})
    assert "hash_ids" in str(err.value)


def test_the_upper_bound_refuses_prefix_caching():
    cfg = make_config(num_requests=20, **{"gpus.prefix_caching": True,
                                          "slo": {"ttft_ms": 1000, "tbt_ms": 100}})
    with pytest.raises(ValueError, match="prefix caching"):
        lse.slo_upper_bound(cfg)


def test_a_mooncake_replay_carries_the_files_hash_ids():
    from llm_serving_env.workload.generate import generate_workload

    rows = [json.loads(line) for line in TRACE.read_text().splitlines()[:50]]
    wl = generate_workload(lse.load_config("configs/mooncake.yaml").workload, 50, 0)
    assert wl.prefix_block_tokens == 512
    for i, row in enumerate(rows):  # the file's rows are already in time order
        assert wl.prefix_chain(i).tolist() == row["hash_ids"]
        assert wl.prompt_tokens[i] == row["input_length"]


def _workload(arrivals, prompts, chains, block=16):
    offsets = np.concatenate(([0], np.cumsum([len(c) for c in chains])))
    return Workload(arrival_s=np.array(arrivals, dtype=float), prompt_tokens=np.array(prompts),
                    output_tokens=np.ones(len(prompts), dtype=np.int64),
                    prefix_block_tokens=block, prefix_offsets=offsets,
                    prefix_ids=np.concatenate(chains).astype(np.int64))


@pytest.mark.parametrize("policy", ["hybrid", "slo_aware", "prefill_first"])
def test_hits_are_taken_one_request_at_a_time_so_one_hit_does_not_starve_the_next(policy):
    """4 KV blocks; prefixes A and B (2 blocks each) cached and unreferenced; requests A+10 and
    B+10 arrive together. Taking both hits first would pin all 4 blocks and admit neither
    (the view counted them free); admitting one at a time, A+10 pins A and evicts B, then
    B+10 misses and gets what is left."""
    wl = _workload([0, 1, 2, 2], [32, 32, 42, 42], [[1, 2], [3, 4], [1, 2], [3, 4]])
    cfg = make_config(num_requests=4, **{"gpus.kv_capacity_tokens": 64,
                                         "gpus.prefix_caching": True,
                                         "slo": {"ttft_ms": 1000, "tbt_ms": 500}})
    res = lse.simulate(cfg, policy, workload=wl)
    assert (res.finish_s > 0).all()
    assert res.requests["cached_tokens"].tolist() == [0, 0, 32, 0]


def test_prefix_affinity_without_prefix_ids_routes_by_work():
    cfg = make_config(num_requests=30, **{"gpus.count": 2, "gpus.router": "prefix_affinity",
                                          "gpus.prefix_caching": True})
    res = lse.simulate(cfg, "hybrid", seed=0)
    assert res.summary()["prefix_hit_rate"] == 0.0
    assert set(res.first_gpu.tolist()) == {0, 1}
