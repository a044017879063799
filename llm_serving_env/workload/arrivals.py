"""Arrival processes: a tagged union on ``process``.

``poisson``, ``deterministic``, ``gamma`` (renewal with a given cv), ``mmpp`` (two-state
Markov-modulated Poisson) and ``trace`` (replayed timestamps). New kinds register in
:data:`ARRIVAL_PROCESSES`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from llm_serving_env.schema.fields import (
    ConfigError,
    as_float,
    as_mapping,
    bound_text,
    from_flat_dict,
    prefixed_choice,
    to_flat_dict,
)
from llm_serving_env.workload.traces import load_trace, validate_trace_path


class ArrivalProcess(ABC):
    """A stationary arrival process with long-run rate ``rate_per_s`` (arrivals per second).

    Subclasses are frozen dataclasses tagged by ``kind`` (the YAML ``process`` value).
    """

    kind: ClassVar[str]
    rate_per_s: float

    @abstractmethod
    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """First ``n`` arrival times in seconds: float64 ``(n,)``, nondecreasing,
        ``times = cumsum(gaps)`` (the first arrival comes one gap after t = 0)."""

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form, e.g. ``{"process": "poisson", "rate_per_s": 2.0}``."""
        return to_flat_dict(self, tag=("process", self.kind))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> ArrivalProcess:
        """Build from the flat YAML form (the ``process`` key is accepted and ignored)."""
        return from_flat_dict(cls, d, path, tag="process")


@dataclass(frozen=True)
class PoissonArrival(ArrivalProcess):
    """Poisson process: i.i.d. exponential gaps with mean ``1 / rate_per_s`` seconds."""

    kind: ClassVar[str] = "poisson"
    rate_per_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_per_s", as_float("rate_per_s", self.rate_per_s, gt=0.0))

    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.cumsum(rng.exponential(1.0 / self.rate_per_s, size=n))


@dataclass(frozen=True)
class DeterministicArrival(ArrivalProcess):
    """Evenly spaced arrivals: every gap is ``1 / rate_per_s``; arrival ``k`` (1-based) is at
    ``k / rate_per_s`` seconds. Does not use the generator."""

    kind: ClassVar[str] = "deterministic"
    rate_per_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_per_s", as_float("rate_per_s", self.rate_per_s, gt=0.0))

    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # k * gap rather than a running sum: no accumulated round-off.
        return np.arange(1, n + 1, dtype=np.float64) * (1.0 / self.rate_per_s)


@dataclass(frozen=True)
class GammaArrival(ArrivalProcess):
    """Gamma renewal process: gaps ~ Gamma(shape = 1/cv^2, scale = cv^2 / rate_per_s), so the
    mean gap is ``1 / rate_per_s`` and its coefficient of variation is ``cv`` (cv = 1 is
    Poisson; cv > 1 burstier, cv < 1 more regular)."""

    kind: ClassVar[str] = "gamma"
    rate_per_s: float
    cv: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_per_s", as_float("rate_per_s", self.rate_per_s, gt=0.0))
        object.__setattr__(self, "cv", as_float("cv", self.cv, gt=0.0))

    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cv2 = self.cv * self.cv
        return np.cumsum(rng.gamma(1.0 / cv2, cv2 / self.rate_per_s, size=n))


