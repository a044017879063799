"""Typed, validated simulation configuration.

Every block of the YAML schema is a frozen dataclass that validates itself in ``__post_init__``.
Invalid input raises :class:`ConfigError` (a ``ValueError``) whose message names the dotted
field path, the offending value and what is allowed, e.g.::

    workload.arrival.rate_per_s = -1.0: must be a number > 0

Units are in the field names: ``_ms`` milliseconds, ``_s`` seconds, ``_per_s`` per second,
``_tokens`` tokens. Token counts are ints >= 1.

YAML schema (optional keys shown with their defaults)::

    num_requests: 20000                  # arrivals to simulate (int >= 1)
    warmup_requests: 0                   # first arrivals excluded from statistics
    workload:
      arrival: {process: poisson, rate_per_s: 2.0}
      prompt_tokens: {dist: fixed, value: 128}
      output_tokens: {dist: geometric, mean: 16, max: 32}
    model: null                          # or llama3_70b, {preset: ..., ...}: see hardware.py
    service: {model: piecewise_linear, c_ms: 45.5, a_ms: 0.30, b0_tokens: 64,
              noise: deterministic, cv: null, preset: null, tensor_parallel: null}
    gpus: {count: 1, router: central, max_batch_tokens: 2048, max_batch_requests: 128,
           kv_capacity_tokens: null, kv_block_tokens: 16,
           gpu: null, memory_gb: null, memory_utilization: 0.9}
    scheduler: {name: hybrid, token_budget: 512}
    slo: null                            # or {ttft_ms: ..., tbt_ms: ...}
    disaggregation: null                 # or {prefill: {count}, decode: {count}, ...}

Length distributions are a tagged union on the key ``dist`` (``fixed``, ``uniform``,
``geometric``, ``mixture``, ``empirical``, ``trace``); arrival processes a tagged union on
``process`` (``poisson``, ``deterministic``, ``gamma``, ``mmpp``, ``trace``). New kinds
register in :data:`LENGTH_DISTRIBUTIONS` and :data:`ARRIVAL_PROCESSES`.

Note on PyYAML: it reads ``1e-3`` (no dot in the mantissa) as a *string*; write ``1.0e-3``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import numbers
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import yaml

if TYPE_CHECKING:
    from llm_serving_env.hardware import ModelSpec

__all__ = [
    "ARRIVAL_PROCESSES",
    "CONFIGS_DIR",
    "LENGTH_DISTRIBUTIONS",
    "ArrivalProcess",
    "ConfigError",
    "DeterministicArrival",
    "EmpiricalLength",
    "FixedLength",
    "FrozenDict",
    "GammaArrival",
    "GeometricLength",
    "GpuConfig",
    "LengthDistribution",
    "MixtureComponent",
    "MixtureLength",
    "MmppArrival",
    "PoissonArrival",
    "SchedulerConfig",
    "ServiceConfig",
    "SimConfig",
    "SloConfig",
    "TraceArrival",
    "TraceLength",
    "UniformLength",
    "WorkloadConfig",
    "arrival_process_from_dict",
    "available_presets",
    "length_distribution_from_dict",
    "load_config",
    "parse_override",
    "save_config",
]

#: Directory of named presets: ``configs/<name>.yaml`` (and ``configs/benchmarks/<name>.yaml``).
CONFIGS_DIR: Path = Path(__file__).resolve().parents[1] / "configs"

SERVICE_MODELS: tuple[str, ...] = ("piecewise_linear", "staircase")
SERVICE_NOISES: tuple[str, ...] = ("deterministic", "exponential", "gamma")
ROUTERS: tuple[str, ...] = ("central", "round_robin", "jsq", "least_tokens")


# --------------------------------------------------------------------------------------------
# Errors and field validators
# --------------------------------------------------------------------------------------------


class _NoValue:
    def __repr__(self) -> str:
        return "<no value>"


_NO_VALUE: Any = _NoValue()


def _show(value: Any, limit: int = 80) -> str:
    """Short repr of a config value for error messages."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


