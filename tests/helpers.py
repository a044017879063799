"""Small config builders shared by the tests."""

from __future__ import annotations

import copy
from typing import Any

from llm_serving_env.config.sim_config import SimConfig

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