@dataclass(frozen=True)
class TraceArrival(ArrivalProcess):
    """Replay the arrival times recorded in a trace file
    (see :mod:`llm_serving_env.workload.traces`).

    YAML: ``{process: trace, path: traces/<file>, time_scale: 1.0, rate_per_s: null}``.

    Arrival ``i`` is at ``scale * t_i`` seconds, ``t_i`` the file's time of row ``i`` (rows
    sorted by time) minus the first one, so the first arrival is at t = 0:

    * Azure: the absolute ``TIMESTAMP`` minus the first; the generator is not used.
    * Mooncake: ``timestamp`` (ms) is quantised into ~3 s buckets; the requests of a bucket are
      spread uniformly over it with the arrival stream's generator (one ``Uniform[0, 1)`` per
      row, see ``Trace.spread_arrivals``), so a different seed gives different times inside the
      buckets and the same count in every bucket.
    * Files without times (ShareGPT) are rejected: use them as ``{dist: trace}`` lengths.

    ``scale = time_scale`` (> 1 slows the trace down); if ``rate_per_s`` is given (then
    ``time_scale`` must be 1), ``scale = native_rate / rate_per_s`` so that the mean rate
    equals it. The native mean rate is ``(rows - 1) / (last time - first time)`` over the whole
    file (bucket starts for Mooncake). :attr:`rate_per_s` is the resulting mean rate
    ``native_rate / scale``. ``num_requests`` larger than the file's rows is an error naming
    both numbers (no tiling); fewer replays the first ``num_requests`` rows.

    In Python the YAML key ``rate_per_s`` is the field ``target_rate_per_s`` (it may be None),
    because ``rate_per_s`` is the mean-rate property every arrival process has.
    """

    kind: ClassVar[str] = "trace"
    path: str
    time_scale: float = 1.0
    target_rate_per_s: float | None = None  # YAML key: rate_per_s

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", validate_trace_path(self.path))
        object.__setattr__(self, "time_scale", as_float("time_scale", self.time_scale, gt=0.0))
        if self.target_rate_per_s is not None:
            object.__setattr__(self, "target_rate_per_s",
                               as_float("rate_per_s", self.target_rate_per_s, gt=0.0))
            if self.time_scale != 1.0:
                raise ConfigError(
                    "must be 1 (or absent) when rate_per_s is given: rate_per_s already sets "
                    "the time scale", "time_scale", self.time_scale)
        trace = load_trace(self.path)
        if not trace.has_times:
            raise ConfigError(
                f"{trace.path} has no arrival times (lengths only): use it as "
                "{dist: trace, ...} lengths with another arrival process, e.g. poisson",
                "path", self.path)
        if len(trace) < 2 or not trace.span_s > 0:
            raise ConfigError(f"{trace.path} needs >= 2 distinct arrival times to replay",
                              "path", self.path)

    @property
    def native_rate_per_s(self) -> float:
        """The file's mean rate ``(rows - 1) / span`` (requests per second), unscaled."""
        return float(load_trace(self.path).mean_rate_per_s)

    @property
    def scale(self) -> float:
        """Factor applied to the file's times (dimensionless)."""
        if self.target_rate_per_s is None:
            return self.time_scale
        return self.native_rate_per_s / self.target_rate_per_s

    @property
    def rate_per_s(self) -> float:  # type: ignore[override]
        """Mean arrival rate of the replay, requests per second."""
        if self.target_rate_per_s is not None:
            return self.target_rate_per_s
        return self.native_rate_per_s / self.time_scale

    @property
    def num_rows(self) -> int:
        """Number of requests in the file (the most this process can replay)."""
        return len(load_trace(self.path))

    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The first ``n`` replayed arrival times, seconds, float64 ``(n,)``; the first is 0."""
        trace = load_trace(self.path)
        if n > len(trace):
            raise ConfigError(
                f"exceeds the {len(trace)} requests in trace {self.path!r} (workload.arrival "
                f"replays it; no tiling); use num_requests <= {len(trace)}",
                "num_requests", n)
        times = trace.spread_arrivals(rng)[:n]
        return times * self.scale

    def to_dict(self) -> dict[str, Any]:
        return to_flat_dict(self, tag=("process", self.kind),
                             renames={"target_rate_per_s": "rate_per_s"})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> TraceArrival:
        return from_flat_dict(cls, d, path, tag="process",
                               renames={"target_rate_per_s": "rate_per_s"})


def _pair(name: str, value: Any, *, gt: float | None = None,
          ge: float | None = None) -> tuple[float, float]:
    """Validate a list of exactly two numbers and return it as a tuple of floats."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(
            value, (Sequence, np.ndarray)) or len(value) != 2:
        bound = bound_text(gt, ge)
        each = f", each{bound}" if bound else ""
        raise ConfigError(f"must be a list of two numbers [on, off]{each}", name, value)
    return (as_float(f"{name}[0]", value[0], gt=gt, ge=ge),
            as_float(f"{name}[1]", value[1], gt=gt, ge=ge))


