"""Draw a workload (arrival times, prompt lengths, output budgets) from a WorkloadConfig.

Randomness: ``generate_workload`` turns its seed into a ``numpy.random.SeedSequence`` and
spawns exactly six children, in this order:

    0. arrival times,
    1. prompt lengths,
    2. output lengths,
    3. output-length predictions (``workload.length_predictor``),
    4. SLO classes (``slo.classes``),
    5. synthetic prefix sharing (``workload.prefix_sharing``),

each driving its own ``numpy.random.default_rng(child)``. The streams are independent of each
other and of anything a scheduling policy does, so two policies run with one seed see the same
requests (common random numbers). The engine draws service noise from a different child of its
own root seed.

Trace replay (``{process: trace}`` with ``{dist: trace, order: replay}`` lengths on the same
file) needs no special case here: the arrival stream returns the file's times in row order
and the length streams return the file's rows in the same order, so request ``i`` is row ``i``
(see ``llm_serving_env.workload.traces``).
Replays do not use the length generators; a Mooncake replay
uses the arrival generator only to place requests inside their 3 s time buckets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llm_serving_env.workload.config import WorkloadConfig, replayed_prompt_trace
from llm_serving_env.workload.prefixes import prefix_chains_of_trace

__all__ = ["Workload", "generate_workload"]


def _frozen(values: np.ndarray, dtype: type, name: str) -> np.ndarray:
    arr = np.array(values, dtype=dtype, copy=True)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Workload:
    """The requests of one run, as read-only arrays indexed by request id (arrival order).

    Attributes:
        arrival_s: float64 ``(n,)``, nondecreasing, seconds since t = 0.
        prompt_tokens: int64 ``(n,)``, >= 1 (prefill length L_i).
        output_tokens: int64 ``(n,)``, >= 1 (tokens to emit, B_i; the first comes with the
            iteration that finishes the prefill, the other B_i - 1 take one decode each).
            The engine's truth: schedulers never see it (see ``predicted_output_tokens``).
        predicted_output_tokens: float64 ``(n,)``, what the configured predictor says of B_i
            (NaN = unknown, the default when not given).
        slo_class: int64 ``(n,)``, each request's index into ``slo.classes`` (all 0, the
            default, without classes).
        prefix_block_tokens: tokens per prefix block (0: prompts share nothing).
        prefix_offsets, prefix_ids: request ``i``'s prefix-block ids (equal ids, equal
            prefixes; see :mod:`llm_serving_env.workload.prefixes`) are
            ``prefix_ids[prefix_offsets[i]:prefix_offsets[i + 1]]``; int64 ``(n + 1,)`` and
            ``(total,)``; None when ``prefix_block_tokens`` is 0.

    The constructor copies the arrays, checks shapes and values, and makes them read-only.
    """

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    predicted_output_tokens: np.ndarray | None = None
    slo_class: np.ndarray | None = None
    prefix_block_tokens: int = 0
    prefix_offsets: np.ndarray | None = None
    prefix_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        arrival = _frozen(self.arrival_s, np.float64, "arrival_s")
        prompt = _frozen(self.prompt_tokens, np.int64, "prompt_tokens")
        output = _frozen(self.output_tokens, np.int64, "output_tokens")
        n = arrival.shape[0]
        if prompt.shape[0] != n or output.shape[0] != n:
            raise ValueError(
                f"arrays differ in length: arrival_s {n}, prompt_tokens {prompt.shape[0]}, "
                f"output_tokens {output.shape[0]}"
            )
        if n and (not np.all(np.isfinite(arrival)) or arrival[0] < 0):
            raise ValueError("arrival_s must be finite and >= 0")
        if n > 1 and np.any(np.diff(arrival) < 0):
            raise ValueError("arrival_s must be nondecreasing")
        if n and (prompt.min() < 1 or output.min() < 1):
            raise ValueError("prompt_tokens and output_tokens must be >= 1")
        object.__setattr__(self, "arrival_s", arrival)
        object.__setattr__(self, "prompt_tokens", prompt)
        object.__setattr__(self, "output_tokens", output)
        predicted = (np.full(n, np.nan) if self.predicted_output_tokens is None
                     else self.predicted_output_tokens)
        predicted = _frozen(predicted, np.float64, "predicted_output_tokens")
        if predicted.shape[0] != n:
            raise ValueError(f"predicted_output_tokens has {predicted.shape[0]} entries, "
                             f"arrival_s {n}")
        object.__setattr__(self, "predicted_output_tokens", predicted)
        classes = np.zeros(n, np.int64) if self.slo_class is None else self.slo_class
        classes = _frozen(classes, np.int64, "slo_class")
        if classes.shape[0] != n or (n and classes.min() < 0):
            raise ValueError(f"slo_class must hold {n} class indices >= 0")
        object.__setattr__(self, "slo_class", classes)
        if self.prefix_block_tokens:
            if self.prefix_offsets is None or self.prefix_ids is None:
                raise ValueError("prefix_block_tokens needs prefix_offsets and prefix_ids")
            offsets = _frozen(self.prefix_offsets, np.int64, "prefix_offsets")
            ids = _frozen(self.prefix_ids, np.int64, "prefix_ids")
            if (offsets.shape[0] != n + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0)
                    or offsets[-1] != ids.shape[0]):
                raise ValueError("prefix_offsets must be n + 1 nondecreasing offsets from 0 "
                                 "to len(prefix_ids)")
            object.__setattr__(self, "prefix_offsets", offsets)
            object.__setattr__(self, "prefix_ids", ids)
        elif self.prefix_offsets is not None or self.prefix_ids is not None:
            raise ValueError("prefix ids need prefix_block_tokens >= 1")

    def prefix_chain(self, i: int) -> np.ndarray:
        """Request ``i``'s prefix-block ids (empty without prefix ids)."""
        if not self.prefix_block_tokens:
            return np.zeros(0, dtype=np.int64)
        return self.prefix_ids[self.prefix_offsets[i]:self.prefix_offsets[i + 1]]

    def __len__(self) -> int:
        """Number of requests."""
        return int(self.arrival_s.shape[0])


