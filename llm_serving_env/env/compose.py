"""Batch composition as a sequence of micro-actions: the action of ``LLMServing-v1``.

At a decision point the agent builds the batch one pick at a time, Decima-style: it takes
waiting requests one by one (each gets a prefill chunk as large as the token budget, the KV
memory and its remaining prompt allow), edits the set of decodes (all of them run unless it
holds some back), moves the token budget, and ends with ``DISPATCH`` (run the batch; an empty
one idles the GPU until the next event) or a timed hold (``WAIT``). Every micro-action the
mask allows is executed exactly as chosen: there is no repair step.

:class:`ComposeLayout` numbers the actions; :class:`Composer` holds one decision's partial batch,
its mask and its transitions. Both are pure bookkeeping over a
:class:`~llm_serving_env.sim.scheduler.DecisionView`; the environment in
:mod:`llm_serving_env.env.compose_env` drives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import DecisionView

__all__ = ["ComposeLayout", "Composer"]

_INF = math.inf
_NONE = np.zeros(0, dtype=np.int64)
_NONE.flags.writeable = False


@dataclass(frozen=True)
class ComposeLayout:
    """Indices of the micro-actions of ``Discrete(size)``.

    Args:
        num_slots: N, candidates shown per page (waiting requests and decodes).
        budget_bits: J, the budget moves by +-2**i for i < J (J = K.bit_length()).
        num_holds: H, timed holds (``hold_s`` ladder) of each kind.
    """

    num_slots: int
    budget_bits: int
    num_holds: int

    @property
    def pick(self) -> int:
        """PICK_j = pick + j: prefill the j-th unpicked waiting request of the page."""
        return 0

    @property
    def next_page(self) -> int:
        return self.num_slots

    @property
    def first_page(self) -> int:
        return self.num_slots + 1

    @property
    def dispatch(self) -> int:
        return self.num_slots + 2

    @property
    def toggle(self) -> int:
        """TOGGLE_j = toggle + j: flip the j-th decode of the decode page in or out."""
        return self.num_slots + 3

    @property
    def next_decode_page(self) -> int:
        return 2 * self.num_slots + 3

    @property
    def first_decode_page(self) -> int:
        return 2 * self.num_slots + 4

    @property
    def hold_all(self) -> int:
        return 2 * self.num_slots + 5

    @property
    def hold_from(self) -> int:
        """HOLD_FROM_j = hold_from + j: hold every decode from page position j on."""
        return 2 * self.num_slots + 6

    @property
    def budget_up(self) -> int:
        """BUDGET_UP_i = budget_up + i: raise the token budget by 2**i."""
        return 3 * self.num_slots + 6

    @property
    def budget_down(self) -> int:
        return 3 * self.num_slots + 6 + self.budget_bits

    @property
    def wait(self) -> int:
        """WAIT_k = wait + k: hold the picked cohort until its oldest arrival + hold_s[k]."""
        return 3 * self.num_slots + 6 + 2 * self.budget_bits

    @property
    def wait_service(self) -> int:
        """WAIT_SERVICE_k: until oldest arrival + hold_s[k] - S(cohort's prefill tokens)."""
        return self.wait + self.num_holds

    @property
    def size(self) -> int:
        return self.wait + 2 * self.num_holds

    def name(self, action: int) -> str:
        """A readable name of ``action`` (for logs and errors)."""
        n, a = self.num_slots, int(action)
        spans = ((self.pick, n, "PICK"), (self.toggle, n, "TOGGLE"),
                 (self.hold_from, n, "HOLD_FROM"), (self.budget_up, self.budget_bits, "BUDGET_UP"),
                 (self.budget_down, self.budget_bits, "BUDGET_DOWN"),
                 (self.wait, self.num_holds, "WAIT"),
                 (self.wait_service, self.num_holds, "WAIT_SERVICE"))
        for start, count, label in spans:
            if start <= a < start + count:
                return f"{label}_{a - start}"
        single = {self.next_page: "NEXT_PAGE", self.first_page: "FIRST_PAGE",
                  self.dispatch: "DISPATCH", self.next_decode_page: "NEXT_DECODE_PAGE",
                  self.first_decode_page: "FIRST_DECODE_PAGE", self.hold_all: "HOLD_ALL"}
        if a in single:
            return single[a]
        raise ValueError(f"action {action!r} is outside Discrete({self.size})")


class Composer:
    """One decision point's batch under construction, its action mask and its transitions.

    Args:
        view: the decision point.
        layout: the action numbering.
        hold_s: the timed-hold ladder (seconds), ``layout.num_holds`` values.
        prefill_mean_s: E[S(b)] of the prefill pool's service model, vectorized (WAIT_SERVICE).
        mean_s: E[S(b)] of this GPU's service model, vectorized (guards, default budget).
        tbt_s: the tightest TBT objective (inf without an SLO); each decode's own is in
            ``view.requests.tbt_objective_s``.
        margin_s: slack (seconds) the deadline budget keeps below the tightest due time.
        guards: the training guards (see the env docstring): decodes are held back only while
            they can afford it, the budget rises only while every decode in the batch still
            meets its deadline, and new requests are admitted only while the KV blocks of
            their whole remaining prompts fit beside those the partial prefills still need.
        event_pending: whether an arrival, a batch end, a KV transfer or a timed Wait is
            still to come (an empty dispatch is allowed only then: otherwise it deadlocks).

    State: ``budget`` (tokens; bounds the load a pick may fill up to), ``load`` (prefill
    tokens picked + decodes in the batch), the picks in order, the decodes in the batch
    (a bool per entry of ``view.decoding``), the page offsets, and which one-shot moves were
    used. A decision's micro-actions are finite: every pick removes a candidate, every decode
    toggles at most once, HOLD_ALL, HOLD_FROM and each budget move at most once per decision,
    and between two picks (toggles) the page moves at most once round the pages (NEXT_PAGE
    wraps round to the first page, so every page stays reachable).
    """

    def __init__(self, view: DecisionView, layout: ComposeLayout, hold_s: np.ndarray,
                 prefill_mean_s, mean_s, mean_table: np.ndarray, tbt_s: float, guards: bool,
                 event_pending: bool, margin_s: float = 0.0) -> None:
        self.view = view
        self.layout = layout
        self.hold_s = hold_s
        self.prefill_mean_s = prefill_mean_s
        self.mean_s = mean_s
        self.mean_table = mean_table  # E[S(b)] for b = 0..K, nondecreasing
        self.tbt_s = tbt_s
        self.margin_s = margin_s
        self.guards = guards
        self.event_pending = event_pending
        t = view.requests
        self.limit = int(view.max_batch_tokens)
        self.waiting = view.waiting
        self.remaining = view.remaining_prompt(view.waiting) if view.waiting.size else _NONE
        self.remaining_sorted = np.sort(self.remaining)  # for the prompt ranks, once a decision
        self.unpicked = np.arange(view.waiting.size)  # positions into view.waiting
        self.page = 0
        self.page_moves = self._pages(self.unpicked.size)  # left until the next pick
        self.forward_only = False  # (see mask(): an idle GPU with nothing else to come)
        self.picks: list[int] = []  # positions into view.waiting, in pick order
        self.chunks: list[int] = []
        self.new_count = 0
        decoding = view.decoding
        self.decoding = decoding
        nd = decoding.size
        self.in_batch = np.zeros(nd, dtype=bool)
        self.in_batch[: self.limit] = True
        self.toggled = np.zeros(nd, dtype=bool)
        self.decode_page = 0
        self.decode_page_moves = self._pages(view.decoding.size)  # until the next toggle
        self.hold_all_used = False
        self.hold_from_used = False
        self.up_used = np.zeros(layout.budget_bits, dtype=bool)
        self.down_used = np.zeros(layout.budget_bits, dtype=bool)
        self.kv_limited = view.kv_free_blocks != _INF
        if self.kv_limited and nd:
            self.decode_kv = view.kv_blocks_needed(decoding, 1)
        else:
            self.decode_kv = np.zeros(nd, dtype=np.int64)
        self.prefill_kv = 0  # blocks the picked chunks take
        # slack of each decode's next token: last token + its TBT objective - now (inf
        # without an SLO; with slo.classes each decode has its class's objective)
        if nd and tbt_s != _INF:
            self.slack = t.last_token_s[decoding] + (t.tbt_objective_s[decoding] - view.now_s)
        else:
            self.slack = np.full(nd, _INF)
        s_k = float(mean_table[-1])
        # a decode may be held (guards) if it can skip this iteration and still meet its
        # deadline after the next one, both at most K tokens; or if it is late already
        self.holdable = (self.slack >= 2.0 * s_k) | (self.slack < 0.0)
        self.load = int(np.count_nonzero(self.in_batch))
        self.budget = self.default_budget()
        self.partial_reserve = 0
        if self.kv_limited and view.num_partial:
            npart = view.num_partial
            need = view.kv_blocks_needed(self.waiting[:npart], self.remaining[:npart])
            self.partial_reserve = int(need.sum())
        self._mask: np.ndarray | None = None

    def _pages(self, count: int) -> int:
        """Pages of N that ``count`` entries fill (at least 1)."""
        return max(1, -(-count // self.layout.num_slots))

    # ------------------------------------------------------------------ budget
    def _deadline_budget(self) -> int:
        """The largest load whose mean iteration time meets, ``margin_s`` early, every in-batch
        decode that can still make its deadline (K when none constrains it)."""
        if not self.in_batch.any() or self.tbt_s == _INF:
            return self.limit
        slack = self.slack[self.in_batch]
        reachable = slack[slack >= float(self.mean_table[1])]
        if reachable.size == 0:
            return self.limit
        due = float(reachable.min()) - self.margin_s
        b = int(np.searchsorted(self.mean_table, due, side="right")) - 1
        return max(1, min(b, self.limit))

    def default_budget(self) -> int:
        """The budget at the start of a decision: the deadline budget of the default decode
        set (K without an SLO or without decodes)."""
        return self._deadline_budget()

    # ------------------------------------------------------------------ candidates
    def page_positions(self) -> np.ndarray:
        """Positions (into ``view.waiting``) of the current page's candidates, (<= N,)."""
        n = self.layout.num_slots
        return self.unpicked[self.page * n: self.page * n + n]

    def decode_page_positions(self) -> np.ndarray:
        """Positions (into ``view.decoding``) of the current decode page, (<= N,)."""
        n = self.layout.num_slots
        return np.arange(self.decode_page * n, min(self.decoding.size, self.decode_page * n + n))

    def kv_room(self) -> float:
        """KV blocks left for prefill chunks: free blocks minus the in-batch decodes' growth
        (floored at 0, as ``view.kv_room_after_decodes``) minus the picked chunks' blocks."""
        if not self.kv_limited:
            return _INF
        decodes = int(self.decode_kv[self.in_batch].sum())
        return max(0, self.view.kv_free_blocks - decodes) - self.prefill_kv

    def chunk_of(self, positions: np.ndarray) -> np.ndarray:
        """The chunk (tokens) each waiting position would get if picked now, int64."""
        rem = self.remaining[positions]
        chunk = np.minimum(rem, max(0, self.budget - self.load))
        if self.kv_limited and positions.size:
            room = max(0, self.kv_room())
            t = self.view.requests
            ids = self.waiting[positions]
            own = t.kv_tokens[ids] - t.kv_shared_tokens[ids]  # (shared: the prefix cache's)
            fit = (t.kv_blocks[ids] + room) * self.view.kv_block_tokens - own
            chunk = np.minimum(chunk, np.maximum(fit, 0))
        return chunk

    # ------------------------------------------------------------------ mask
    def mask(self) -> np.ndarray:
        """Boolean mask over ``Discrete(layout.size)``: True = allowed and executed as chosen."""
        if self._mask is not None:
            return self._mask
        lay = self.layout
        n = lay.num_slots
        m = np.zeros(lay.size, dtype=bool)
        view = self.view
        pos = self.page_positions()
        if pos.size:
            m[lay.pick: lay.pick + pos.size] = self._pick_ok(pos)
        if self.page_moves <= 0 and not self.picks and not self.event_pending \
                and not self.in_batch.any() and self._pickable_without(self.in_batch) \
                and not m[lay.pick: lay.pick + pos.size].any():
            # nothing else can happen until a pick, and none is possible on this page: one
            # more NEXT_PAGE (only forward, so the pickable page comes round); on a page
            # with a pickable request the agent has to pick, so the decision stays bounded
            self.page_moves = 1
            self.forward_only = True
        m[lay.next_page] = self.page_moves > 0 and self.unpicked.size > n
        m[lay.first_page] = self.page_moves > 0 and self.page > 0 and not self.forward_only
        batch_empty = not self.picks and not self.in_batch.any()
        m[lay.dispatch] = not batch_empty or self.event_pending
        dpos = self.decode_page_positions()
        if dpos.size:
            inb = self.in_batch[dpos]
            can = ~self.toggled[dpos]
            add_ok = np.full(dpos.size, self.load < self.limit)
            if self.kv_limited and self.prefill_kv:
                # a decode joining beside picked chunks must leave their KV blocks free (the
                # engine preempts only for the decodes' own growth)
                growth = int(self.decode_kv[self.in_batch].sum())
                left = self.view.kv_free_blocks - growth - self.prefill_kv
                add_ok &= self.decode_kv[dpos] <= left
            hold_ok = np.ones(dpos.size, dtype=bool) if not self.guards else self.holdable[dpos]
            if not (self.event_pending or self.picks or np.count_nonzero(self.in_batch) > 1):
                for k, p in enumerate(dpos.tolist()):  # the batch would be empty: only if a
                    if inb[k]:  # pick can still follow (else nothing could ever happen)
                        alone = np.zeros(self.in_batch.size, dtype=bool)
                        alone[p] = True
                        hold_ok[k] &= self._pickable_without(alone)
            m[lay.toggle: lay.toggle + dpos.size] = can & np.where(inb, hold_ok, add_ok)
            m[lay.hold_from: lay.hold_from + dpos.size] = self._hold_from_ok(dpos)
        m[lay.next_decode_page] = self.decode_page_moves > 0 and self.decoding.size > n
        m[lay.first_decode_page] = self.decode_page_moves > 0 and self.decode_page > 0
        if not self.hold_all_used and self.in_batch.any():
            m[lay.hold_all] = self._can_hold(self.in_batch)
        bits = lay.budget_bits
        step = 1 << np.arange(bits)
        up = (~self.up_used) & (self.budget + step <= self.limit)
        if self.guards and up.any():
            up &= self.budget + step <= max(self.budget, self._deadline_budget())
        m[lay.budget_up: lay.budget_up + bits] = up
        m[lay.budget_down: lay.budget_down + bits] = (~self.down_used) & (self.budget - step >= 1)
        if self.picks and self.hold_s.size:
            until = self.hold_targets()
            wait_ok = until > view.now_s
            if self.guards and self.in_batch.any():
                wait_ok &= self._can_hold(self.in_batch)
            m[lay.wait: lay.wait + 2 * lay.num_holds] = wait_ok
        self._mask = m
        return m

    def _unpicked_partial_reserve(self) -> int:
        """KV blocks the partially prefilled requests not yet picked still need."""
        if not self.partial_reserve:
            return 0
        npart = self.view.num_partial
        left = [p for p in range(npart) if p not in self.picks]
        if not left:
            return 0
        part = np.asarray(left)
        return int(self.view.kv_blocks_needed(self.waiting[part], self.remaining[part]).sum())

    def _can_hold(self, which: np.ndarray) -> bool:
        """Whether the decodes flagged in ``which`` may all be held back: the guards allow it,
        and the batch keeps some work or an event is pending (else it could only deadlock)."""
        if not (self.event_pending or self.picks or (self.in_batch & ~which).any()
                or self._pickable_without(which)):
            return False
        return not self.guards or bool(self.holdable[which].all())

    def _pick_ok(self, pos: np.ndarray) -> np.ndarray:
        """Whether each waiting position (unpicked) may be picked now: a chunk of at least one
        token, a slot for a new request, and (guards) KV for its whole remaining prompt beside
        what the unpicked partial prefills still need. Bool (len(pos),)."""
        view = self.view
        ok = self.chunk_of(pos) >= 1
        is_new = pos >= view.num_partial
        if is_new.any():
            ok &= ~is_new | (self.new_count < view.free_slots)
            if self.guards and self.kv_limited:
                whole = view.kv_blocks_needed(self.waiting[pos], self.remaining[pos])
                ok &= ~is_new | (whole <= self.kv_room() - self._unpicked_partial_reserve())
        return ok

    def _pickable_without(self, which: np.ndarray) -> bool:
        """Whether some waiting request could be picked once the decodes in ``which`` are
        held back (a pick the mask would allow: see :meth:`_pick_ok`)."""
        if self.unpicked.size == 0:
            return False
        saved_in, saved_load = self.in_batch, self.load
        self.in_batch = self.in_batch & ~which
        self.load = saved_load - int(np.count_nonzero(saved_in & which))
        try:
            return bool(self._pick_ok(self.unpicked).any())
        finally:
            self.in_batch, self.load = saved_in, saved_load

    def _hold_from_ok(self, dpos: np.ndarray) -> np.ndarray:
        """HOLD_FROM_j for each page position: the tail from there holds some in-batch decode,
        all of them may be held (guards), and the batch keeps work or can get some."""
        if self.hold_from_used:
            return np.zeros(dpos.size, dtype=bool)
        inb = self.in_batch
        start = int(dpos[0])
        # suffix flags over view.decoding from the page's first position on
        rest = inb[start:]
        tail_any = np.logical_or.accumulate(rest[::-1])[::-1][: dpos.size]
        ok = tail_any.copy()
        if self.guards:
            unsafe = rest & ~self.holdable[start:]
            ok &= ~np.logical_or.accumulate(unsafe[::-1])[::-1][: dpos.size]
        if not (self.event_pending or self.picks):
            before = np.cumsum(inb)[dpos] - inb[dpos]  # in-batch decodes before each position
            for k in np.flatnonzero(ok & (before == 0)).tolist():
                tail = inb.copy()
                tail[: int(dpos[k])] = False
                ok[k] = self._pickable_without(tail)
        return ok

    def hold_targets(self) -> np.ndarray:
        """The ``until_s`` of WAIT_0.. and WAIT_SERVICE_0.. for the current picks, (2H,)."""
        ids = self.waiting[np.asarray(self.picks)]
        oldest = float(self.view.requests.arrival_s[ids].min())
        tokens = int(sum(self.chunks))
        service = float(self.prefill_mean_s(tokens))
        plain = [oldest + float(h) for h in self.hold_s]
        return np.asarray(plain + [(oldest + float(h)) - service for h in self.hold_s])

    # ------------------------------------------------------------------ transitions
    def apply(self, action: int) -> Batch | Wait | None:
        """Carry out one allowed micro-action; returns the command once the decision ends
        (DISPATCH or WAIT), else None. Raises ValueError on a masked action."""
        a = int(action)
        lay = self.layout
        if not 0 <= a < lay.size or not self.mask()[a]:
            raise ValueError(f"action {a} ({lay.name(a) if 0 <= a < lay.size else '?'}) is "
                             "masked at this micro-step (see env.action_masks())")
        self._mask = None
        n = lay.num_slots
        if a < lay.next_page:
            p = int(self.page_positions()[a])
            c = int(self.chunk_of(np.asarray([p]))[0])
            self.picks.append(p)
            self.chunks.append(c)
            if p >= self.view.num_partial:
                self.new_count += 1
            if self.kv_limited:
                self.prefill_kv += int(self.view.kv_blocks_needed(self.waiting[[p]], c)[0])
            self.load += c
            self.unpicked = self.unpicked[self.unpicked != p]
            self.page_moves = self._pages(self.unpicked.size)
            while self.page and self.page * n >= self.unpicked.size:
                self.page -= 1
        elif a == lay.next_page:
            self.page = (self.page + 1) % self._pages(self.unpicked.size)
            self.page_moves -= 1
        elif a == lay.first_page:
            self.page = 0
            self.page_moves -= 1
        elif a == lay.dispatch:
            return self.command()
        elif lay.toggle <= a < lay.toggle + n:
            p = self.decode_page * n + (a - lay.toggle)
            self.in_batch[p] = not self.in_batch[p]
            self.load += 1 if self.in_batch[p] else -1
            self.toggled[p] = True
            self.decode_page_moves = self._pages(self.decoding.size)
        elif a == lay.next_decode_page:
            self.decode_page = (self.decode_page + 1) % self._pages(self.decoding.size)
            self.decode_page_moves -= 1
        elif a == lay.first_decode_page:
            self.decode_page = 0
            self.decode_page_moves -= 1
        elif a == lay.hold_all:
            self.load -= int(np.count_nonzero(self.in_batch))
            self.in_batch[:] = False
            self.hold_all_used = True
        elif lay.hold_from <= a < lay.hold_from + n:
            p = self.decode_page * n + (a - lay.hold_from)
            self.load -= int(np.count_nonzero(self.in_batch[p:]))
            self.in_batch[p:] = False
            self.hold_from_used = True
        elif lay.budget_up <= a < lay.budget_down:
            i = a - lay.budget_up
            self.budget += 1 << i
            self.up_used[i] = True
        elif lay.budget_down <= a < lay.wait:
            i = a - lay.budget_down
            self.budget -= 1 << i
            self.down_used[i] = True
        else:
            return Wait(until_s=float(self.hold_targets()[a - lay.wait]))
        return None

    def command(self) -> Batch | Wait:
        """The batch composed so far (``Wait()`` if it is empty)."""
        dids = self.decoding[self.in_batch] if self.in_batch.any() else _NONE
        if not self.picks:
            return Batch(decode_ids=dids) if dids.size else Wait()
        pids = self.waiting[np.asarray(self.picks)]
        return Batch(prefill_ids=pids, prefill_tokens=np.asarray(self.chunks, dtype=np.int64),
                     decode_ids=dids)
