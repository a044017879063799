"""The built-in schedulers' rules, compiled: each builds the same batch as its Python
scheduler in ``baselines/`` from the same state (see those modules for the rules themselves).

A rule reads the engine's tables (:mod:`.layout`) and writes its batch into the scratch rows
``PIDS``/``PTOKS`` (prefill ids and chunk sizes) and ``DIDS`` (decode ids). It returns
``(kind, num_prefills, num_decodes)`` with ``kind`` :data:`BATCH` or :data:`WAIT` (a Wait
until ``sc_f[WAIT_S]``, inf: the next event). Rules write only scratch (the scratch rows,
``WAIT_S``, a planning rule's ``plan[1]``), never the simulation's state.

The waiting list of GPU ``g`` is its partial prefills (list ``Q + g``) followed by its queue,
as :class:`~llm_serving_env.sim.scheduler.DecisionView` orders it; its decoding set is list
``Q + G + g``.
"""

from __future__ import annotations

import math

import numba as nb

from llm_serving_env.sim.fast.layout import (
    A_S,
    ARRIVAL,
    B0,
    BLOCK_TOKENS,
    C_S,
    DIDS,
    FIXED_BATCH,
    GPU_OF,
    KV_BLOCKS,
    KV_CAPACITY,
    KV_ENABLED,
    KV_TOKENS,
    KV_USED,
    MAX_REQUESTS,
    MAX_TOKENS,
    NEXT,
    NOW,
    NUM_GPUS,
    NUM_QUEUES,
    PIDS,
    PREFILLED,
    PTOKS,
    RULE,
    RULE_FLOAT,
    RULE_INT,
    STAIRCASE,
    TARGET,
    WAIT_S,
)
from llm_serving_env.sim.fast.lists import HEAD, SIZE

BATCH, WAIT = 0, 1


@nb.njit(cache=True)
def queue_list(g, sc_i):
    """The list id of the queue GPU ``g`` prefills from."""
    return 0 if sc_i[NUM_QUEUES] == 1 else g


@nb.njit(cache=True)
def first_waiting(g, lists, sc_i):
    """The first id of GPU ``g``'s waiting list (-1 if it is empty)."""
    r = lists[HEAD, sc_i[NUM_QUEUES] + g]
    if r == -1:
        r = lists[HEAD, queue_list(g, sc_i)]
    return r


@nb.njit(cache=True)
def next_waiting(r, g, req_i, lists, sc_i):
    """The id after ``r`` in GPU ``g``'s waiting list (-1 at its end)."""
    s = req_i[NEXT, r]
    if s == -1 and req_i[GPU_OF, r] == g:  # the last partial prefill: the queue follows
        s = lists[HEAD, queue_list(g, sc_i)]
    return s


@nb.njit(cache=True)
def occupancy(g, lists, sc_i):
    """GPU ``g``'s ``(partial prefills, resident requests, waiting requests)``."""
    q = sc_i[NUM_QUEUES]
    num_partial = lists[SIZE, q + g]
    resident = num_partial + lists[SIZE, q + sc_i[NUM_GPUS] + g]
    return num_partial, resident, num_partial + lists[SIZE, queue_list(g, sc_i)]


@nb.njit(cache=True)
def kv_free(g, gpu_i, sc_i):
    """Free KV blocks of GPU ``g`` (inf when memory is unlimited)."""
    if sc_i[KV_ENABLED] == 0:
        return math.inf
    return float(sc_i[KV_CAPACITY] - gpu_i[KV_USED, g])


