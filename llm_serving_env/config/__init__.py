"""Typed, validated simulation configuration.

Every block of the YAML schema is a frozen dataclass that validates itself in ``__post_init__``.
Invalid input raises :class:`ConfigError` (a ``ValueError``) whose message names the dotted
field path, the offending value and what is allowed, e.g.::

    workload.arrival.rate_per_s = -1.0: must be a number > 0

Units are in the field names: ``_ms`` milliseconds, ``_s`` seconds, ``_per_s`` per second,
``_tokens`` tokens. Token counts are ints >= 1.

YAML schema (optional keys shown with their defaults)::

    num_requests: 20000                  # arrivals to simulate (int >= 1)
    warmup_requests: 0                   # first arrivals excluded from statistics
    workload:
      arrival: {process: poisson, rate_per_s: 2.0}
      prompt_tokens: {dist: fixed, value: 128}
      output_tokens: {dist: geometric, mean: 16, max: 32}
    model: null                          # or llama3_70b, {preset: ..., ...}: see hardware.py
    service: {model: piecewise_linear, c_ms: 45.5, a_ms: 0.30, b0_tokens: 64,
              noise: deterministic, cv: null, preset: null, tensor_parallel: null}
    gpus: {count: 1, router: central, max_batch_tokens: 2048, max_batch_requests: 128,
           kv_capacity_tokens: null, kv_block_tokens: 16,
           gpu: null, memory_gb: null, memory_utilization: 0.9}
    scheduler: {name: hybrid, token_budget: 512}
    slo: null                            # or {ttft_ms: ..., tbt_ms: ...}
    disaggregation: null                 # or {prefill: {count}, decode: {count}, ...}

Length distributions are a tagged union on the key ``dist`` (``fixed``, ``uniform``,
``geometric``, ``mixture``, ``empirical``, ``trace``); arrival processes a tagged union on
``process`` (``poisson``, ``deterministic``, ``gamma``, ``mmpp``, ``trace``). New kinds
register in :data:`LENGTH_DISTRIBUTIONS` and :data:`ARRIVAL_PROCESSES`.

Note on PyYAML: it reads ``1e-3`` (no dot in the mantissa) as a *string*; write ``1.0e-3``.
"""

from llm_serving_env.config.files import available_presets, load_config, parse_override, save_config
from llm_serving_env.config.sections import (
    DisaggregationConfig,
    GpuConfig,
    PoolConfig,
    SchedulerConfig,
    SloClass,
    SloConfig,
)
from llm_serving_env.config.sim_config import SimConfig

__all__ = [
    "DisaggregationConfig",
    "GpuConfig",
    "PoolConfig",
    "SchedulerConfig",
    "SimConfig",
    "SloClass",
    "SloConfig",
    "available_presets",
    "load_config",
    "parse_override",
    "save_config",
]