class ConfigError(ValueError):
    """An invalid configuration value.

    Attributes:
        reason: what is wrong / what is allowed, e.g. ``"must be a number > 0"``.
        path: dotted path of the field, e.g. ``"workload.arrival.rate_per_s"`` ("" if none).
        value: the offending value (absent for missing or unknown keys).
        source: the file the config came from, if any.

    ``str(err)`` is ``"[source: ]path = value: reason"``.
    """

    def __init__(
        self, reason: str, path: str = "", value: Any = _NO_VALUE, source: str = ""
    ) -> None:
        self.reason = reason
        self.path = path
        self.value = value
        self.source = source
        head = path
        if path and value is not _NO_VALUE:
            head = f"{path} = {_show(value)}"
        message = f"{head}: {reason}" if head else reason
        if source:
            message = f"{source}: {message}"
        super().__init__(message)

    def within(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` prepended to its path."""
        return ConfigError(self.reason, _join(prefix, self.path), self.value, self.source)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _bound_text(gt: float | None, ge: float | None) -> str:
    if gt is not None:
        return f" > {_fmt(gt)}"
    if ge is not None:
        return f" >= {_fmt(ge)}"
    return ""


def _string_hint(value: Any) -> str:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return " (got a string)"
        return " (got a string; PyYAML reads e.g. '1e-3' as text, write 1.0e-3)"
    return ""


def _float(name: str, value: Any, *, gt: float | None = None, ge: float | None = None) -> float:
    """Validate a real number (bool excluded, finite) and return it as ``float``."""
    reason = "must be a number" + _bound_text(gt, ge)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(reason + _string_hint(value), name, value)
    x = float(value)
    if not math.isfinite(x) or (gt is not None and not x > gt) or (ge is not None and not x >= ge):
        raise ConfigError(reason, name, value)
    return x


def _int(name: str, value: Any, *, ge: int | None = None, extra: str = "") -> int:
    """Validate an integer (bool excluded; integral floats accepted) and return it as ``int``."""
    reason = "must be an integer" + _bound_text(None, ge) + extra
    if isinstance(value, bool):
        raise ConfigError(reason, name, value)
    integral_float = (
        isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()
    )
    if not (isinstance(value, numbers.Integral) or integral_float):
        raise ConfigError(reason + _string_hint(value), name, value)
    n = int(value)
    if ge is not None and n < ge:
        raise ConfigError(reason, name, value)
    return n


def _optional_int(name: str, value: Any, *, ge: int) -> int | None:
    if value is None:
        return None
    try:
        return _int(name, value, ge=ge)
    except ConfigError as err:
        raise ConfigError(f"must be null or an integer >= {ge}", name, value) from err


def _did_you_mean(word: Any, allowed: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed word, or "" if none is close."""
    if not isinstance(word, str) or not word:
        return ""
    close = difflib.get_close_matches(word, list(allowed), n=1)
    if not close:  # difflib misses truncations such as 'rate' for 'rate_per_s'
        close = [a for a in allowed if a.startswith(word) or word.startswith(a)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    options = ", ".join(repr(a) for a in allowed)
    raise ConfigError(f"must be one of {options}{_did_you_mean(value, allowed)}", name, value)


def _mapping(path: str, value: Any, what: str = "a mapping") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be {what}", path, value)
    for key in value:
        if not isinstance(key, str):
            raise ConfigError("keys must be strings", _join(path, repr(key)))
    return value


def _check_keys(
    path: str, d: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str]
) -> None:
    """Reject unknown keys (with a did-you-mean hint) and report missing required keys."""
    allowed_text = ", ".join(allowed)
    for key in d:
        if key not in allowed:
            hint = _did_you_mean(key, allowed)
            raise ConfigError(f"unknown key{hint}; allowed keys: {allowed_text}", _join(path, key))
    for key in required:
        if key not in d:
            where = path or "config"
            raise ConfigError(
                f"missing required key {key!r} (required: {', '.join(required)}; "
                f"allowed keys: {allowed_text})",
                where,
            )


def _construct(cls: type, path: str, kwargs: Mapping[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.within(path) from None


def _from_flat_dict(
    cls: type,
    d: Any,
    path: str,
    *,
    tag: str | None = None,
    renames: Mapping[str, str] | None = None,
) -> Any:
    """Build dataclass ``cls`` from a flat mapping whose keys are its field names.

    ``renames`` maps a field name to a different YAML key; ``tag`` names a discriminator key
    (e.g. ``dist``) that is allowed but not passed on.
    """
    d = _mapping(path, d)
    renames = renames or {}
    keys = {f.name: renames.get(f.name, f.name) for f in dataclasses.fields(cls) if f.init}
    required = [
        keys[f.name]
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    allowed = ([tag] if tag else []) + list(keys.values())
    _check_keys(path, d, allowed, required)
    kwargs = {name: d[key] for name, key in keys.items() if key in d}
    return _construct(cls, path, kwargs)


def _to_flat_dict(
    obj: Any, *, tag: tuple[str, str] | None = None, renames: Mapping[str, str] | None = None
) -> dict[str, Any]:
    renames = renames or {}
    out: dict[str, Any] = {}
    if tag is not None:
        out[tag[0]] = tag[1]
    for f in dataclasses.fields(obj):
        out[renames.get(f.name, f.name)] = getattr(obj, f.name)
    return out


# --------------------------------------------------------------------------------------------
# Immutable mapping (picklable, unlike types.MappingProxyType)
# --------------------------------------------------------------------------------------------


class FrozenDict(Mapping[str, Any]):
    """A read-only, picklable mapping. Compares equal to any mapping with the same items."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenDict is read-only")

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (self._data,))

    def to_dict(self) -> dict[str, Any]:
        """A deep, mutable copy as a plain ``dict``."""
        return copy.deepcopy(self._data)


# --------------------------------------------------------------------------------------------
# Length distributions (prompt_tokens / output_tokens)
# --------------------------------------------------------------------------------------------


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
        return _to_flat_dict(self, tag=("dist", self.kind))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> LengthDistribution:
        """Build from the flat YAML form (the ``dist`` key is accepted and ignored)."""
        return _from_flat_dict(cls, d, path, tag="dist")


@dataclass(frozen=True)
class FixedLength(LengthDistribution):
    """Always ``value`` tokens."""

    kind: ClassVar[str] = "fixed"
    value: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _int("value", self.value, ge=1))

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
        low = _int("low", self.low, ge=1)
        high = _int("high", self.high, ge=1)
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
        object.__setattr__(self, "uncapped_mean", _float("mean", self.uncapped_mean, ge=1.0))
        object.__setattr__(self, "max", _int("max", self.max, ge=1))

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
        return _to_flat_dict(self, tag=("dist", self.kind), renames={"uncapped_mean": "mean"})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> GeometricLength:
        return _from_flat_dict(cls, d, path, tag="dist", renames={"uncapped_mean": "mean"})


@dataclass(frozen=True)
class MixtureComponent:
    """One component of a :class:`MixtureLength`: a (relative) weight > 0 and a distribution."""

    weight: float
    dist: LengthDistribution

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _float("weight", self.weight, gt=0.0))
        if not isinstance(self.dist, LengthDistribution):
            raise ConfigError("must be a length distribution", "dist", self.dist)

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form, e.g. ``{"weight": 0.5, "dist": "uniform", "low": 16, "high": 128}``."""
        return {"weight": self.weight, **self.dist.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> MixtureComponent:
        d = _mapping(path, d, "a mapping like {weight: 0.5, dist: fixed, value: 64}")
        if "weight" not in d:
            raise ConfigError("missing required key 'weight'", path or "component")
        rest = {k: v for k, v in d.items() if k != "weight"}
        dist = length_distribution_from_dict(rest, path)
        return _construct(cls, path, {"weight": d["weight"], "dist": dist})


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
        d = _mapping(path, d)
        _check_keys(path, d, ["dist", "components"], ["components"])
        raw = d["components"]
        cpath = _join(path, "components")
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence) or not raw:
            raise ConfigError("must be a non-empty list of components", cpath, raw)
        comps = tuple(
            MixtureComponent.from_dict(item, f"{cpath}[{i}]") for i, item in enumerate(raw)
        )
        return _construct(cls, path, {"components": comps})


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
        vals = tuple(_int(f"values[{i}]", v, ge=1) for i, v in enumerate(values))
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
        ws = tuple(_float(f"weights[{i}]", w, ge=0.0) for i, w in enumerate(weights))
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


def _trace_path(value: Any) -> str:
    """Validate a trace ``path`` field (a non-empty string or path) and return it as ``str``."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty path to a trace file", "path", value)
    return value


def _load_trace(path: str) -> Any:
    """``llm_serving_env.traces.load_trace`` (imported lazily: traces imports this module)."""
    from llm_serving_env.traces import load_trace

    return load_trace(path)


@dataclass(frozen=True)
class TraceLength(LengthDistribution):
    """Token counts taken from a trace file (see :mod:`llm_serving_env.traces`).

    YAML: ``{dist: trace, path: data/traces/<file>, column: prompt, order: iid}``.

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
        object.__setattr__(self, "path", _trace_path(self.path))
        _choice("column", self.column, TRACE_COLUMNS)
        _choice("order", self.order, TRACE_ORDERS)
        self.values()  # load (and cache) now, so a bad file is a config error

    def values(self) -> np.ndarray:
        """The file's values of ``column`` in arrival order: read-only int64 ``(rows,)``."""
        return _load_trace(self.path).column(self.column)

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
    d = _mapping(path, d, f"a mapping with key 'dist' (one of {', '.join(kinds)})")
    if "dist" not in d:
        raise ConfigError(f"missing required key 'dist' (one of {', '.join(kinds)})", path)
    kind = _prefixed_choice(path, "dist", d["dist"], kinds)
    return LENGTH_DISTRIBUTIONS[kind].from_dict(d, path)


def _prefixed_choice(path: str, key: str, value: Any, allowed: Sequence[str]) -> str:
    try:
        return _choice(key, value, allowed)
    except ConfigError as err:
        raise err.within(path) from None


# --------------------------------------------------------------------------------------------
# Arrival processes
# --------------------------------------------------------------------------------------------


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
        return _to_flat_dict(self, tag=("process", self.kind))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> ArrivalProcess:
        """Build from the flat YAML form (the ``process`` key is accepted and ignored)."""
        return _from_flat_dict(cls, d, path, tag="process")


@dataclass(frozen=True)
class PoissonArrival(ArrivalProcess):
    """Poisson process: i.i.d. exponential gaps with mean ``1 / rate_per_s`` seconds."""

    kind: ClassVar[str] = "poisson"
    rate_per_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_per_s", _float("rate_per_s", self.rate_per_s, gt=0.0))

    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.cumsum(rng.exponential(1.0 / self.rate_per_s, size=n))


@dataclass(frozen=True)
class DeterministicArrival(ArrivalProcess):
    """Evenly spaced arrivals: every gap is ``1 / rate_per_s``; arrival ``k`` (1-based) is at
    ``k / rate_per_s`` seconds. Does not use the generator."""

    kind: ClassVar[str] = "deterministic"
    rate_per_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_per_s", _float("rate_per_s", self.rate_per_s, gt=0.0))

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
        object.__setattr__(self, "rate_per_s", _float("rate_per_s", self.rate_per_s, gt=0.0))
        object.__setattr__(self, "cv", _float("cv", self.cv, gt=0.0))

    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cv2 = self.cv * self.cv
        return np.cumsum(rng.gamma(1.0 / cv2, cv2 / self.rate_per_s, size=n))


@dataclass(frozen=True)
class TraceArrival(ArrivalProcess):
    """Replay the arrival times recorded in a trace file (see :mod:`llm_serving_env.traces`).

    YAML: ``{process: trace, path: data/traces/<file>, time_scale: 1.0, rate_per_s: null}``.

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
        object.__setattr__(self, "path", _trace_path(self.path))
        object.__setattr__(self, "time_scale", _float("time_scale", self.time_scale, gt=0.0))
        if self.target_rate_per_s is not None:
            object.__setattr__(self, "target_rate_per_s",
                               _float("rate_per_s", self.target_rate_per_s, gt=0.0))
            if self.time_scale != 1.0:
                raise ConfigError(
                    "must be 1 (or absent) when rate_per_s is given: rate_per_s already sets "
                    "the time scale", "time_scale", self.time_scale)
        trace = _load_trace(self.path)
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
        return float(_load_trace(self.path).mean_rate_per_s)

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
        return len(_load_trace(self.path))

    def sample_times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The first ``n`` replayed arrival times, seconds, float64 ``(n,)``; the first is 0."""
        trace = _load_trace(self.path)
        if n > len(trace):
            raise ConfigError(
                f"exceeds the {len(trace)} requests in trace {self.path!r} (workload.arrival "
                f"replays it; no tiling); use num_requests <= {len(trace)}",
                "num_requests", n)
        times = trace.spread_arrivals(rng)[:n]
        return times * self.scale

    def to_dict(self) -> dict[str, Any]:
        return _to_flat_dict(self, tag=("process", self.kind),
                             renames={"target_rate_per_s": "rate_per_s"})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> TraceArrival:
        return _from_flat_dict(cls, d, path, tag="process",
                               renames={"target_rate_per_s": "rate_per_s"})


def _pair(name: str, value: Any, *, gt: float | None = None,
          ge: float | None = None) -> tuple[float, float]:
    """Validate a list of exactly two numbers and return it as a tuple of floats."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(
            value, (Sequence, np.ndarray)) or len(value) != 2:
        bound = _bound_text(gt, ge)
        each = f", each{bound}" if bound else ""
        raise ConfigError(f"must be a list of two numbers [on, off]{each}", name, value)
    return (_float(f"{name}[0]", value[0], gt=gt, ge=ge),
            _float(f"{name}[1]", value[1], gt=gt, ge=ge))


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
    :func:`llm_serving_env.arrivals_fit.mmpp2_moments`.
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
    d = _mapping(path, d, f"a mapping with key 'process' (one of {', '.join(kinds)})")
    if "process" not in d:
        raise ConfigError(f"missing required key 'process' (one of {', '.join(kinds)})", path)
    kind = _prefixed_choice(path, "process", d["process"], kinds)
    return ARRIVAL_PROCESSES[kind].from_dict(d, path)


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadConfig:
    """What arrives: arrival process, prompt lengths L_i and output budgets B_i (tokens)."""

    arrival: ArrivalProcess
    prompt_tokens: LengthDistribution
    output_tokens: LengthDistribution

    def __post_init__(self) -> None:
        if not isinstance(self.arrival, ArrivalProcess):
            raise ConfigError("must be an arrival process", "arrival", self.arrival)
        for name in ("prompt_tokens", "output_tokens"):
            if not isinstance(getattr(self, name), LengthDistribution):
                raise ConfigError("must be a length distribution", name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "arrival": self.arrival.to_dict(),
            "prompt_tokens": self.prompt_tokens.to_dict(),
            "output_tokens": self.output_tokens.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "workload") -> WorkloadConfig:
        d = _mapping(path, d)
        keys = ["arrival", "prompt_tokens", "output_tokens"]
        _check_keys(path, d, keys, keys)
        return _construct(
            cls,
            path,
            {
                "arrival": arrival_process_from_dict(d["arrival"], _join(path, "arrival")),
                "prompt_tokens": length_distribution_from_dict(
                    d["prompt_tokens"], _join(path, "prompt_tokens")
                ),
                "output_tokens": length_distribution_from_dict(
                    d["output_tokens"], _join(path, "output_tokens")
                ),
            },
        )


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Batch service time S(b) for token load b (see ``llm_serving_env.service``).

    ``piecewise_linear``: S(b) = c + a * max(0, b - b0);  ``staircase``: S(b) = c + a*ceil(b/b0).
    ``c_ms`` is the per-batch setup time (ms), ``a_ms`` the cost per token (ms/token) or per
    step of ``b0_tokens`` (staircase). ``noise``: ``deterministic`` (S is the formula),
    ``exponential`` (C, A exponential with means c, a) or ``gamma`` (C, A gamma with means c, a
    and coefficient of variation ``cv``, required > 0 and only allowed for gamma).

    ``preset`` names the preset (``llm_serving_env.presets``) the fields came from; fields given
    beside it override it. ``tensor_parallel`` is the number of GPUs of one replica that S(b)
    describes (None = unspecified, taken as 1 for the KV capacity); with a preset it defaults
    to the preset's own, and a different value rescales the preset
    (``presets.transform_tensor_parallel``), e.g. ``{preset: llama3_70b_a100_tp2,
    tensor_parallel: 4}``. Explicit ``c_ms``/``a_ms``/``b0_tokens`` are taken as given.
    """

    model: str = "piecewise_linear"
    c_ms: float
    a_ms: float
    b0_tokens: int
    noise: str = "deterministic"
    cv: float | None = None
    preset: str | None = None  # the named preset the fields came from (documentation only)
    tensor_parallel: int | None = None  # GPUs per replica (see the class docstring)

    def __post_init__(self) -> None:
        if self.tensor_parallel is not None:
            object.__setattr__(self, "tensor_parallel",
                               _int("tensor_parallel", self.tensor_parallel, ge=1))
        model = _choice("model", self.model, SERVICE_MODELS)
        object.__setattr__(self, "c_ms", _float("c_ms", self.c_ms, ge=0.0))
        object.__setattr__(self, "a_ms", _float("a_ms", self.a_ms, ge=0.0))
        min_b0 = 1 if model == "staircase" else 0
        extra = f" for model {model!r}" if model == "staircase" else ""
        object.__setattr__(
            self, "b0_tokens", _int("b0_tokens", self.b0_tokens, ge=min_b0, extra=extra)
        )
        noise = _choice("noise", self.noise, SERVICE_NOISES)
        if noise == "gamma":
            if self.cv is None:
                raise ConfigError("required (a number > 0) when noise is 'gamma'", "cv", None)
            object.__setattr__(self, "cv", _float("cv", self.cv, gt=0.0))
        elif self.cv is not None:
            raise ConfigError(
                f"must be null unless noise is 'gamma' (noise is {noise!r})", "cv", self.cv
            )

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form. With a preset: ``preset``, ``tensor_parallel`` and only the fields
        that differ from the (rescaled) preset, so ``replace`` of the preset or of
        ``tensor_parallel`` re-resolves the rest."""
        d = _to_flat_dict(self)
        if self.preset is None:
            return d
        from llm_serving_env.presets import resolve_service_preset

        try:
            base = resolve_service_preset(self.preset, self.tensor_parallel)
        except ConfigError:  # built by hand with a preset name that does not resolve
            return d
        keep = ("preset", "tensor_parallel")
        return {k: v for k, v in d.items() if k in keep or k not in base or base[k] != v}

    @classmethod
    def from_dict(cls, d: Any, path: str = "service") -> ServiceConfig:
        """Fields from ``d``; with ``preset: NAME`` the preset's fields (rescaled to
        ``tensor_parallel`` if given) are the defaults."""
        d = _mapping(path, d)
        name = d.get("preset")
        if name is not None:
            from llm_serving_env.presets import resolve_service_preset

            d = {**resolve_service_preset(name, d.get("tensor_parallel"), path),
                 **{k: v for k, v in d.items() if not (k == "tensor_parallel" and v is None)}}
        return _from_flat_dict(cls, d, path)


@dataclass(frozen=True)
class GpuConfig:
    """The GPU workers.

    ``count`` identical GPUs; ``router`` assigns requests to GPUs (``central``: one shared
    queue; ``round_robin``; ``jsq``: join the queue with the fewest outstanding requests;
    ``least_tokens``: the fewest outstanding tokens of work, prefill tokens plus decodes, i.e.
    L + B - 1 per request, counting what a request has left); ``max_batch_tokens`` (K) caps
    the token load of one batch; ``max_batch_requests`` caps the requests resident on one GPU;
    ``kv_capacity_tokens`` is the KV cache size per GPU in tokens (None = unlimited), allocated
    in blocks of ``kv_block_tokens`` tokens.

    A "GPU" here is one model replica, which may span ``service.tensor_parallel`` physical
    GPUs. ``gpu`` (a ``hardware.GPU_PRESETS`` name: a100_80gb, a100_40gb, h100_80gb) and/or
    ``memory_gb`` (GB = 1e9 bytes per physical GPU; overrides the preset's) with a top-level
    ``model`` block derive ``kv_capacity_tokens`` when it is not given:
    ``(tensor_parallel * memory_gb * memory_utilization - weights) / kv_bytes_per_token``
    (``hardware.resolve_kv_capacity``). A given ``kv_capacity_tokens`` overrides them.
    ``kv_capacity_derived`` (not a YAML key) marks a derived value, which ``to_dict`` writes as
    null so that it is derived again.
    """

    count: int = 1
    router: str = "central"
    max_batch_tokens: int = 2048
    max_batch_requests: int = 128
    kv_capacity_tokens: int | None = None
    kv_block_tokens: int = 16
    gpu: str | None = None
    memory_gb: float | None = None
    memory_utilization: float = 0.9
    kv_capacity_derived: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.gpu is not None:
            from llm_serving_env.hardware import GPU_PRESETS

            _choice("gpu", self.gpu, list(GPU_PRESETS))
        if self.memory_gb is not None:
            object.__setattr__(self, "memory_gb", _float("memory_gb", self.memory_gb, gt=0.0))
        util = _float("memory_utilization", self.memory_utilization, gt=0.0)
        if util > 1.0:
            raise ConfigError("must be a number > 0 and <= 1", "memory_utilization",
                              self.memory_utilization)
        object.__setattr__(self, "memory_utilization", util)
        object.__setattr__(self, "count", _int("count", self.count, ge=1))
        _choice("router", self.router, ROUTERS)
        object.__setattr__(
            self, "max_batch_tokens", _int("max_batch_tokens", self.max_batch_tokens, ge=1)
        )
        object.__setattr__(
            self, "max_batch_requests", _int("max_batch_requests", self.max_batch_requests, ge=1)
        )
        object.__setattr__(
            self,
            "kv_capacity_tokens",
            _optional_int("kv_capacity_tokens", self.kv_capacity_tokens, ge=1),
        )
        object.__setattr__(
            self, "kv_block_tokens", _int("kv_block_tokens", self.kv_block_tokens, ge=1)
        )

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        if self.kv_capacity_derived:
            d["kv_capacity_tokens"] = None
        return d

    @classmethod
    def from_dict(cls, d: Any, path: str = "gpus") -> GpuConfig:
        return _from_flat_dict(cls, d, path)


@dataclass(frozen=True)
class SchedulerConfig:
    """Which scheduler and its free parameters.

    YAML ``{name: hybrid, token_budget: 512}`` is ``SchedulerConfig("hybrid",
    {"token_budget": 512})``. Only ``name`` (a non-empty string) is checked here; the scheduler
    registry validates the name and the parameters. ``params`` is stored as a read-only
    :class:`FrozenDict` over a deep copy.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("must be a non-empty string (a scheduler name)", "name", self.name)
        params = self.params
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ConfigError("must be a mapping of parameter name -> value", "params", params)
        for key in params:
            if not isinstance(key, str) or not key:
                raise ConfigError("parameter names must be non-empty strings", "params", params)
            if key == "name":
                raise ConfigError("'name' cannot be a parameter name", "params", params)
        object.__setattr__(self, "params", FrozenDict(copy.deepcopy(dict(params))))

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form: ``{"name": ..., **params}``."""
        return {"name": self.name, **copy.deepcopy(dict(self.params))}

    @classmethod
    def from_dict(cls, d: Any, path: str = "scheduler") -> SchedulerConfig:
        d = _mapping(path, d, "a mapping like {name: hybrid, token_budget: 512}")
        if "name" not in d:
            raise ConfigError("missing required key 'name' (the scheduler's name)", path)
        params = {k: v for k, v in d.items() if k != "name"}
        return _construct(cls, path, {"name": d["name"], "params": params})


def _default_scheduler() -> SchedulerConfig:
    return SchedulerConfig("hybrid", {"token_budget": 512})


@dataclass(frozen=True)
class SloConfig:
    """Service-level objectives: time to first token and time between tokens, both in ms."""

    ttft_ms: float
    tbt_ms: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "ttft_ms", _float("ttft_ms", self.ttft_ms, gt=0.0))
        object.__setattr__(self, "tbt_ms", _float("tbt_ms", self.tbt_ms, gt=0.0))

    def to_dict(self) -> dict[str, Any]:
        return _to_flat_dict(self)

    @classmethod
    def from_dict(cls, d: Any, path: str = "slo") -> SloConfig:
        return _from_flat_dict(cls, d, path)


@dataclass(frozen=True)
class PoolConfig:
    """One pool of a disaggregated deployment: ``count`` GPUs, optionally their own service
    model and scheduler (None = the top-level ``service`` / ``scheduler``)."""

    count: int = 1
    service: ServiceConfig | None = None
    scheduler: SchedulerConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", _int("count", self.count, ge=1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "service": None if self.service is None else self.service.to_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any, path: str) -> PoolConfig:
        d = _mapping(path, d)
        _check_keys(path, d, ("count", "service", "scheduler"), ())
        kwargs: dict[str, Any] = {}
        if "count" in d:
            kwargs["count"] = d["count"]
        if d.get("service") is not None:
            kwargs["service"] = ServiceConfig.from_dict(d["service"], f"{path}.service")
        if d.get("scheduler") is not None:
            kwargs["scheduler"] = SchedulerConfig.from_dict(d["scheduler"], f"{path}.scheduler")
        return _construct(cls, path, kwargs)


@dataclass(frozen=True)
class DisaggregationConfig:
    """Separate prefill and decode pools (DistServe / Splitwise).

    GPUs ``0 .. prefill.count - 1`` only prefill; the rest only decode. A request's prefill
    emits its first token on a prefill GPU; its KV cache (``kv_tokens * kv_bytes_per_token``
    bytes) then moves to a decode GPU, and it joins the decode GPU with the fewest outstanding
    requests. ``gpus.count`` must equal the two counts' sum.

    The network: ``interconnect`` (``nvlink``, ``pcie4``, ``infiniband``; see
    ``hardware.INTERCONNECT_PRESETS``) sets the bandwidth per direction and the per-transfer
    latency; ``bandwidth_gb_per_s`` (GB/s = 1e9 B/s; null with no interconnect = instantaneous
    bytes) and ``latency_ms`` override it. ``links``: ``per_source`` (default) gives every
    prefill GPU its own outgoing link (its NIC / NVLink port, the bottleneck when it sends to
    many decode GPUs); ``shared`` puts every transfer on one link. Transfers on one link share
    its bandwidth equally (fluid processor sharing: each of the n active transfers drains at
    bandwidth / n); a transfer lands ``latency_ms`` after its last byte leaves. Alone on its
    link a transfer takes ``bytes / bandwidth + latency``. ``kv_bytes_per_token`` defaults to
    the top-level ``model`` block's (else 0).
    """

    prefill: PoolConfig = field(default_factory=PoolConfig)
    decode: PoolConfig = field(default_factory=PoolConfig)
    kv_bytes_per_token: float | None = None
    bandwidth_gb_per_s: float | None = None
    latency_ms: float | None = None
    interconnect: str | None = None
    links: str = "per_source"

    def __post_init__(self) -> None:
        if self.kv_bytes_per_token is not None:
            object.__setattr__(self, "kv_bytes_per_token",
                               _float("kv_bytes_per_token", self.kv_bytes_per_token, ge=0.0))
        if self.bandwidth_gb_per_s is not None:
            object.__setattr__(self, "bandwidth_gb_per_s",
                               _float("bandwidth_gb_per_s", self.bandwidth_gb_per_s, gt=0.0))
        if self.latency_ms is not None:
            object.__setattr__(self, "latency_ms", _float("latency_ms", self.latency_ms,
                                                          ge=0.0))
        if self.interconnect is not None:
            from llm_serving_env.hardware import INTERCONNECT_PRESETS

            _choice("interconnect", self.interconnect, list(INTERCONNECT_PRESETS))
        _choice("links", self.links, ("per_source", "shared"))

    @property
    def link_bandwidth_gb_per_s(self) -> float | None:
        """Bandwidth of one link in GB/s: ``bandwidth_gb_per_s``, else the interconnect's,
        else None (instantaneous bytes)."""
        if self.bandwidth_gb_per_s is not None or self.interconnect is None:
            return self.bandwidth_gb_per_s
        from llm_serving_env.hardware import INTERCONNECT_PRESETS

        return INTERCONNECT_PRESETS[self.interconnect].bandwidth_gb_per_s

    @property
    def link_latency_ms(self) -> float:
        """Per-transfer latency in ms: ``latency_ms``, else the interconnect's, else 0."""
        if self.latency_ms is not None:
            return self.latency_ms
        if self.interconnect is None:
            return 0.0
        from llm_serving_env.hardware import INTERCONNECT_PRESETS

        return INTERCONNECT_PRESETS[self.interconnect].latency_ms

    def transfer_s(self, kv_tokens: Any, kv_bytes_per_token: float | None = None) -> Any:
        """Time in seconds of a KV transfer of ``kv_tokens`` tokens (scalar or array) alone on
        its link: bytes / bandwidth + latency. ``kv_bytes_per_token`` defaults to this
        block's (None = 0)."""
        seconds = self.link_latency_ms / 1000.0
        bandwidth = self.link_bandwidth_gb_per_s
        per_token = self.kv_bytes_per_token if kv_bytes_per_token is None else kv_bytes_per_token
        if bandwidth is None or not per_token:
            return kv_tokens * 0.0 + seconds
        return kv_tokens * per_token / (bandwidth * 1e9) + seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefill": self.prefill.to_dict(),
            "decode": self.decode.to_dict(),
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "bandwidth_gb_per_s": self.bandwidth_gb_per_s,
            "latency_ms": self.latency_ms,
            "interconnect": self.interconnect,
            "links": self.links,
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "disaggregation") -> DisaggregationConfig:
        d = _mapping(path, d)
        keys = ("prefill", "decode", "kv_bytes_per_token", "bandwidth_gb_per_s", "latency_ms",
                "interconnect", "links")
        _check_keys(path, d, keys, ("prefill", "decode"))
        kwargs: dict[str, Any] = {
            "prefill": PoolConfig.from_dict(d["prefill"], f"{path}.prefill"),
            "decode": PoolConfig.from_dict(d["decode"], f"{path}.decode"),
        }
        for key in keys[2:]:
            if key in d:
                kwargs[key] = d[key]
        return _construct(cls, path, kwargs)


_TOP_KEYS: tuple[str, ...] = (
    "num_requests",
    "warmup_requests",
    "workload",
    "model",
    "service",
    "gpus",
    "scheduler",
    "slo",
    "disaggregation",
)
_TOP_REQUIRED: tuple[str, ...] = ("num_requests", "workload", "service")


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """A complete simulation configuration (keyword-only constructor).

    ``num_requests`` arrivals are simulated; the first ``warmup_requests`` of them (by arrival
    order) are excluded from statistics, ``0 <= warmup_requests < num_requests``.

    ``model`` (optional, a ``hardware.ModelSpec``; YAML ``model: llama3_70b`` or a mapping)
    sizes the KV cache: with ``gpus.gpu``/``gpus.memory_gb`` it derives
    ``gpus.kv_capacity_tokens`` when that is not given, and it gives the disaggregated KV
    transfer its ``kv_bytes_per_token`` when that is not given (see ``llm_serving_env.hardware``).
    """

    num_requests: int
    warmup_requests: int = 0
    workload: WorkloadConfig
    service: ServiceConfig
    gpus: GpuConfig = field(default_factory=GpuConfig)
    scheduler: SchedulerConfig = field(default_factory=_default_scheduler)
    slo: SloConfig | None = None
    disaggregation: DisaggregationConfig | None = None
    model: ModelSpec | None = None

    def __post_init__(self) -> None:
        n = _int("num_requests", self.num_requests, ge=1)
        object.__setattr__(self, "num_requests", n)
        w = _int(
            "warmup_requests", self.warmup_requests, ge=0, extra=f" and < num_requests (= {n})"
        )
        if w >= n:
            raise ConfigError(
                f"must be an integer >= 0 and < num_requests (= {n})",
                "warmup_requests",
                self.warmup_requests,
            )
        object.__setattr__(self, "warmup_requests", w)
        checks = (
            ("workload", WorkloadConfig),
            ("service", ServiceConfig),
            ("gpus", GpuConfig),
            ("scheduler", SchedulerConfig),
        )
        for name, cls in checks:
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"must be a {cls.__name__}", name, getattr(self, name))
        if self.slo is not None and not isinstance(self.slo, SloConfig):
            raise ConfigError("must be null or a SloConfig", "slo", self.slo)
        dis = self.disaggregation
        if dis is not None:
            total = dis.prefill.count + dis.decode.count
            if self.gpus.count != total:
                raise ConfigError(
                    f"must equal disaggregation.prefill.count + disaggregation.decode.count "
                    f"(= {total})", "gpus.count", self.gpus.count)
        from llm_serving_env.hardware import resolve_hardware

        resolve_hardware(self)

    # -- dict / YAML form ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict/list/int/float/str/None form; ``from_dict(to_dict(c)) == c``."""
        return {
            "num_requests": self.num_requests,
            "warmup_requests": self.warmup_requests,
            "workload": self.workload.to_dict(),
            "model": None if self.model is None else self.model.to_dict(),
            "service": self.service.to_dict(),
            "gpus": self.gpus.to_dict(),
            "scheduler": self.scheduler.to_dict(),
            "slo": None if self.slo is None else self.slo.to_dict(),
            "disaggregation": (None if self.disaggregation is None
                               else self.disaggregation.to_dict()),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SimConfig:
        """Build and validate from the YAML form (see the module docstring)."""
        d = _mapping("config", d)
        _check_keys("", d, _TOP_KEYS, _TOP_REQUIRED)
        kwargs: dict[str, Any] = {
            "num_requests": d["num_requests"],
            "workload": WorkloadConfig.from_dict(d["workload"], "workload"),
            "service": ServiceConfig.from_dict(d["service"], "service"),
        }
        if d.get("warmup_requests") is not None:
            kwargs["warmup_requests"] = d["warmup_requests"]
        if d.get("gpus") is not None:
            kwargs["gpus"] = GpuConfig.from_dict(d["gpus"], "gpus")
        if d.get("scheduler") is not None:
            kwargs["scheduler"] = SchedulerConfig.from_dict(d["scheduler"], "scheduler")
        if d.get("slo") is not None:
            kwargs["slo"] = SloConfig.from_dict(d["slo"], "slo")
        if d.get("disaggregation") is not None:
            kwargs["disaggregation"] = DisaggregationConfig.from_dict(d["disaggregation"])
        if d.get("model") is not None:
            from llm_serving_env.hardware import model_from_yaml

            kwargs["model"] = model_from_yaml(d["model"], "model")
        return cls(**kwargs)

    def service_for(self, role: str) -> ServiceConfig:
        """The service model of GPUs of ``role`` (``"mixed"``, ``"prefill"`` or ``"decode"``):
        their disaggregation pool's own ``service`` if it has one, else the top-level one."""
        dis = self.disaggregation
        pool = getattr(dis, role, None) if dis is not None and role != "mixed" else None
        own = getattr(pool, "service", None)
        return own if own is not None else self.service

    def replace(self, changes: Mapping[str, Any] | None = None, **kwargs: Any) -> SimConfig:
        """A copy with some fields changed, fully revalidated.

        Keys are dotted paths (``"workload.arrival.rate_per_s"``, ``"scheduler.token_budget"``,
        ``"workload.prompt_tokens.components.0.weight"``) or top-level names (also usable as
        keyword arguments). A value may be a whole block in YAML form, e.g.
        ``{"workload.prompt_tokens": {"dist": "fixed", "value": 64}}``. Implemented as
        ``to_dict`` -> set each path -> ``from_dict``. A path through a key that does not exist
        is a :class:`ConfigError`, except new scheduler parameters and optional blocks that are
        currently null (``slo``), which are created. To switch a distribution's or the
        scheduler's kind, set the whole block (old keys would not fit the new kind).
        """
        d = self.to_dict()
        items = list((changes or {}).items()) + list(kwargs.items())
        for key, value in items:
            _set_path(d, key, value)
        return SimConfig.from_dict(d)


#: Blocks whose sub-keys may be added by ``replace`` (scheduler parameters; optional blocks;
#: ``service`` and ``model``, whose YAML form omits the fields equal to their preset's).
_OPEN_BLOCKS: tuple[str, ...] = ("scheduler", "slo", "disaggregation", "service", "model")


def _set_path(d: dict[str, Any], dotted: Any, value: Any) -> None:
    """Set ``d[a][b]...[z] = value`` for ``dotted = "a.b...z"`` (list indices as digits)."""
    if not isinstance(dotted, str) or not dotted or any(p == "" for p in dotted.split(".")):
        raise ConfigError(
            "malformed key path (expected e.g. 'workload.arrival.rate_per_s')", str(dotted)
        )
    parts = dotted.split(".")
    node: Any = d
    created = False  # True once we descend into a block that was null and is now being built
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"no such list index (valid: 0..{len(node) - 1})", here)
            if last:
                node[int(part)] = copy.deepcopy(value)
                return
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            parent = ".".join(parts[:depth])
            raise ConfigError("is not a mapping, so it has no sub-keys", parent, node)
        may_add = created or (depth == 1 and parts[0] in _OPEN_BLOCKS)
        if part not in node and not may_add:
            allowed = sorted(node)
            raise ConfigError(
                f"no such key{_did_you_mean(part, allowed)}; allowed keys: {', '.join(allowed)}",
                here,
            )
        if last:
            node[part] = copy.deepcopy(value)
            return
        if node.get(part) is None:
            node[part] = {}
            created = True
        node = node[part]


# --------------------------------------------------------------------------------------------
# Files, presets, overrides
# --------------------------------------------------------------------------------------------


def _preset_dirs() -> list[Path]:
    return [CONFIGS_DIR, CONFIGS_DIR / "benchmarks"]


def available_presets() -> list[str]:
    """Names of the presets: stems of ``configs/*.yaml`` and ``configs/benchmarks/*.yaml``."""
    names: set[str] = set()
    for folder in _preset_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.yaml") if p.is_file())
    return sorted(names)


def _find_preset(name: str) -> Path | None:
    for folder in _preset_dirs():
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | SimConfig) -> SimConfig:
    """Load and validate a configuration.

    Args:
        source: a YAML file path; a preset name (``configs/<name>.yaml`` or
            ``configs/benchmarks/<name>.yaml`` in the repository); a mapping in YAML form; or
            a :class:`SimConfig` (returned as is).

    Raises:
        ConfigError: unknown file/preset (the message lists the presets), unreadable YAML, or
            any invalid field (the message starts with the file name).
    """
    if isinstance(source, SimConfig):
        return source
    if isinstance(source, Mapping):
        return SimConfig.from_dict(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            "must be a YAML path, a preset name or a mapping", "config source", source
        )
    path = Path(source)
    if not path.is_file():
        preset = _find_preset(str(source)) if isinstance(source, str) else None
        if preset is None:
            presets = ", ".join(available_presets()) or "(none)"
            raise ConfigError(
                f"no such config file and no preset of that name; available presets: {presets}",
                "config",
                str(source),
            )
        path = preset
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read YAML: {err}", source=str(path)) from err
    try:
        return SimConfig.from_dict(data)
    except ConfigError as err:
        raise ConfigError(err.reason, err.path, err.value, source=str(path)) from None


def save_config(cfg: SimConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``cfg`` as YAML to ``path`` (parent directories are created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a command-line override ``key.path=value`` into ``(key_path, value)``.

    The value is parsed with ``yaml.safe_load``: ``3`` -> 3, ``0.5`` -> 0.5, ``null`` -> None,
    ``{dist: fixed, value: 3}`` -> a dict. An empty value is an error (write ``null``).
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError("malformed override; expected key.path=value", "--set", text)
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part or part != part.strip() for part in key.split(".")):
        raise ConfigError("malformed override key; expected key.path=value", "--set", text)
    if not raw.strip():
        raise ConfigError("empty value in override (write null for none)", "--set", text)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"value is not valid YAML: {err}", "--set", text) from err
    return key, value
