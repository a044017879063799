"""Iteration-level scheduling with whole-prompt prefills, as in Orca.

System modelled: Orca (Yu et al., OSDI 2022), which schedules at the granularity of one
iteration: every iteration runs all running requests' next decode, and new requests join the
very next iteration with their whole prompt (selective batching puts prefill and decode tokens
in one batch). Orca does not split prompts (chunked prefill came later, with Sarathi).

Rule, for a free GPU::

    decodes = every decode-ready request on the GPU (the oldest max_batch_tokens of them)
    left = max_batch_tokens - |decodes|
    prefills = waiting requests taken FCFS, whole prompts, while their summed prompt tokens
               <= left, a slot is free (max_batch_requests) and their KV fits in the blocks
               left once the decodes have grown (a prefix: the first that does not fit
               stops the scan, so a long prompt at the head waits and blocks the queue)
    run decodes + prefills (Wait if both are empty)

The difference from ``hybrid`` (Sarathi-Serve) is the missing chunking: a prompt joins only
when all of it fits beside the decodes, so a long prompt waits and then stalls the decodes of
its iteration for its whole length. A prompt longer than ``max_batch_tokens`` can never run:
that is an error at start.
"""

from __future__ import annotations

from baselines.request_level import check_prompts_fit, fcfs_whole_prompts
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import (
    CompiledRule,
    DecisionView,
    Scheduler,
    WorkloadLimits,
    register_scheduler,
)


@register_scheduler("orca")
class OrcaScheduler(Scheduler):
    """Orca iteration-level scheduling (see the module docstring)."""

    def check_feasible(self, limits: WorkloadLimits) -> None:
        check_prompts_fit(limits, self.sim_config.gpus, self.name)

    def compiled_rule(self) -> CompiledRule | None:
        if type(self) is not OrcaScheduler:  # a subclass may schedule otherwise
            return None
        return CompiledRule("orca")

    def schedule(self, view: DecisionView) -> Batch | Wait:
        decodes = view.decoding[: view.max_batch_tokens]
        batch = None
        if view.waiting.size and decodes.size < view.max_batch_tokens:
            batch = fcfs_whole_prompts(view, view.max_batch_tokens - decodes.size,
                                       view.free_slots)
        if batch is None:
            return Batch(decode_ids=decodes) if decodes.size else Wait()
        if not decodes.size:
            return batch
        # fcfs_whole_prompts fits the KV of the prompts in the free blocks; beside decodes
        # they must fit in what the decodes leave (a prefix of the prefix, still FCFS)
        ids, tokens = view.kv_fit_prefill(batch.prefill_ids, batch.prefill_tokens,
                                          view.kv_room_after_decodes(decodes),
                                          allow_partial=False)
        return Batch(prefill_ids=ids, prefill_tokens=tokens, decode_ids=decodes)
