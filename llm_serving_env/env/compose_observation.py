"""The observation of ``LLMServing-v1`` and the Composer of each decision, built from a
:class:`~llm_serving_env.sim.scheduler.DecisionView` alone, so that a model trained in the env
runs as a plain scheduler and sees exactly what it saw in training.

The features are tabled in :class:`~llm_serving_env.env.compose_env.LLMComposeEnv`'s docstring.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from llm_serving_env.config.sim_config import SimConfig, attention_cost
from llm_serving_env.env.compose import ComposeLayout, Composer
from llm_serving_env.env.observation import Observer
from llm_serving_env.hardware.attention import AttentionCost
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.sim.scheduler import DecisionView

__all__ = ["CANDIDATE_FEATURES", "DECODE_FEATURES", "DEFAULT_BUDGET_MARGIN_MS",
           "STATE_FEATURES", "ComposeKit"]

#: Compose-state features, in order (after the 16 global features of v0).
STATE_FEATURES = (
    "budget", "load", "picks", "decodes_in_batch", "decodes_held", "page", "more_pages",
    "decode_page", "more_decode_pages", "slots_left", "kv_room", "deadline_budget",
    "micro_step",
)
#: Per-candidate features of the current page of unpicked waiting requests.
CANDIDATE_FEATURES = ("occupied", "remaining_prompt", "chunk", "age", "resident",
                      "predicted_output", "late", "arrival_rank", "prompt_rank",
                      "ttft_objective")
#: Per-decode features of the current decode page.
DECODE_FEATURES = ("occupied", "in_batch", "since_last_token", "slack", "generated",
                   "predicted_remaining", "age", "tbt_objective")
_INF = math.inf
#: The default budget's margin below the tightest decode deadline, ms: slo_aware's default
#: ``safety_margin_ms``, so that the default batch's budget is slo_aware's on deterministic
#: service and a cloned rule rarely has to move it.
DEFAULT_BUDGET_MARGIN_MS = 5.0


class ComposeKit:
    """Builds each decision's :class:`Composer` and each micro-step's observation.

    Args:
        config: the run's config (limits, SLO, service models).
        observer: v0's observer (its global features and scales are reused).
        hold_s: the timed-hold ladder, seconds.
        guards: the training guards (see the env docstring).
        budget_margin_ms: slack the default (deadline) budget keeps below the tightest decode
            deadline, ms.
        attention_aware: when the service prices attention (``service.attention``), the
            deadline budget and the guards plan each iteration with it, as ``slo_aware`` does
            (:meth:`~llm_serving_env.hardware.attention.AttentionCost.planned_s`: the decodes'
            KV reads and a chunk at the first waiting request's offset, from public state).
    """

    def __init__(self, config: SimConfig, observer: Observer, hold_s: np.ndarray,
                 guards: bool, budget_margin_ms: float = DEFAULT_BUDGET_MARGIN_MS,
                 attention_aware: bool = True) -> None:
        self.observer = observer
        self.hold_s = hold_s
        self.guards = guards
        self.margin_s = float(budget_margin_ms) / 1000.0
        n = self.num_slots = observer.num_slots
        self.max_batch_tokens = k = int(config.gpus.max_batch_tokens)
        self.max_batch_requests = int(config.gpus.max_batch_requests)
        self.layout = ComposeLayout(n, k.bit_length(), hold_s.size)
        self.num_global = observer.num_global
        self.state_offset = self.num_global
        self.candidate_offset = self.state_offset + len(STATE_FEATURES)
        self.decode_offset = self.candidate_offset + n * len(CANDIDATE_FEATURES)
        self.size = self.decode_offset + n * len(DECODE_FEATURES)
        self.names = (
            list(observer.names[: self.num_global]) + list(STATE_FEATURES)
            + [f"candidate_{f}_{i}" for f in CANDIDATE_FEATURES for i in range(n)]
            + [f"decode_{f}_{i}" for f in DECODE_FEATURES for i in range(n)])
        rng = np.random.default_rng(0)  # only means are used; nothing is drawn
        self._prefill_model = ServiceModel.from_config(config.service_for("prefill"), rng)
        self._models: dict[str, tuple[Any, np.ndarray]] = {}
        self._attention: dict[str, AttentionCost | None] = {}
        for role in ("mixed", "prefill", "decode"):
            model = ServiceModel.from_config(config.service_for(role), rng)
            table = np.maximum.accumulate(
                np.asarray(model.mean_s(np.arange(k + 1)), dtype=np.float64))
            self._models[role] = (model.mean_s, table)
            self._attention[role] = attention_cost(config, role) if attention_aware else None
        slo = config.slo
        self._slo_tbt_s = slo.tbt_ms / 1000.0 if slo is not None else _INF
        self._slo_ttft = slo.ttft_ms / 1000.0 if slo is not None else _INF
        self._p = observer.token_scale
        self._ttft = observer.ttft_scale_s
        self._tbt = observer.tbt_scale_s
        self._m = observer.output_scale

    def composer(self, view: DecisionView, event_pending: bool) -> Composer:
        """The decision's composition state, starting from the default batch."""
        mean_s, table = self._models[view.role]
        attention = self._attention[view.role]
        if attention is not None:
            table = view.planned_with_attention(table, attention)
        return Composer(view, self.layout, self.hold_s, self._prefill_model.mean_s, mean_s,
                        table, self._slo_tbt_s, self.guards, event_pending, self.margin_s)

    def observe(self, c: Composer | None, globals_: np.ndarray, micro: int) -> np.ndarray:
        """The observation, float32 (size,): ``globals_`` (the v0 global features of the
        decision), the compose state after ``micro`` micro-steps, and the two pages."""
        out = np.zeros(self.size, dtype=np.float64)
        out[: self.num_global] = globals_
        if c is None:
            return out.astype(np.float32)
        view = c.view
        n = self.num_slots
        k = float(self.max_batch_tokens)
        nd = c.decoding.size
        inb = int(np.count_nonzero(c.in_batch))
        o = self.state_offset
        kv = c.kv_room()
        state = (
            c.budget / k, min(c.load / k, 1.0), len(c.picks) / (len(c.picks) + n),
            inb / nd if nd else 0.0, (nd - inb) / nd if nd else 0.0,
            c.page * n / c.unpicked.size if c.unpicked.size else 0.0,
            float(c.unpicked.size > (c.page + 1) * n),
            c.decode_page * n / nd if nd else 0.0, float(nd > (c.decode_page + 1) * n),
            max(0, view.free_slots - c.new_count) / self.max_batch_requests,
            1.0 if kv == _INF else max(0.0, kv) / max(1.0, view.kv_capacity_blocks),
            c._deadline_budget() / k, micro / (micro + n),
        )
        out[o: o + len(state)] = state
        t = view.requests
        now = view.now_s
        pos = c.page_positions()
        if pos.size:
            ids = c.waiting[pos]
            m = pos.size
            o = self.candidate_offset
            rem = c.remaining[pos].astype(np.float64)
            chunk = c.chunk_of(pos).astype(np.float64)
            age = now - t.arrival_s[ids]
            out[o: o + m] = 1.0
            out[o + n: o + n + m] = rem / (rem + self._p)
            out[o + 2 * n: o + 2 * n + m] = chunk / (chunk + self._p)
            out[o + 3 * n: o + 3 * n + m] = age / (age + self._ttft)
            out[o + 4 * n: o + 4 * n + m] = pos < view.num_partial
            pred = t.predicted_output_tokens[ids]
            out[o + 5 * n: o + 5 * n + m] = np.where(pred > 0.0, pred / (pred + self._m), 0.0)
            if self._slo_ttft != _INF:
                objective = t.ttft_objective_s[ids]  # its class's (slo.classes)
                alone = age + self._prefill_model.mean_s(c.remaining[pos])
                out[o + 6 * n: o + 6 * n + m] = (alone > objective) \
                    & (t.generated_tokens[ids] == 0)
                out[o + 9 * n: o + 9 * n + m] = objective / (objective + self._ttft)
            # ranks among every waiting request, this page's or not: the order a rule sorts by
            # (FCFS, shortest first), which absolute scales hide when values are close
            w = c.waiting.size
            out[o + 7 * n: o + 7 * n + m] = pos / w
            out[o + 8 * n: o + 8 * n + m] = np.searchsorted(
                c.remaining_sorted, c.remaining[pos], side="left") / w
        dpos = c.decode_page_positions()
        if dpos.size:
            ids = c.decoding[dpos]
            m = dpos.size
            o = self.decode_offset
            since = now - t.last_token_s[ids]
            gen = t.generated_tokens[ids].astype(np.float64)
            out[o: o + m] = 1.0
            out[o + n: o + n + m] = c.in_batch[dpos]
            out[o + 2 * n: o + 2 * n + m] = since / (since + self._tbt)
            slack = c.slack[dpos]
            out[o + 3 * n: o + 3 * n + m] = np.clip(slack / self._tbt, 0.0, 1.0) \
                if self._slo_tbt_s != _INF else 1.0
            out[o + 4 * n: o + 4 * n + m] = gen / (gen + self._m)
            left = t.predicted_output_tokens[ids] - gen
            out[o + 5 * n: o + 5 * n + m] = np.where(left > 0.0, left / (left + self._m), 0.0)
            age = now - t.arrival_s[ids]
            out[o + 6 * n: o + 6 * n + m] = age / (age + self._ttft)
            if self._slo_tbt_s != _INF:
                objective = t.tbt_objective_s[ids]
                out[o + 7 * n: o + 7 * n + m] = objective / (objective + self._tbt)
        return out.astype(np.float32)
