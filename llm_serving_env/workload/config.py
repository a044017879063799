"""The ``workload`` config section: arrival process, prompt and output lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm_serving_env.schema.fields import (
    ConfigError,
    as_mapping,
    check_keys,
    construct,
    join_path,
)
from llm_serving_env.workload.arrivals import ArrivalProcess, arrival_process_from_dict
from llm_serving_env.workload.lengths import LengthDistribution, length_distribution_from_dict


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
        d = as_mapping(path, d)
        keys = ["arrival", "prompt_tokens", "output_tokens"]
        check_keys(path, d, keys, keys)
        return construct(
            cls,
            path,
            {
                "arrival": arrival_process_from_dict(d["arrival"], join_path(path, "arrival")),
                "prompt_tokens": length_distribution_from_dict(
                    d["prompt_tokens"], join_path(path, "prompt_tokens")
                ),
                "output_tokens": length_distribution_from_dict(
                    d["output_tokens"], join_path(path, "output_tokens")
                ),
            },
        )

