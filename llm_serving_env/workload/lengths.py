"""Length distributions of prompt and output token counts: a tagged union on ``dist``.

``fixed``, ``uniform``, ``geometric``, ``mixture``, ``empirical``, ``trace``; each a frozen
dataclass that validates itself and samples int64 token counts >= 1. New kinds register in
:data:`LENGTH_DISTRIBUTIONS`.
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
    as_int,
    as_mapping,
    check_keys,
    choice,
    construct,
    from_flat_dict,
    join_path,
    prefixed_choice,
    to_flat_dict,
)
from llm_serving_env.workload.traces import load_trace, validate_trace_path


class LengthDistribution(ABC):
    """Distribution of a token count (int >= 1).

    Subclasses are frozen dataclasses tagged by ``kind`` (the YAML ``dist`` value).
    """

    kind: ClassVar[str]

    @abstractmethod
    def mean(self) -> float:
        """Exact expectation of one draw, in tokens."""

    @abstractmethod
    def max_value(self) -> int:
        """Largest possible draw, in tokens."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws: int64 array of shape ``(n,)``, every entry >= 1."""

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form, e.g. ``{"dist": "fixed", "value": 128}``."""
        return to_flat_dict(self, tag=("dist", self.kind))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> LengthDistribution:
        """Build from the flat YAML form (the ``dist`` key is accepted and ignored)."""
        return from_flat_dict(cls, d, path, tag="dist")


@dataclass(frozen=True)
class FixedLength(LengthDistribution):
    """Always ``value`` tokens."""

    kind: ClassVar[str] = "fixed"
    value: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", as_int("value", self.value, ge=1))

    def mean(self) -> float:
        return float(self.value)

    def max_value(self) -> int:
        return self.value

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=np.int64)


@dataclass(frozen=True)
class UniformLength(LengthDistribution):
    """Discrete uniform on the integers ``low, low + 1, ..., high`` (both ends inclusive)."""

    kind: ClassVar[str] = "uniform"
    low: int
    high: int

    def __post_init__(self) -> None:
        low = as_int("low", self.low, ge=1)
        high = as_int("high", self.high, ge=1)
        if high < low:
            raise ConfigError(f"must be an integer >= low (= {low})", "high", self.high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def mean(self) -> float:
        return (self.low + self.high) / 2.0

    def max_value(self) -> int:
        return self.high

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high, size=n, dtype=np.int64, endpoint=True)


@dataclass(frozen=True)
class GeometricLength(LengthDistribution):
    """Geometric on ``{1, 2, ...}`` with success probability ``p = 1 / uncapped_mean``, capped.

    A draw is ``min(G, max)`` with ``G ~ Geometric(p)``. Because of the cap, the actual mean is
    *below* ``uncapped_mean``: :meth:`mean` returns the exact capped expectation
    ``E[min(G, max)] = (1 - (1 - p)^max) / p``.

    In YAML the first field is called ``mean`` (``{dist: geometric, mean: 16, max: 32}``); in
    Python it is ``uncapped_mean`` because ``mean()`` is the method every distribution has.
    """

    kind: ClassVar[str] = "geometric"
    uncapped_mean: float
    max: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "uncapped_mean", as_float("mean", self.uncapped_mean, ge=1.0))
        object.__setattr__(self, "max", as_int("max", self.max, ge=1))

    @property
    def p(self) -> float:
        """Success probability of the uncapped geometric, ``1 / uncapped_mean``."""
        return 1.0 / self.uncapped_mean

    def mean(self) -> float:
        p = self.p
        if p >= 1.0:
            return 1.0
        # (1 - (1-p)^max) / p, computed without cancellation for small p.
        return -math.expm1(self.max * math.log1p(-p)) / p

    def max_value(self) -> int:
        return self.max

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        draws = rng.geometric(self.p, size=n).astype(np.int64, copy=False)
        return np.minimum(draws, self.max)

    def to_dict(self) -> dict[str, Any]:
        return to_flat_dict(self, tag=("dist", self.kind), renames={"uncapped_mean": "mean"})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> GeometricLength:
        return from_flat_dict(cls, d, path, tag="dist", renames={"uncapped_mean": "mean"})


@dataclass(frozen=True)
class MixtureComponent:
    """One component of a :class:`MixtureLength`: a (relative) weight > 0 and a distribution."""

    weight: float
    dist: LengthDistribution

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", as_float("weight", self.weight, gt=0.0))
        if not isinstance(self.dist, LengthDistribution):
            raise ConfigError("must be a length distribution", "dist", self.dist)

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form, e.g. ``{"weight": 0.5, "dist": "uniform", "low": 16, "high": 128}``."""
        return {"weight": self.weight, **self.dist.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> MixtureComponent:
        d = as_mapping(path, d, "a mapping like {weight: 0.5, dist: fixed, value: 64}")
        if "weight" not in d:
            raise ConfigError("missing required key 'weight'", path or "component")
        rest = {k: v for k, v in d.items() if k != "weight"}
        dist = length_distribution_from_dict(rest, path)
        return construct(cls, path, {"weight": d["weight"], "dist": dist})


@dataclass(frozen=True)
class MixtureLength(LengthDistribution):
    """Mixture: pick component ``i`` with probability ``weight_i / sum(weights)``, then draw.

    Weights are relative (they need not sum to 1); they are stored as given and normalized in
    :attr:`probabilities`. In YAML each component is flat::

        {dist: mixture, components: [{weight: 0.7, dist: fixed, value: 64},
                                     {weight: 0.3, dist: uniform, low: 512, high: 1024}]}
    """

    kind: ClassVar[str] = "mixture"
    components: tuple[MixtureComponent, ...]

    def __post_init__(self) -> None:
        comps = self.components
        if isinstance(comps, (str, bytes, Mapping)) or not isinstance(comps, Sequence):
            raise ConfigError("must be a non-empty list of components", "components", comps)
        comps = tuple(comps)
        if not comps:
            raise ConfigError("must be a non-empty list of components", "components", comps)
        for i, comp in enumerate(comps):
            if not isinstance(comp, MixtureComponent):
                raise ConfigError("must be a MixtureComponent", f"components[{i}]", comp)
        object.__setattr__(self, "components", comps)

    @property
    def probabilities(self) -> np.ndarray:
        """Normalized component weights, float64 shape ``(len(components),)``, summing to 1."""
        w = np.array([c.weight for c in self.components], dtype=np.float64)
        return w / w.sum()

    def mean(self) -> float:
        means = np.array([c.dist.mean() for c in self.components])
        return float(np.dot(self.probabilities, means))

    def max_value(self) -> int:
        return max(c.dist.max_value() for c in self.components)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = len(self.components)
        which = rng.choice(k, size=n, p=self.probabilities)
        out = np.empty(n, dtype=np.int64)
        for i, comp in enumerate(self.components):  # loop over components, not draws
            mask = which == i
            count = int(np.count_nonzero(mask))
            if count:
                out[mask] = comp.dist.sample(rng, count)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.kind, "components": [c.to_dict() for c in self.components]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> MixtureLength:
        d = as_mapping(path, d)
        check_keys(path, d, ["dist", "components"], ["components"])
        raw = d["components"]
        cpath = join_path(path, "components")
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence) or not raw:
            raise ConfigError("must be a non-empty list of components", cpath, raw)
        comps = tuple(
            MixtureComponent.from_dict(item, f"{cpath}[{i}]") for i, item in enumerate(raw)
        )
        return construct(cls, path, {"components": comps})


