"""Small config builders shared by the tests."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.scheduler import DecisionView, RequestTable

BASE: dict[str, Any] = {
    "num_requests": 50,
    "warmup_requests": 0,
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 2.0},
        "prompt_tokens": {"dist": "fixed", "value": 100},
        "output_tokens": {"dist": "fixed", "value": 3},
    },
    "service": {"model": "piecewise_linear", "c_ms": 10.0, "a_ms": 1.0, "b0_tokens": 0,
                "noise": "deterministic"},
    "gpus": {"count": 1, "router": "central", "max_batch_tokens": 2048,
             "max_batch_requests": 128},
    "scheduler": {"name": "hybrid", "token_budget": 512},
}


def make_config(**changes: Any) -> SimConfig:
    """BASE with dotted-path changes, e.g. make_config(**{"gpus.count": 2})."""
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return SimConfig.from_dict(data)


# ---------------------------------------------------------------------- env test cases
ENV_SLO = {"ttft_ms": 800.0, "tbt_ms": 60.0}
#: the env tests' cases. One GPU, an SLO, mixed prompt and output lengths; hybrid keeps the
#: GPU ~75% busy (service S(b) = 10 ms + 1 ms * b)
ENV_SMALL = make_config(
    num_requests=60, slo=ENV_SLO,
    **{"workload.arrival.rate_per_s": 5.0,
       "workload.prompt_tokens": {"dist": "uniform", "low": 8, "high": 200},
       "workload.output_tokens": {"dist": "geometric", "mean": 6, "max": 20}})
ENV_CONFIGS = {
    "single": ENV_SMALL,
    # two GPUs, join-shortest-queue, a small KV cache (preemptions) and service noise
    "kv_2gpu": ENV_SMALL.replace({"gpus.count": 2, "gpus.router": "jsq",
                                  "gpus.kv_capacity_tokens": 300, "service.noise": "exponential",
                                  "workload.arrival.rate_per_s": 12.0}),
    # disaggregated prefill (1 GPU) and decode (2 GPUs) pools with a KV transfer time
    "disaggregated": ENV_SMALL.replace({
        "gpus.count": 3, "workload.arrival.rate_per_s": 8.0,
        "disaggregation": {"prefill": {"count": 1}, "decode": {"count": 2},
                           "kv_bytes_per_token": 1.0e5, "bandwidth_gb_per_s": 10.0}}),
    # tight limits: few slots, a small token limit, long prompts (joint violations)
    "tight": ENV_SMALL.replace({"gpus.max_batch_tokens": 96, "gpus.max_batch_requests": 5,
                                "scheduler.token_budget": 64,
                                "workload.prompt_tokens": {"dist": "uniform", "low": 50,
                                                           "high": 300}}),
}


def hand_view(cfg: SimConfig, now_s: float, prompts: Sequence[int],
              arrivals: Sequence[float], *, waiting: Sequence[int] = (),
              decoding: Sequence[int] = (), last_token_s: float | None = None) -> DecisionView:
    """A hand-built DecisionView on GPU 0 at ``now_s``: requests with the given prompts and
    arrival times, none started except the ``decoding`` ones (first token emitted at
    ``last_token_s``, KV memory unlimited). ``waiting`` lists new requests in queue order."""
    n = len(prompts)
    prompt = np.asarray(prompts, dtype=np.int64)
    dec = np.asarray(decoding, dtype=np.int64)
    gpu = np.full(n, -1, dtype=np.int64)
    gpu[dec] = 0
    last = np.full(n, np.nan)
    generated = np.zeros(n, dtype=np.int64)
    prefilled = np.zeros(n, dtype=np.int64)
    if dec.size:
        last[dec] = last_token_s
        generated[dec] = 1
        prefilled[dec] = prompt[dec]
    zeros = np.zeros(n, dtype=np.int64)
    table = RequestTable(
        arrival_s=np.asarray(arrivals, dtype=np.float64), prompt_tokens=prompt,
        predicted_output_tokens=np.full(n, np.nan), prefilled_tokens=prefilled,
        prefill_target_tokens=prompt.copy(), generated_tokens=generated, last_token_s=last,
        gpu=gpu, kv_tokens=zeros.copy(), kv_blocks=zeros.copy())
    return DecisionView(now_s, 0, np.asarray(waiting, dtype=np.int64), 0, dec, int(dec.size),
                        cfg.gpus.max_batch_tokens, cfg.gpus.max_batch_requests, table)


def assert_same_result(a: RunResult, b: RunResult) -> None:
    """Two runs are equal bit for bit: requests, batches, summary and TBT gaps."""
    assert a.requests.equals(b.requests)
    assert a.batches.equals(b.batches)
    sa, sb = a.summary(), b.summary()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key] == sb[key] or (math.isnan(sa[key]) and math.isnan(sb[key])), key
    np.testing.assert_array_equal(a.tbt_gaps_s, b.tbt_gaps_s)
