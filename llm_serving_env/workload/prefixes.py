"""Which prompts share prefixes: the prefix-block ids a prefix cache matches on.

A prompt of L tokens is a chain of ``L // block_tokens`` full prefix blocks (only full blocks
can be cached), each named by an id; two prompts whose first k ids agree share their first k
blocks' KV. The ids come from a replayed trace that records them (Mooncake's ``hash_ids``, see
:mod:`llm_serving_env.workload.traces`) or from :class:`PrefixSharing`, a synthetic generator:
a share of the requests open with one of a few system prompts, as in a deployment where
applications prepend fixed instructions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from llm_serving_env.schema.fields import ConfigError, as_float, as_int, from_flat_dict

__all__ = ["PrefixSharing", "prefix_chains_of_trace"]


@dataclass(frozen=True)
class PrefixSharing:
    """Synthetic prefix identity: shared system prompts.

    YAML ``workload.prefix_sharing: {system_prompts: 4, system_prompt_tokens: 1024, share: 0.8,
    block_tokens: 16}``. Each request, with probability ``share``, opens with one of
    ``system_prompts`` system prompts (uniformly) of ``system_prompt_tokens`` tokens, which are
    part of its prompt length (a prompt shorter than the system prompt is a truncated copy of
    it); the rest of its prompt is its own. Prefix blocks are ``block_tokens`` tokens (vLLM's
    default KV block, 16). The prompt length distribution is unchanged.
    """

    system_prompts: int
    system_prompt_tokens: int
    share: float
    block_tokens: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "system_prompts",
                           as_int("system_prompts", self.system_prompts, ge=1))
        object.__setattr__(self, "system_prompt_tokens",
                           as_int("system_prompt_tokens", self.system_prompt_tokens, ge=1))
        share = as_float("share", self.share, ge=0.0)
        if share > 1.0:
            raise ConfigError("must be a probability in [0, 1]", "share", self.share)
        object.__setattr__(self, "share", share)
        object.__setattr__(self, "block_tokens", as_int("block_tokens", self.block_tokens, ge=1))

    def to_dict(self) -> dict[str, Any]:
        return {"system_prompts": self.system_prompts,
                "system_prompt_tokens": self.system_prompt_tokens, "share": self.share,
                "block_tokens": self.block_tokens}

    @classmethod
    def from_dict(cls, d: Any, path: str = "prefix_sharing") -> PrefixSharing:
        return from_flat_dict(cls, d, path)

    def chains(self, rng: np.random.Generator, prompt_tokens: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Prefix-block ids of each prompt: ``(offsets, ids)``, int64 ``(n + 1,)`` and
        ``(total,)``, request ``i``'s full blocks at ``ids[offsets[i]:offsets[i + 1]]``.

        Draws, for all n requests in order, first whether each opens with a system prompt,
        then which one. System prompt ``k``'s block ``j`` is id ``k * S + j`` with ``S`` its
        number of full blocks; every other block gets an id of its own.
        """
        n = prompt_tokens.size
        opens = rng.random(n) < self.share
        which = rng.integers(0, self.system_prompts, size=n)
        bt = self.block_tokens
        full = prompt_tokens // bt
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(full, out=offsets[1:])
        per_prompt = self.system_prompt_tokens // bt
        shared = np.where(opens, np.minimum(self.system_prompt_tokens, prompt_tokens) // bt, 0)
        request = np.repeat(np.arange(n), full)
        position = np.arange(offsets[-1]) - offsets[:-1][request]
        own = self.system_prompts * per_prompt + np.arange(offsets[-1])
        ids = np.where(position < shared[request], which[request] * per_prompt + position, own)
        return offsets, ids.astype(np.int64)


def prefix_chains_of_trace(offsets: np.ndarray, ids: np.ndarray, n: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` rows' chains of a trace's CSR ``(offsets, ids)``."""
    return offsets[: n + 1].copy(), ids[: int(offsets[n])].copy()
