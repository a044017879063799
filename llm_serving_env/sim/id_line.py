"""A FIFO line of request ids whose views stay valid: the engine's waiting lists.

Under overload the waiting list holds most of the run's requests. Rebuilding it with
``np.concatenate`` at every arrival and filtering it at every batch made each simulated
iteration cost O(queue length). An :class:`IdLine` keeps the ids in a buffer with a head and a
tail: arrivals are written past the tail and requests leaving from the front move the head, both
O(1) amortized; only a change in the middle (a policy taking requests out of order, a
preemption putting requests back at the front) rebuilds it.

Views handed out (:meth:`ids`) are read-only and never change afterwards: a write in place
happens only past the current tail, which no view covers, and every other change allocates a
new buffer. So a scheduler may keep a view from one decision to the next.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IdLine"]

_MIN_CAPACITY = 64


class IdLine:
    """Request ids (int64) in FIFO order, stored in ``buf[head:tail]``.

    Args:
        positions: int64 ``(num_requests,)``, shared by the lines of one engine; the line
            writes there the buffer position of every id it stores (a request is in at most
            one line), which makes :meth:`holds_slice` O(1).
    """

    __slots__ = ("buf", "head", "positions", "tail")

    def __init__(self, positions: np.ndarray) -> None:
        self.positions = positions
        self.reset(np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return self.tail - self.head

    def ids(self) -> np.ndarray:
        """The ids in order: a read-only view, int64 ``(len(self),)``."""
        view = self.buf[self.head:self.tail]
        view.flags.writeable = False
        return view

    def reset(self, ids: np.ndarray, extra: int = 0) -> None:
        """Replace the content by ``ids`` (copied into a new buffer with room for at least
        ``extra`` more)."""
        n = int(ids.size)
        self.buf = np.empty(max(2 * (n + extra), _MIN_CAPACITY), dtype=np.int64)
        self.buf[:n] = ids
        self.positions[ids] = np.arange(n)
        self.head = 0
        self.tail = n

    def extend(self, ids: np.ndarray) -> None:
        """Append ``ids`` at the back."""
        k = int(ids.size)
        if self.tail + k > self.buf.size:
            self._regrow(k)
        self.buf[self.tail:self.tail + k] = ids
        self.positions[ids] = np.arange(self.tail, self.tail + k)
        self.tail += k

    def append(self, request: int) -> None:
        """Append one id at the back."""
        if self.tail == self.buf.size:
            self._regrow(1)
        self.buf[self.tail] = request
        self.positions[request] = self.tail
        self.tail += 1

    def drop_front(self, k: int) -> None:
        """Remove the first ``k`` ids."""
        self.head += k

    def _regrow(self, extra: int) -> None:
        self.reset(self.buf[self.head:self.tail], extra)

    def holds_slice(self, part: np.ndarray) -> bool:
        """True if ``part`` (non-empty) is a forward slice of the current :meth:`ids`: its ids
        are waiting in this line, each once, in line order."""
        if part.base is not self.buf or part.strides[0] <= 0:
            return False
        first = int(part[0])
        start = int(self.positions[first])
        last = start + (part.size - 1) * (part.strides[0] // part.itemsize)
        return self.head <= start and last < self.tail and int(self.buf[start]) == first
