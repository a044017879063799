"""Prefill-prioritizing iteration-level batching, as in vLLM's original (v0) scheduler.

System modelled: vLLM v0 (Kwon et al., SOSP 2023) with its default scheduler, which at every
step first tries to admit waiting requests and, if it can, runs a step of prefills only; it
runs a decode step of the running requests only when no waiting request can be admitted.

Rule, for a free GPU::

    prefills = waiting requests taken FCFS, whole prompts, while the summed prompt tokens
               <= max_batch_tokens, a slot is free (max_batch_requests) and their KV fits
               in the free blocks (a prefix: the first one that does not fit stops the scan)
    if prefills: run a prefill-only batch of them
    else:        decode every running request once (the oldest max_batch_tokens of them)

New arrivals interrupt the running decodes (a TBT gap of one prefill batch for each of them),
which keeps TTFT short and batches large at the cost of decode stalls. Admission stops at the
slot and KV limits, so decodes always run again eventually. When decodes need KV blocks that
are not free the engine preempts the latest arrivals by recompute; those return to the head
of the queue and are re-admitted first. A prompt longer than ``max_batch_tokens`` can never be
admitted (no chunking): that is an error at start.
"""

from __future__ import annotations

from baselines.request_level import check_prompts_fit, fcfs_whole_prompts
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import (
    DecisionView,
    Scheduler,
    WorkloadLimits,
    register_scheduler,
)


@register_scheduler("prefill_first")
class PrefillFirstScheduler(Scheduler):
    """vLLM-v0-style prefill-first scheduling (see the module docstring)."""

    def check_feasible(self, limits: WorkloadLimits) -> None:
        check_prompts_fit(limits, self.sim_config.gpus, self.name)

    def schedule(self, view: DecisionView) -> Batch | Wait:
        if view.waiting.size:
            batch = fcfs_whole_prompts(view, view.max_batch_tokens,
                                       view.free_slots)
            if batch is not None:
                return batch
        if view.decoding.size:
            return Batch(decode_ids=view.decoding[: view.max_batch_tokens])
        return Wait()
