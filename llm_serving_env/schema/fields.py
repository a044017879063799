"""The foundation of every config section: :class:`ConfigError` and the field validators.

Each validator checks one value and raises :class:`ConfigError` naming the dotted field path,
the value and what is allowed, e.g. ``workload.arrival.rate_per_s = -1.0: must be a number > 0``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np


class _NoValue:
    def __repr__(self) -> str:
        return "<no value>"


_NO_VALUE: Any = _NoValue()


def show_value(value: Any, limit: int = 80) -> str:
    """Short repr of a config value for error messages."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def join_path(prefix: str, path: str) -> str:
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
            head = f"{path} = {show_value(value)}"
        message = f"{head}: {reason}" if head else reason
        if source:
            message = f"{source}: {message}"
        super().__init__(message)

    def within(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` prepended to its path."""
        return ConfigError(self.reason, join_path(prefix, self.path), self.value, self.source)


def _fmt(x: float) -> str:
    return f"{x:g}"


def bound_text(gt: float | None, ge: float | None) -> str:
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


def as_float(name: str, value: Any, *, gt: float | None = None, ge: float | None = None) -> float:
    """Validate a real number (bool excluded, finite) and return it as ``float``."""
    reason = "must be a number" + bound_text(gt, ge)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(reason + _string_hint(value), name, value)
    x = float(value)
    if not math.isfinite(x) or (gt is not None and not x > gt) or (ge is not None and not x >= ge):
        raise ConfigError(reason, name, value)
    return x


def as_int(name: str, value: Any, *, ge: int | None = None, extra: str = "") -> int:
    """Validate an integer (bool excluded; integral floats accepted) and return it as ``int``."""
    reason = "must be an integer" + bound_text(None, ge) + extra
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


def as_optional_int(name: str, value: Any, *, ge: int) -> int | None:
    if value is None:
        return None
    try:
        return as_int(name, value, ge=ge)
    except ConfigError as err:
        raise ConfigError(f"must be null or an integer >= {ge}", name, value) from err


def did_you_mean(word: Any, allowed: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed word, or "" if none is close."""
    if not isinstance(word, str) or not word:
        return ""
    close = difflib.get_close_matches(word, list(allowed), n=1)
    if not close:  # difflib misses truncations such as 'rate' for 'rate_per_s'
        close = [a for a in allowed if a.startswith(word) or word.startswith(a)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    options = ", ".join(repr(a) for a in allowed)
    raise ConfigError(f"must be one of {options}{did_you_mean(value, allowed)}", name, value)


def as_mapping(path: str, value: Any, what: str = "a mapping") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be {what}", path, value)
    for key in value:
        if not isinstance(key, str):
            raise ConfigError("keys must be strings", join_path(path, repr(key)))
    return value


def check_keys(
    path: str, d: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str]
) -> None:
    """Reject unknown keys (with a did-you-mean hint) and report missing required keys."""
    allowed_text = ", ".join(allowed)
    for key in d:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            raise ConfigError(f"unknown key{hint}; allowed keys: {allowed_text}",
                              join_path(path, key))
    for key in required:
        if key not in d:
            where = path or "config"
            raise ConfigError(
                f"missing required key {key!r} (required: {', '.join(required)}; "
                f"allowed keys: {allowed_text})",
                where,
            )


def construct(cls: type, path: str, kwargs: Mapping[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.within(path) from None


def from_flat_dict(
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
    d = as_mapping(path, d)
    renames = renames or {}
    keys = {f.name: renames.get(f.name, f.name) for f in dataclasses.fields(cls) if f.init}
    required = [
        keys[f.name]
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    allowed = ([tag] if tag else []) + list(keys.values())
    check_keys(path, d, allowed, required)
    kwargs = {name: d[key] for name, key in keys.items() if key in d}
    return construct(cls, path, kwargs)


def to_flat_dict(
    obj: Any, *, tag: tuple[str, str] | None = None, renames: Mapping[str, str] | None = None
) -> dict[str, Any]:
    renames = renames or {}
    out: dict[str, Any] = {}
    if tag is not None:
        out[tag[0]] = tag[1]
    for f in dataclasses.fields(obj):
        out[renames.get(f.name, f.name)] = getattr(obj, f.name)
    return out


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


def prefixed_choice(path: str, key: str, value: Any, allowed: Sequence[str]) -> str:
    try:
        return choice(key, value, allowed)
    except ConfigError as err:
        raise err.within(path) from None


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{dotted.path: leaf}`` (lists are leaves), e.g. to compare two
    configs' YAML forms field by field."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