@dataclass(frozen=True)
class EmpiricalLength(LengthDistribution):
    """Draw one of ``values`` with probability proportional to ``weights``.

    ``weights=None`` makes every listed value equally likely (so a list of observed lengths,
    repeats included, is its own empirical distribution). Weights must be >= 0 with a
    positive sum; they need not sum to 1.
    """

    kind: ClassVar[str] = "empirical"
    values: tuple[int, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        values = self.values
        if (
            isinstance(values, (str, bytes, Mapping))
            or not isinstance(values, (Sequence, np.ndarray))
            or len(values) == 0
        ):
            raise ConfigError("must be a non-empty list of integers >= 1", "values", values)
        vals = tuple(as_int(f"values[{i}]", v, ge=1) for i, v in enumerate(values))
        object.__setattr__(self, "values", vals)
        weights = self.weights
        if weights is None:
            return
        if isinstance(weights, (str, bytes, Mapping)) or not isinstance(
            weights, (Sequence, np.ndarray)
        ):
            raise ConfigError("must be null or a list of numbers >= 0", "weights", weights)
        if len(weights) != len(vals):
            raise ConfigError(
                f"must have the same length as values ({len(vals)}), got {len(weights)}",
                "weights",
                weights,
            )
        ws = tuple(as_float(f"weights[{i}]", w, ge=0.0) for i, w in enumerate(weights))
        if not sum(ws) > 0:
            raise ConfigError("must have a positive sum", "weights", weights)
        object.__setattr__(self, "weights", ws)

    @property
    def probabilities(self) -> np.ndarray:
        """Probability of each entry of ``values``, float64 shape ``(len(values),)``."""
        if self.weights is None:
            return np.full(len(self.values), 1.0 / len(self.values))
        w = np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    def mean(self) -> float:
        return float(np.dot(self.probabilities, np.asarray(self.values, dtype=np.float64)))

    def max_value(self) -> int:
        if self.weights is None:
            return max(self.values)
        return max(v for v, w in zip(self.values, self.weights, strict=True) if w > 0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = np.asarray(self.values, dtype=np.int64)
        if self.weights is None:
            return values[rng.integers(0, len(values), size=n)]
        return rng.choice(values, size=n, p=self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dist": self.kind,
            "values": list(self.values),
            "weights": None if self.weights is None else list(self.weights),
        }


TRACE_COLUMNS: tuple[str, ...] = ("prompt", "output")


TRACE_ORDERS: tuple[str, ...] = ("iid", "replay")


@dataclass(frozen=True)
class TraceLength(LengthDistribution):
    """Token counts taken from a trace file (see :mod:`llm_serving_env.workload.traces`).

    YAML: ``{dist: trace, path: traces/<file>, column: prompt, order: iid}``.

    * ``column``: ``prompt`` or ``output``; the reader maps it to the format's own column
      (Azure ``ContextTokens``/``GeneratedTokens``, Mooncake ``input_length``/
      ``output_length``, ShareGPT/Vidur ``num_prefill_tokens``/``num_decode_tokens``).
    * ``order: iid`` (default): i.i.d. draws from the file's empirical distribution (every row
      equally likely), for length-only traces such as ShareGPT.
    * ``order: replay``: the file's own values in arrival order, request ``i`` gets row ``i``
      (rows sorted by time), so that together with ``{process: trace}`` on the same file the
      requests are the real ones. The generator is not used. More requests than rows is an
      error (no tiling).

    :meth:`mean` and :meth:`max_value` are exact over all of the file's values (for a replay of
    only the first ``n`` rows, the realised mean differs). A relative ``path`` is looked up
    from the current directory, then from the repository root; files are cached.
    """

    kind: ClassVar[str] = "trace"
    path: str
    column: str
    order: str = "iid"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", validate_trace_path(self.path))
        choice("column", self.column, TRACE_COLUMNS)
        choice("order", self.order, TRACE_ORDERS)
        self.values()  # load (and cache) now, so a bad file is a config error

    def values(self) -> np.ndarray:
        """The file's values of ``column`` in arrival order: read-only int64 ``(rows,)``."""
        return load_trace(self.path).column(self.column)

    def mean(self) -> float:
        return float(self.values().mean())

    def max_value(self) -> int:
        return int(self.values().max())

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = self.values()
        if self.order == "replay":
            if n > values.size:
                raise ConfigError(
                    f"exceeds the {values.size} requests in trace {self.path!r} replayed in "
                    f"order (no tiling); use num_requests <= {values.size}",
                    "num_requests", n)
            return values[:n].copy()
        return values[rng.integers(0, values.size, size=n)]


#: ``dist`` name -> class. Register new length distributions here.
LENGTH_DISTRIBUTIONS: dict[str, type[LengthDistribution]] = {
    "fixed": FixedLength,
    "uniform": UniformLength,
    "geometric": GeometricLength,
    "mixture": MixtureLength,
    "empirical": EmpiricalLength,
    "trace": TraceLength,
}


def length_distribution_from_dict(d: Any, path: str = "") -> LengthDistribution:
    """Build a length distribution from its YAML form, dispatching on the key ``dist``."""
    kinds = sorted(LENGTH_DISTRIBUTIONS)
    d = as_mapping(path, d, f"a mapping with key 'dist' (one of {', '.join(kinds)})")
    if "dist" not in d:
        raise ConfigError(f"missing required key 'dist' (one of {', '.join(kinds)})", path)
    kind = prefixed_choice(path, "dist", d["dist"], kinds)
    return LENGTH_DISTRIBUTIONS[kind].from_dict(d, path)

