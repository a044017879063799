"""Prefill-prioritizing iteration-level batching, as in vLLM's original (v0) scheduler.

System modelled: vLLM v0 (Kwon et al., SOSP 2023) with its default scheduler, which at every
step first tries to admit waiting requests and, if it can, runs a step of prefills only; it
runs a decode step of the running requests only when no waiting request can be admitted.

Rule, for a free GPU::

    prefills = waiting requests taken FCFS, whole prompts, while the summed prompt tokens
               <= max_batch_tokens, a slot is free (max_batch_requests) and their KV fits
               in the free blocks less the watermark, ceil(watermark x capacity) blocks
               (a prefix: the first one that does not fit stops the scan)
    if prefills: run a prefill-only batch of them
    else:        decode every running request once (the oldest max_batch_tokens of them)

New arrivals interrupt the running decodes (a TBT gap of one prefill batch for each of them),
which keeps TTFT short and batches large at the cost of decode stalls. Admission stops at the
slot and KV limits, so decodes always run again eventually. When decodes need KV blocks that
are not free the engine preempts the latest arrivals by recompute; those return to the head
of the queue and are re-admitted first. A prompt longer than ``max_batch_tokens`` can never be
admitted (no chunking): that is an error at start.

The watermark is vLLM v0's ``BlockSpaceManager`` watermark (default 0.01 of the blocks, its
default): admission leaves that many blocks free for the running requests' growth, so a prompt
is not admitted only to have a running request preempted at its next decode (an idle GPU
ignores it: there is nothing to protect, and a request needing the whole memory must run).
Without it (``watermark: 0``), under KV pressure this rule admits and then preempts, over
and over.
Parameter: ``watermark`` (share of the GPU's KV blocks, in [0, 1); default 0.01).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from baselines.request_level import check_prompts_fit, fcfs_whole_prompts
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import (
    CompiledRule,
    DecisionView,
    Scheduler,
    WorkloadLimits,
    positive_number,
    register_scheduler,
)


@dataclass(frozen=True)
class PrefillFirstConfig:
    """watermark: share of the GPU's KV blocks admission keeps free (vLLM v0's, 0.01)."""

    watermark: float = 0.01

    def __post_init__(self) -> None:
        positive_number("scheduler.watermark", self.watermark, allow_zero=True)
        if self.watermark >= 1.0:
            raise ConfigError(f"scheduler.watermark = {self.watermark!r}: must be in [0, 1)")


@register_scheduler("prefill_first")
class PrefillFirstScheduler(Scheduler):
    """vLLM-v0-style prefill-first scheduling (see the module docstring)."""

    Config = PrefillFirstConfig

    def check_feasible(self, limits: WorkloadLimits) -> None:
        check_prompts_fit(limits, self.sim_config.gpus, self.name)

    def compiled_rule(self) -> CompiledRule | None:
        if type(self) is not PrefillFirstScheduler:  # a subclass may schedule otherwise
            return None
        return CompiledRule("prefill_first", floats=(self.config.watermark,))

    def schedule(self, view: DecisionView) -> Batch | Wait:
        if view.waiting.size:
            capacity = view.kv_capacity_blocks
            # nothing running to protect: an idle GPU admits up to its whole memory (a
            # request that needs it all would otherwise never run)
            reserve = (0 if capacity == math.inf or view.resident == 0
                       else math.ceil(self.config.watermark * capacity))
            batch = fcfs_whole_prompts(view, view.max_batch_tokens, view.free_slots, reserve)
            if batch is not None:
                return batch
        if view.decoding.size:
            return Batch(decode_ids=view.decoding[: view.max_batch_tokens])
        return Wait()
