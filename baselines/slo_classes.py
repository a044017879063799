"""Class-aware deadline scheduling: ``slo_triage`` with each request's own objectives.

With ``slo.classes`` (say interactive requests with TTFT 700 ms / TBT 150 ms beside batch
requests with 6 s / 400 ms in one stream), ``slo_aware`` and ``slo_triage`` plan every request
for the tightest class: batch decodes bound the token budget as if they were interactive, and
a batch prompt competes for the next iteration as if its TTFT were 700 ms. This rule is what a
systems engineer writes instead (the per-tier planning of SLOs-Serve, 2025, and of SLAI's
paying-tier order, in its simplest form):

* **Decodes by their own deadline.** Request j's next token is due at
  ``last_token_j + TBT_j`` with its class's TBT objective; the budget is the largest load whose
  planned time meets the tightest reachable due time, and decodes that can wait one more full
  iteration are deferred, exactly as ``slo_aware`` (:meth:`SloAwareScheduler.plan_decodes`).
  Only the objectives are per request.
* **Prefills by urgency, then shortest first.** For a waiting request i with age ``a_i`` and
  remaining prompt ``r_i``, its *laxity* is ``TTFT_i - a_i - ceil(r_i / b) T(b)``: how long its
  prefill could still wait if it then ran alone at this iteration's rate. Order: partial
  prefills first (as slo_aware); then *urgent* requests (laxity at most ``horizon``), shortest
  remaining prompt first; then the others that can still make it, shortest first; then those
  that cannot (laxity < 0: triage), shortest first. ``horizon`` defaults to the tightest
  class's TTFT objective, so a request of a loose class waits behind tight ones until its own
  deadline comes within that reach; with one class every viable request is urgent and the
  order, hence every batch, is ``slo_triage``'s (tested bit for bit).

Parameters: ``slo_aware``'s, plus ``urgency_horizon_ms`` (null = the tightest TTFT objective).
Registered as ``slo_classes``. Requires ``slo``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baselines.slo_aware import SloAwareScheduler, SloTriageConfig, assemble_batch
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.batching import fill_prefill_budget
from llm_serving_env.sim.fast.layout import ORDER_URGENCY, slo_rule_params
from llm_serving_env.sim.scheduler import (
    CompiledRule,
    DecisionView,
    positive_number,
    register_scheduler,
)

_NONE = np.zeros(0, np.int64)
_NONE.flags.writeable = False
#: Seconds of slack on every deadline, as slo_aware's (so one class reproduces slo_triage).
_EPS_S = 1e-9
#: Key offsets that sort the three groups after one another (keys are prompt tokens, < 1e12).
_NOT_URGENT, _DOOMED = 1e12, 2e12


@dataclass(frozen=True)
class SloClassesConfig(SloTriageConfig):
    """slo_triage's parameters, plus urgency_horizon_ms: laxity (ms) below which a waiting
    request counts as urgent (None: the tightest class's TTFT objective)."""

    urgency_horizon_ms: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.urgency_horizon_ms is not None:
            positive_number("scheduler.urgency_horizon_ms", self.urgency_horizon_ms,
                            allow_zero=True)


def urgency_prefill(view: DecisionView, budget: int, slots: int, iteration_s: float,
                    horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Chunks filling ``budget`` tokens: partial prefills, then urgent requests (laxity <=
    ``horizon_s``), then the other viable ones, then the doomed (laxity < 0), each group
    shortest remaining prompt first (ties in arrival order). Laxity uses each request's own
    TTFT objective (``view.requests.ttft_objective_s``). Returns (ids, tokens)."""
    waiting = view.waiting
    if budget <= 0 or waiting.size == 0:
        return _NONE, _NONE
    remaining = view.remaining_prompt(waiting)
    npart = view.num_partial
    t = view.requests
    age = view.now_s - t.arrival_s[waiting]
    alone = age + np.ceil(remaining / budget) * iteration_s  # first token if prefilled alone
    objective = t.ttft_objective_s[waiting]
    fresh = t.generated_tokens[waiting] == 0  # TTFT still ahead of them
    doomed = fresh & (alone > objective + _EPS_S)  # slo_triage's test, per request
    relaxed = fresh & ~doomed & (objective - alone > horizon_s)
    key = remaining.astype(np.float64)
    key[relaxed] += _NOT_URGENT
    key[doomed] += _DOOMED
    key[:npart] = -1.0
    return fill_prefill_budget(view, budget, slots, np.argsort(key, kind="stable"))


@register_scheduler("slo_classes")
class SloClassesScheduler(SloAwareScheduler):
    """Class-aware deadline scheduling (see the module docstring)."""

    Config = SloClassesConfig

    def __init__(self, config: SloClassesConfig, sim_config: SimConfig) -> None:
        super().__init__(config, sim_config)
        self.horizon_s = (self.ttft_s if config.urgency_horizon_ms is None
                          else config.urgency_horizon_ms / 1000.0)

    def tbt_objective_s(self, view: DecisionView, ids: np.ndarray) -> float | np.ndarray:
        """Each decode's own TBT objective (its class's)."""
        return view.requests.tbt_objective_s[ids]

    def compiled_rule(self) -> CompiledRule | None:
        if type(self) is not SloClassesScheduler:  # a subclass may schedule otherwise
            return None
        ints, floats = slo_rule_params(
            min_budget=self.min_budget, max_budget=self.max_budget, order=ORDER_URGENCY,
            headroom_blocks=self.config.kv_headroom_blocks,
            attention_aware=self.config.attention_aware, per_request_tbt=True,
            margin_s=self.margin_s, ttft_s=self.ttft_s, max_wait_s=self.max_wait_s,
            horizon_s=self.horizon_s, tbt_s=self.tbt_s)
        return CompiledRule("slo_aware", ints, floats, self.time_table("mixed"))

    def schedule(self, view: DecisionView) -> Batch | Wait:
        dec = view.decoding
        role = getattr(view, "role", "mixed")
        T = self.time_table(role)
        attention = self.attention(role)
        if attention is not None:  # as slo_aware: the decodes' KV reads, the chunk's attention
            T = view.planned_with_attention(T, attention)
        b, crit, rest = self.plan_decodes(view, T)
        left = b - int(crit.size)
        iteration_s = float(T[min(b, T.size - 1)])
        ids, tokens = urgency_prefill(view, left, view.free_slots, iteration_s, self.horizon_s)
        return assemble_batch(view, dec, crit, rest, ids, tokens, left, b, self.headroom(view))
