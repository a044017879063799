"""The compiled event loop: the reference engine's rules (:mod:`llm_serving_env.sim.engine`)
step for step, for the configurations :func:`~llm_serving_env.sim.fast.support.fast_path_gap`
accepts, over the tables of :mod:`.layout`.

Every operation mirrors one of the reference engine's, in the same order and with the same
float operations (``end = now + duration``, the gaps ``end - last``, the service formula), so
the two engines produce the same RunResult bit for bit; ``tests/test_fast_engine.py`` checks
that differentially. The loop is resumable: it returns a status (:mod:`.layout`) when it needs
a fresh block of service noise, room in the batch log, or after ``max_decisions`` decisions
(progress bars), and picks up where it stopped when called again.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from llm_serving_env.sim.fast.dispatch import schedule
from llm_serving_env.sim.fast.layout import (
    A_S,
    ARRIVAL,
    ATTENTION,
    B0,
    BLOCK_TOKENS,
    BUSY_UNTIL,
    C_S,
    CHARGED,
    DEADLOCK,
    DEC_NEED,
    DECODE_S_PER_TOKEN,
    DIDS,
    DONE,
    FINISH,
    FIRST_GPU,
    FIRST_SCHEDULED,
    FIRST_TOKEN,
    FLIGHT_ND,
    FLIGHT_NP,
    FLIGHT_ROW,
    GENERATED,
    GPU_OF,
    KV_BLOCKS,
    KV_CAPACITY,
    KV_ENABLED,
    KV_MEMORY,
    KV_TOKENS,
    KV_USED,
    LAST_TOKEN,
    MARK,
    MAX_TBT,
    NEED_LOG,
    NEED_NOISE,
    NEXT,
    NEXT_ARRIVAL,
    NOISE,
    NOISE_DETERMINISTIC,
    NOISE_POS,
    NOW,
    NUM_BATCHES,
    NUM_FINISHED,
    NUM_GAPS,
    NUM_GPUS,
    NUM_MEASURED,
    NUM_QUEUES,
    OUTPUT,
    OUTSTANDING,
    OUTSTANDING_TOKENS,
    OWN_P,
    PARKED,
    PAUSED,
    PIDS,
    PRE_NEED,
    PREEMPTIONS,
    PREFILL_S_PER_PAIR,
    PREFILLED,
    PREV,
    PROMPT,
    PTOKS,
    QUEUE_OF,
    ROUTE_OUTPUT,
    ROUTER,
    ROUTER_JSQ,
    ROUTER_ROUND_ROBIN,
    RR_NEXT,
    RUNNING,
    STAIRCASE,
    STATUS_ARG,
    STATUS_GPU,
    TARGET,
    TRACK_TOKENS,
    VICTIMS,
    WAIT_S,
    WAIT_UNTIL,
    WARMUP,
    N,
)
from llm_serving_env.sim.fast.lists import HEAD, SIZE, push_back, push_front, remove
from llm_serving_env.sim.fast.rules import WAIT, queue_list

# batch log rows: int64 (5, capacity) and float64 (2, capacity)
LOG_GPU, LOG_PREFILL_TOKENS, LOG_NUM_PREFILLS, LOG_NUM_DECODES, LOG_TOKEN_LOAD = range(5)
LOG_START, LOG_END = range(2)


@nb.njit(cache=True)
def _cdiv(a, b):
    return -(-a // b)


@nb.njit(cache=True)
def _has_work(g, lists, sc_i):
    q = sc_i[NUM_QUEUES]
    if lists[SIZE, q + sc_i[NUM_GPUS] + g] or lists[SIZE, q + g]:
        return True
    return lists[SIZE, queue_list(g, sc_i)] > 0


@nb.njit(cache=True)
def _estimated_work(r, req_i, req_f):
    """least_tokens' estimate of the token work request ``r`` still needs (engine
    ``_estimated_work``, mixed role)."""
    if not math.isnan(req_f[FINISH, r]):
        return 0
    incomplete = 1 if req_i[TARGET, r] > req_i[PREFILLED, r] else 0
    decodes = max(req_i[ROUTE_OUTPUT, r] - req_i[GENERATED, r] - incomplete, 0)
    return req_i[TARGET, r] - req_i[PREFILLED, r] + decodes


@nb.njit(cache=True)
def _route(i, req_i, gpu_i, sc_i):
    router = sc_i[ROUTER]
    gpus = sc_i[NUM_GPUS]
    if router == ROUTER_ROUND_ROBIN:
        g = sc_i[RR_NEXT]
        sc_i[RR_NEXT] = (g + 1) % gpus
        return g
    row = OUTSTANDING if router == ROUTER_JSQ else OUTSTANDING_TOKENS
    best = 0
    for g in range(1, gpus):
        if gpu_i[row, g] < gpu_i[row, best]:
            best = g
    return best


@nb.njit(cache=True)
def _admit_arrivals(t, req_i, req_f, gpu_i, lists, sc_i):
    n = sc_i[N]
    nxt, prv = req_i[NEXT], req_i[PREV]
    i = sc_i[NEXT_ARRIVAL]
    central = sc_i[NUM_QUEUES] == 1
    track = sc_i[TRACK_TOKENS] != 0
    while i < n and req_f[ARRIVAL, i] <= t:
        req_i[TARGET, i] = req_i[PROMPT, i]
        if central:
            req_i[QUEUE_OF, i] = 0
            push_back(lists, nxt, prv, 0, i)
        else:
            g = _route(i, req_i, gpu_i, sc_i)
            req_i[QUEUE_OF, i] = g
            gpu_i[OUTSTANDING, g] += 1
            if track:
                work = req_i[PROMPT, i] + req_i[ROUTE_OUTPUT, i] - 1
                req_i[CHARGED, i] = work
                gpu_i[OUTSTANDING_TOKENS, g] += work
            push_back(lists, nxt, prv, g, i)
        i += 1
    sc_i[NEXT_ARRIVAL] = i


@nb.njit(cache=True)
def _finish(r, g, end, req_i, req_f, gpu_i, sc_i):
    req_f[FINISH, r] = end
    sc_i[NUM_FINISHED] += 1
    if r >= sc_i[WARMUP]:
        sc_i[NUM_MEASURED] += 1
    gpu_i[OUTSTANDING, g] -= 1
    if sc_i[KV_ENABLED]:
        gpu_i[KV_USED, g] -= req_i[KV_BLOCKS, r]
        req_i[KV_BLOCKS, r] = 0
        req_i[KV_TOKENS, r] = 0


@nb.njit(cache=True)
def _recharge(r, g, req_i, req_f, gpu_i):
    work = _estimated_work(r, req_i, req_f)
    gpu_i[OUTSTANDING_TOKENS, g] += work - req_i[CHARGED, r]
    req_i[CHARGED, r] = work


@nb.njit(cache=True)
def _gap(r, end, row, req_f, sc_i, gap_s, gap_row, gap_len):
    """Request ``r`` emits a token at ``end`` (s), from batch ``row``: its gap since the last
    one counts towards its largest gap and, once past the warm-up, joins the run-length
    encoded gaps (``RunResult.tbt_gap_run_*``): the current run if it has the same value and
    row, else a new run (``NUM_GAPS`` counts the runs)."""
    gap = end - req_f[LAST_TOKEN, r]
    if gap > req_f[MAX_TBT, r]:
        req_f[MAX_TBT, r] = gap
    if r >= sc_i[WARMUP]:
        k = sc_i[NUM_GAPS]
        if k and gap_row[k - 1] == row and gap_s[k - 1] == gap:
            gap_len[k - 1] += 1
        else:
            gap_s[k] = gap
            gap_row[k] = row
            gap_len[k] = 1
            sc_i[NUM_GAPS] = k + 1


@nb.njit(cache=True)
def _complete(g, req_i, req_f, gpu_i, gpu_f, lists, sc_i, flight, gap_s, gap_row, gap_len):
    """The end of GPU ``g``'s batch (engine ``_complete``, mixed role)."""
    nxt, prv = req_i[NEXT], req_i[PREV]
    q = sc_i[NUM_QUEUES]
    partial_list = q + g
    decoding_list = q + sc_i[NUM_GPUS] + g
    end = gpu_f[BUSY_UNTIL, g]
    gpu_f[BUSY_UNTIL, g] = math.inf
    row = gpu_i[FLIGHT_ROW, g]
    num_p = gpu_i[FLIGHT_NP, g]
    num_d = gpu_i[FLIGHT_ND, g]
    for j in range(num_d):
        d = flight[2, g, j]
        _gap(d, end, row, req_f, sc_i, gap_s, gap_row, gap_len)
        req_f[LAST_TOKEN, d] = end
        req_i[GENERATED, d] += 1
        if req_i[GENERATED, d] == req_i[OUTPUT, d]:
            _finish(d, g, end, req_i, req_f, gpu_i, sc_i)
            remove(lists, nxt, prv, decoding_list, d)
    for j in range(num_p):
        p = flight[0, g, j]
        req_i[PREFILLED, p] += flight[1, g, j]
    # prefills completed now, in batch order: first the gaps of resumed ones (recomputed
    # after a preemption), then their state
    for j in range(num_p):
        p = flight[0, g, j]
        if req_i[PREFILLED, p] == req_i[TARGET, p] and req_i[GENERATED, p] > 0:
            _gap(p, end, row, req_f, sc_i, gap_s, gap_row, gap_len)
    for j in range(num_p):
        p = flight[0, g, j]
        if req_i[PREFILLED, p] != req_i[TARGET, p]:
            continue
        if req_i[GENERATED, p] == 0:
            req_f[FIRST_TOKEN, p] = end
        req_i[GENERATED, p] += 1
        req_f[LAST_TOKEN, p] = end
        remove(lists, nxt, prv, partial_list, p)
        if req_i[GENERATED, p] == req_i[OUTPUT, p]:
            _finish(p, g, end, req_i, req_f, gpu_i, sc_i)
        else:
            push_back(lists, nxt, prv, decoding_list, p)
    if sc_i[TRACK_TOKENS]:
        for j in range(num_p):
            _recharge(flight[0, g, j], g, req_i, req_f, gpu_i)
        for j in range(num_d):
            _recharge(flight[2, g, j], g, req_i, req_f, gpu_i)


