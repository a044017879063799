"""The action space the learned scheduler acts in, and the env factory shared by training and
evaluation.

:class:`SloActionWrapper` turns ``LLMServingEnv`` into a ``Discrete(len(budgets) *
len(orders))`` problem whose actions are *scheduling modes* built from the strongest
hand-written scheduler, ``slo_aware`` (``baselines/slo_aware.py``). Action ``k`` = (budget
index ``k // len(orders)``, order index ``k % len(orders)``):

* budget ``"deadline"``: ``slo_aware``'s own rule: the token budget sized to the tightest
  reachable decode deadline (every running decode keeps its TBT objective), critical decodes
  first, non-critical ones in the budget left. A number ``B``: every decode-ready request
  (earliest deadline first, at most ``max_batch_tokens``), then prefill up to ``B`` tokens:
  larger iterations clear a prompt backlog faster (S(b) per token falls with b) at the price of
  the running decodes' TBT;
* prefill order ``"srpt"``: ``slo_aware``'s (partial prefill first, then shortest remaining
  prompt first); ``"triage"``: the same, except that new requests that can no longer meet
  their TTFT objective go last (*doomed*: ``age + ceil(remaining / p) * T(b) > ttft`` with ``p``
  the prefill tokens this iteration can hold and ``T(b)`` its planned time: even prefilled
  alone at this rate they would be late). They are still served (in SRPT order) whenever no
  viable request is waiting. ``"fcfs"``: hybrid's order (partial prefill first, then FCFS).

Action 0 with the defaults, ``("deadline", "srpt")``, is ``slo_aware`` exactly: run through the
env with that action at every step, it gives the same RunResult as ``simulate(config,
"slo_aware", seed)`` (tested). The learned policy therefore chooses, per decision point,
between ``slo_aware`` and controlled departures from it (a larger budget, a triage order).

Every action is a valid :class:`~llm_serving_env.sim.batch.Batch` (or a ``Wait`` when nothing fits
and no decode is ready, as ``slo_aware``) and is executed as is; ``info["budget"]`` and
``info["order"]`` echo the decoded action.

:func:`make_env` builds the env a model was trained in from a JSON-able *env spec* (config,
overrides, reward, action space, wrapper parameters), stored in the model's sidecar so that
evaluation rebuilds exactly the same observation and action spaces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from baselines.slo_aware import assemble_batch, srpt_prefill, triage_prefill
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.env import CompactActionWrapper, LLMComposeEnv, LLMServingEnv
from llm_serving_env.env.serving_env import integer_action
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.batching import fill_prefill_budget
from llm_serving_env.sim.scheduler import DecisionView, make_scheduler
from llm_serving_env.sim.simulate import as_config

__all__ = ["ACTION_SPACES", "ORDERS", "EpisodeStatsWrapper", "SeedRangeWrapper", "SloActionWrapper",
           "SloModes", "make_env"]

ORDERS = ("srpt", "triage", "fcfs")
#: Action spaces of :func:`make_env`: this module's wrapper, the env's compact wrapper, the
#: env's native MultiDiscrete action (MaskablePPO).
ACTION_SPACES = ("slo", "compact", "native", "compose")

_NONE = np.zeros(0, np.int64)
_NONE.flags.writeable = False
_EPS_S = 1e-9


class SloModes:
    """The ``len(budgets) * len(orders)`` scheduling modes around ``slo_aware`` (see the
    module docstring), composed from a :class:`~llm_serving_env.sim.scheduler.DecisionView`
    alone: the action space of :class:`SloActionWrapper` and of the learned scheduler run as a
    plain scheduler."""

    def __init__(self, cfg: SimConfig, budgets: Sequence[str | int] = ("deadline", 1024, 2048),
                 orders: Sequence[str] = ("srpt", "triage")) -> None:
        if cfg.slo is None:
            raise ConfigError("the 'slo' action space builds on slo_aware and needs an SLO: set "
                              "slo: {ttft_ms, tbt_ms} in the config", "slo", None)
        limit = cfg.gpus.max_batch_tokens
        parsed: list[str | int] = []
        for b in budgets:
            if b == "deadline":
                parsed.append(b)
            elif isinstance(b, (int, np.integer)) and not isinstance(b, bool) and 1 <= b <= limit:
                parsed.append(int(b))
            else:
                raise ValueError(f"budgets: {b!r} is neither 'deadline' nor a token count in "
                                 f"1..gpus.max_batch_tokens ({limit})")
        bad = [o for o in orders if o not in ORDERS]
        if bad or not orders:
            raise ValueError(f"orders = {list(orders)!r}: choose from {ORDERS}")
        if not parsed:
            raise ValueError("budgets is empty")
        self.budgets = tuple(parsed)
        self.orders = tuple(orders)
        self.action_space = spaces.Discrete(len(self.budgets) * len(self.orders))
        self.scheduler = make_scheduler(cfg, "slo_aware")
        self.ttft_s = cfg.slo.ttft_ms / 1000.0

    def decode(self, action: Any) -> tuple[str | int, str]:
        """(budget, order) of a flat action."""
        a = integer_action(action, self.action_space).reshape(-1)
        if a.size != 1 or not 0 <= int(a[0]) < self.action_space.n:
            raise ValueError(f"action {a.tolist()} is outside {self.action_space}")
        k = int(a[0])
        b, o = divmod(k, len(self.orders))
        return self.budgets[b], self.orders[o]

    def _prefill(self, view: DecisionView, order: str, budget: int, slots: int, T: np.ndarray,
                 b: int) -> tuple[np.ndarray, np.ndarray]:
        if order == "fcfs":
            return fill_prefill_budget(view, budget, slots)
        if order == "triage":
            return triage_prefill(view, budget, slots, float(T[min(b, T.size - 1)]), self.ttft_s)
        return srpt_prefill(view, budget, slots)

    def compose(self, view: DecisionView, budget: str | int, order: str) -> Batch | Wait:
        """The batch (or Wait) of mode (budget, order) at ``view``."""
        s = self.scheduler
        T = s.time_table(getattr(view, "role", "mixed"))
        dec = view.decoding
        rest = _NONE
        if budget == "deadline":
            b, crit, rest = s.plan_decodes(view, T)
        else:
            crit = dec
            if dec.size > view.max_batch_tokens:
                due = view.requests.last_token_s[dec]
                crit = dec[np.argsort(due, kind="stable")[: view.max_batch_tokens]]
            b = max(int(budget), int(crit.size))
        slots = view.free_slots
        left = b - int(crit.size)
        if order == "srpt" and s.max_wait_s == math.inf:
            ids, tokens = srpt_prefill(view, left, slots)
        else:
            ids, tokens = self._prefill(view, order, left, slots, T, b)
        return assemble_batch(view, dec, crit, rest, ids, tokens, left, b)


class SloActionWrapper(gym.Wrapper):
    """``Discrete(len(budgets) * len(orders))`` scheduling modes around ``slo_aware``; see the
    module docstring. Observation, reward and episodes are the wrapped env's."""

    def __init__(self, env: gym.Env, budgets: Sequence[str | int] = ("deadline", 1024, 2048),
                 orders: Sequence[str] = ("srpt", "triage")) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not isinstance(base, LLMServingEnv):
            raise TypeError("SloActionWrapper wraps an LLMServingEnv")
        self.modes = SloModes(base.config, budgets, orders)
        self.budgets, self.orders = self.modes.budgets, self.modes.orders
        self.action_space = self.modes.action_space

    def decode(self, action: Any) -> tuple[str | int, str]:
        """(budget, order) of a flat action."""
        return self.modes.decode(action)

    def compose(self, view: DecisionView, budget: str | int, order: str) -> Batch | Wait:
        """The batch (or Wait) of mode (budget, order) at ``view``."""
        return self.modes.compose(view, budget, order)

    def action_masks(self) -> np.ndarray:
        """Every mode is always valid (for MaskablePPO's interface)."""
        return np.ones(self.action_space.n, dtype=bool)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step with a mode index (or, as the env, a Batch / Wait object as is)."""
        if isinstance(action, (Batch, Wait)):
            return self.env.step(action)
        budget, order = self.decode(action)
        view = self.env.unwrapped.decision_view
        if view is None:
            raise RuntimeError("the episode is over: call reset() first")
        obs, reward, terminated, truncated, info = self.env.step(
            self.compose(view, budget, order))
        info["budget"] = budget
        info["order"] = order
        return obs, reward, terminated, truncated, info


class SeedRangeWrapper(gym.Wrapper):
    """Resets the simulator with seeds drawn from ``range(low, high)`` (by a generator seeded
    with ``seed``), so training episodes never use the held-out evaluation seeds. A reset with
    an explicit seed uses that seed."""

    def __init__(self, env: gym.Env, low: int, high: int, seed: int) -> None:
        super().__init__(env)
        if not 0 <= low < high:
            raise ValueError(f"seed range [{low}, {high}) is empty")
        self.low, self.high = int(low), int(high)
        self._rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = int(self._rng.integers(self.low, self.high))
        return self.env.reset(seed=seed, options=options)


class EpisodeStatsWrapper(gym.Wrapper):
    """At the end of an episode, ``info["episode_summary"]`` holds the run's SLO attainment,
    goodput and mean TTFT (``RunResult.summary()``, all requests of the episode measured as
    configured), for the training curve."""

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            s = self.env.unwrapped.result().summary()
            info["episode_summary"] = {k: s.get(k, math.nan) for k in
                                       ("slo_attainment", "goodput_rps", "ttft_mean_s",
                                        "throughput_rps")}
        return obs, reward, terminated, truncated, info


def make_env(config: SimConfig | str | Mapping[str, Any], spec: Mapping[str, Any]) -> gym.Env:
    """The env a model acts in: ``LLMServingEnv(config, reward=spec["reward"],
    **spec["env_options"])`` wrapped per ``spec["action_space"]``: ``"slo"``
    (:class:`SloActionWrapper` with ``spec["budgets"]`` / ``spec["orders"]``), ``"compact"``
    (the env's ``CompactActionWrapper`` with ``spec["budgets"]``), ``"native"`` (no wrapper), or
    ``"compose"``: ``LLMServing-v1`` (:class:`LLMComposeEnv`, the batch composed pick by pick).
    The spec is JSON-able and stored in a model's sidecar; the config is not (training uses
    short episodes, evaluation the full-length scenario)."""

    cfg = as_config(config)
    kind = spec.get("action_space", "slo")
    if kind == "compose":  # LLMServing-v1: its own action, no wrapper
        return LLMComposeEnv(cfg, reward=spec.get("reward", "goodput"),
                             **dict(spec.get("env_options") or {}))
    env: gym.Env = LLMServingEnv(cfg, reward=spec.get("reward", "goodput"),
                                 **dict(spec.get("env_options") or {}))
    if kind == "slo":
        kwargs = {k: spec[k] for k in ("budgets", "orders") if spec.get(k) is not None}
        env = SloActionWrapper(env, **kwargs)
    elif kind == "compact":
        kwargs = {k: spec[k] for k in ("budgets",) if spec.get(k) is not None}
        env = CompactActionWrapper(env, **kwargs)
    elif kind != "native":
        raise ValueError(f"action_space = {kind!r}: choose from {ACTION_SPACES}")
    return env
