"""SLO-aware hybrid batching: decodes by deadline, prefills shortest-remaining-first, and a
token budget sized to the tightest decode deadline.

System modelled: SLAI, the SLO-Aware LLM Inference scheduler of Bari, Hegde and de Veciana,
"Optimal Scheduling Algorithms for LLM Inference: Theory and Practice" (arXiv 2508.01002,
SIGMETRICS 2026), built on Sarathi-Serve's chunked prefill. What SLAI does, from the paper's
Section 6 (Eq. 8 and its four-step batch construction) and the authors' code
(github.com/agrimUT/SLAI, ``sarathi/core/scheduler/slai_scheduler.py``):

* every running request j gets a *last schedulable time* after each token it emits,
  ``Y_j = s_j + TBT_j - Theta * b_batch`` (s_j its last token time, b_batch a running mean of
  measured iteration times, Theta the "offset", 5 below 96% KV-memory use and 10 above);
* each iteration, with a fixed token budget (512 in the paper, as Sarathi-Serve):
  1. *critical* decodes (now >= Y_j), in increasing Y order;
  2. chunks of partially prefilled requests (in the order they started);
  3. new requests, sorted shortest-prompt-first (SPF; or FCFS; or paying tier first);
  4. the remaining, *non-critical* decodes in increasing Y order, in whatever budget is left;
  with at most 128 decodes and 128 active requests. Non-critical decodes that do not fit are
  deferred, which is where SLAI gains TTFT over Sarathi-Serve (which runs every decode first).

Rule implemented here, for a free GPU at time ``now``. ``T(b)`` is the planned time of an
iteration of token load b: ``ServiceModel.mean_s(b)`` from the GPU's service config
(``sim_config.service``) plus ``z`` standard deviations of S(b) (z = ``deadline_sigmas``; the
standard deviation is 0 for deterministic service, so there T = S exactly); ``tau`` =
``slo.tbt_ms``, ``m`` = ``safety_margin_ms``, ``K`` = ``max_token_budget``, ``k`` =
``min_token_budget``::

    for every decode-ready request d:
        slack(d) = last_token(d) + tau - now     # its next token is due in slack(d)
    reachable = {d : slack(d) >= T(k)}           # a k-token iteration still makes it
    budget b = K if no decode is reachable,
               else clip(max{b : T(b) <= min over reachable of slack(d) - m}, k, K)
    critical = {d : slack(d) - m < T(b) + T(K)}  # could not wait one more full iteration
    batch = critical decodes, earliest deadline first (all of them, up to max_batch_tokens;
            b is raised to their number if it is smaller)
    left = b - |batch|
    prefill (prefill_order = "srpt"): the partially prefilled request first (there is at most
        one), then, with max_prefill_wait_ms set, requests that have waited that long (FCFS),
        then the other waiting requests by remaining prompt tokens, shortest first (ties in
        arrival order); new ones only while free slots remain (max_batch_requests -
        resident); whole remaining prompts while they fit in `left`, the next one chunked to
        the rest. (prefill_order = "fcfs": hybrid's order, partial prefills then FCFS, via
        ``fill_prefill_budget``.) Chunks are shortened/dropped to the KV room left beside the
        critical decodes' growth (view.kv_fit_prefill).
    left -= prefill tokens
    add non-critical decodes, earliest deadline first, while `left` and the KV room last
    if the batch is empty but decodes exist: run the earliest-deadline decodes (up to b)
    if it is still empty: Wait() (nothing fits; an arrival or a batch end re-offers the GPU)

Budget adaptation: with no decode running the budget is K (long prefill-only iterations are the
most efficient and threaten no TBT); when the tightest reachable deadline is close the budget
shrinks to the largest load whose planned time still meets it, never below k. A decode whose
deadline cannot be met any more even by a k-token iteration has already broken its TBT
objective: it is still served first, but it no longer shrinks the batch (shrinking would cost
throughput and save nothing).

No-starvation guard for deferred decodes: a decode is left out of an iteration only while
``slack(d) - m >= T(b) + T(K)``, i.e. while it could still wait for one more iteration of the
*largest* size after this one. If iterations take their planned time, the next decision comes
at ``now + T(b)`` with the decode still having ``slack - m >= T(K)``: its deadline is then
reachable, it bounds that iteration's budget, and it is either deferred again under the same
test or critical. Critical decodes go ahead of all prefill work and are never dropped, so every
decode runs before its deadline provided the critical decodes of an iteration fit in the budget
their deadline allows (more critical decodes than max_batch_tokens: the earliest-deadline ones go
first and the rest, whose deadlines are now the earliest, go next). Whatever the service noise,
a decode is never deferred once ``slack(d) - m < T(b) + T(K)``. Each decision with work returns a
non-empty batch unless neither a chunk nor a decode fits, so the GPU never idles while it could
serve, and the policy never waits on itself.

Prefill starvation: shortest-prompt-first, as SLAI's, lets long prompts wait while shorter
ones keep arriving. On configs/default.yaml (20,000 requests, seeds 0-2) the longest TTFT is
42-116 s at 8.1 req/s and 120-193 s at 8.6 req/s (hybrid: 6-9 s and 8-15 s).
``max_prefill_wait_ms`` (off by default, as in SLAI) bounds it by prefilling the requests that
have waited that long first, FCFS, at a cost in attainment (4,000 requests, 5 seeds, 8.6 req/s:
20 s -> attainment 0.946 instead of 0.962, longest TTFT about 21 s; 10 s -> 0.907).

Measured (configs/default.yaml, 20,000 requests, 5 seeds, common random numbers): SLO
attainment 0.979 / 0.971 / 0.960 against hybrid's 0.875 / 0.772 / 0.526 at 7.7 / 8.1 / 8.6 req/s
(85 / 90 / 95% of hybrid's 9.05 req/s capacity). Almost all of the gain is the prefill order
(ablations at 8.1 req/s, 4,000 requests, 5 seeds): with ``prefill_order: fcfs`` the policy is
hybrid with a 562-token budget (0.804 vs hybrid's 0.773); SRPT with the budget capped at 512
gives 0.971 (vs 0.973 uncapped). No decode is ever deferred in this scenario: deferring one
needs tau - m >= T(b) + T(K), at least 2 x 180 ms here even with K = 512. With a relaxed
objective (tbt_ms 1000, K = 512, 8.6 req/s, 4,000 requests) decodes are deferred: mean TTFT
0.91 s against 0.95 s with every decode in every iteration; attainment 0.960 vs 0.957 (noise).

Departures from SLAI (and why):

* Iteration time from the service model (``S(b)`` of the batch being built, plus ``z`` standard
  deviations) instead of a measured running mean ``b_batch`` of past iterations: the simulator
  knows the model, and a mean of past iterations lags when the batch size changes.
* Criticality "cannot wait one more full iteration" (``slack - m < T(b) + T(K)``) instead of
  ``now >= s_j + TBT - Theta * b_batch``: the same idea with Theta ~ 2 iterations counted in
  model time. No memory-dependent offset (5 / 10 around 96% KV use): KV pressure is handled by
  the engine's preemption.
* Adaptive token budget (SLAI's budget is fixed, 512 in the paper): the largest load whose
  planned time meets the tightest reachable decode deadline, between ``min_token_budget`` and
  ``max_token_budget``. With a 200 ms TBT objective and S(b) = 45.5 ms + 0.3 ms * max(0, b - 64)
  (configs/default.yaml) every running decode is critical and the rule reduces to "every
  decode, then SRPT prefill, in the 562 tokens that fit in tau - m = 195 ms", against hybrid's
  512, and up to K when nothing decodes.
* Prefill order as SLAI's: the started (partial) prefill first, then shortest remaining prompt
  first, which for a request not yet started is its prompt length (SLAI's SPF). Sorting the
  partial prefill in with the others by its remaining tokens (pure SRPT) was tried: on
  configs/default.yaml at 7.7-8.6 req/s it gave about 0.4-0.5 points *lower* attainment
  (long prompts once started were overtaken again) and could leave several requests partially
  prefilled, holding slots and KV blocks (with no decode running, nothing preempts them and
  the GPU could stall). Optional aging
  (``max_prefill_wait_ms``), which SLAI lacks.
* One TBT objective for all requests (``slo.tbt_ms``); no user tiers / per-request TBT.
* No separate decode cap (SLAI: 128); decodes are bounded by ``gpus.max_batch_requests``.
* KV memory: prefill chunks are admitted only into the room left after the critical decodes'
  growth, non-critical decodes only while KV room is left; when decodes need more blocks than
  are free the engine preempts (latest arrival first, by recompute), where SLAI preempts paused
  prefills first.
* Variance padding ``deadline_sigmas`` (not in SLAI, whose offset Theta plays that role): with
  noisy service, packing iterations to the *mean* time that meets tau breaks tau on about half
  of them (configs/default.yaml with gamma noise cv 0.1 at 6.3 req/s, 4,000 requests, 5 seeds:
  attainment 0.50 with z = 0, 0.94 with z = 2, 0.98 with z = 3; hybrid 0.78).

Parameters (``scheduler:`` block): ``max_token_budget`` (K, tokens per iteration,
<= gpus.max_batch_tokens; default null = gpus.max_batch_tokens), ``min_token_budget`` (k,
smallest budget the deadline rule imposes, <= K; default 32), ``safety_margin_ms`` (m >= 0,
kept on every decode deadline; default 5 ms), ``deadline_sigmas`` (z >= 0; default 2),
``prefill_order`` (``"srpt"`` default, or ``"fcfs"``), ``max_prefill_wait_ms`` (> 0 or null =
no aging; default null), ``kv_headroom_blocks`` (integer >= 0; default 0, 1 for
``slo_triage``). Requires ``slo`` in the config. Registered as ``slo_aware`` (alias
``slai``).

KV headroom (``kv_headroom_blocks``, h): with limited KV memory, prefill chunks are cut to
the free blocks less h per resident request (none on an idle GPU), so that each running
request can cross its next block boundary without a preemption; SLAI's memory-dependent
offset plays that role. ``slo_triage`` keeps one block each. Measured on
``configs/benchmarks/kv_pressure.yaml`` (4,000 requests, seeds 1-2, slo_triage's rule): h = 0
attains 0.764 with 1,526 preemptions per run, h = 1 attains 0.962 with 5; a fixed reserve of
1% / 3% / 5% / 20% of the blocks gives 0.926 / 0.962 / 0.964 / 0.925.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm_serving_env.config.sim_config import SimConfig, attention_cost
from llm_serving_env.hardware.attention import AttentionCost
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.batching import fill_prefill_budget
from llm_serving_env.sim.fast.layout import (
    ORDER_FCFS,
    ORDER_SRPT,
    ORDER_TRIAGE,
    slo_rule_params,
)
from llm_serving_env.sim.scheduler import (
    CompiledRule,
    DecisionView,
    Scheduler,
    positive_int,
    positive_number,
    register_scheduler,
)

_NONE = np.zeros(0, np.int64)
_NONE.flags.writeable = False

#: Seconds of slack kept on every deadline so float rounding never turns "meets" into "misses".
_EPS_S = 1e-9

PREFILL_ORDERS = ("srpt", "fcfs", "triage")


@dataclass(frozen=True)
class SloAwareConfig:
    """max_token_budget: largest iteration (None: gpus.max_batch_tokens); min_token_budget:
    smallest budget the deadline rule imposes; safety_margin_ms: slack kept on every decode
    deadline; prefill_order: "srpt" (shortest remaining prompt first), "fcfs" or "triage"
    (SRPT, but requests that can no longer meet their TTFT objective go last);
    max_prefill_wait_ms: waiting time after which a request is prefilled first (None: never);
    deadline_sigmas: standard deviations of S(b) added to its mean when planning deadlines;
    kv_headroom_blocks: KV blocks per resident request that prefill chunks must leave free;
    attention_aware: when the service prices attention (``service.attention``), plan each
    iteration with it (the decodes' KV reads and the chunk's attention, from public state:
    prompts, tokens generated, tokens prefilled); False plans with S(b) alone."""

    max_token_budget: int | None = None
    min_token_budget: int = 32
    safety_margin_ms: float = 5.0
    prefill_order: str = "srpt"
    max_prefill_wait_ms: float | None = None
    deadline_sigmas: float = 2.0
    kv_headroom_blocks: int = 0
    attention_aware: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.attention_aware, bool):
            raise ConfigError(f"scheduler.attention_aware = {self.attention_aware!r}: must be "
                              "true or false")
        if self.max_token_budget is not None:
            positive_int("scheduler.max_token_budget", self.max_token_budget)
        positive_int("scheduler.min_token_budget", self.min_token_budget)
        positive_number("scheduler.safety_margin_ms", self.safety_margin_ms, allow_zero=True)
        positive_number("scheduler.deadline_sigmas", self.deadline_sigmas, allow_zero=True)
        if self.max_prefill_wait_ms is not None:
            positive_number("scheduler.max_prefill_wait_ms", self.max_prefill_wait_ms)
        if isinstance(self.kv_headroom_blocks, bool) or not isinstance(
                self.kv_headroom_blocks, int) or self.kv_headroom_blocks < 0:
            raise ConfigError(f"scheduler.kv_headroom_blocks = {self.kv_headroom_blocks!r}: "
                              "must be an integer >= 0")
        if self.prefill_order not in PREFILL_ORDERS:
            raise ConfigError(f"scheduler.prefill_order = {self.prefill_order!r}: must be one "
                              f"of {', '.join(repr(o) for o in PREFILL_ORDERS)}")


def assemble_batch(view: DecisionView, dec: np.ndarray, crit: np.ndarray, rest: np.ndarray,
                   ids: np.ndarray, tokens: np.ndarray, left: int, budget: int,
                   headroom_blocks: int = 0) -> Batch | Wait:
    """The batch from its parts: the critical decodes ``crit``, the prefill chunks (ids,
    tokens) cut to the KV room the decodes leave less ``headroom_blocks``, then the deferrable
    decodes ``rest`` in the ``left`` tokens and KV blocks still free. ``dec`` is the GPU's
    whole decode set; if nothing was chosen but decodes exist, the ``budget`` most overdue
    ones run (never idle with work).
    """
    room = view.kv_room_after_decodes(crit)
    if headroom_blocks and room != math.inf:
        room = max(0, room - headroom_blocks)
    ids, tokens = view.kv_fit_prefill(ids, tokens, room, allow_partial=True)
    decodes = crit
    left -= int(tokens.sum())
    if rest.size and left > 0:
        extra = rest[:left]
        if room != math.inf:
            room -= int(view.kv_blocks_needed(ids, tokens).sum())
            need = np.cumsum(view.kv_blocks_needed(extra, 1))
            extra = extra[: int(need.searchsorted(room, side="right"))]
        decodes = dec if crit.size + extra.size == dec.size else np.concatenate((crit, extra))
    if decodes.size == 0 and ids.size == 0:
        if dec.size == 0:
            return Wait()
        decodes = dec[np.argsort(view.requests.last_token_s[dec], kind="stable")[:budget]]
    return Batch(prefill_ids=ids, prefill_tokens=tokens, decode_ids=decodes)


def service_sd_s(model: ServiceModel, loads: np.ndarray) -> np.ndarray:
    """Standard deviation of S(b) in seconds for each load (0 for deterministic service):
    sqrt(c^2 + a^2 g(b)^2), times cv for gamma noise
    (see :mod:`llm_serving_env.hardware.service`)."""
    g = np.asarray(model.load_factor(loads), dtype=np.float64)
    sd = np.hypot(model.c_s, model.a_s * g)
    if model.noise == "deterministic":
        return np.zeros_like(sd)
    return sd * (model.cv if model.noise == "gamma" else 1.0)


def srpt_prefill(view: DecisionView, budget: int, slots: int,
                 max_wait_s: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """Chunks filling ``budget`` tokens: partial prefills first, then shortest prompt first.

    Order: the resident partially prefilled requests (in the order they started), then
    requests that have waited ``max_wait_s`` or more (FCFS), then the rest by remaining prompt
    tokens, ties in arrival order. Resident requests take no slot; at most ``slots`` new ones
    join. Whole remaining prompts are taken while they fit, the next one is chunked to what is
    left, so at most one request is left partially prefilled. Returns (ids, tokens).
    """
    waiting = view.waiting
    if budget <= 0 or waiting.size == 0:
        return _NONE, _NONE
    key = view.remaining_prompt(waiting)
    key[: view.num_partial] = -2
    if max_wait_s != math.inf:
        aged = view.now_s - view.requests.arrival_s[waiting] >= max_wait_s
        aged[: view.num_partial] = False
        key[aged] = -1
    return fill_prefill_budget(view, budget, slots, np.argsort(key, kind="stable"))


def triage_prefill(view: DecisionView, budget: int, slots: int, iteration_s: float,
                   ttft_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Chunks filling ``budget`` tokens in SRPT order (partial prefills first), except that
    new requests already *doomed* go last, SRPT among themselves.

    A waiting request whose TTFT is still ahead is doomed when, even prefilled alone at this
    rate, it would be late: ``age + ceil(remaining / budget) * iteration_s > ttft_s``
    (``iteration_s`` the planned time of this iteration). Returns (ids, tokens).
    """
    waiting = view.waiting
    if budget <= 0 or waiting.size == 0:
        return _NONE, _NONE
    remaining = view.remaining_prompt(waiting)
    npart = view.num_partial
    key = remaining.astype(np.float64)
    key[:npart] = -1.0
    t = view.requests
    age = view.now_s - t.arrival_s[waiting]
    doomed = age + np.ceil(remaining / budget) * iteration_s > ttft_s + _EPS_S
    doomed &= t.generated_tokens[waiting] == 0  # TTFT still ahead of them
    doomed[:npart] = False
    if doomed.any():
        key[doomed] += 1e12  # after every viable request, SRPT among themselves
    return fill_prefill_budget(view, budget, slots, np.argsort(key, kind="stable"))


