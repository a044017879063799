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

from llm_serving_env.batch import Batch, Wait
from llm_serving_env.config import ConfigError
from llm_serving_env.scheduling import DecisionView, Scheduler, register_scheduler
from llm_serving_env.workload import Workload


def fcfs_whole_prompts(view: DecisionView, token_limit: int, slots: int) -> Batch | None:
    """Prefill batch of whole prompts taken FCFS from ``view.waiting`` while the summed prompt
    tokens stay <= token_limit and at most ``slots`` requests are taken; None if none fits."""
    if slots <= 0:
        return None
    head = view.waiting[:slots]
    need = view.remaining_prompt(head)
    fits = np.cumsum(need) <= token_limit
    count = int(fits.size if fits.all() else np.argmin(fits))
    if count == 0:
        return None
    return Batch(prefill_ids=head[:count], prefill_tokens=need[:count])


def check_prompts_fit(workload: Workload, max_batch_tokens: int, scheduler: str) -> None:
    """Error if a prompt exceeds ``max_batch_tokens`` under a policy that cannot chunk."""
    longest = int(workload.prompt_tokens.max(initial=0))
    if longest > max_batch_tokens:
        raise ConfigError(
            f"gpus.max_batch_tokens = {max_batch_tokens}: scheduler {scheduler!r} prefills whole "
            f"prompts, but the workload has a prompt of {longest} tokens, which could never run; "
            "raise gpus.max_batch_tokens, shorten the prompts, or use a chunking scheduler "
            "such as 'hybrid'")


@register_scheduler("request_level")
class RequestLevelScheduler(Scheduler):
    """FasterTransformer-style request-level batching (see the module docstring)."""

    def check_feasible(self, workload: Workload) -> None:
        check_prompts_fit(workload, self.sim_config.gpus.max_batch_tokens, self.name)

    def schedule(self, view: DecisionView) -> Batch | Wait:
        if view.decoding.size:
            return Batch(decode_ids=view.decoding)
        batch = fcfs_whole_prompts(view, view.max_batch_tokens,
                                   view.max_batch_requests - view.resident)
        return batch if batch is not None else Wait()
