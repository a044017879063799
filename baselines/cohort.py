"""What the request-level batchers (``fixed_batch``, ``dynamic_batch``) share: the cohort they
would prefill now, and the rule around it (decode a running cohort to its end; prefill a full
cohort at once; otherwise hold it until a policy-specific time)."""

from __future__ import annotations

from abc import abstractmethod

from baselines.request_level import check_prompts_fit, fcfs_whole_prompts
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import DecisionView, Scheduler, WorkloadLimits

__all__ = ["CohortBatcher", "cohort_candidate"]


def cohort_candidate(view: DecisionView) -> tuple[Batch | None, bool]:
    """The cohort request_level would prefill now on an idle GPU, and whether it is full.

    The cohort is :func:`fcfs_whole_prompts` over the free slots and the whole token limit
    (None if nothing fits). It is full when waiting longer cannot make it larger: a waiting
    request was left out (tokens, slots or KV), every free slot is taken, or the token limit
    is reached; a GPU that already holds partial prefills counts as full too (dispatch now).
    """
    slots = view.free_slots
    batch = fcfs_whole_prompts(view, view.max_batch_tokens, slots)
    if batch is None:
        return None, False
    count = batch.prefill_ids.size
    full = (view.num_partial > 0 or count < view.waiting.size or count >= slots
            or batch.token_load >= view.max_batch_tokens)
    return batch, full


class CohortBatcher(Scheduler):
    """A request-level batcher: a running cohort decodes to its end; a full cohort (see
    :func:`cohort_candidate`) is prefilled at once; otherwise the cohort waits until
    :meth:`hold_until` (an arrival re-offers the GPU earlier), then is prefilled."""

    def check_feasible(self, limits: WorkloadLimits) -> None:
        check_prompts_fit(limits, self.sim_config.gpus, self.name)

    @abstractmethod
    def hold_until(self, view: DecisionView, batch: Batch) -> float:
        """Simulated time (s) until which a cohort that is not full is held back; a time at
        or before ``view.now_s`` dispatches it now."""

    def schedule(self, view: DecisionView) -> Batch | Wait:
        if view.decoding.size:
            return Batch(decode_ids=view.decoding[: view.max_batch_tokens])
        batch, full = cohort_candidate(view)
        if batch is None:
            return Wait()
        if full:
            return batch
        until = self.hold_until(view, batch)
        # at that time the engine re-offers the GPU with now_s == until exactly
        return Wait(until_s=until) if until > view.now_s else batch
