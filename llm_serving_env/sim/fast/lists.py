"""Doubly linked lists of request ids over shared ``next``/``prev`` arrays (compiled).

Every request is in at most one list at a time (a queue, a GPU's partial prefills or a GPU's
decoding set), so one pair of int64 arrays of shape (num_requests,) links all of them. Append,
prepend and removal from anywhere are O(1), which keeps every engine step independent of the
queue's length (the reference engine's :class:`~llm_serving_env.sim.id_line.IdLine` does the
same for its FIFO lines). ``meta`` is int64 (3, num_lists): head, tail and size of each list
(-1 for an empty list's head and tail).
"""

from __future__ import annotations

import numba as nb

HEAD, TAIL, SIZE = 0, 1, 2


@nb.njit(cache=True)
def push_back(meta, nxt, prv, lst, r):
    """Append request ``r`` to list ``lst``."""
    tail = meta[TAIL, lst]
    prv[r] = tail
    nxt[r] = -1
    if tail == -1:
        meta[HEAD, lst] = r
    else:
        nxt[tail] = r
    meta[TAIL, lst] = r
    meta[SIZE, lst] += 1


@nb.njit(cache=True)
def push_front(meta, nxt, prv, lst, r):
    """Put request ``r`` at the front of list ``lst``."""
    head = meta[HEAD, lst]
    nxt[r] = head
    prv[r] = -1
    if head == -1:
        meta[TAIL, lst] = r
    else:
        prv[head] = r
    meta[HEAD, lst] = r
    meta[SIZE, lst] += 1


@nb.njit(cache=True)
def remove(meta, nxt, prv, lst, r):
    """Take request ``r`` (a member) out of list ``lst``."""
    a = prv[r]
    b = nxt[r]
    if a == -1:
        meta[HEAD, lst] = b
    else:
        nxt[a] = b
    if b == -1:
        meta[TAIL, lst] = a
    else:
        prv[b] = a
    nxt[r] = -1
    prv[r] = -1
    meta[SIZE, lst] -= 1