@register_scheduler("slo_aware", "slai")
class SloAwareScheduler(Scheduler):
    """SLAI-style SLO-aware hybrid batching (see the module docstring)."""

    Config = SloAwareConfig

    def __init__(self, config: SloAwareConfig, sim_config: SimConfig) -> None:
        super().__init__(config, sim_config)
        if sim_config.slo is None:
            raise ConfigError(
                "slo: scheduler 'slo_aware' schedules decodes by their TBT deadline and needs "
                "an SLO; add e.g. 'slo: {ttft_ms: 2000, tbt_ms: 200}' to the config")
        limit = int(sim_config.gpus.max_batch_tokens)
        top = limit if config.max_token_budget is None else int(config.max_token_budget)
        if top > limit:
            raise ConfigError(
                f"scheduler.max_token_budget = {top}: must be <= gpus.max_batch_tokens ({limit})")
        if config.min_token_budget > top:
            raise ConfigError(
                f"scheduler.min_token_budget = {config.min_token_budget}: must be <= "
                f"scheduler.max_token_budget ({top})")
        self.max_budget = top
        self.min_budget = int(config.min_token_budget)
        self.tbt_s = sim_config.slo.tbt_ms / 1000.0
        self.margin_s = config.safety_margin_ms / 1000.0
        self.sigmas = float(config.deadline_sigmas)
        self._order = config.prefill_order
        self.ttft_s = sim_config.slo.ttft_ms / 1000.0
        self.max_wait_s = (math.inf if config.max_prefill_wait_ms is None
                           else config.max_prefill_wait_ms / 1000.0)
        self._tables: dict[str, np.ndarray] = {}
        self._attention: dict[str, AttentionCost | None] = {}

    def time_table(self, role: str = "mixed") -> np.ndarray:
        """Planned iteration time T(b) = mean + deadline_sigmas * sd of S(b), in seconds, for
        b = 0..max_token_budget (made nondecreasing), for GPUs of ``role``."""
        table = self._tables.get(role)
        if table is None:
            model = ServiceModel.from_config(self.sim_config.service_for(role),
                                             rng=np.random.default_rng(0))
            loads = np.arange(self.max_budget + 1)
            table = np.asarray(model.mean_s(loads), dtype=np.float64)
            if self.sigmas > 0:
                table = table + self.sigmas * service_sd_s(model, loads)
            table = np.maximum.accumulate(table)
            self._tables[role] = table
        return table

    def attention(self, role: str = "mixed") -> AttentionCost | None:
        """The service's attention term for GPUs of ``role`` when this rule plans with it."""
        if role not in self._attention:
            self._attention[role] = (attention_cost(self.sim_config, role)
                                     if self.config.attention_aware else None)
        return self._attention[role]

    def deadline_budget(self, T: np.ndarray, slack_s: np.ndarray) -> int:
        """Token budget b of an iteration whose decodes have slack ``slack_s`` = last_token +
        tau - now (seconds, one per decode), given the planned times ``T`` (:meth:`time_table`),
        per the module docstring."""
        k, top = self.min_budget, self.max_budget
        floor = T[k] - _EPS_S  # below it a deadline is lost even for a k-token iteration
        tightest = float(slack_s.min())
        if tightest < floor:
            reachable = slack_s[slack_s >= floor]
            if reachable.size == 0:
                return top
            tightest = float(reachable.min())
        b = int(T.searchsorted(tightest - self.margin_s - _EPS_S, side="right")) - 1
        return min(max(b, k), top)  # b: the largest load with T(b) <= tightest - m

    def tbt_objective_s(self, view: DecisionView, ids: np.ndarray) -> float | np.ndarray:
        """The TBT objective the rule plans ``ids``' decodes for: ``slo.tbt_ms`` for all (the
        tightest class's with ``slo.classes``: this rule ignores classes)."""
        return self.tbt_s

    def plan_decodes(self, view: DecisionView, T: np.ndarray
                     ) -> tuple[int, np.ndarray, np.ndarray]:
        """The iteration's token budget and its decodes: ``(b, critical, deferrable)``.

        Critical decodes cannot wait one more full iteration (slack - m < T(b) + T(K)) and
        run first, at most ``max_batch_tokens`` of them, most overdue first; deferrable ones
        (by deadline) fill what the prefill leaves. ``b`` is at least the critical count.
        """
        dec = view.decoding
        if dec.size == 0:
            return self.max_budget, _NONE, _NONE
        slack = view.requests.last_token_s[dec] + (self.tbt_objective_s(view, dec) - view.now_s)
        b = self.deadline_budget(T, slack)
        threshold = float(T[b] + T[self.max_budget]) + self.margin_s
        if float(slack.max()) < threshold:  # every decode is critical (the common case)
            crit, rest = dec, _NONE
            if dec.size > view.max_batch_tokens:
                crit = dec[np.argsort(slack, kind="stable")[: view.max_batch_tokens]]
        else:
            by_due = np.argsort(slack, kind="stable")
            crit_mask = slack[by_due] < threshold
            crit = dec[by_due[crit_mask]][: view.max_batch_tokens]
            rest = dec[by_due[~crit_mask]]
        return max(b, int(crit.size)), crit, rest

    def schedule(self, view: DecisionView) -> Batch | Wait:
        dec = view.decoding
        role = getattr(view, "role", "mixed")
        T = self.time_table(role)
        attention = self.attention(role)
        if attention is not None:
            T = view.planned_with_attention(T, attention)
        b, crit, rest = self.plan_decodes(view, T)
        slots = view.free_slots
        left = b - int(crit.size)
        if self._order == "srpt":
            ids, tokens = srpt_prefill(view, left, slots, self.max_wait_s)
        elif self._order == "triage":
            ids, tokens = triage_prefill(view, left, slots, float(T[min(b, T.size - 1)]),
                                         self.ttft_s)
        else:
            ids, tokens = fill_prefill_budget(view, left, slots)
        return assemble_batch(view, dec, crit, rest, ids, tokens, left, b,
                              self.headroom(view))

    def compiled_rule(self) -> CompiledRule | None:
        if type(self) not in (SloAwareScheduler, SloTriageScheduler):  # subclasses may differ
            return None
        order = {"srpt": ORDER_SRPT, "fcfs": ORDER_FCFS, "triage": ORDER_TRIAGE}[self._order]
        ints, floats = slo_rule_params(
            min_budget=self.min_budget, max_budget=self.max_budget, order=order,
            headroom_blocks=self.config.kv_headroom_blocks,
            attention_aware=self.config.attention_aware, per_request_tbt=False,
            margin_s=self.margin_s, ttft_s=self.ttft_s, max_wait_s=self.max_wait_s,
            horizon_s=0.0, tbt_s=self.tbt_s)
        return CompiledRule("slo_aware", ints, floats, self.time_table("mixed"))

    def headroom(self, view: DecisionView) -> int:
        """KV blocks prefill chunks leave free: ``kv_headroom_blocks`` per resident request
        (none on an idle GPU: nothing there needs to grow)."""
        return self.config.kv_headroom_blocks * view.resident


@dataclass(frozen=True)
class SloTriageConfig(SloAwareConfig):
    """slo_aware's parameters, with the triage prefill order and one block of KV headroom per
    resident request by default."""

    prefill_order: str = "triage"
    kv_headroom_blocks: int = 1


@register_scheduler("slo_triage", "triage")
class SloTriageScheduler(SloAwareScheduler):
    """slo_aware with triage: requests that can no longer meet their TTFT objective, even if
    prefilled alone from now at this iteration's rate, are prefilled after every viable one
    (see :func:`triage_prefill`). The strongest hand-written rule on bursty loads, where a
    burst leaves some requests late whatever is done: serving them first would make others
    late too."""

    Config = SloTriageConfig