@nb.njit(cache=True)
def blocks_needed(r, tokens, req_i, sc_i):
    """Extra KV blocks request ``r`` needs to add ``tokens`` tokens."""
    bs = sc_i[BLOCK_TOKENS]
    return -(-(req_i[KV_TOKENS, r] + tokens) // bs) - req_i[KV_BLOCKS, r]


@nb.njit(cache=True)
def kv_room_after_decodes(g, nd, req_i, gpu_i, sc_i, scratch):
    """KV blocks left for prefill once the ``nd`` decodes in ``DIDS`` grew by one token."""
    if sc_i[KV_ENABLED] == 0:
        return math.inf
    need = 0
    for i in range(nd):
        need += blocks_needed(scratch[DIDS, i], 1, req_i, sc_i)
    return float(max(0, sc_i[KV_CAPACITY] - gpu_i[KV_USED, g] - need))


@nb.njit(cache=True)
def kv_fit_prefill(num, free, allow_partial, req_i, sc_i, scratch):
    """How many of the ``num`` chunks in ``PIDS``/``PTOKS`` fit in ``free`` KV blocks (a
    prefix); with ``allow_partial`` the first that does not fit is cut to what does."""
    if free == math.inf or num == 0:
        return num
    used = 0
    count = 0
    while count < num:
        need = blocks_needed(scratch[PIDS, count], scratch[PTOKS, count], req_i, sc_i)
        if used + need > free:
            break
        used += need
        count += 1
    if count == num or not allow_partial:
        return count
    left = int(free - used)
    r = scratch[PIDS, count]
    room = (req_i[KV_BLOCKS, r] + left) * sc_i[BLOCK_TOKENS] - req_i[KV_TOKENS, r]
    if room <= 0:
        return count
    scratch[PTOKS, count] = min(scratch[PTOKS, count], room)
    return count + 1


@nb.njit(cache=True)
def take_decodes(g, limit, lists, req_i, sc_i, scratch):
    """Copy the first ``limit`` ids of GPU ``g``'s decoding set into ``DIDS``; their count."""
    lst = sc_i[NUM_QUEUES] + sc_i[NUM_GPUS] + g
    nd = min(limit, lists[SIZE, lst])
    r = lists[HEAD, lst]
    for i in range(nd):
        scratch[DIDS, i] = r
        r = req_i[NEXT, r]
    return nd


@nb.njit(cache=True)
def fcfs_whole_prompts(g, token_limit, slots, reserve, lists, req_i, gpu_i, sc_i, scratch):
    """Whole remaining prompts, FCFS from the waiting list, while their sum stays within
    ``token_limit``, at most ``slots`` of them, whose KV fits in the free blocks less
    ``reserve`` (``baselines.request_level.fcfs_whole_prompts``); their count (0: none)."""
    if slots <= 0:
        return 0
    num = 0
    total = 0
    r = first_waiting(g, lists, sc_i)
    while r != -1 and num < slots:
        need = req_i[TARGET, r] - req_i[PREFILLED, r]
        total += need
        if total > token_limit:
            break
        scratch[PIDS, num] = r
        scratch[PTOKS, num] = need
        num += 1
        r = next_waiting(r, g, req_i, lists, sc_i)
    free = max(0.0, kv_free(g, gpu_i, sc_i) - reserve)
    return kv_fit_prefill(num, free, False, req_i, sc_i, scratch)


@nb.njit(cache=True)
def fill_fcfs(g, lists, req_i, sc_i, budget, slots, num_partial, waiting_count, scratch):
    """``fill_prefill_budget`` in FCFS order: whole remaining prompts of the waiting list
    while they fit in ``budget``, the next one cut to the rest, at most ``slots`` new
    requests; chunks into PIDS/PTOKS, their count."""
    if budget <= 0 or waiting_count == 0:
        return 0
    allowed = min(budget, num_partial + max(slots, 0), waiting_count)
    num = 0
    total = 0
    r = first_waiting(g, lists, sc_i)
    while num < allowed:
        need = req_i[TARGET, r] - req_i[PREFILLED, r]
        scratch[PIDS, num] = r
        scratch[PTOKS, num] = need
        num += 1
        total += need
        if total >= budget:
            break
        r = next_waiting(r, g, req_i, lists, sc_i)
    if total > budget:
        scratch[PTOKS, num - 1] -= total - budget
    return num


@nb.njit(cache=True)
def hybrid(g, lists, req_i, gpu_i, sc_i, scratch):
    """Sarathi-Serve stall-free batching (``baselines/hybrid.py``)."""
    budget = sc_i[RULE_INT]
    num_partial, resident, waiting = occupancy(g, lists, sc_i)
    nd = take_decodes(g, budget, lists, req_i, sc_i, scratch)
    num = fill_fcfs(g, lists, req_i, sc_i, budget - nd, sc_i[MAX_REQUESTS] - resident,
                    num_partial, waiting, scratch)
    num = kv_fit_prefill(num, kv_room_after_decodes(g, nd, req_i, gpu_i, sc_i, scratch), True,
                         req_i, sc_i, scratch)
    if nd == 0 and num == 0:
        return WAIT, 0, 0
    return BATCH, num, nd


@nb.njit(cache=True)
def orca(g, lists, req_i, gpu_i, sc_i, scratch):
    """Orca iteration-level scheduling, whole prompts (``baselines/orca.py``)."""
    k = sc_i[MAX_TOKENS]
    _, resident, waiting = occupancy(g, lists, sc_i)
    nd = take_decodes(g, k, lists, req_i, sc_i, scratch)
    num = 0
    if waiting > 0 and nd < k:
        num = fcfs_whole_prompts(g, k - nd, sc_i[MAX_REQUESTS] - resident, 0.0, lists, req_i,
                                 gpu_i, sc_i, scratch)
    if num == 0:
        return (BATCH, 0, nd) if nd else (WAIT, 0, 0)
    if nd == 0:
        return BATCH, num, 0
    num = kv_fit_prefill(num, kv_room_after_decodes(g, nd, req_i, gpu_i, sc_i, scratch), False,
                         req_i, sc_i, scratch)
    return BATCH, num, nd


@nb.njit(cache=True)
def request_level(g, lists, req_i, gpu_i, sc_i, scratch):
    """Request-level batching: a cohort decodes to its end (``baselines/request_level.py``)."""
    _, resident, _ = occupancy(g, lists, sc_i)
    nd = take_decodes(g, resident, lists, req_i, sc_i, scratch)
    if nd:
        return BATCH, 0, nd
    num = fcfs_whole_prompts(g, sc_i[MAX_TOKENS], sc_i[MAX_REQUESTS] - resident, 0.0, lists,
                             req_i, gpu_i, sc_i, scratch)
    return (BATCH, num, 0) if num else (WAIT, 0, 0)


@nb.njit(cache=True)
def prefill_first(g, lists, req_i, gpu_i, sc_i, sc_f, scratch):
    """vLLM v0 prefill-first scheduling with its watermark (``baselines/prefill_first.py``)."""
    _, resident, waiting = occupancy(g, lists, sc_i)
    if waiting > 0:
        reserve = 0.0
        if sc_i[KV_ENABLED] and resident:
            reserve = float(math.ceil(sc_f[RULE_FLOAT] * sc_i[KV_CAPACITY]))
        num = fcfs_whole_prompts(g, sc_i[MAX_TOKENS], sc_i[MAX_REQUESTS] - resident, reserve,
                                 lists, req_i, gpu_i, sc_i, scratch)
        if num:
            return BATCH, num, 0
    nd = take_decodes(g, sc_i[MAX_TOKENS], lists, req_i, sc_i, scratch)
    return (BATCH, 0, nd) if nd else (WAIT, 0, 0)


@nb.njit(cache=True)
def mean_service_s(load, sc_i, sc_f):
    """E[S(load)] in seconds (``ServiceModel.mean_s``)."""
    steps = -(-load // sc_i[B0]) if sc_i[STAIRCASE] else max(load - sc_i[B0], 0)
    return sc_f[C_S] + sc_f[A_S] * float(steps)


@nb.njit(cache=True)
def cohort(g, lists, req_i, req_f, gpu_i, sc_i, sc_f, scratch):
    """A request-level batcher (``baselines/cohort.py``): a running cohort decodes to its
    end; a full cohort is prefilled now; otherwise it is held until the rule's time:
    ``fixed_batch`` (``baselines/fixed_batch.py``) dispatches at ``RULE_INT`` prompt tokens
    or when the oldest has waited ``RULE_FLOAT`` s; ``dynamic_batch``
    (``baselines/dynamic_batch.py``) holds while the oldest one's expected TTFT stays within
    ``RULE_FLOAT`` s."""
    k = sc_i[MAX_TOKENS]
    nd = take_decodes(g, k, lists, req_i, sc_i, scratch)
    if nd:
        return BATCH, 0, nd
    num_partial, resident, waiting = occupancy(g, lists, sc_i)
    slots = sc_i[MAX_REQUESTS] - resident
    num = fcfs_whole_prompts(g, k, slots, 0.0, lists, req_i, gpu_i, sc_i, scratch)
    if num == 0:
        return WAIT, 0, 0
    load = 0
    oldest = math.inf
    for i in range(num):
        load += scratch[PTOKS, i]
        oldest = min(oldest, req_f[ARRIVAL, scratch[PIDS, i]])
    if num_partial > 0 or num < waiting or num >= slots or load >= k:
        return BATCH, num, 0
    now = sc_f[NOW]
    if sc_i[RULE] == FIXED_BATCH:
        until = now if load >= sc_i[RULE_INT] else oldest + sc_f[RULE_FLOAT]
    else:
        until = oldest + sc_f[RULE_FLOAT] - mean_service_s(load, sc_i, sc_f)
    if until > now:
        sc_f[WAIT_S] = until
        return WAIT, 0, 0
    return BATCH, num, 0
