"""slo_aware and its family compiled (``baselines/slo_aware.py``, ``baselines/slo_classes.py``):
decodes planned by deadline under an adaptive token budget, prefills in SRPT, FCFS, triage or
urgency order, the batch assembled within the KV room. Same batches as the Python rules, step
for step and float operation for float operation (see those modules for the rules).

Parameters: ``sc_i[RULE_INT + SLO_...]`` and ``sc_f[RULE_FLOAT + SLO_...]``
(:func:`~.layout.slo_rule_params` names them); ``plan[0]`` holds T(b) for b = 0..K.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from llm_serving_env.sim.fast.layout import (
    ARRIVAL,
    ATTENTION,
    DECODE_S_PER_TOKEN,
    DIDS,
    GENERATED,
    LAST_TOKEN,
    MAX_REQUESTS,
    MAX_TOKENS,
    NEXT,
    NOW,
    NUM_GPUS,
    NUM_QUEUES,
    ORDER_FCFS,
    ORDER_SRPT,
    ORDER_TRIAGE,
    PIDS,
    PREFILL_S_PER_PAIR,
    PREFILLED,
    PROMPT,
    PTOKS,
    RULE_FLOAT,
    RULE_INT,
    SLO_ATTENTION_AWARE,
    SLO_HEADROOM,
    SLO_HORIZON_S,
    SLO_MARGIN_S,
    SLO_MAX_BUDGET,
    SLO_MAX_WAIT_S,
    SLO_MIN_BUDGET,
    SLO_ORDER,
    SLO_PER_REQUEST_TBT,
    SLO_TBT_S,
    SLO_TTFT_S,
    TARGET,
    TBT_OBJECTIVE,
    TTFT_OBJECTIVE,
)
from llm_serving_env.sim.fast.lists import HEAD, SIZE
from llm_serving_env.sim.fast.rules import (
    BATCH,
    WAIT,
    blocks_needed,
    fill_fcfs,
    first_waiting,
    kv_fit_prefill,
    kv_room_after_decodes,
    next_waiting,
    occupancy,
)

#: as slo_aware's _EPS_S: slack kept on every deadline
EPS_S = 1e-9
#: key offsets (keys are prompt tokens, < 1e12): triage puts late requests last
#: (slo_triage's 1e12); the urgency order puts relaxed ones, then doomed ones after the rest
LATE = 1e12
NOT_URGENT, DOOMED = 1e12, 2e12


@nb.njit(cache=True)
def _deadline_budget(T, slack, k, top, margin):
    """``SloAwareScheduler.deadline_budget``."""
    floor = T[k] - EPS_S
    tightest = slack.min()
    if tightest < floor:
        best = math.inf
        for x in slack:
            if x >= floor and x < best:
                best = x
        if best == math.inf:
            return top
        tightest = best
    b = np.searchsorted(T, tightest - margin - EPS_S, side="right") - 1
    return min(max(b, k), top)


@nb.njit(cache=True)
def _fill_ordered(waiting, remaining, order, num_partial, budget, slots, scratch):
    """``fill_prefill_budget`` with an order: chunks into PIDS/PTOKS; their count."""
    num = 0
    total = 0
    taken_new = 0
    for j in range(order.size):
        if num >= budget:  # every chunk holds >= 1 token
            break
        pos = order[j]
        if pos >= num_partial:
            if taken_new >= slots:
                continue
            taken_new += 1
        need = remaining[pos]
        scratch[PIDS, num] = waiting[pos]
        scratch[PTOKS, num] = need
        num += 1
        total += need
        if total >= budget:
            break
    if num and total > budget:
        scratch[PTOKS, num - 1] -= total - budget
    return num


@nb.njit(cache=True)
def slo_aware(g, lists, req_i, req_f, gpu_i, sc_i, sc_f, plan, scratch):
    """slo_aware / slo_triage / slo_classes for free GPU ``g``: ``(kind, prefills, decodes)``."""
    k = sc_i[RULE_INT + SLO_MIN_BUDGET]
    top = sc_i[RULE_INT + SLO_MAX_BUDGET]
    order_kind = sc_i[RULE_INT + SLO_ORDER]
    headroom = sc_i[RULE_INT + SLO_HEADROOM]
    aware = sc_i[RULE_INT + SLO_ATTENTION_AWARE]
    per_request_tbt = sc_i[RULE_INT + SLO_PER_REQUEST_TBT]
    margin = sc_f[RULE_FLOAT + SLO_MARGIN_S]
    ttft_s = sc_f[RULE_FLOAT + SLO_TTFT_S]
    max_wait = sc_f[RULE_FLOAT + SLO_MAX_WAIT_S]
    horizon = sc_f[RULE_FLOAT + SLO_HORIZON_S]
    tbt_s = sc_f[RULE_FLOAT + SLO_TBT_S]
    now = sc_f[NOW]
    max_tokens = sc_i[MAX_TOKENS]
    q = sc_i[NUM_QUEUES]
    num_partial, resident, waiting_count = occupancy(g, lists, sc_i)
    # the decode set, in the GPU's order
    dlist = q + sc_i[NUM_GPUS] + g
    nd_all = lists[SIZE, dlist]
    dec = np.empty(nd_all, np.int64)
    r = lists[HEAD, dlist]
    for i in range(nd_all):
        dec[i] = r
        r = req_i[NEXT, r]
    T = plan[0]
    if aware and sc_i[ATTENTION]:  # (slo_classes plans with S(b) alone: aware is 0)
        extra = 0.0
        if nd_all:
            context = 0
            for i in range(nd_all):
                context += req_i[PROMPT, dec[i]] + req_i[GENERATED, dec[i]]
            extra = sc_f[DECODE_S_PER_TOKEN] * float(context)
        offset = 0.0
        if waiting_count:
            offset = float(req_i[PREFILLED, first_waiting(g, lists, sc_i)])
        pps = sc_f[PREFILL_S_PER_PAIR]
        T = plan[1]
        for i in range(T.size):
            b = float(i)
            T[i] = plan[0, i] + extra + pps * (b * offset + b * (b + 1.0) / 2.0)
    # plan_decodes: the budget, critical decodes (crit) and deferrable ones (rest), both in
    # due order
    crit = np.empty(0, np.int64)
    rest = np.empty(0, np.int64)
    if nd_all == 0:
        b = top
    else:
        slack = np.empty(nd_all)
        if per_request_tbt:
            for i in range(nd_all):
                slack[i] = req_f[LAST_TOKEN, dec[i]] + (req_f[TBT_OBJECTIVE, dec[i]] - now)
        else:
            ahead = tbt_s - now
            for i in range(nd_all):
                slack[i] = req_f[LAST_TOKEN, dec[i]] + ahead
        b = _deadline_budget(T, slack, k, top, margin)
        threshold = (T[b] + T[top]) + margin
        if slack.max() < threshold:
            if nd_all > max_tokens:
                crit = dec[np.argsort(slack, kind="mergesort")[:max_tokens]]
            else:
                crit = dec
        else:
            by_due = np.argsort(slack, kind="mergesort")
            num_crit = 0
            for j in range(nd_all):
                if slack[by_due[j]] < threshold:
                    num_crit += 1
            crit = np.empty(num_crit, np.int64)
            rest = np.empty(nd_all - num_crit, np.int64)
            a = 0
            c = 0
            for j in range(nd_all):
                if slack[by_due[j]] < threshold:
                    crit[a] = dec[by_due[j]]
                    a += 1
                else:
                    rest[c] = dec[by_due[j]]
                    c += 1
            crit = crit[:max_tokens]
        b = max(b, crit.size)
    slots = sc_i[MAX_REQUESTS] - resident
    left = b - crit.size
    # the prefill chunks, in the configured order
    if order_kind == ORDER_FCFS:
        num = fill_fcfs(g, lists, req_i, sc_i, left, slots, num_partial, waiting_count,
                        scratch)
    elif left <= 0 or waiting_count == 0:
        num = 0
    else:
        waiting = np.empty(waiting_count, np.int64)
        remaining = np.empty(waiting_count, np.int64)
        r = first_waiting(g, lists, sc_i)
        for i in range(waiting_count):
            waiting[i] = r
            remaining[i] = req_i[TARGET, r] - req_i[PREFILLED, r]
            r = next_waiting(r, g, req_i, lists, sc_i)
        if order_kind == ORDER_SRPT:
            key = remaining.copy()
            key[:num_partial] = -2
            if max_wait != math.inf:
                for i in range(num_partial, waiting_count):
                    if now - req_f[ARRIVAL, waiting[i]] >= max_wait:
                        key[i] = -1
            order = np.argsort(key, kind="mergesort")
        else:
            iteration_s = T[min(b, T.size - 1)]
            fkey = remaining.astype(np.float64)
            for i in range(num_partial, waiting_count):
                w = waiting[i]
                alone = (now - req_f[ARRIVAL, w]) + np.ceil(remaining[i] / left) * iteration_s
                fresh = req_i[GENERATED, w] == 0
                if order_kind == ORDER_TRIAGE:
                    if fresh and alone > ttft_s + EPS_S:
                        fkey[i] += LATE
                else:
                    objective = req_f[TTFT_OBJECTIVE, w]
                    doomed = fresh and alone > objective + EPS_S
                    if fresh and not doomed and objective - alone > horizon:
                        fkey[i] += NOT_URGENT
                    if doomed:
                        fkey[i] += DOOMED
            fkey[:num_partial] = -1.0
            order = np.argsort(fkey, kind="mergesort")
        num = _fill_ordered(waiting, remaining, order, num_partial, left, slots, scratch)
    return _assemble(g, dec, crit, rest, num, left, b, headroom * resident, req_i, req_f,
                     gpu_i, sc_i, scratch)


@nb.njit(cache=True)
def _assemble(g, dec, crit, rest, num, left, budget, headroom, req_i, req_f, gpu_i, sc_i,
              scratch):
    """``baselines.slo_aware.assemble_batch``; decodes written in the GPU's decode order (the
    order the engine runs them in whatever order a Batch lists them)."""
    nc = crit.size
    for i in range(nc):
        scratch[DIDS, i] = crit[i]
    room = kv_room_after_decodes(g, nc, req_i, gpu_i, sc_i, scratch)
    if headroom and room != math.inf:
        room = max(0.0, room - headroom)
    num = kv_fit_prefill(num, room, True, req_i, sc_i, scratch)
    for i in range(num):
        left -= scratch[PTOKS, i]
    count = nc
    if rest.size and left > 0:
        extra = min(left, rest.size)
        if room != math.inf:
            for i in range(num):
                room -= blocks_needed(scratch[PIDS, i], scratch[PTOKS, i], req_i, sc_i)
            need = 0
            fit = 0
            while fit < extra:
                need += blocks_needed(rest[fit], 1, req_i, sc_i)
                if need > room:
                    break
                fit += 1
            extra = fit
        for i in range(extra):
            scratch[DIDS, nc + i] = rest[i]
        count = nc + extra
    if count == 0 and num == 0:
        if dec.size == 0:
            return WAIT, 0, 0
        last = np.empty(dec.size)
        for i in range(dec.size):
            last[i] = req_f[LAST_TOKEN, dec[i]]
        pick = np.argsort(last, kind="mergesort")[:budget]
        count = pick.size
        for i in range(count):
            scratch[DIDS, i] = dec[pick[i]]
    # the GPU's decode order
    if count > 1:
        members = set()
        for i in range(count):
            members.add(scratch[DIDS, i])
        c = 0
        for i in range(dec.size):
            if dec[i] in members:
                scratch[DIDS, c] = dec[i]
                c += 1
    return BATCH, num, count
