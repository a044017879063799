"""Batch-building steps that schedulers, the Gymnasium env and the learned agents share.

Filling a prefill token budget from the waiting queue in a given order (whole remaining
prompts while they fit, the next one chunked, new requests only while slots are free) is one
rule, written once here; FCFS chunked prefill (Sarathi-Serve), shortest-prompt-first (SLAI),
the env's repair step and the learned agents' modes all call it.
"""

from __future__ import annotations

import numpy as np

from llm_serving_env.sim.scheduler import DecisionView

__all__ = ["fill_prefill_budget"]

_NO_IDS = np.zeros(0, np.int64)
_NO_IDS.flags.writeable = False


def fill_prefill_budget(view: DecisionView, budget: int, slots: int,
                        order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Prefill chunks filling ``budget`` tokens from ``view.waiting``.

    Args:
        view: the decision point.
        budget: prefill tokens to fill (<= 0: none).
        slots: new requests that may join (partial prefills, positions ``< num_partial`` of
            ``view.waiting``, are resident and take none).
        order: positions in ``view.waiting`` in priority order, int64 ``(k,)``; None = FCFS
            (the queue's own order).

    Returns:
        ``(ids, tokens)``, int64 ``(m,)`` each: whole remaining prompts while they fit, the
        next one cut to what is left, so at most one chunk is partial. When the chosen
        positions are ``0..m-1``, ``ids`` is a slice of ``view.waiting`` (the engine then
        skips re-validating them).
    """
    waiting = view.waiting
    if budget <= 0 or waiting.size == 0:
        return _NO_IDS, _NO_IDS
    if order is None:
        # FCFS: the allowed requests are a prefix; never build an index over a long queue
        count_allowed = min(budget, view.num_partial + max(slots, 0), waiting.size)
        if count_allowed == 0:
            return _NO_IDS, _NO_IDS
        need = view.remaining_prompt(waiting[:count_allowed])
        chosen = None
    else:
        is_new = order >= view.num_partial
        if slots <= 0:
            order = order[~is_new]
        elif int(is_new.sum()) > slots:
            order = order[~is_new | (np.cumsum(is_new) <= slots)]
        order = order[:budget]  # every chunk holds >= 1 token
        if order.size == 0:
            return _NO_IDS, _NO_IDS
        need = view.remaining_prompt(waiting[order])
        chosen = order
    total = np.cumsum(need)
    count = min(int(np.searchsorted(total, budget)) + 1, need.size)  # the last one may be cut
    tokens = need[:count].copy()
    tokens[-1] -= max(0, int(total[count - 1]) - budget)
    if chosen is None:
        return waiting[:count], tokens
    chosen = chosen[:count]
    if int(chosen[-1]) == count - 1 and (count == 1 or bool((np.diff(chosen) == 1).all())):
        return waiting[:count], tokens
    return waiting[chosen], tokens
