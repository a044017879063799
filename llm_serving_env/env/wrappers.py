"""Small action spaces for learning on top of the native one: a ``Discrete`` choice of prefill
budget x decode rule (:class:`CompactActionWrapper`) and its ``MultiDiscrete`` form."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from llm_serving_env.env.serving_env import LLMServingEnv, integer_action
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.batching import fill_prefill_budget

__all__ = ["DECODE_RULES", "CompactActionWrapper", "CompactMultiDiscreteWrapper"]

_INF = math.inf
_NONE = np.zeros(0, dtype=np.int64)
_NONE.flags.writeable = False

DECODE_RULES = ("all", "at_risk", "none")


class CompactActionWrapper(gym.Wrapper):
    """A small ``Discrete(len(budgets) * len(decode_rules))`` action space for learning.

    Action ``k`` = (budget index ``k // len(decode_rules)``, rule index
    ``k % len(decode_rules)``) maps to a native composition:

    * decodes per the rule: ``"all"`` every decode-ready request; ``"none"`` no decode;
      ``"at_risk"`` those whose next token would break the TBT target if they skipped this
      batch and the next: ``now - last_token + 2 * S(max(budgets)) > tbt``, with ``tbt`` =
      ``slo.tbt_ms`` (else ``4 * S(max(budgets))``) and S the mean service time;
    * then hybrid-style chunked prefill of ``view.waiting`` (partially prefilled first, then
      FCFS; whole remaining prompts, the last one cut) up to the prefill token budget, new
      requests only while slots are free;
    * then the env's repair rule (token room, KV room, and the no-deadlock rule for an empty
      composition; see :class:`LLMServingEnv`), reported in ``info["repaired"]``.

    Observation, reward and episodes are the wrapped env's. ``info["budget_tokens"]`` and
    ``info["decode_rule"]`` echo the decoded action.
    """

    def __init__(self, env: gym.Env, budgets: Sequence[int] = (0, 64, 128, 256, 512, 1024),
                 decode_rules: Sequence[str] = DECODE_RULES) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not isinstance(base, LLMServingEnv):
            raise TypeError("CompactActionWrapper wraps an LLMServingEnv")
        self.budgets = tuple(int(b) for b in budgets)
        if not self.budgets or min(self.budgets) < 0:
            raise ValueError(f"budgets = {budgets!r}: need token counts >= 0")
        self.decode_rules = tuple(decode_rules)
        bad = [r for r in self.decode_rules if r not in DECODE_RULES]
        if bad or not self.decode_rules:
            raise ValueError(f"decode_rules = {decode_rules!r}: choose from {DECODE_RULES}")
        service = ServiceModel.from_config(base.config.service, np.random.default_rng(0))
        s_max = float(service.mean_s(max(max(self.budgets), 1)))
        slo = base.config.slo
        self.tbt_target_s = slo.tbt_ms / 1000.0 if slo is not None else 4.0 * s_max
        self.risk_horizon_s = 2.0 * s_max
        self.action_space = spaces.Discrete(len(self.budgets) * len(self.decode_rules))

    def _split(self, action: Any) -> tuple[int, int]:
        a = integer_action(action, self.action_space).reshape(-1)
        if a.size != 1 or not 0 <= int(a[0]) < self.action_space.n:
            raise ValueError(f"action {a.tolist()} is outside {self.action_space}")
        k = int(a[0])
        return divmod(k, len(self.decode_rules))

    def command(self, budget_index: int, rule_index: int) -> tuple[Batch | Wait, bool]:
        """The repaired batch (or Wait) of a compact action, and whether it was repaired."""
        base: LLMServingEnv = self.env.unwrapped  # type: ignore[assignment]
        view = base.decision_view
        if view is None:
            raise RuntimeError("the episode is over: call reset() first")
        rule = self.decode_rules[rule_index]
        decoding = view.decoding
        if rule == "all" or decoding.size == 0:
            decodes = decoding
        elif rule == "none":
            decodes = _NONE
        else:
            since = view.now_s - view.requests.last_token_s[decoding]
            decodes = decoding[since + self.risk_horizon_s > self.tbt_target_s]
        ids, tokens = fill_prefill_budget(view, self.budgets[budget_index],
                                      view.free_slots)
        # (the chunks are a prefix of view.waiting within the free slots: only the KV step
        # of the repair needs to know which requests are new)
        is_new = (np.arange(ids.size) >= view.num_partial
                  if ids.size and view.kv_free_blocks != _INF else None)
        return base._repair(view, decodes, ids, tokens, is_new)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step with a compact action (or, as the env, a Batch / Wait object as is)."""
        if isinstance(action, (Batch, Wait)):
            return self.env.step(action)
        b, r = self._split(action)
        command, repaired = self.command(b, r)
        obs, reward, terminated, truncated, info = self.env.step(command)
        info["repaired"] = repaired
        info["budget_tokens"] = self.budgets[b]
        info["decode_rule"] = self.decode_rules[r]
        return obs, reward, terminated, truncated, info


class CompactMultiDiscreteWrapper(CompactActionWrapper):
    """:class:`CompactActionWrapper` with ``MultiDiscrete([len(budgets), len(decode_rules)])``
    actions ``(budget index, decode rule index)``."""

    def __init__(self, env: gym.Env, budgets: Sequence[int] = (0, 64, 128, 256, 512, 1024),
                 decode_rules: Sequence[str] = DECODE_RULES) -> None:
        super().__init__(env, budgets, decode_rules)
        self.action_space = spaces.MultiDiscrete(
            np.array([len(self.budgets), len(self.decode_rules)], dtype=np.int64))

    def _split(self, action: Any) -> tuple[int, int]:
        a = integer_action(action, self.action_space).reshape(-1)
        if a.shape != (2,) or not (0 <= a[0] < len(self.budgets)
                                   and 0 <= a[1] < len(self.decode_rules)):
            raise ValueError(f"action {a.tolist()} is outside {self.action_space}")
        return int(a[0]), int(a[1])
