"""Output-length predictors: what a scheduler may know of a request's output length B_i.

A real serving engine does not know how many tokens a request will generate; schedulers that
use output lengths rely on a predictor (a small model, a learned ranker, or the client's
``max_tokens``). The config's ``workload.length_predictor`` chooses one, a tagged union on
``kind``:

==========  ============================================================================
kind        prediction of B_i (tokens, float64; NaN = nothing known)
==========  ============================================================================
none        NaN for every request (the default: no oracle knowledge)
oracle      B_i itself (an upper bound on what prediction can give; say so when used)
lognormal   ``B_i * exp(sigma * Z)``, ``Z ~ N(0, 1)``: a median-unbiased multiplicative
            error (``sigma`` = 0.5 puts 68% of predictions within a factor 1.65)
buckets     the upper edge of the bucket (``edges_tokens``, ascending; the last bucket is
            open, predicted as its lower edge) that B_i falls in, replaced with probability
            ``1 - accuracy`` by a uniformly drawn other bucket: the coarse ranks that
            learning-to-rank schedulers (Fu et al., NeurIPS 2024) predict
==========  ============================================================================

Predictions are drawn once per request when the workload is generated, from their own
random stream, so every policy run with one seed sees the same predictions (common random
numbers) and turning a predictor on changes no other draw.
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
    from_flat_dict,
    prefixed_choice,
    to_flat_dict,
)

__all__ = [
    "LENGTH_PREDICTORS",
    "BucketPredictor",
    "LengthPredictor",
    "LognormalPredictor",
    "NoPredictor",
    "OraclePredictor",
    "length_predictor_from_dict",
]


class LengthPredictor(ABC):
    """Predicts output lengths; subclasses are frozen dataclasses tagged by ``kind``."""

    kind: ClassVar[str]

    @abstractmethod
    def predict(self, rng: np.random.Generator, output_tokens: np.ndarray) -> np.ndarray:
        """Predictions for true lengths ``output_tokens`` (int64 ``(n,)``): float64 ``(n,)``,
        NaN where nothing is known. Draws only from ``rng``."""

    @property
    def knows_lengths(self) -> bool:
        """True when predictions carry information about the true lengths."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form, e.g. ``{"kind": "lognormal", "sigma": 0.5}``."""
        return to_flat_dict(self, tag=("kind", self.kind))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "") -> LengthPredictor:
        return from_flat_dict(cls, d, path, tag="kind")


@dataclass(frozen=True)
class NoPredictor(LengthPredictor):
    """Nothing is known about output lengths (NaN)."""

    kind: ClassVar[str] = "none"

    def predict(self, rng: np.random.Generator, output_tokens: np.ndarray) -> np.ndarray:
        return np.full(np.shape(output_tokens), math.nan)

    @property
    def knows_lengths(self) -> bool:
        return False


@dataclass(frozen=True)
class OraclePredictor(LengthPredictor):
    """The true lengths (oracle knowledge: an upper bound on any predictor's value)."""

    kind: ClassVar[str] = "oracle"

    def predict(self, rng: np.random.Generator, output_tokens: np.ndarray) -> np.ndarray:
        return np.asarray(output_tokens, dtype=np.float64).copy()


@dataclass(frozen=True)
class LognormalPredictor(LengthPredictor):
    """``B * exp(sigma * Z)``: multiplicative log-normal error of scale ``sigma`` (>= 0)."""

    kind: ClassVar[str] = "lognormal"
    sigma: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", as_float("sigma", self.sigma, ge=0.0))

    def predict(self, rng: np.random.Generator, output_tokens: np.ndarray) -> np.ndarray:
        true = np.asarray(output_tokens, dtype=np.float64)
        return true * np.exp(self.sigma * rng.standard_normal(true.shape))


@dataclass(frozen=True)
class BucketPredictor(LengthPredictor):
    """The bucket of B among ``edges_tokens`` (right-closed: bucket k holds
    ``edges[k-1] < B <= edges[k]``, bucket 0 is ``B <= edges[0]``, the last ``B > edges[-1]``),
    right with probability ``accuracy``, else a uniformly drawn other bucket. The prediction
    is the bucket's upper edge (the last bucket's lower edge)."""

    kind: ClassVar[str] = "buckets"
    edges_tokens: tuple[int, ...]
    accuracy: float = 1.0

    def __post_init__(self) -> None:
        edges = self.edges_tokens
        if isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence) or not edges:
            raise ConfigError("must be a non-empty list of ascending token counts",
                              "edges_tokens", edges)
        values = tuple(as_int(f"edges_tokens[{i}]", e, ge=1) for i, e in enumerate(edges))
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ConfigError("must be strictly ascending", "edges_tokens", list(edges))
        object.__setattr__(self, "edges_tokens", values)
        accuracy = as_float("accuracy", self.accuracy, ge=0.0)
        if accuracy > 1.0:
            raise ConfigError("must be a probability in [0, 1]", "accuracy", self.accuracy)
        object.__setattr__(self, "accuracy", accuracy)

    def predict(self, rng: np.random.Generator, output_tokens: np.ndarray) -> np.ndarray:
        edges = np.asarray(self.edges_tokens, dtype=np.int64)
        bucket = np.searchsorted(edges, np.asarray(output_tokens), side="left")
        count = edges.size + 1
        wrong = rng.random(bucket.shape) >= self.accuracy
        # a uniformly drawn other bucket: shift by 1..count-1 around the circle
        shift = rng.integers(1, count, size=bucket.shape) if count > 1 else 0
        bucket = np.where(wrong, (bucket + shift) % count, bucket)
        representative = np.append(edges, edges[-1]).astype(np.float64)
        return representative[bucket]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "edges_tokens": list(self.edges_tokens),
                "accuracy": self.accuracy}


#: ``kind`` name -> class. Register new predictors here.
LENGTH_PREDICTORS: dict[str, type[LengthPredictor]] = {
    "none": NoPredictor,
    "oracle": OraclePredictor,
    "lognormal": LognormalPredictor,
    "buckets": BucketPredictor,
}


def length_predictor_from_dict(d: Any, path: str = "") -> LengthPredictor:
    """Build a predictor from its YAML form (a mapping with ``kind``, or just the kind's
    name, e.g. ``oracle``)."""
    kinds = sorted(LENGTH_PREDICTORS)
    if isinstance(d, str):
        d = {"kind": d}
    d = as_mapping(path, d, f"a mapping with key 'kind' (one of {', '.join(kinds)})")
    if "kind" not in d:
        raise ConfigError(f"missing required key 'kind' (one of {', '.join(kinds)})", path)
    kind = prefixed_choice(path, "kind", d["kind"], kinds)
    return LENGTH_PREDICTORS[kind].from_dict(d, path)
