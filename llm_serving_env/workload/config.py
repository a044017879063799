"""The ``workload`` config section: arrival process, prompt and output lengths, and the
output-length predictor that decides what schedulers may know of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_serving_env.schema.fields import (
    ConfigError,
    as_mapping,
    check_keys,
    construct,
    join_path,
)
from llm_serving_env.workload.arrivals import ArrivalProcess, arrival_process_from_dict
from llm_serving_env.workload.lengths import (
    LengthDistribution,
    TraceLength,
    length_distribution_from_dict,
)
from llm_serving_env.workload.predictors import (
    LengthPredictor,
    NoPredictor,
    length_predictor_from_dict,
)
from llm_serving_env.workload.prefixes import PrefixSharing
from llm_serving_env.workload.traces import Trace, load_trace


@dataclass(frozen=True)
class WorkloadConfig:
    """What arrives: arrival process, prompt lengths L_i and output budgets B_i (tokens), and
    ``length_predictor``, what schedulers and the env may know of B_i (default ``none``:
    nothing; see :mod:`llm_serving_env.workload.predictors`); ``prefix_sharing``, synthetic
    prefix identity for prefix caching (:class:`~llm_serving_env.workload.prefixes.
    PrefixSharing`; a replayed trace with prefix ids, Mooncake's, brings its own)."""

    arrival: ArrivalProcess
    prompt_tokens: LengthDistribution
    output_tokens: LengthDistribution
    length_predictor: LengthPredictor = field(default_factory=NoPredictor)
    prefix_sharing: PrefixSharing | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.arrival, ArrivalProcess):
            raise ConfigError("must be an arrival process", "arrival", self.arrival)
        for name in ("prompt_tokens", "output_tokens"):
            if not isinstance(getattr(self, name), LengthDistribution):
                raise ConfigError("must be a length distribution", name, getattr(self, name))
        if not isinstance(self.length_predictor, LengthPredictor):
            raise ConfigError("must be a length predictor", "length_predictor",
                              self.length_predictor)
        if self.prefix_sharing is not None:
            trace = replayed_prompt_trace(self)
            if trace is not None and trace.prefix_block_tokens:
                raise ConfigError(
                    f"the prompts are replayed from {trace.path.name}, which records their "
                    "prefix ids (hash_ids): remove prefix_sharing", "prefix_sharing",
                    self.prefix_sharing.to_dict())

    def to_dict(self) -> dict[str, Any]:
        d = {
            "arrival": self.arrival.to_dict(),
            "prompt_tokens": self.prompt_tokens.to_dict(),
            "output_tokens": self.output_tokens.to_dict(),
            "length_predictor": self.length_predictor.to_dict(),
        }
        if self.prefix_sharing is not None:
            d["prefix_sharing"] = self.prefix_sharing.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Any, path: str = "workload") -> WorkloadConfig:
        d = as_mapping(path, d)
        keys = ["arrival", "prompt_tokens", "output_tokens"]
        check_keys(path, d, [*keys, "length_predictor", "prefix_sharing"], keys)
        extra: dict[str, Any] = {}
        if d.get("prefix_sharing") is not None:
            extra["prefix_sharing"] = PrefixSharing.from_dict(
                d["prefix_sharing"], join_path(path, "prefix_sharing"))
        if d.get("length_predictor") is not None:
            extra["length_predictor"] = length_predictor_from_dict(
                d["length_predictor"], join_path(path, "length_predictor"))
        return construct(
            cls,
            path,
            {
                **extra,
                "arrival": arrival_process_from_dict(d["arrival"], join_path(path, "arrival")),
                "prompt_tokens": length_distribution_from_dict(
                    d["prompt_tokens"], join_path(path, "prompt_tokens")
                ),
                "output_tokens": length_distribution_from_dict(
                    d["output_tokens"], join_path(path, "output_tokens")
                ),
            },
        )



def replayed_prompt_trace(cfg: WorkloadConfig) -> Trace | None:
    """The trace whose rows the prompts replay in order (``{dist: trace, order: replay}``),
    else None."""
    prompts = cfg.prompt_tokens
    if isinstance(prompts, TraceLength) and prompts.order == "replay":
        return load_trace(prompts.path)
    return None
