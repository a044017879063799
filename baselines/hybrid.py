"""Stall-free hybrid batching with chunked prefill, as in Sarathi-Serve.

System modelled: Sarathi-Serve (Agrawal et al., OSDI 2024), whose scheduler builds every
iteration under a token budget: all running decodes first (so they never stall), then chunked
prefills of partially prefilled requests and then of new ones, FCFS, in the budget left.

Rule, for a free GPU with budget ``tau = token_budget``::

    batch = every decode-ready request on the GPU (at most tau of them, oldest first)
    left = tau - |batch|
    for r in waiting (partially prefilled first, then FCFS), while left > 0:
        if r is new and the GPU has no free slot (max_batch_requests): stop
        chunk = min(remaining_prompt(r), left); add (r, chunk); left -= chunk
    shorten/drop the last chunks so their KV fits beside the decodes' growth

Parameters: ``token_budget`` (tau, tokens per iteration, <= gpus.max_batch_tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.batching import fill_prefill_budget
from llm_serving_env.sim.scheduler import (
    CompiledRule,
    DecisionView,
    Scheduler,
    positive_int,
    register_scheduler,
)


@dataclass(frozen=True)
class HybridConfig:
    """token_budget: most tokens (prefill chunks + decodes) in one iteration."""

    token_budget: int = 512

    def __post_init__(self) -> None:
        positive_int("scheduler.token_budget", self.token_budget)


@register_scheduler("hybrid", "sarathi")
class HybridScheduler(Scheduler):
    """Sarathi-Serve stall-free batching (see the module docstring)."""

    Config = HybridConfig

    def __init__(self, config: HybridConfig, sim_config: SimConfig) -> None:
        super().__init__(config, sim_config)
        limit = sim_config.gpus.max_batch_tokens
        if config.token_budget > limit:
            raise ConfigError(
                f"scheduler.token_budget = {config.token_budget}: must be <= "
                f"gpus.max_batch_tokens ({limit})")

    def compiled_rule(self) -> CompiledRule | None:
        if type(self) is not HybridScheduler:  # a subclass may schedule otherwise
            return None
        return CompiledRule("hybrid", ints=(self.config.token_budget,))

    def schedule(self, view: DecisionView) -> Batch | Wait:
        budget = self.config.token_budget
        decodes = view.decoding[:budget]
        ids, tokens = fill_prefill_budget(view, budget - decodes.size,
                                      view.free_slots)
        ids, tokens = view.kv_fit_prefill(ids, tokens, view.kv_room_after_decodes(decodes),
                                          allow_partial=True)
        if decodes.size == 0 and ids.size == 0:
            return Wait()
        return Batch(prefill_ids=ids, prefill_tokens=tokens, decode_ids=decodes)
