"""Dynamic batching: request-level cohorts whose size adapts to queue depth and a TTFT target.

System modelled: the adaptive batchers of model servers (Triton's dynamic batcher, Clipper's
AIMD/latency-SLO batching) in front of a request-level engine such as FasterTransformer. The
batcher holds requests back to form a larger cohort only while the oldest of them can still
meet the latency target; the cohort then runs to completion as in ``request_level``.

Rule, for a free GPU, with ``S(b)`` the mean service time of a batch of token load b
(``ServiceModel.mean_s`` of the config's ``service``) and ``budget = safety_factor *
target_ttft``::

    if the GPU holds a cohort (requests in decode):
        decode every member once                           # as request_level
    else:
        cohort = waiting requests FCFS, whole prompts, while their summed prompt tokens
                 <= max_batch_tokens, a slot is free and their KV fits  # as request_level
        if cohort is full:        # the waiting prompt tokens reach the token limit, or a
            prefill it now        # waiting request was left out, or no slot is left
        # expected TTFT of the oldest waiting request if the cohort starts at time t:
        #   (t - oldest_arrival) + S(prompt tokens of the cohort)
        deadline = oldest_arrival + budget - S(prompt tokens of the cohort)
        if now < deadline: Wait(until = deadline)    # every arrival re-offers the GPU and
        else:              prefill the cohort now    # re-evaluates with the larger cohort

So the cohort grows with the queue (a deep queue fills it and dispatches at once) and shrinks
when requests are old (after a long cohort the waiting requests are already late and go at
once); at light load a request is held until its expected TTFT reaches the budget. The
safety factor leaves room for what the expectation ignores: the cohort grows (and S with it)
between re-evaluations, service noise, and later arrivals that wait behind the whole cohort.

Under disaggregation only prefill GPUs form cohorts, so S is the prefill pool's service
model when it has its own.

Parameters: ``target_ttft_ms`` (default: ``slo.ttft_ms`` if the config has an SLO, else
1000 ms) and ``safety_factor`` (in (0, 1], default 0.5). A prompt longer than
``max_batch_tokens`` can never be admitted: that is an error at start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from baselines.cohort import CohortBatcher
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch
from llm_serving_env.sim.scheduler import (
    CompiledRule,
    DecisionView,
    positive_number,
    register_scheduler,
)

#: TTFT target when neither ``scheduler.target_ttft_ms`` nor ``slo.ttft_ms`` is set.
DEFAULT_TARGET_TTFT_MS = 1000.0


@dataclass(frozen=True)
class DynamicBatchConfig:
    """target_ttft_ms: TTFT target in ms (> 0; None: ``slo.ttft_ms`` if set, else 1000).
    safety_factor: fraction of the target the oldest request's expected TTFT may use while
    the batcher waits for more work (0 < safety_factor <= 1)."""

    target_ttft_ms: float | None = None
    safety_factor: float = 0.5

    def __post_init__(self) -> None:
        if self.target_ttft_ms is not None:
            positive_number("scheduler.target_ttft_ms", self.target_ttft_ms)
            if not math.isfinite(self.target_ttft_ms):
                raise ConfigError(f"scheduler.target_ttft_ms = {self.target_ttft_ms!r}: "
                                  "must be finite")
        positive_number("scheduler.safety_factor", self.safety_factor)
        if self.safety_factor > 1:
            raise ConfigError(f"scheduler.safety_factor = {self.safety_factor!r}: must be a "
                              "number in (0, 1] (a fraction of target_ttft_ms)")


@register_scheduler("dynamic_batch")
class DynamicBatchScheduler(CohortBatcher):
    """Queue- and TTFT-target-adaptive batching of request-level cohorts (see the module
    docstring)."""

    Config = DynamicBatchConfig

    def __init__(self, config: DynamicBatchConfig, sim_config: SimConfig) -> None:
        super().__init__(config, sim_config)
        if config.target_ttft_ms is not None:
            target_ms = float(config.target_ttft_ms)
        elif sim_config.slo is not None:
            target_ms = float(sim_config.slo.ttft_ms)
        else:
            target_ms = DEFAULT_TARGET_TTFT_MS
        self.target_ttft_s = target_ms / 1000.0
        self.budget_s = float(config.safety_factor) * self.target_ttft_s
        # only mean_s is used; the generator (needed by noisy models) is never drawn from
        self.service = ServiceModel.from_config(sim_config.service_for("prefill"),
                                                np.random.default_rng(0))

    def compiled_rule(self) -> CompiledRule | None:
        if type(self) is not DynamicBatchScheduler:  # a subclass may schedule otherwise
            return None
        return CompiledRule("dynamic_batch", floats=(self.budget_s,))

    def hold_until(self, view: DecisionView, batch: Batch) -> float:
        """The latest start at which the oldest request's expected TTFT (its wait plus the
        cohort's mean prefill time) stays within ``safety_factor * target_ttft``."""
        oldest = float(view.requests.arrival_s[batch.prefill_ids].min())
        return oldest + self.budget_s - self.service.mean_s(batch.token_load)
