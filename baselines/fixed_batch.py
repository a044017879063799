"""Fixed-size batching: request-level cohorts dispatched once enough work has queued or a
timeout expires.

System modelled: the classic static batcher of model servers (e.g. TensorFlow Serving's
batching with ``max_batch_size`` / ``batch_timeout_micros``, Triton's default batcher) in
front of a request-level engine such as FasterTransformer: a batch is formed in the queue,
then runs to completion on the GPU, and the next one is formed only when the GPU is free.

Rule, for a free GPU::

    if the GPU holds a cohort (requests in decode):
        decode every member once                           # as request_level
    else:
        cohort = waiting requests FCFS, whole prompts, while their summed prompt tokens
                 <= max_batch_tokens, a slot is free and their KV fits  # as request_level
        if cohort is full                   # a waiting request was left out, or no request
                                            # could join it (no slot, token limit reached)
           or prompt tokens(cohort) >= min_batch_tokens
           or now >= oldest_arrival + timeout:
            prefill the cohort in one batch
        else:
            Wait(until = oldest_arrival + timeout)   # arrivals re-offer the GPU earlier

"Full" caps the ``min_batch_tokens`` threshold at what one batch can hold: once no further
request could join, waiting longer only adds delay. When the cohort is not full it holds
every waiting request, so its prompt tokens are all the prompt work waiting.

Parameters: ``min_batch_tokens`` (prompt tokens that trigger a dispatch, default 512) and
``timeout_ms`` (the longest the oldest waiting request is held back, default 200 ms).
A prompt longer than ``max_batch_tokens`` can never be admitted: that is an error at start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from baselines.cohort import CohortBatcher
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch
from llm_serving_env.sim.scheduler import (
    CompiledRule,
    DecisionView,
    positive_int,
    positive_number,
    register_scheduler,
)


@dataclass(frozen=True)
class FixedBatchConfig:
    """min_batch_tokens: waiting prompt tokens that dispatch a cohort at once (int >= 1).
    timeout_ms: dispatch anyway once the oldest waiting request has waited this long (> 0)."""

    min_batch_tokens: int = 512
    timeout_ms: float = 200.0

    def __post_init__(self) -> None:
        positive_int("scheduler.min_batch_tokens", self.min_batch_tokens)
        positive_number("scheduler.timeout_ms", self.timeout_ms)
        if not math.isfinite(self.timeout_ms):  # an endless hold could strand the last requests
            raise ConfigError(f"scheduler.timeout_ms = {self.timeout_ms!r}: must be finite")


@register_scheduler("fixed_batch")
class FixedBatchScheduler(CohortBatcher):
    """Fixed-size (threshold + timeout) batching of request-level cohorts (see the module
    docstring)."""

    Config = FixedBatchConfig

    def __init__(self, config: FixedBatchConfig, sim_config: SimConfig) -> None:
        super().__init__(config, sim_config)
        self.timeout_s = float(config.timeout_ms) / 1000.0

    def compiled_rule(self) -> CompiledRule | None:
        if type(self) is not FixedBatchScheduler:  # a subclass may schedule otherwise
            return None
        return CompiledRule("fixed_batch", ints=(self.config.min_batch_tokens,),
                            floats=(self.timeout_s,))

    def hold_until(self, view: DecisionView, batch: Batch) -> float:
        if batch.token_load >= self.config.min_batch_tokens:
            return view.now_s
        return float(view.requests.arrival_s[batch.prefill_ids].min()) + self.timeout_s