@nb.njit(cache=True)
def _preempt(num_victims, g, req_i, req_f, gpu_i, lists, sc_i, scratch):
    """Preempt the ``VICTIMS`` (ascending ids, resident on ``g``) by recompute (engine
    ``_preempt``): they go back to the front of their queue in arrival order."""
    nxt, prv = req_i[NEXT], req_i[PREV]
    q = sc_i[NUM_QUEUES]
    for j in range(num_victims):
        r = scratch[VICTIMS, j]
        gpu_i[KV_USED, g] -= req_i[KV_BLOCKS, r]
        req_i[KV_BLOCKS, r] = 0
        req_i[KV_TOKENS, r] = 0
        req_i[PREFILLED, r] = 0
        req_i[TARGET, r] = req_i[PROMPT, r] + req_i[GENERATED, r]
        if sc_i[TRACK_TOKENS]:
            work = _estimated_work(r, req_i, req_f)
            gpu_i[OUTSTANDING_TOKENS, req_i[QUEUE_OF, r]] += work - req_i[CHARGED, r]
            req_i[CHARGED, r] = work
        req_i[PREEMPTIONS, r] += 1
    for j in range(num_victims):
        r = scratch[VICTIMS, j]  # MARK says which list it is in: 1 partial, 2 decoding
        lst = q + sc_i[NUM_GPUS] + g if req_i[MARK, r] == 2 else q + g
        remove(lists, nxt, prv, lst, r)
        req_i[MARK, r] = 0
        req_i[GPU_OF, r] = -1
    for j in range(num_victims - 1, -1, -1):  # pushed front last-first: arrival order
        r = scratch[VICTIMS, j]
        home = req_i[QUEUE_OF, r] if q > 1 else 0
        push_front(lists, nxt, prv, home, r)
        if q == 1:
            gpu_i[OUTSTANDING, g] -= 1
        elif home != g:
            gpu_i[OUTSTANDING, g] -= 1
            gpu_i[OUTSTANDING, home] += 1


