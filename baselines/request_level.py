"""Request-level (decode-prioritizing) batching, as in FasterTransformer.

System modelled: FasterTransformer and TensorRT-LLM's request-level mode, which run a cohort
of requests to completion before admitting new ones.

Rule, for a free GPU::

    if the GPU holds a cohort (requests in decode):
        decode every member once                      # until all members are done
    else:
        admit waiting requests FCFS while the sum of their whole prompts <= max_batch_tokens
        and their count <= max_batch_requests; prefill them all in one batch

New requests never interrupt a running cohort, so decode iterations are never stalled by a
prefill, but the GPU under-fills as members finish and the cohort waits for its longest one.
A prompt longer than ``max_batch_tokens`` can never be admitted: that is an error at start.
"""

from __future__ import annotations

import numpy as np

from llm_serving_env.config.sections import GpuConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import (
    CompiledRule,
    DecisionView,
    Scheduler,
    WorkloadLimits,
    register_scheduler,
)


def fcfs_whole_prompts(view: DecisionView, token_limit: int, slots: int,
                       reserve_blocks: float = 0) -> Batch | None:
    """Prefill batch of whole prompts taken FCFS from ``view.waiting`` while the summed prompt
    tokens stay <= token_limit, at most ``slots`` requests are taken and their KV fits in the
    free blocks less ``reserve_blocks`` (a watermark); None if none fits."""
    if slots <= 0:
        return None
    head = view.waiting[:slots]
    need = view.remaining_prompt(head)
    fits = np.cumsum(need) <= token_limit
    count = int(fits.size if fits.all() else np.argmin(fits))
    free = max(0.0, view.kv_free_blocks - reserve_blocks)
    ids, tokens = view.kv_fit_prefill(head[:count], need[:count], free, allow_partial=False)
    if ids.size == 0:
        return None
    return Batch(prefill_ids=ids, prefill_tokens=tokens)


def check_prompts_fit(limits: WorkloadLimits, gpus: GpuConfig, scheduler: str) -> None:
    """Error if a prefill could exceed ``max_batch_tokens`` under a policy that cannot chunk.

    With limited KV memory a preempted request recomputes prompt + generated tokens, up to
    L + B - 1 for the longest prompt and output the run allows, so that bound applies
    instead of L.
    """
    max_batch_tokens = gpus.max_batch_tokens
    recompute = gpus.kv_capacity_tokens is not None
    longest = limits.max_prompt_tokens + (limits.max_output_tokens - 1 if recompute else 0)
    if longest > max_batch_tokens:
        what = ("prefill (prompt + up to the longest output after a preemption)" if recompute
                else "prompt")
        raise ConfigError(
            f"gpus.max_batch_tokens = {max_batch_tokens}: scheduler {scheduler!r} prefills whole "
            f"prompts, but the workload allows a {what} of {longest} tokens, which could never "
            "run; raise gpus.max_batch_tokens, shorten the prompts, or use a chunking scheduler "
            "such as 'hybrid'")


@register_scheduler("request_level", "decode_first")
class RequestLevelScheduler(Scheduler):
    """FasterTransformer-style request-level batching (see the module docstring)."""

    def check_feasible(self, limits: WorkloadLimits) -> None:
        check_prompts_fit(limits, self.sim_config.gpus, self.name)

    def compiled_rule(self) -> CompiledRule | None:
        if type(self) is not RequestLevelScheduler:  # a subclass may schedule otherwise
            return None
        return CompiledRule("request_level")

    def schedule(self, view: DecisionView) -> Batch | Wait:
        if view.decoding.size:
            return Batch(decode_ids=view.decoding)
        batch = fcfs_whole_prompts(view, view.max_batch_tokens,
                                   view.free_slots)
        return batch if batch is not None else Wait()
