"""What a policy hands the engine at a decision point: a :class:`Batch` or a :class:`Wait`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False


def _as_ids(values: Iterable[int] | np.ndarray | None) -> np.ndarray:
    if type(values) is np.ndarray and values.dtype == np.int64 and values.ndim == 1:
        return values  # the hot path: already the engine's representation
    if values is None:
        return _EMPTY
    arr = values if isinstance(values, np.ndarray) else np.asarray(list(values))
    if arr.size == 0:
        return _EMPTY
    if arr.dtype.kind not in "iu":
        raise TypeError(f"request ids and token counts must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False).reshape(-1)


@dataclass(frozen=True, eq=False)
class Batch:
    """One iteration (forward pass) on one GPU.

    Attributes:
        prefill_ids: int64 array (p,), requests that get a prefill chunk in this iteration.
        prefill_tokens: int64 array (p,), prompt tokens of each chunk (>= 1, at most what remains).
        decode_ids: int64 array (d,), requests that decode one token in this iteration
            (their order does not matter: the engine runs them in the GPU's decode order).

    Token load ``b = prefill_tokens.sum() + len(decode_ids)``. The engine checks every rule
    (see :class:`SchedulingError`) when the batch is executed.
    """

    prefill_ids: np.ndarray = field(default_factory=lambda: _EMPTY)
    prefill_tokens: np.ndarray = field(default_factory=lambda: _EMPTY)
    decode_ids: np.ndarray = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefill_ids", _as_ids(self.prefill_ids))
        object.__setattr__(self, "prefill_tokens", _as_ids(self.prefill_tokens))
        object.__setattr__(self, "decode_ids", _as_ids(self.decode_ids))
        if self.prefill_ids.shape != self.prefill_tokens.shape:
            raise SchedulingError(
                "shape",
                f"prefill_ids has {self.prefill_ids.size} entries but prefill_tokens has "
                f"{self.prefill_tokens.size}; they must pair up one chunk per request",
            )

    @classmethod
    def of(
        cls, prefill: Mapping[int, int] | None = None, decode: Iterable[int] | None = None
    ) -> Batch:
        """Build a batch from ``{request_id: chunk_tokens}`` and an iterable of decode ids."""
        prefill = prefill or {}
        return cls(
            prefill_ids=np.fromiter(prefill.keys(), dtype=np.int64, count=len(prefill)),
            prefill_tokens=np.fromiter(prefill.values(), dtype=np.int64, count=len(prefill)),
            decode_ids=_as_ids(decode),
        )

    @property
    def token_load(self) -> int:
        """b: prefill tokens plus one per decode."""
        return int(self.prefill_tokens.sum()) + int(self.decode_ids.size)


@dataclass(frozen=True)
class Wait:
    """Leave the GPU idle until ``until_s`` or the next event, whichever comes first.

    Events are an arrival or the end of any GPU's batch. ``until_s = inf`` (the default)
    waits for the next event only. ``until_s`` must lie strictly in the future.
    """

    until_s: float = math.inf


class SchedulingError(RuntimeError):
    """A batch broke one of the engine's rules; ``rule`` names it.

    Rules: ``empty``, ``shape``, ``unknown_request``, ``not_waiting`` (prefill of a request that
    is not waiting for prefill on this GPU), ``chunk_size`` (chunk < 1 or above the remaining
    prompt), ``duplicate_prefill``, ``not_decodable`` (decode of a request that is not in its
    decode phase on this GPU, including one whose prefill is not finished: prefill before
    decode), ``duplicate_decode`` (at most one decode per request per batch), ``token_budget``
    (load above ``gpus.max_batch_tokens``), ``max_requests`` (more than
    ``gpus.max_batch_requests`` resident on the GPU), ``kv_memory``, ``wait`` (a Wait not in the
    future), ``deadlock`` (the policy waits while nothing can ever happen).
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"[{rule}] {message}")
        self.rule = rule