@nb.njit(cache=True)
def _reserve_kv(g, num_p, num_d, req_i, req_f, gpu_i, lists, sc_i, scratch):
    """Reserve the KV blocks of the batch in the scratch rows (engine ``_reserve_kv``
    without prefix caching): preempt the latest arrivals when the running requests cannot
    grow, cut new requests' chunks to what is left. Returns ``(status, num_p, num_d)``:
    status 0 to run, 1 when nothing is left after preemption (decide again), 2 when nothing
    fits and nothing could be preempted (the ``kv_memory`` error; free blocks in
    ``STATUS_ARG``)."""
    bs = sc_i[BLOCK_TOKENS]
    cap = sc_i[KV_CAPACITY]
    q = sc_i[NUM_QUEUES]
    nxt = req_i[NEXT]
    free = cap - gpu_i[KV_USED, g]
    grow = 0
    for i in range(num_d):
        d = scratch[DIDS, i]
        need = _cdiv(req_i[KV_TOKENS, d] + 1, bs) - req_i[KV_BLOCKS, d]
        scratch[DEC_NEED, i] = need
        grow += need
    for i in range(num_p):
        p = scratch[PIDS, i]
        own = req_i[KV_TOKENS, p]
        scratch[OWN_P, i] = own
        scratch[PRE_NEED, i] = _cdiv(own + scratch[PTOKS, i], bs) - req_i[KV_BLOCKS, p]
        running = 1 if req_i[GPU_OF, p] == g else 0
        scratch[RUNNING, i] = running
        if running:
            grow += scratch[PRE_NEED, i]
    preempted = False
    if grow > free:
        # mark residents: 1 partial prefill, 2 decoding; batch members carry their need
        num_res = 0
        for mark in (1, 2):
            r = lists[HEAD, q + g if mark == 1 else q + sc_i[NUM_GPUS] + g]
            while r != -1:
                req_i[MARK, r] = mark
                scratch[VICTIMS, num_res] = r
                num_res += 1
                r = nxt[r]
        residents = np.sort(scratch[VICTIMS, :num_res])
        need_of = np.zeros(num_res, np.int64)  # each resident's share of ``grow``
        for i in range(num_d):
            need_of[np.searchsorted(residents, scratch[DIDS, i])] = scratch[DEC_NEED, i]
        for i in range(num_p):
            if scratch[RUNNING, i]:
                need_of[np.searchsorted(residents, scratch[PIDS, i])] = scratch[PRE_NEED, i]
        count = 0
        for j in range(num_res - 1, -1, -1):  # latest arrival first
            r = residents[j]
            count += 1
            free += req_i[KV_BLOCKS, r]
            grow -= need_of[j]
            if grow <= free:
                break
        first = num_res - count
        for j in range(count):
            scratch[VICTIMS, j] = residents[first + j]
        for j in range(num_res):  # residents not preempted lose their mark
            if j < first:
                req_i[MARK, residents[j]] = 0
        # MARK of victims: 1 or 2 (their list); drop them from the batch
        keep = 0
        for i in range(num_d):
            d = scratch[DIDS, i]
            if req_i[MARK, d] == 0:
                scratch[DIDS, keep] = d
                scratch[DEC_NEED, keep] = scratch[DEC_NEED, i]
                keep += 1
        num_d = keep
        keep = 0
        for i in range(num_p):
            p = scratch[PIDS, i]
            if req_i[MARK, p] == 0:
                scratch[PIDS, keep] = p
                scratch[PTOKS, keep] = scratch[PTOKS, i]
                scratch[PRE_NEED, keep] = scratch[PRE_NEED, i]
                scratch[OWN_P, keep] = scratch[OWN_P, i]
                scratch[RUNNING, keep] = scratch[RUNNING, i]
                keep += 1
        num_p = keep
        _preempt(count, g, req_i, req_f, gpu_i, lists, sc_i, scratch)
        free = cap - gpu_i[KV_USED, g]
        if num_d == 0 and num_p == 0:
            return 1, 0, 0
        preempted = True
    room = free
    new_need = 0
    for i in range(num_d):
        room -= scratch[DEC_NEED, i]
    for i in range(num_p):
        if scratch[RUNNING, i]:
            room -= scratch[PRE_NEED, i]
        else:
            new_need += scratch[PRE_NEED, i]
    cut = False
    if new_need > room:  # admit new requests into the room, in batch order
        cut = True
        keep = 0
        for i in range(num_p):
            if scratch[RUNNING, i] or scratch[PRE_NEED, i] <= room:
                if not scratch[RUNNING, i]:
                    room -= scratch[PRE_NEED, i]
            else:
                r = scratch[PIDS, i]
                fit = (req_i[KV_BLOCKS, r] + max(room, 0)) * bs - scratch[OWN_P, i]
                if fit <= 0:
                    continue
                scratch[PTOKS, i] = min(scratch[PTOKS, i], fit)
                scratch[PRE_NEED, i] = (_cdiv(scratch[OWN_P, i] + scratch[PTOKS, i], bs)
                                        - req_i[KV_BLOCKS, r])
                room -= scratch[PRE_NEED, i]
            scratch[PIDS, keep] = scratch[PIDS, i]
            scratch[PTOKS, keep] = scratch[PTOKS, i]
            scratch[PRE_NEED, keep] = scratch[PRE_NEED, i]
            keep += 1
        num_p = keep
    if cut and num_d == 0 and num_p == 0:
        if preempted:
            return 1, 0, 0
        sc_i[STATUS_ARG] = free
        sc_i[STATUS_GPU] = g
        return 2, 0, 0
    total = 0
    for i in range(num_d):
        d = scratch[DIDS, i]
        req_i[KV_BLOCKS, d] += scratch[DEC_NEED, i]
        req_i[KV_TOKENS, d] += 1
        total += scratch[DEC_NEED, i]
    for i in range(num_p):
        p = scratch[PIDS, i]
        req_i[KV_BLOCKS, p] += scratch[PRE_NEED, i]
        req_i[KV_TOKENS, p] += scratch[PTOKS, i]
        total += scratch[PRE_NEED, i]
    gpu_i[KV_USED, g] += total
    return 0, num_p, num_d


