"""Attention's share of an iteration's time, from the model's shape and the GPU's limits.

The token-count model S(b) prices the linear layers (projections, MLP, all-reduces), whose
work is proportional to the tokens in the batch. Attention's work depends on the context
instead. With ``service.attention: true`` an iteration takes ``S(b) + A`` seconds, where::

    A = sum over decodes i of  ctx_i * kv_bytes_per_token / (tp * hbm_bytes_per_s * eta_bw)
      + sum over prefill chunks j of  pairs_j * 4 * num_layers * hidden_size
                                       / (tp * peak_flop_per_s * eta_flops)

* a decode reads the whole KV cache of its request, ``ctx_i = prompt + generated`` tokens
  (every token before it and itself), ``kv_bytes_per_token = 2 * layers * kv_heads *
  head_dim * bytes`` (:class:`~llm_serving_env.hardware.specs.ModelSpec`): memory-bound, so
  time is bytes over bandwidth;
* a prefill chunk of ``n`` tokens at context offset ``p`` (tokens already prefilled) attends
  causally to ``pairs = n * p + n * (n + 1) / 2`` (query, key) pairs; each pair costs
  ``2 * hidden_size`` FLOPs for Q K^T and as many for P V per layer (query heads x head size
  = hidden size): compute-bound, so time is FLOPs over throughput;
* tensor parallelism splits heads, hence KV bytes and FLOPs, evenly over ``tp`` GPUs;
* ``eta_bw``, ``eta_flops`` in (0, 1] are the fractions of peak bandwidth and FLOP/s the
  kernels reach (fitted to measured profiles by ``scripts/fit_attention.py``). Because they are
  at most 1, no configuration reports an attention time below what the GPU's peak bandwidth and
  FLOP/s physically allow.

Left out: the prefill's reads of its prefix's KV (a chunk of n tokens reads p tokens' KV once,
n times fewer bytes per FLOP than a decode), softmax and masking work, and attention kernels'
fixed launch costs (they are in S(b)'s c). The term is deterministic: service noise multiplies
S(b)'s c and a only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llm_serving_env.hardware.specs import GpuSpec, ModelSpec

__all__ = ["AttentionCost"]


@dataclass(frozen=True)
class AttentionCost:
    """Attention time of one iteration on one replica.

    Attributes:
        decode_s_per_token: seconds per context token of a decode (KV read).
        prefill_s_per_pair: seconds per causal (query, key) pair of a prefill chunk.
    """

    decode_s_per_token: float
    prefill_s_per_pair: float

    @classmethod
    def from_hardware(cls, model: ModelSpec, gpu: GpuSpec, tensor_parallel: int,
                      bandwidth_efficiency: float, flops_efficiency: float) -> AttentionCost:
        """Coefficients from the model's shape, the GPU's peak bandwidth and FLOP/s, the
        tensor parallelism and the two efficiencies (module docstring)."""
        if model.hidden_size is None:
            raise ValueError("the model's hidden_size is unknown")
        if gpu.peak_tflops is None or gpu.hbm_gb_per_s is None:
            raise ValueError("the GPU's peak_tflops and hbm_gb_per_s are unknown")
        if not (0.0 < bandwidth_efficiency <= 1.0 and 0.0 < flops_efficiency <= 1.0):
            raise ValueError("efficiencies must lie in (0, 1]")
        bandwidth = tensor_parallel * gpu.hbm_gb_per_s * 1e9 * bandwidth_efficiency
        flops = tensor_parallel * gpu.peak_tflops * 1e12 * flops_efficiency
        return cls(decode_s_per_token=model.kv_bytes_per_token / bandwidth,
                   prefill_s_per_pair=4.0 * model.num_layers * model.hidden_size / flops)

    def time_s(self, decode_context_tokens: np.ndarray, chunk_offsets: np.ndarray,
               chunk_tokens: np.ndarray) -> float:
        """Attention time in seconds of an iteration.

        Args:
            decode_context_tokens: context of each decode (prompt + generated), int ``(d,)``.
            chunk_offsets: tokens already prefilled before each chunk, int ``(m,)``.
            chunk_tokens: tokens of each chunk, int ``(m,)``.
        """
        t = 0.0
        if decode_context_tokens.size:
            t += self.decode_s_per_token * float(decode_context_tokens.sum())
        if chunk_tokens.size:
            pairs = chunk_tokens * (2 * chunk_offsets + chunk_tokens + 1)  # twice the pairs
            t += self.prefill_s_per_pair * 0.5 * float(pairs.sum())
        return t

    def planned_s(self, base_s: np.ndarray, decode_context_tokens: float,
                  chunk_offset: float) -> np.ndarray:
        """A planner's iteration time at each load b = 0..K-1 (seconds, float64 ``(K,)``):
        ``base_s[b]`` (the service's S(b)) plus every decode's KV read (their contexts sum to
        ``decode_context_tokens``) plus the attention of a b-token chunk at ``chunk_offset``
        tokens already prefilled. An over-estimate of :meth:`time_s` (b counts the decodes
        too), nondecreasing in b when ``base_s`` is. Built from public state only: prompts,
        tokens generated and tokens prefilled."""
        extra = self.decode_s_per_token * decode_context_tokens if decode_context_tokens else 0.0
        b = np.arange(base_s.size, dtype=np.float64)
        return base_s + extra + self.prefill_s_per_pair * (b * chunk_offset + b * (b + 1) / 2)
