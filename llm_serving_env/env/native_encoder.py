"""A scheduler's ``Batch`` or ``Wait`` as ``LLMServing-v1`` micro-actions.

:class:`CommandEncoder` is how :class:`~llm_serving_env.env.BaselineAgent` with ``native=True``
acts: at a decision point it takes the hand-written scheduler's answer and returns, one per
step, the micro-actions that compose exactly that answer. It reads the live composition state,
so the chunks it gets are the env's own arithmetic, and it never returns a masked action.
"""

from __future__ import annotations

import math

import numpy as np

from llm_serving_env.env.compose import Composer
from llm_serving_env.sim.batch import Batch, Wait

__all__ = ["CommandEncoder", "NotExpressible"]


class NotExpressible(ValueError):
    """The command has no encoding under the env's options (guards, ``hold_s``)."""


class CommandEncoder:
    """Encodes one decision's command into micro-actions, one :meth:`next_action` at a time.

    Args:
        composer: the decision's composition state (the env's, read live).
        command: the scheduler's answer at this decision point.

    Plan: decode edits first (a fixed list: the cheapest of toggling the differences from
    the default set, holding all then adding the batch's decodes, or holding a suffix), then
    the picks in the batch's order (paging to each, moving the budget when its chunk would
    otherwise differ), then DISPATCH; a ``Wait(until_s)`` picks the cohort whose oldest arrival
    (and prefill tokens) give ``until_s`` with some ``hold_s`` entry, then WAIT.
    """

    def __init__(self, composer: Composer, command: Batch | Wait) -> None:
        self.c = composer
        self.command = command
        lay = composer.layout
        view = composer.view
        nd = composer.decoding.size
        self.final = lay.dispatch
        if isinstance(command, Wait):
            target_decodes = np.zeros(nd, dtype=bool)
            if command.until_s == math.inf:
                self.picks: list[tuple[int, int]] = []
            else:
                self.picks, self.final = self._cohort_for(command.until_s)
        else:
            target_decodes = (np.isin(composer.decoding, command.decode_ids) if nd
                              else np.zeros(0, dtype=bool))
            if int(target_decodes.sum()) != command.decode_ids.size:
                raise NotExpressible("the batch decodes requests that are not decode-ready on "
                                     f"GPU {view.gpu}")
            pos = _positions(view.waiting, command.prefill_ids)
            self.picks = list(zip(pos.tolist(), command.prefill_tokens.tolist(), strict=True))
        self.decode_plan = self._decode_plan(target_decodes)
        self.next_pick = 0

    # ------------------------------------------------------------------ planning
    def _decode_plan(self, target: np.ndarray) -> list[int]:
        c = self.c
        lay = c.layout
        n = lay.num_slots
        current = c.in_batch
        if np.array_equal(current, target):
            return []
        if not target.any():
            return [lay.hold_all]
        count = int(target.sum())
        if target[:count].all() and count < int(current.sum()) and current[:count].all():
            return [lay.next_decode_page] * (count // n) + [lay.hold_from + count % n]
        diff = np.flatnonzero(current != target)
        if diff.size <= 1 + count:
            return self._toggles(diff)
        return [lay.hold_all] + self._toggles(np.flatnonzero(target))

    def _toggles(self, positions: np.ndarray) -> list[int]:
        lay = self.c.layout
        n = lay.num_slots
        plan: list[int] = []
        page = 0
        for p in positions.tolist():
            while page < p // n:
                plan.append(lay.next_decode_page)
                page += 1
            plan.append(lay.toggle + p % n)
        return plan

    def _cohort_for(self, until: float) -> tuple[list[tuple[int, int]], int]:
        """Picks (positions, whole prompts) and the WAIT action whose time is ``until``."""
        c = self.c
        lay = c.layout
        view = c.view
        arrival = view.requests.arrival_s[c.waiting]
        rem = c.remaining
        holds = [float(h) for h in c.hold_s]
        for k, h in enumerate(holds):  # WAIT_k: any one request whose arrival + h is until
            hit = np.flatnonzero(arrival + h == until)
            for p in hit.tolist():
                if float(arrival[p]) + h == until:
                    return [(p, int(rem[p]))], lay.wait + k
        oldest = np.minimum.accumulate(arrival)
        tokens = np.cumsum(rem)
        for k, h in enumerate(holds):  # WAIT_SERVICE_k: an FCFS prefix of whole prompts
            for m in range(1, c.waiting.size + 1):
                value = (float(oldest[m - 1]) + h) - float(c.prefill_mean_s(int(tokens[m - 1])))
                if value == until:
                    return [(p, int(rem[p])) for p in range(m)], lay.wait_service + k
        raise NotExpressible(
            f"Wait(until_s={until!r}) at t={view.now_s!r} is no waiting cohort's oldest arrival "
            f"plus an entry of hold_s {holds} (minus its mean prefill time): make the env with "
            "the scheduler's hold time in hold_s")

    # ------------------------------------------------------------------ acting
    def next_action(self) -> int:
        """The next micro-action (never a masked one; NotExpressible if none would do)."""
        action = self._next()
        mask = self.c.mask()
        if not mask[action]:
            raise NotExpressible(
                f"{self.c.layout.name(action)} is masked at t={self.c.view.now_s!r} on GPU "
                f"{self.c.view.gpu}" + (" by the env's guards: replay hand-written rules with "
                                        "guards=False" if self.c.guards else ""))
        return action

    def _next(self) -> int:
        if self.decode_plan:
            return self.decode_plan.pop(0)
        c = self.c
        lay = c.layout
        n = lay.num_slots
        if self.next_pick < len(self.picks):
            pos, want = self.picks[self.next_pick]
            index = int(np.searchsorted(c.unpicked, pos))
            if index >= c.unpicked.size or c.unpicked[index] != pos:
                raise NotExpressible(f"request position {pos} is picked twice")
            page = index // n
            if c.page > page:
                return lay.first_page
            if c.page < page:
                return lay.next_page
            chunk = int(c.chunk_of(np.asarray([pos]))[0])
            if chunk == want:
                self.next_pick += 1
                return lay.pick + index % n
            # the budget cuts the chunk to B - load: move B once to the batch's whole load
            # (every later pick then gets its chunk too), or to exactly this chunk's end
            target = c.load + sum(w for _, w in self.picks[self.next_pick:])
            if want < int(c.remaining[pos]) and target != c.load + want:
                target = c.load + want
            if target == c.budget:  # the budget is not what limits it (KV or the prompt)
                raise NotExpressible(
                    f"a chunk of {want} tokens for request position {pos} cannot be had "
                    f"(remaining prompt {int(c.remaining[pos])}, KV allows {chunk})")
            return self._budget_step(target)
        return self.final

    def _budget_step(self, target: int) -> int:
        c = self.c
        lay = c.layout
        mask = c.mask()
        delta = target - c.budget
        bits = range(lay.budget_bits - 1, -1, -1)
        if delta > 0:
            for i in bits:
                if (1 << i) <= delta and mask[lay.budget_up + i]:
                    return lay.budget_up + i
        elif delta < 0:
            for i in bits:
                if (1 << i) <= -delta and mask[lay.budget_down + i]:
                    return lay.budget_down + i
        raise NotExpressible(f"the token budget cannot move from {c.budget} to {target} "
                             "(each move is once per decision" +
                             (", and the guards cap it" if c.guards else "") + ")")


def _positions(waiting: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in ``waiting`` (each must be there), int64 (len(ids),)."""
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(waiting, kind="stable")
    at = np.minimum(np.searchsorted(waiting[order], ids), waiting.size - 1)
    found = order[at]
    if not np.array_equal(waiting[found], ids):
        raise NotExpressible("the batch prefills requests that are not waiting on this GPU")
    return found