def generate_workload(
    cfg: WorkloadConfig, num_requests: int, seed: int | np.random.SeedSequence,
    class_shares: tuple[float, ...] = (),
) -> Workload:
    """Draw ``num_requests`` requests from ``cfg``.

    Args:
        cfg: arrival process and length distributions.
        num_requests: number of requests n (>= 0).
        seed: an int (``SeedSequence(seed)`` is used) or a ``SeedSequence``. A given
            ``SeedSequence`` is spawned from directly, so, as with ``SeedSequence.spawn``, its
            spawn counter advances by 6: pass an int, or a fresh sequence, to reproduce a draw.
        class_shares: the SLO classes' shares (``slo.classes``; empty: every request class 0).

    Returns:
        A :class:`Workload`; the same int seed gives bit-identical arrays.
    """
    if isinstance(num_requests, bool) or int(num_requests) != num_requests or num_requests < 0:
        raise ValueError(f"num_requests = {num_requests!r}: must be an integer >= 0")
    n = int(num_requests)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # the predictions and the classes have children of their own: the first three (and so
    # every length and arrival) are the same whether or not either is configured
    arrival_ss, prompt_ss, output_ss, predictor_ss, class_ss, prefix_ss = ss.spawn(6)
    arrival_s = cfg.arrival.sample_times(np.random.default_rng(arrival_ss), n)
    prompt = cfg.prompt_tokens.sample(np.random.default_rng(prompt_ss), n)
    output = cfg.output_tokens.sample(np.random.default_rng(output_ss), n)
    predicted = cfg.length_predictor.predict(np.random.default_rng(predictor_ss), output)
    slo_class = None
    if class_shares:
        shares = np.asarray(class_shares, dtype=np.float64)
        slo_class = np.random.default_rng(class_ss).choice(shares.size, size=n,
                                                           p=shares / shares.sum())
    block, offsets, ids = 0, None, None
    if cfg.prefix_sharing is not None:
        block = cfg.prefix_sharing.block_tokens
        offsets, ids = cfg.prefix_sharing.chains(np.random.default_rng(prefix_ss), prompt)
    else:
        trace = replayed_prompt_trace(cfg)
        if trace is not None and trace.prefix_block_tokens:
            block = trace.prefix_block_tokens
            offsets, ids = prefix_chains_of_trace(trace.prefix_offsets, trace.prefix_ids, n)
    return Workload(arrival_s=arrival_s, prompt_tokens=prompt, output_tokens=output,
                    predicted_output_tokens=predicted, slo_class=slo_class,
                    prefix_block_tokens=block, prefix_offsets=offsets, prefix_ids=ids)
