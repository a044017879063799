"""The Gymnasium environment ``LLMServing-v0``: one decision point of the simulator per step.

The environment is a thin adapter over :class:`~llm_serving_env.sim.engine.Simulator`, the same
engine :func:`~llm_serving_env.sim.simulate.simulate` drives::

    obs, info = env.reset(seed=0)            # Simulator.reset(seed) + next_decision()
    obs, reward, terminated, truncated, info = env.step(action)
        # = Simulator.execute(composition for the decision's GPU) + next_decision()

Use it through Gymnasium after ``import llm_serving_env``::

    env = gymnasium.make("LLMServing-v0", config="default", reward="latency")

See :class:`LLMServingEnv` for the spaces, rewards and episodes, :class:`BaselineAgent` to act
with a hand-written scheduler through the env, and :class:`CompactActionWrapper` /
:class:`CompactMultiDiscreteWrapper` for small action spaces meant for learning.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.env.observation import Observer
from llm_serving_env.env.rewards import REWARDS, RewardTracker
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.batching import fill_prefill_budget
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.scheduler import DecisionView
from llm_serving_env.sim.simulate import as_config

__all__ = ["DEFAULT_CHUNK_LADDER", "DEFAULT_NUM_SLOTS", "ENV_ID", "LLMServingEnv", "integer_action",
           "make_observer"]

#: The id under which the environment is registered with Gymnasium.
ENV_ID = "LLMServing-v0"
#: Default per-slot window N and chunk ladder (options ``num_slots``, ``chunk_ladder``).
DEFAULT_NUM_SLOTS = 16
DEFAULT_CHUNK_LADDER = (32, 64, 128, 256, 512)

_INF = math.inf
_NONE = np.zeros(0, dtype=np.int64)
_NONE.flags.writeable = False



def integer_action(action: Any, space: spaces.Space) -> np.ndarray:
    """``action`` as an int64 array, or a ValueError naming it and ``space``.

    Integer arrays and scalars pass; floats pass only when every value is a whole number
    (some vector wrappers hand back 1.0); anything else (0.5, NaN, bools, strings) is
    rejected rather than truncated, so a policy emitting continuous values fails loudly.
    """
    a = np.asarray(action)
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    if a.dtype.kind == "f" and bool(np.isfinite(a).all()) and bool((a == np.floor(a)).all()):
        return a.astype(np.int64)
    raise ValueError(f"action {a.tolist()!r} (dtype {a.dtype}) is not an integer action of "
                     f"{space}: every entry must be a whole number")


def make_observer(config: SimConfig, num_slots: int = DEFAULT_NUM_SLOTS,
                  chunk_ladder: Sequence[int] = DEFAULT_CHUNK_LADDER) -> Observer:
    """The :class:`Observer` of an env with these options: a policy trained in the env sees
    the same observations when it runs as a plain scheduler."""
    return Observer(config, num_slots=int(num_slots), token_scale=float(max(chunk_ladder)))


class LLMServingEnv(gym.Env):
    """Batch composition for an LLM-serving GPU, one decision point per step.

    ## Description

    A discrete-event simulator of LLM serving (prefill and decode phases, iteration-level
    batching, KV-cache memory, one or many GPUs; see the README). Whenever a GPU is free and has
    work, the agent composes that GPU's next batch (iteration): which waiting requests get a
    prefill chunk and of how many tokens, and which requests in their decode phase emit one
    token. ``step`` executes the composition on the decision's GPU and advances the simulator
    to the next decision point (of any GPU; ``info["gpu"]`` and the observation say which).

    ## Action Space

    Native action: ``MultiDiscrete([L + 1] * N + [2] * N + [2])``, with ``N = num_slots``
    (default 16) and ``L = len(chunk_ladder) + 1`` (default ladder (32, 64, 128, 256, 512),
    L = 6):

    | index         | meaning                                                             |
    |---------------|---------------------------------------------------------------------|
    | 0 .. N-1      | chunk level of the i-th request of ``view.waiting`` (partially       |
    |               | prefilled first, then FCFS): 0 = not in the batch, 1 .. L-1 =        |
    |               | ``chunk_ladder[level - 1]`` tokens, L = the whole remaining prompt   |
    | N .. 2N-1     | 1 = the i-th request of ``view.decoding`` decodes one token          |
    | 2N            | 1 = also decode every decode-ready request beyond the first N        |

    ``action_masks()`` returns the flat boolean mask of sb3-contrib's MaskablePPO (per-dimension
    masks concatenated): empty slots allow only 0; ladder levels above the remaining prompt or
    above ``gpus.max_batch_tokens`` are masked; level L is allowed for every occupied slot; a
    request that would need a new slot while none is free (``gpus.max_batch_requests``) allows
    only 0, and so does one whose whole remaining prompt's KV blocks exceed the free blocks
    minus the partial prefills' reservation (step 4 below); the overflow flag allows 1 only
    when more than N requests are decoding.

    **Repair rule.** The per-dimension masks cannot express joint limits, so every native
    action is turned into a valid batch by this deterministic rule (``info["repaired"]`` is
    True when it changed anything, or when the action chose an empty slot or a level above the
    remaining prompt):

    1. decodes: the flagged ones in slot order, then the overflow ones; at most
       ``gpus.max_batch_tokens`` of them (the first in that order);
    2. prefill chunks in slot order: a chunk above the remaining prompt is cut to it; requests
       that need a new slot beyond the free slots are dropped (later slots first);
    3. each chunk is cut to the token room left (``max_batch_tokens`` minus the decodes minus
       the earlier chunks); chunks cut to nothing are dropped;
    4. KV memory (only with ``gpus.kv_capacity_tokens``): requests that need a new slot are
       admitted in slot order while the KV blocks of their whole remaining prompts, summed,
       fit in the room left once the decodes have grown (``view.kv_room_after_decodes``)
       minus the blocks the GPU's partially prefilled requests still need to finish their
       prefill; the others are dropped. This reservation means a started prefill can always
       finish, so a GPU never deadlocks with its memory full of partial prefills. Then the
       chunks are cut to the KV room (``view.kv_fit_prefill`` with partial chunks);
    5. an empty composition means ``Wait()``: the GPU idles until the next event (an arrival,
       the end of any GPU's batch, a KV transfer landing). An agent can starve itself only
       until that event: the next decision point comes then, with a fresh choice. If no
       event is pending (no arrival left, no batch in flight, no KV transfer or timed Wait),
       waiting would be a deadlock (the engine raises ``SchedulingError("deadlock")``), so the
       composition is then replaced by hybrid's rule at the full token limit: every decode
       (up to ``max_batch_tokens``), then chunked prefill of ``view.waiting`` in order in the
       token room left, through steps 2-4 (``info["repaired"]`` True).

    ``step`` also accepts, outside the declared space, a :class:`~llm_serving_env.sim.batch.Batch`
    or :class:`~llm_serving_env.sim.batch.Wait` object, executed as is (no repair; the engine
    checks it and raises ``SchedulingError`` on a broken rule). This is how hand-written
    schedulers act through the env (:class:`BaselineAgent`) and how the compact wrappers act.

    ## Observation Space

    ``Box(0, 1, (16 + 10 N,), float32)``: 16 global features, then 5 blocks of N per-slot
    features for ``view.waiting[:N]`` and 5 blocks of N for ``view.decoding[:N]``
    (feature-major: all N values of one feature are contiguous; empty slots are 0). Unbounded
    quantities x >= 0 go through ``x / (x + scale)``. Scales: ``N``; ``R`` =
    ``gpus.max_batch_requests``; ``K`` = ``gpus.max_batch_tokens``; ``P`` =
    ``max(chunk_ladder)`` tokens; ``tau`` = mean service time S(P) of a P-token batch;
    ``T_ttft`` = ``slo.ttft_ms`` (else ``10 tau``); ``T_tbt`` = ``slo.tbt_ms`` (else
    ``tau``); ``lam`` = ``workload.arrival.rate_per_s``; ``M`` = mean output tokens.

    | feature                | value                                                        |
    |------------------------|--------------------------------------------------------------|
    | waiting                | w / (w + N), w = len(view.waiting)                           |
    | waiting_prompt_tokens  | x / (x + K), x = remaining prompt tokens of all waiting      |
    | partial                | p / (p + N), p = view.num_partial                            |
    | decoding               | d / (d + N), d = len(view.decoding)                          |
    | resident               | view.resident / R                                            |
    | kv_used                | used KV blocks / capacity (0 without a KV limit)             |
    | oldest_waiting_age     | a / (a + T_ttft), a = now - earliest arrival among waiting   |
    | max_decode_stall       | s / (s + T_tbt), s = max over decoding of now - last token   |
    | arrival_rate           | r / (r + lam), r = EWMA of the arrival rate, window 100/lam  |
    | arrived_fraction       | arrivals so far / num_requests                               |
    | in_system              | q / (q + R), q = arrived and unfinished requests (all GPUs)  |
    | other_gpus_busy        | fraction of the other GPUs running a batch (0 with one GPU)  |
    | gpu_index              | gpu / (count - 1) (0 with one GPU)                           |
    | role_mixed/prefill/decode | one-hot of ``view.role``                                  |
    | waiting slot: occupied, remaining_prompt r / (r + P), remaining_fraction r / (current  |
    |   prefill target), age a / (a + T_ttft), resident (partially prefilled on this GPU)    |
    | decoding slot: occupied, since_last_token s / (s + T_tbt), generated g / (g + M),      |
    |   predicted_remaining m / (m + M) with m = max(0, prediction - g) from the config's    |
    |   ``workload.length_predictor`` (0 when it predicts nothing: the default ``none``),    |
    |   age a / (a + T_ttft). True output lengths never enter the observation.              |

    The observation after the last step of a finished episode is all 0 but arrived_fraction = 1.

    ## Rewards

    Option ``reward`` (``scale`` = ``reward_scale``). Only *measured* requests count (arrival
    index >= ``warmup_requests``): the agent is rewarded for exactly the requests its
    ``RunResult.summary()`` reports (:mod:`llm_serving_env.env.rewards`).

    * ``"latency"`` (default): ``-(1/scale) * integral of n(t) dt`` from the previous decision
      point to this one, n(t) = measured requests arrived and not finished. By Little's law
      the episode sum is exactly ``-(sum over measured requests of E2E latency) / scale``.
      Default scale 1 s, so the unit is request-seconds.
    * ``"slo"`` (needs ``slo``): per output token emitted since the previous decision point,
      +1 if that token met its own deadline and -1 if not: the first token against
      ``slo.ttft_ms`` (TTFT), every later token against ``slo.tbt_ms`` (its gap since the
      previous token of the request; a token recomputed after a preemption is a later token).
      Episode sum = sum over tokens of +-1, divided by scale (default 1).
    * ``"goodput"`` (needs ``slo``): +1 per request finished since the previous decision point
      that met the SLO (TTFT and every TBT gap, as ``RunResult.slo_met``); episode sum = number
      of SLO-meeting requests, divided by scale (default 1).

    ## Starting State

    ``reset(seed=s)`` resets the simulator with seed ``s`` (the workload and service noise are
    drawn from ``SeedSequence(s)``, as ``simulate(config, policy, seed=s)``), and advances to
    the first decision point (the first arrival). With ``seed=None`` a simulator seed is drawn
    from the env's ``np_random``. ``info["sim_seed"]`` is the seed used.

    ## Episode End

    ``terminated`` when every one of ``num_requests`` requests has finished; then
    ``env.unwrapped.result()`` is the run's :class:`~llm_serving_env.sim.result.RunResult`.
    ``truncated`` after ``max_steps`` steps or once simulated time reaches ``max_time_s`` (both
    optional; ``result()`` then describes the partial run, unfinished requests have NaN times;
    a learner should bootstrap from the value of the last observation).

    The process is semi-Markov: a step lasts ``info["dt_s"]`` simulated seconds, from
    microseconds (several GPUs deciding at once) to seconds (an idle GPU waiting for an
    arrival). Discount per simulated second, ``gamma_s ** dt_s`` per step, not per step
    (``agents/train.py``'s ``--gamma-per-s`` does so in PPO's advantage estimate).

    ## Info

    ``reset``: ``sim_seed``, ``gpu`` (GPU of the first decision point), ``now_s``. ``step``:
    ``repaired`` (the repair rule changed the native action; False for Batch / Wait objects),
    ``gpu`` (GPU of the new decision point, -1 once terminated), ``now_s`` (simulated time,
    seconds), ``dt_s`` (simulated seconds the step lasted), ``num_finished`` (requests
    finished so far).

    ## Arguments

    ``gymnasium.make("LLMServing-v0", config=..., **options)``; ``config`` is a SimConfig, a
    YAML path, a preset name (default ``"default"``) or a dict. Options: ``num_slots``,
    ``chunk_ladder``, ``reward``, ``reward_scale``, ``max_steps``, ``max_time_s``,
    ``overrides`` (dotted-path changes applied with ``SimConfig.replace``) and
    ``render_mode`` (only None: there is no rendering; ``metadata["render_modes"]`` is empty).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        config: SimConfig | str | os.PathLike | Mapping[str, Any] = "default",
        *,
        num_slots: int = DEFAULT_NUM_SLOTS,
        chunk_ladder: Sequence[int] = DEFAULT_CHUNK_LADDER,
        reward: str = "latency",
        reward_scale: float | None = None,
        max_steps: int | None = None,
        max_time_s: float | None = None,
        overrides: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode = {render_mode!r}: LLMServing-v0 does not render "
                             "(only None is supported)")
        cfg = as_config(config)
        if overrides:
            cfg = cfg.replace(dict(overrides))
        self.config: SimConfig = cfg
        self.render_mode = None
        if isinstance(num_slots, bool) or not isinstance(num_slots, (int, np.integer)) \
                or num_slots < 1:
            raise ValueError(f"num_slots = {num_slots!r}: must be an integer >= 1")
        ladder = tuple(int(x) for x in chunk_ladder)
        steps = zip(ladder[:-1], ladder[1:], strict=True)
        if not ladder or ladder[0] < 1 or any(b <= a for a, b in steps):
            raise ValueError(f"chunk_ladder = {chunk_ladder!r}: must be a non-empty, strictly "
                             "increasing sequence of token counts >= 1")
        if reward not in REWARDS:
            raise ValueError(f"reward = {reward!r}: must be one of {', '.join(REWARDS)}")
        if reward in ("slo", "goodput") and cfg.slo is None:
            raise ConfigError(f"reward = {reward!r} needs an SLO: set slo: {{ttft_ms, tbt_ms}} "
                              "in the config", "slo", None)
        if reward_scale is not None and not reward_scale > 0:
            raise ValueError(f"reward_scale = {reward_scale!r}: must be > 0")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps = {max_steps!r}: must be >= 1 or None")
        if max_time_s is not None and not max_time_s > 0:
            raise ValueError(f"max_time_s = {max_time_s!r}: must be > 0 or None")
        self.num_slots = n = int(num_slots)
        self.chunk_ladder = ladder
        self.reward_kind = reward
        self.reward_scale = float(reward_scale) if reward_scale is not None else 1.0
        self.max_steps = max_steps
        self.max_time_s = max_time_s

        gpus = cfg.gpus
        self.max_batch_tokens = int(gpus.max_batch_tokens)
        self.max_batch_requests = int(gpus.max_batch_requests)
        self.num_levels = len(ladder) + 1  # L: the "whole remaining prompt" level
        self._ladder = np.asarray(ladder, dtype=np.int64)

        slo = cfg.slo
        self._slo_ttft_s = slo.ttft_ms / 1000.0 if slo is not None else _INF
        self._slo_tbt_s = slo.tbt_ms / 1000.0 if slo is not None else _INF
        self.observer = make_observer(cfg, num_slots=n, chunk_ladder=ladder)

        # ---- spaces
        self.obs_size = self.observer.size
        self.observation_space = spaces.Box(0.0, 1.0, (self.obs_size,), np.float32)
        self.action_space = spaces.MultiDiscrete(
            np.array([self.num_levels + 1] * n + [2] * n + [2], dtype=np.int64))
        self.observation_names = self.observer.names
        self._mask_size = n * (self.num_levels + 1) + 2 * n + 2
        self._action_high = self.action_space.nvec - 1
        base = np.zeros(self._mask_size, dtype=bool)
        base[: n * (self.num_levels + 1): self.num_levels + 1] = True  # chunk level 0
        base[n * (self.num_levels + 1): -2: 2] = True  # decode flag 0
        base[-2] = True  # overflow flag 0
        self._mask_base = base
        # ladder sizes a chunk may take alone (above max_batch_tokens: never; a huge sentinel)
        self._ladder_ok = np.where(self._ladder <= self.max_batch_tokens, self._ladder,
                                   np.iinfo(np.int64).max)[None, :]

        self.sim = Simulator(cfg, seed=0)
        self.num_gpus = self.sim.num_gpus
        self._reward = RewardTracker(self.sim, reward, self.reward_scale,
                                     self._slo_ttft_s, self._slo_tbt_s)
        self.episode_id = 0
        self._view: DecisionView | None = None
        self._mask_cache: np.ndarray | None = None
        self._active = False

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; see "Starting State" in the class docstring."""
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options are not supported, got {sorted(options)}")
        sim_seed = int(seed) if seed is not None else int(self.np_random.integers(2**63 - 1))
        sim = self.sim
        sim.reset(sim_seed)
        self.episode_id += 1
        self._steps = 0
        self._reward.reset()
        self._view = sim.next_decision()
        self._mask_cache = None
        self._active = self._view is not None
        self.observer.reset()
        info = {"sim_seed": sim_seed, "gpu": self._gpu(), "now_s": sim.now_s}
        return self.observer.observe(self._view), info

    def step(self, action: np.ndarray | Batch | Wait
             ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Execute ``action`` at the current decision point and advance to the next one.

        ``action`` is a native action (see "Action Space"; repaired if needed) or a ``Batch`` /
        ``Wait`` object (executed as is). ``info``: ``repaired`` (bool), ``gpu`` (the GPU of
        the new decision point, -1 at the end), ``now_s`` (simulated time), ``dt_s`` (the
        simulated seconds this step lasted: from this decision point to the next; discount
        by it, as ``agents``' time-discounted PPO does, since steps last from microseconds to
        seconds), ``num_finished``.
        """
        view = self._view
        if view is None or not self._active:
            raise RuntimeError("the episode is over: call reset() first")
        sim = self.sim
        if isinstance(action, (Batch, Wait)):
            command: Batch | Wait = action
            repaired = False
        else:
            command, repaired = self.native_to_command(action)
        g = view.gpu
        decided_s = view.now_s
        sim.execute(command)
        end = sim.busy_until[g]
        if end != _INF:
            self._reward.record(g, end)
        self._view = view = sim.next_decision()
        self._mask_cache = None
        reward = self._reward.collect()
        now = sim.now_s
        self._steps += 1
        terminated = view is None
        truncated = not terminated and (
            (self.max_steps is not None and self._steps >= self.max_steps)
            or (self.max_time_s is not None and now >= self.max_time_s))
        if terminated or truncated:
            self._active = False
        info = {"repaired": repaired, "gpu": -1 if terminated else view.gpu, "now_s": now,
                "dt_s": now - decided_s, "num_finished": sim.num_finished}
        return self.observer.observe(view), reward, terminated, truncated, info

    def render(self) -> None:
        """No rendering (``render_mode`` None only)."""
        return None

    # ------------------------------------------------------------------ accessors
    @property
    def decision_view(self) -> DecisionView | None:
        """The current decision point's view (None once the episode has terminated)."""
        return self._view

    def result(self) -> RunResult:
        """The episode's RunResult (complete once ``terminated``)."""
        return self.sim.result()

    def _gpu(self) -> int:
        return -1 if self._view is None else self._view.gpu

    # ------------------------------------------------------------------ actions
    def native_to_command(self, action: np.ndarray) -> tuple[Batch | Wait, bool]:
        """The batch (or Wait) a native action stands for, after the repair rule, and
        whether the rule changed it."""
        view = self._view
        assert view is not None
        n, lv = self.num_slots, self.num_levels
        a = integer_action(action, self.action_space)
        if a.shape != (2 * n + 1,):
            raise ValueError(f"a native action has shape ({2 * n + 1},), got {a.shape}")
        if np.count_nonzero((a < 0) | (a > self._action_high)):
            raise ValueError(f"action {a.tolist()} is outside {self.action_space}")
        repaired = False
        waiting, decoding = view.waiting, view.decoding
        nw = min(waiting.size, n)
        lev = a[:nw]
        if nw < n and np.count_nonzero(a[nw:n]):
            repaired = True  # a chunk for an empty slot: ignored
        pos = np.flatnonzero(lev)
        if pos.size:
            # a prefix of the waiting list stays a slice of it (the engine checks it faster)
            ids = waiting[: pos.size] if pos[-1] == pos.size - 1 else waiting[pos]
            lev = lev[pos]
            rem = view.remaining_prompt(ids)
            tokens = np.where(lev >= lv, rem, self._ladder[np.minimum(lev, lv - 1) - 1])
            if np.count_nonzero(tokens > rem):
                repaired = True
                tokens = np.minimum(tokens, rem)
            is_new = pos >= view.num_partial
        else:
            ids = tokens = _NONE
            is_new = None
        nd = min(decoding.size, n)
        if nd < n and np.count_nonzero(a[n + nd: 2 * n]):
            repaired = True  # a decode for an empty slot: ignored
        fl = np.flatnonzero(a[n: n + nd])
        overflow = bool(a[2 * n])
        if overflow and decoding.size <= n:
            repaired = True  # nothing beyond the first N: ignored
            overflow = False
        if fl.size == nd and overflow:
            dids = decoding
        elif fl.size and fl[-1] == fl.size - 1:
            dids = decoding[: fl.size]
        else:
            dids = decoding[fl] if fl.size else _NONE
        if overflow and dids is not decoding:
            dids = np.concatenate((dids, decoding[n:]))
        command, changed = self._repair(view, dids, ids, tokens, is_new)
        return command, repaired or changed

    def _repair(self, view: DecisionView, dids: np.ndarray, pids: np.ndarray,
                ptoks: np.ndarray, is_new: np.ndarray | None, force: bool = True
                ) -> tuple[Batch | Wait, bool]:
        """Steps 1-5 of the repair rule (class docstring) on a proposed composition whose
        chunks are already within their remaining prompts; ``is_new`` flags the chunks of
        requests that would take a new slot."""
        repaired = False
        limit = self.max_batch_tokens
        if dids.size > limit:  # 1. decodes
            dids = dids[:limit]
            repaired = True
        if pids.size:
            # 2. new requests beyond the free slots
            if is_new is not None:
                free = view.free_slots
                if int(np.count_nonzero(is_new)) > free:
                    keep = ~is_new | (np.cumsum(is_new) <= free)
                    pids, ptoks, is_new = pids[keep], ptoks[keep], is_new[keep]
                    repaired = True
            # 3. the token room
            room = limit - dids.size
            if int(ptoks.sum()) > room:
                before = np.cumsum(ptoks) - ptoks
                ptoks = np.minimum(ptoks, np.maximum(room - before, 0))
                keep = ptoks > 0
                pids, ptoks = pids[keep], ptoks[keep]
                if is_new is not None:
                    is_new = is_new[keep]
                repaired = True
            # 4. the KV room: admission reserve, then chunks cut to what is free
            if pids.size and view.kv_free_blocks != _INF:
                kv_room = view.kv_room_after_decodes(dids)
                if is_new is not None and is_new.any():
                    new_ids = pids[is_new]
                    whole = view.kv_blocks_needed(new_ids, view.remaining_prompt(new_ids))
                    admit = np.cumsum(whole) <= kv_room - self._partial_reserve(view)
                    if not admit.all():
                        keep = ~is_new
                        keep[np.flatnonzero(is_new)[admit]] = True
                        pids, ptoks = pids[keep], ptoks[keep]
                        repaired = True
                fit_ids, fit_toks = view.kv_fit_prefill(pids, ptoks, kv_room, allow_partial=True)
                if fit_ids.size != pids.size or (fit_ids.size and fit_toks[-1] != ptoks[-1]):
                    repaired = True
                pids, ptoks = fit_ids, fit_toks
        if pids.size == 0 and dids.size == 0:  # 5. Wait, unless that would deadlock
            if not force or self._event_pending():
                return Wait(), repaired
            decodes = view.decoding[:limit]
            ids, tokens = fill_prefill_budget(view, limit - decodes.size,
                                          view.free_slots)
            command, _ = self._repair(view, decodes, ids, tokens,
                                      np.arange(ids.size) >= view.num_partial, force=False)
            return command, True
        return Batch(prefill_ids=pids, prefill_tokens=ptoks, decode_ids=dids), repaired

    @staticmethod
    def _partial_reserve(view: DecisionView) -> int:
        """KV blocks the partially prefilled requests of the view's GPU still need to finish
        their prefill."""
        if view.num_partial == 0:
            return 0
        partial = view.waiting[: view.num_partial]
        return int(view.kv_blocks_needed(partial, view.remaining_prompt(partial)).sum())

    def _event_pending(self) -> bool:
        """True if an arrival, a batch end, a KV transfer or a timed Wait expiry is pending."""
        return self.sim.event_pending()

    def action_masks(self) -> np.ndarray:
        """Flat boolean mask over the native action's values (MaskablePPO's format): the
        concatenation of one mask per dimension (see "Action Space")."""
        if self._mask_cache is not None:
            return self._mask_cache.copy()
        n, lv = self.num_slots, self.num_levels
        mask = self._mask_base.copy()  # level 0, decode flag 0 and overflow 0 always allowed
        view = self._view
        if view is not None:
            w = view.waiting[:n]
            if w.size:
                chunk = mask[: n * (lv + 1)].reshape(n, lv + 1)
                rem = view.remaining_prompt(w)
                npart = view.num_partial
                if view.free_slots <= 0:
                    can = np.arange(w.size) < npart
                elif view.kv_free_blocks != _INF and w.size > npart:
                    can = np.ones(w.size, dtype=bool)
                    whole = view.kv_blocks_needed(w[npart:], rem[npart:])
                    can[npart:] = whole <= view.kv_free_blocks - self._partial_reserve(view)
                else:
                    can = None
                ok = self._ladder_ok <= rem[:, None]
                if can is not None:
                    ok &= can[:, None]
                    chunk[: w.size, lv] = can
                else:
                    chunk[: w.size, lv] = True
                chunk[: w.size, 1:lv] = ok
            nd = view.decoding.size
            if nd:
                base = n * (lv + 1) + 1
                mask[base: base + 2 * min(nd, n): 2] = True
                mask[-1] = nd > n
        self._mask_cache = mask
        return mask.copy()


# ---------------------------------------------------------------------- baselines through the env