@dataclass(frozen=True)
class MmppArrival(ArrivalProcess):
    """Two-state Markov-modulated Poisson process (MMPP-2); ON/OFF when ``r_off = 0``.

    YAML: ``{process: mmpp, rates_per_s: [r_on, r_off], mean_sojourn_s: [t_on, t_off]}``.

    A hidden state alternates between ON and OFF; each visit lasts an exponential time with
    mean ``t_on`` resp. ``t_off`` seconds, and while in a state arrivals are Poisson with rate
    ``r_on`` resp. ``r_off`` per second. The process starts at t = 0 in its stationary
    distribution (ON with probability ``t_on / (t_on + t_off)``), so it is stationary from the
    start. :attr:`rate_per_s` is the stationary mean rate
    ``(r_on t_on + r_off t_off) / (t_on + t_off)``.

    Simulation is exact and vectorized: draw a run of alternating sojourns, a Poisson count
    ``N_k ~ Poisson(r_k d_k)`` per sojourn ``k`` of length ``d_k``, and ``N_k`` uniform times
    inside it; sojourns are disjoint intervals, so one sort orders everything. Chunks of
    sojourns are drawn until ``n`` arrivals exist. Closed forms (rate, IAT SCV, IDC(t)) are in
    :func:`llm_serving_env.workload.fitting.mmpp2_moments`.
    """

    kind: ClassVar[str] = "mmpp"
    rates_per_s: tuple[float, float]
    mean_sojourn_s: tuple[float, float]

    def __post_init__(self) -> None:
        rates = _pair("rates_per_s", self.rates_per_s, ge=0.0)
        if not max(rates) > 0:
            raise ConfigError("must have a rate > 0 in at least one state", "rates_per_s",
                              self.rates_per_s)
        object.__setattr__(self, "rates_per_s", rates)
        object.__setattr__(self, "mean_sojourn_s",
                           _pair("mean_sojourn_s", self.mean_sojourn_s, gt=0.0))

    @property
    def stationary_probabilities(self) -> np.ndarray:
        """P(ON), P(OFF) in steady state: float64 ``(2,)``, proportional to the sojourns."""
        m = np.asarray(self.mean_sojourn_s, dtype=np.float64)
        return m / m.sum()

    @property
    def rate_per_s(self) -> float:  # type: ignore[override]
        """Stationary mean arrival rate, requests per second."""
        return float(np.dot(self.stationary_probabilities, self.rates_per_s))

    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        rates = np.asarray(self.rates_per_s, dtype=np.float64)
        means = np.asarray(self.mean_sojourn_s, dtype=np.float64)
        per_cycle = float(np.dot(rates, means))  # expected arrivals per ON+OFF cycle
        state = 0 if rng.random() < self.stationary_probabilities[0] else 1
        start = 0.0
        chunks: list[np.ndarray] = []
        have = 0
        while have < n:
            cycles = math.ceil(1.2 * (n - have) / per_cycle) + 8
            k = 2 * min(cycles, 1_000_000)  # sojourns in this chunk (even: states alternate)
            states = (state + np.arange(k)) % 2
            durations = rng.exponential(means[states])
            elapsed = np.cumsum(durations)
            starts = start + np.concatenate(([0.0], elapsed[:-1]))
            counts = rng.poisson(rates[states] * durations)
            total = int(counts.sum())
            chunks.append(np.repeat(starts, counts)
                          + np.repeat(durations, counts) * rng.random(total))
            have += total
            start += float(elapsed[-1])
            state = (state + k) % 2
        if not chunks:
            return np.zeros(0, dtype=np.float64)
        return np.sort(np.concatenate(chunks))[:n]

    def to_dict(self) -> dict[str, Any]:
        return {"process": self.kind, "rates_per_s": list(self.rates_per_s),
                "mean_sojourn_s": list(self.mean_sojourn_s)}


#: ``process`` name -> class. Register new arrival processes (trace replay, MMPP, ...) here.
ARRIVAL_PROCESSES: dict[str, type[ArrivalProcess]] = {
    "poisson": PoissonArrival,
    "deterministic": DeterministicArrival,
    "gamma": GammaArrival,
    "trace": TraceArrival,
    "mmpp": MmppArrival,
}


def arrival_process_from_dict(d: Any, path: str = "") -> ArrivalProcess:
    """Build an arrival process from its YAML form, dispatching on the key ``process``."""
    kinds = sorted(ARRIVAL_PROCESSES)
    d = as_mapping(path, d, f"a mapping with key 'process' (one of {', '.join(kinds)})")
    if "process" not in d:
        raise ConfigError(f"missing required key 'process' (one of {', '.join(kinds)})", path)
    kind = prefixed_choice(path, "process", d["process"], kinds)
    return ARRIVAL_PROCESSES[kind].from_dict(d, path)