@nb.njit(cache=True)
def _service_s(g, load, gpu_i, sc_i, sc_f, noise):
    """One iteration's duration (s) for token load ``load`` (``ServiceModel.sample_s``)."""
    c = sc_f[C_S]
    a = sc_f[A_S]
    b0 = sc_i[B0]
    if sc_i[NOISE] == NOISE_DETERMINISTIC:
        if sc_i[STAIRCASE]:
            return c + a * -(-load // b0)
        x = load - b0
        return c + a * x if x > 0 else c
    i = gpu_i[NOISE_POS, g]
    gpu_i[NOISE_POS, g] = i + 2
    if sc_i[STAIRCASE]:
        return c * noise[g, i] + a * noise[g, i + 1] * -(-load // b0)
    x = load - b0
    if x > 0:
        return c * noise[g, i] + a * noise[g, i + 1] * x
    return c * noise[g, i]


@nb.njit(cache=True)
def _attention_s(num_p, num_d, req_i, sc_f, scratch):
    """Attention's time (s) of the batch in the scratch rows (``AttentionCost.time_s``)."""
    t = 0.0
    if num_d:
        context = 0
        for i in range(num_d):
            d = scratch[DIDS, i]
            context += req_i[PROMPT, d] + req_i[GENERATED, d]
        t += sc_f[DECODE_S_PER_TOKEN] * float(context)
    if num_p:
        pairs = 0  # twice the (query, key) pairs
        for i in range(num_p):
            n = scratch[PTOKS, i]
            pairs += n * (2 * req_i[PREFILLED, scratch[PIDS, i]] + n + 1)
        t += sc_f[PREFILL_S_PER_PAIR] * 0.5 * float(pairs)
    return t


@nb.njit(cache=True)
def _execute(g, num_p, num_d, req_i, req_f, gpu_i, gpu_f, lists, sc_i, sc_f, scratch, noise,
             flight, log_i, log_f):
    """Run the batch in the scratch rows on GPU ``g`` (engine ``execute``). Returns 0, or the
    :func:`_reserve_kv` status when the batch did not start."""
    if sc_i[KV_ENABLED]:
        status, num_p, num_d = _reserve_kv(g, num_p, num_d, req_i, req_f, gpu_i, lists, sc_i,
                                           scratch)
        if status:
            return status
    nxt, prv = req_i[NEXT], req_i[PREV]
    now = sc_f[NOW]
    prefill_tokens = 0
    for i in range(num_p):
        prefill_tokens += scratch[PTOKS, i]
    load = prefill_tokens + num_d
    duration = _service_s(g, load, gpu_i, sc_i, sc_f, noise)
    if sc_i[ATTENTION]:
        duration += _attention_s(num_p, num_d, req_i, sc_f, scratch)
    end = now + duration
    q = sc_i[NUM_QUEUES]
    home = queue_list(g, sc_i)
    for i in range(num_p):
        p = scratch[PIDS, i]
        flight[0, g, i] = p
        flight[1, g, i] = scratch[PTOKS, i]
        if req_i[GPU_OF, p] < 0:  # new: bound to g, from its queue to g's partial prefills
            req_i[GPU_OF, p] = g
            if math.isnan(req_f[FIRST_SCHEDULED, p]):
                req_f[FIRST_SCHEDULED, p] = now
                req_i[FIRST_GPU, p] = g
            remove(lists, nxt, prv, home, p)
            push_back(lists, nxt, prv, q + g, p)
            if q == 1:
                gpu_i[OUTSTANDING, g] += 1
    for i in range(num_d):
        flight[2, g, i] = scratch[DIDS, i]
    gpu_i[FLIGHT_NP, g] = num_p
    gpu_i[FLIGHT_ND, g] = num_d
    gpu_f[BUSY_UNTIL, g] = end
    row = sc_i[NUM_BATCHES]
    log_i[LOG_GPU, row] = g
    log_i[LOG_PREFILL_TOKENS, row] = prefill_tokens
    log_i[LOG_NUM_PREFILLS, row] = num_p
    log_i[LOG_NUM_DECODES, row] = num_d
    log_i[LOG_TOKEN_LOAD, row] = load
    log_f[LOG_START, row] = now
    log_f[LOG_END, row] = end
    gpu_i[FLIGHT_ROW, g] = row
    sc_i[NUM_BATCHES] = row + 1
    return 0


@nb.njit(cache=True)
def run(req_i, req_f, gpu_i, gpu_f, lists, sc_i, sc_f, plan, scratch, noise, flight, log_i, log_f,
        gap_s, gap_row, gap_len, max_decisions):
    """Advance the simulation until it ends or needs the caller (see the module docstring).

    Returns a status of :mod:`.layout`: ``DONE``; ``NEED_NOISE`` (refill GPU
    ``sc_i[STATUS_ARG]``'s noise block, reset its ``NOISE_POS``); ``NEED_LOG`` (grow the batch
    log); ``PAUSED`` (``max_decisions`` reached); ``DEADLOCK``; ``KV_MEMORY`` (a batch that
    fits nowhere, free blocks in ``sc_i[STATUS_ARG]``).
    """
    gpus = sc_i[NUM_GPUS]
    n = sc_i[N]
    noisy = sc_i[NOISE] != NOISE_DETERMINISTIC
    noise_len = noise.shape[1]
    decisions = 0
    while True:
        decided = -1
        for g in range(gpus):
            if (gpu_f[BUSY_UNTIL, g] == math.inf and not gpu_i[PARKED, g]
                    and _has_work(g, lists, sc_i)):
                decided = g
                break
        if decided >= 0:
            g = decided
            if decisions == max_decisions:
                return PAUSED
            if noisy and gpu_i[NOISE_POS, g] + 2 > noise_len:
                sc_i[STATUS_ARG] = g
                return NEED_NOISE
            if sc_i[NUM_BATCHES] == log_i.shape[1]:
                return NEED_LOG
            decisions += 1
            kind, num_p, num_d = schedule(g, lists, req_i, req_f, gpu_i, sc_i, sc_f, plan, scratch)
            if kind == WAIT:
                gpu_i[PARKED, g] = 1
                gpu_f[WAIT_UNTIL, g] = sc_f[WAIT_S]
                continue
            status = _execute(g, num_p, num_d, req_i, req_f, gpu_i, gpu_f, lists, sc_i, sc_f,
                              scratch, noise, flight, log_i, log_f)
            if status == 2:
                return KV_MEMORY
            continue
        if sc_i[NUM_FINISHED] == n:
            return DONE
        i = sc_i[NEXT_ARRIVAL]
        t_arrival = req_f[ARRIVAL, i] if i < n else math.inf
        t_batch = math.inf
        t_wait = math.inf
        for g in range(gpus):
            t_batch = min(t_batch, gpu_f[BUSY_UNTIL, g])
            t_wait = min(t_wait, gpu_f[WAIT_UNTIL, g])
        t = min(t_arrival, t_batch, t_wait)
        if t == math.inf:
            return DEADLOCK
        sc_f[NOW] = t
        event = False
        if t_batch == t:
            for g in range(gpus):
                if gpu_f[BUSY_UNTIL, g] == t:
                    _complete(g, req_i, req_f, gpu_i, gpu_f, lists, sc_i, flight, gap_s,
                              gap_row, gap_len)
            event = True
        if t_arrival == t:
            _admit_arrivals(t, req_i, req_f, gpu_i, lists, sc_i)
            event = True
        if event:
            for g in range(gpus):
                gpu_i[PARKED, g] = 0
                gpu_f[WAIT_UNTIL, g] = math.inf
        elif t_wait == t:
            for g in range(gpus):
                if gpu_f[WAIT_UNTIL, g] == t:
                    gpu_i[PARKED, g] = 0
                    gpu_f[WAIT_UNTIL, g] = math.inf
