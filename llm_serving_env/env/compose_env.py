"""``LLMServing-v1``: the batch composed pick by pick, with an exact mask.

``LLMServing-v0`` asks for the whole batch in one ``MultiDiscrete`` action over the first N
waiting and decoding requests, masks each dimension alone and repairs what the dimensions
break together. That cannot express a rule that picks the 17th waiting request, credits PPO for
sub-actions that never ran, and lets a random policy starve every decode. ``LLMServing-v1``
keeps the simulator, the rewards and the episodes of v0 and changes the action: a decision
point is a short sequence of micro-steps in one ``Discrete`` space (see :class:`LLMComposeEnv`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.env.compose import Composer
from llm_serving_env.env.compose_observation import (
    CANDIDATE_FEATURES,
    DECODE_FEATURES,
    DEFAULT_BUDGET_MARGIN_MS,
    STATE_FEATURES,
    ComposeKit,
)
from llm_serving_env.env.serving_env import (
    DEFAULT_CHUNK_LADDER,
    DEFAULT_NUM_SLOTS,
    LLMServingEnv,
    integer_action,
)
from llm_serving_env.sim.batch import Batch, SchedulingError, Wait

__all__ = ["CANDIDATE_FEATURES", "COMPOSE_ENV_ID", "DECODE_FEATURES", "DEFAULT_HOLD_FRACTIONS",
           "STATE_FEATURES", "LLMComposeEnv", "hold_ladder"]

#: The id under which the composition environment is registered with Gymnasium.
COMPOSE_ENV_ID = "LLMServing-v1"
#: Default timed holds, as fractions of the TTFT objective (of 1 s without an SLO).
DEFAULT_HOLD_FRACTIONS = (0.125, 0.25, 0.5, 1.0)

_INF = math.inf


def hold_ladder(config: SimConfig, hold_s: Sequence[float] | None) -> np.ndarray:
    """The timed holds (seconds, float64 (H,)): ``hold_s``, or by default
    ``DEFAULT_HOLD_FRACTIONS`` of the TTFT objective (of 1 s without an SLO)."""
    if hold_s is None:
        unit = config.slo.ttft_ms / 1000.0 if config.slo is not None else 1.0
        hold_s = tuple(f * unit for f in DEFAULT_HOLD_FRACTIONS)
    holds = np.asarray([float(h) for h in hold_s], dtype=np.float64)
    if holds.ndim != 1 or not np.all(np.isfinite(holds)) or np.any(holds <= 0):
        raise ValueError(f"hold_s = {hold_s!r}: must be a sequence of finite times > 0 s")
    return holds


class LLMComposeEnv(LLMServingEnv):
    """Batch composition for an LLM-serving GPU, one pick per step (``LLMServing-v1``).

    ## Description

    The simulator, rewards, episodes and options of ``LLMServing-v0`` (see
    :class:`~llm_serving_env.env.serving_env.LLMServingEnv`), with a different action: at each
    decision point (a GPU is free and has work) the agent builds the batch in micro-steps.
    It starts from the *default batch*: every decode-ready request decodes (the first
    ``max_batch_tokens`` of them), no prefill, and a token budget ``B`` = the largest load
    whose mean iteration time still meets every decode's TBT deadline ``budget_margin_ms``
    early (``max_batch_tokens`` without an SLO or without decodes; the margin is
    ``slo_aware``'s, so on deterministic service the default budget is that rule's and a
    policy cloned from it need not move it). It then picks waiting requests one at a time, edits
    the decodes or the budget, and ends the decision with DISPATCH or a timed WAIT. Only a
    step that ends a decision advances simulated time; the others have ``dt_s = 0`` and reward
    0, so time-discounting (``gamma ** dt_s``) leaves them undiscounted.

    ## Action Space

    ``Discrete(3N + 6 + 2J + 2H)``, ``N = num_slots`` (default 16), ``J`` the bits of
    ``max_batch_tokens`` (K), ``H = len(hold_s)``;
    :class:`~llm_serving_env.env.compose.ComposeLayout` numbers them:

    | action             | effect                                                            |
    |--------------------|-------------------------------------------------------------------|
    | PICK_j (N)         | the j-th unpicked waiting request of the page (partial prefills   |
    |                    | first, then the queue's order) gets a chunk of                    |
    |                    | min(remaining prompt, B - load, KV room) tokens                   |
    | NEXT_PAGE          | show the next N unpicked waiting requests (wraps round to the     |
    |                    | first page; at most one tour of the pages between two picks)      |
    | FIRST_PAGE         | back to the first page (counts as a page move)                    |
    | DISPATCH           | run the batch; an empty one idles the GPU until the next event    |
    | TOGGLE_j (N)       | the j-th decode of the decode page leaves (joins) the batch; once |
    |                    | per decode and decision                                           |
    | NEXT_DECODE_PAGE, FIRST_DECODE_PAGE | page through ``view.decoding`` likewise (one     |
    |                    | tour between two toggles)                                         |
    | HOLD_ALL           | hold every decode back (once per decision)                        |
    | HOLD_FROM_j (N)    | hold every decode from position j of the decode page on (once)    |
    | BUDGET_UP_i (J)    | B += 2**i (each once per decision; B <= K)                        |
    | BUDGET_DOWN_i (J)  | B -= 2**i (each once per decision; B >= 1)                        |
    | WAIT_k (H)         | hold the picked cohort: idle until its oldest arrival + hold_s[k] |
    |                    | (or the next event); the picks are not run                        |
    | WAIT_SERVICE_k (H) | likewise until oldest arrival + hold_s[k] - S(its prefill tokens) |

    **The mask is exact.** ``action_masks()`` allows an action only if it runs as chosen:
    a pick only if its chunk is at least one token, it has a slot (a new request needs
    ``view.free_slots``) and its KV fits; a decode joins only within ``max_batch_tokens``;
    WAIT only with picks and a time in the future; an empty DISPATCH only while an event is
    pending (otherwise it would deadlock). There is no repair step; ``info["repaired"]`` is
    always False. A masked action (a policy that ignores the mask, or Gymnasium's checker
    sampling the space) changes nothing: the step returns the same state, reward 0 and
    ``info["masked"]`` True. The engine may still preempt residents when the decodes' KV
    growth exceeds the free blocks (its preemption rule, as under every scheduler). Each
    decision ends within a bounded number of micro-steps: every pick removes a candidate;
    every other move is once per decision, or once per page between two picks or toggles.
    While the batch is empty and no event is pending (nothing else can happen until a pick),
    a finished tour of the pages allows one more NEXT_PAGE at a time, and none on a page
    where a pick is possible, so even an agent that would rather page must pick within one
    more tour. Holding decodes back so that
    the batch would be empty is allowed only while an event is pending or a waiting request
    can still be picked, so an agent cannot talk itself into a deadlock by
    its decode edits.

    **Expressiveness.** Every batch the engine accepts, for any queue length, is a sequence
    of these actions (page to a request, move B to cut its chunk, toggle decodes); so is a
    ``Wait(until_s)`` whose time is a cohort's oldest arrival plus a ``hold_s`` entry (minus the
    cohort's mean prefill time, as ``dynamic_batch``). :class:`~llm_serving_env.env.BaselineAgent`
    with ``native=True`` turns any registered scheduler's answers into these actions, and the
    run equals ``simulate(config, policy, seed)`` bit for bit (``tests/test_compose_env.py``).
    Decodes run in the GPU's decode order whatever order a batch lists them in (the engine's
    rule), so a set of decodes is all an action has to choose.

    **Guards** (option ``guards``, default True) make random exploration safe, at the price of
    forbidding some batches a hand-written rule may build (replay those with
    ``guards=False``): a decode may be held back only if its next token can skip this
    iteration and the next, both of K tokens, and still meet its TBT objective (or is late
    already); the budget rises only while its mean iteration time meets every in-batch
    decode's deadline; a new request is admitted only if the KV blocks of its whole remaining
    prompt fit beside those the partially prefilled requests still need (so memory never fills
    with prefills that cannot finish); WAIT only when every decode may be held. Without an SLO
    the decode guards allow everything.

    ## Observation Space

    ``Box(0, 1, (16 + 13 + 10N + 8N,), float32)``: v0's 16 global features, 13 compose-state
    features (``STATE_FEATURES``: B / K, load / K, picks p / (p + N), share of decodes in the
    batch and held, page offset over the unpicked count, whether more pages follow (waiting and
    decodes), free slots left / R, KV room left / capacity, deadline budget / K, micro-steps
    taken m / (m + N)), then the page's N candidates feature-major (``CANDIDATE_FEATURES``:
    occupied; remaining prompt r / (r + P); the chunk a pick would get c / (c + P); age
    a / (a + T_ttft); resident (partially prefilled here); predicted output m / (m + M) from the
    config's length predictor (0 with none); late: its age plus S(remaining prompt) already
    exceeds T_ttft; arrival rank: its position in the waiting list (partial prefills first, then
    FCFS) over the list's length w; prompt rank: how many waiting requests have a shorter
    remaining prompt, over w. The ranks carry the orders rules sort by, which the scaled
    values hide when they are close, and cover requests on other pages; its TTFT objective
    T_i / (T_i + T_ttft), 1/2 without ``slo.classes``) and the decode page's N decodes
    (``DECODE_FEATURES``: occupied; in the batch; since last token s / (s + T_tbt); TBT slack
    max(0, last + D_i - now) / T_tbt clipped to 1; generated g / (g + M); predicted remaining;
    age a / (a + T_ttft); its TBT objective D_i / (D_i + T_tbt)). T_ttft and T_tbt are v0's
    scales (the SLO's objectives, the tightest class's with ``slo.classes``); T_i and D_i are
    the request's own objectives (its class's), which "late" and the slack use. The
    candidates of one page share one feature layout, so a policy can score them with shared
    weights (``agents.policy_net``) and page through any number of requests.

    ## Rewards, Starting State, Episode End

    As v0. ``max_steps`` counts micro-steps. ``info``: ``decided`` (the step ended a decision
    and advanced the simulator), ``masked`` (the action was masked: nothing happened),
    ``gpu``, ``now_s``, ``dt_s``, ``num_finished``, ``repaired`` (always False).

    ## Arguments

    As v0 (``chunk_ladder`` only sets the token scale P = its largest entry) plus ``hold_s``
    (timed holds in seconds; default ``DEFAULT_HOLD_FRACTIONS`` of the TTFT objective),
    ``guards``, ``budget_margin_ms`` (the default budget's margin below the tightest decode
    deadline, default 5 ms as ``slo_aware``'s ``safety_margin_ms``) and ``attention_aware``
    (default True: when the service prices attention, ``service.attention``, the mean iteration
    time of the default budget and the guards includes the decodes' KV reads and the chunk's
    attention, planned as ``slo_aware`` plans them; without it a long-context batch filled to
    the budget overruns the TBT objective).
    """

    def __init__(
        self,
        config: SimConfig | str | os.PathLike | Mapping[str, Any] = "default",
        *,
        num_slots: int = DEFAULT_NUM_SLOTS,
        chunk_ladder: Sequence[int] = DEFAULT_CHUNK_LADDER,
        hold_s: Sequence[float] | None = None,
        guards: bool = True,
        budget_margin_ms: float = DEFAULT_BUDGET_MARGIN_MS,
        attention_aware: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(config, num_slots=num_slots, chunk_ladder=chunk_ladder, **options)
        cfg = self.config
        if not isinstance(guards, bool):
            raise ValueError(f"guards = {guards!r}: must be True or False")
        self.guards = guards
        if (isinstance(budget_margin_ms, bool) or not isinstance(budget_margin_ms, (int, float))
                or not 0.0 <= budget_margin_ms < math.inf):
            raise ValueError(f"budget_margin_ms = {budget_margin_ms!r}: must be a number >= 0")
        self.budget_margin_ms = float(budget_margin_ms)
        if not isinstance(attention_aware, bool):
            raise ValueError(f"attention_aware = {attention_aware!r}: must be True or False")
        self.attention_aware = attention_aware
        self.hold_s = holds = hold_ladder(cfg, hold_s)
        kit = self.kit = ComposeKit(cfg, self.observer, holds, guards, self.budget_margin_ms,
                                    attention_aware)
        self.layout = kit.layout
        self.action_space = spaces.Discrete(self.layout.size)
        self.num_global = kit.num_global
        self.state_offset = kit.state_offset
        self.candidate_offset = kit.candidate_offset
        self.decode_offset = kit.decode_offset
        self.obs_size = kit.size
        self.observation_space = spaces.Box(0.0, 1.0, (self.obs_size,), np.float32)
        self.observation_names = kit.names
        self._composer: Composer | None = None
        self._globals = np.zeros(self.num_global, dtype=np.float32)
        self._micro = 0
        self._last_obs = np.zeros(self.observer.size, dtype=np.float32)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode (as v0); the first observation is the first decision's."""
        self._last_obs, info = super().reset(seed=seed, options=options)
        self._start_decision()
        return self._observe(), info

    def step(self, action: int | np.integer | Batch | Wait
             ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One micro-step (see "Action Space"); a ``Batch`` / ``Wait`` object ends the decision
        at once with that command (the micro-steps taken so far are dropped)."""
        view = self._view
        if view is None or not self._active:
            raise RuntimeError("the episode is over: call reset() first")
        masked = False
        if isinstance(action, (Batch, Wait)):
            command: Batch | Wait | None = action
        else:
            a = integer_action(action, self.action_space)
            if a.size != 1 or not 0 <= int(a.reshape(-1)[0]) < self.layout.size:
                raise ValueError(f"action {action!r} is not an element of {self.action_space}")
            index = int(a.reshape(-1)[0])
            masked = not self._composer.mask()[index]
            command = None if masked else self._composer.apply(index)
        self._micro += 1
        if command is None:
            self._steps += 1
            truncated = self.max_steps is not None and self._steps >= self.max_steps
            if truncated:
                self._active = False
            info = {"repaired": False, "decided": False, "masked": masked, "gpu": view.gpu,
                    "now_s": self.sim.now_s, "dt_s": 0.0, "num_finished": self.sim.num_finished}
            return self._observe(), 0.0, False, truncated, info
        obs_v0, reward, terminated, truncated, info = super().step(command)
        self._last_obs = obs_v0
        info["decided"] = True
        info["masked"] = False
        if terminated:
            self._composer = None
            return self._final_observation(obs_v0), reward, terminated, truncated, info
        self._start_decision()
        return self._observe(), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Boolean mask over ``Discrete(n)``: True = allowed, executed exactly as chosen."""
        if self._composer is None:
            mask = np.zeros(self.layout.size, dtype=bool)
            mask[self.layout.dispatch] = True
            return mask
        mask = self._composer.mask()
        if not mask.any():
            hint = ("" if self.guards else " (make the env with guards=True to keep new "
                    "requests from filling memory)")
            raise SchedulingError(
                "deadlock", f"at t={self.sim.now_s:.6f}s no micro-action of GPU "
                f"{self._view.gpu} can run and no event is pending{hint}")
        return mask.copy()

    @property
    def composer(self) -> Composer | None:
        """The current decision's batch under construction (None once terminated)."""
        return self._composer

    # ------------------------------------------------------------------ internals
    def _start_decision(self) -> None:
        view = self._view
        if view is None:
            self._composer = None
            return
        self._composer = self.kit.composer(view, view.event_pending)
        self._globals = self._last_obs[: self.num_global].copy()
        self._micro = 0

    def _final_observation(self, obs_v0: np.ndarray) -> np.ndarray:
        out = np.zeros(self.obs_size, dtype=np.float32)
        out[: self.num_global] = obs_v0[: self.num_global]
        return out

    def _observe(self) -> np.ndarray:
        return self.kit.observe(self._composer, self._globals, self._micro)
