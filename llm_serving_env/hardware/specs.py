"""Hardware: model shapes and KV sizing, GPU memory, interconnects, tensor-parallel all-reduce.

Units: bytes (``B``), decimal gigabytes ``GB`` = 1e9 bytes, gigabytes per second ``GB/s`` =
1e9 bytes/s, milliseconds ``ms``. A simulator "GPU" (``gpus.count`` of them) is one model
replica, which may span ``tensor_parallel`` physical GPUs.

**KV cache.** Per token a decoder stores a key and a value vector per layer and KV head::

    kv_bytes_per_token = 2 * num_layers * num_kv_heads * head_dim * bytes_per_value

(Llama-3-70B in fp16: 2 * 80 * 8 * 128 * 2 = 327,680 B/token.) The KV capacity of a replica of
``tp`` GPUs of ``memory_gb`` each, of which the fraction ``memory_utilization`` may be used (as
vLLM's ``gpu_memory_utilization``; the rest is activations, CUDA context, fragmentation), is::

    kv_capacity_tokens = floor((tp * memory_gb * memory_utilization - weights_gb) * 1e9
                               / kv_bytes_per_token)

with ``weights_gb = num_params * bytes_per_value / 1e9`` (see :func:`kv_capacity_tokens`).

**Config.** A top-level ``model:`` block (a preset name, or ``{preset: NAME, field: ...}``, or
all four shape fields) plus ``gpus.gpu`` (a preset) and/or ``gpus.memory_gb`` derive
``gpus.kv_capacity_tokens`` when it is not given (see :func:`resolve_kv_capacity`), so the
counterfactual "double the GPU memory" is the one field ``gpus.memory_gb``. The model also gives
the disaggregated KV transfer its ``kv_bytes_per_token`` when that is not set.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_serving_env.schema.fields import (
    ConfigError,
    as_float,
    as_int,
    as_mapping,
    check_keys,
    join_path,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "ALLREDUCE_FITS",
    "ATTENTION_EFFICIENCY_FITS",
    "GPU_PRESETS",
    "INTERCONNECT_PRESETS",
    "MODEL_PRESETS",
    "AllReduceSpec",
    "GpuSpec",
    "InterconnectSpec",
    "ModelSpec",
    "gpu_spec",
    "kv_capacity_tokens",
    "model_from_yaml",
]


def _unknown(kind: str, path: str, name: Any, table: Mapping[str, Any]) -> ConfigError:
    close = difflib.get_close_matches(str(name), list(table), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind}{hint}; available: {', '.join(table)}", path, name)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """The shape of a decoder-only transformer, as far as serving cost needs it.

    Attributes:
        num_layers: transformer blocks.
        num_kv_heads: key/value heads per layer (= attention heads without GQA).
        head_dim: dimension of one head.
        bytes_per_value: bytes per stored KV value and weight (fp16/bf16: 2, fp8: 1).
        num_params: parameter count (for the weights' memory); None = unknown.
        hidden_size: model width (for the tensor-parallel all-reduce size); None = unknown.
        preset: the named preset the fields came from (documentation; fields beside it
            override it).
    """

    num_layers: int
    num_kv_heads: int
    head_dim: int
    bytes_per_value: float = 2.0
    num_params: float | None = None
    hidden_size: int | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_kv_heads", "head_dim"):
            object.__setattr__(self, name, as_int(name, getattr(self, name), ge=1))
        object.__setattr__(self, "bytes_per_value",
                           as_float("bytes_per_value", self.bytes_per_value, gt=0.0))
        if self.num_params is not None:
            object.__setattr__(self, "num_params", as_float("num_params", self.num_params, gt=0.0))
        if self.hidden_size is not None:
            object.__setattr__(self, "hidden_size", as_int("hidden_size", self.hidden_size, ge=1))
        if self.preset is not None and self.preset not in MODEL_PRESETS:
            raise _unknown("model preset", "preset", self.preset, MODEL_PRESETS)

    @property
    def kv_bytes_per_token(self) -> float:
        """Bytes of KV cache per token: 2 (K and V) * layers * KV heads * head dim * bytes."""
        return 2.0 * self.num_layers * self.num_kv_heads * self.head_dim * self.bytes_per_value

    @property
    def weights_gb(self) -> float | None:
        """Memory of the weights in GB (1e9 B): num_params * bytes_per_value / 1e9."""
        if self.num_params is None:
            return None
        return self.num_params * self.bytes_per_value / 1e9

    def to_dict(self) -> dict[str, Any]:
        """YAML form: ``{preset: NAME}`` plus the fields that differ from the preset, or every
        field without a preset (so ``replace`` of a preset or one field re-resolves)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name != "preset"}
        if self.preset is None:
            return fields
        base = MODEL_PRESETS[self.preset]
        return {"preset": self.preset,
                **{k: v for k, v in fields.items() if getattr(base, k) != v}}


#: Published shapes (the models' Hugging Face ``config.json`` / model cards; parameter counts
#: from those shapes: embeddings + LM head + layers). fp16/bf16 weights and KV.
MODEL_PRESETS: dict[str, ModelSpec] = {
    # meta-llama/Meta-Llama-3-70B: 80 layers, hidden 8192, 64 heads, 8 KV heads (GQA),
    # head dim 128, FFN 28672, vocab 128256 (also the shape in Vidur's profile) -> 70.55e9
    # parameters; KV 2 * 80 * 8 * 128 * 2 = 327,680 B/token.
    "llama3_70b": ModelSpec(num_layers=80, num_kv_heads=8, head_dim=128, bytes_per_value=2,
                            num_params=70.55e9, hidden_size=8192),
    # meta-llama/Meta-Llama-3-8B: 32 layers, hidden 4096, 32 heads, 8 KV heads, head dim 128,
    # FFN 14336, vocab 128256 -> 8.03e9 parameters; KV 131,072 B/token.
    "llama3_8b": ModelSpec(num_layers=32, num_kv_heads=8, head_dim=128, bytes_per_value=2,
                           num_params=8.03e9, hidden_size=4096),
    # meta-llama/Llama-2-70b-hf (Touvron et al. 2023, GQA for 70B): 80 layers, hidden 8192,
    # 64 heads, 8 KV heads, head dim 128, FFN 28672, vocab 32000 -> 68.98e9 parameters;
    # KV 327,680 B/token.
    "llama2_70b": ModelSpec(num_layers=80, num_kv_heads=8, head_dim=128, bytes_per_value=2,
                            num_params=68.98e9, hidden_size=8192),
    # meta-llama/Llama-2-7b-hf: 32 layers, hidden 4096, 32 heads = 32 KV heads (no GQA), head
    # dim 128, FFN 11008, vocab 32000 -> 6.74e9 parameters; KV 524,288 B/token.
    "llama2_7b": ModelSpec(num_layers=32, num_kv_heads=32, head_dim=128, bytes_per_value=2,
                           num_params=6.74e9, hidden_size=4096),
}
for _name, _spec in MODEL_PRESETS.items():
    object.__setattr__(_spec, "preset", _name)


def model_from_yaml(value: Any, path: str = "model") -> ModelSpec:
    """Build a :class:`ModelSpec` from YAML: a preset name (``llama3_70b``), a mapping
    ``{preset: NAME, field: value, ...}`` (fields override the preset), or a mapping of the
    fields (``num_layers``, ``num_kv_heads``, ``head_dim`` required)."""
    if isinstance(value, str):
        value = {"preset": value}
    d = as_mapping(path, value, "a model preset name or a mapping of model fields")
    keys = [f.name for f in dataclasses.fields(ModelSpec)]
    name = d.get("preset")
    if name is not None:
        if not isinstance(name, str) or name not in MODEL_PRESETS:
            raise _unknown("model preset", join_path(path, "preset"), name, MODEL_PRESETS)
        base = {k: getattr(MODEL_PRESETS[name], k) for k in keys}
        check_keys(path, d, keys, ())
        d = {**base, **d}
    else:
        check_keys(path, d, keys, ("num_layers", "num_kv_heads", "head_dim"))
    try:
        return ModelSpec(**d)
    except ConfigError as err:
        raise err.within(path) from None


# --------------------------------------------------------------------------------------------
# GPUs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuSpec:
    """One GPU: its memory in GB (1e9 bytes, the nominal marketed size), its peak dense
    fp16/bf16 tensor throughput in TFLOP/s (1e12 FLOP/s) and its HBM bandwidth in GB/s
    (1e9 B/s); None = unknown."""

    memory_gb: float
    description: str = ""
    peak_tflops: float | None = None
    hbm_gb_per_s: float | None = None


#: Nominal memory, dense (no sparsity) fp16/bf16 tensor-core peak and HBM bandwidth (NVIDIA
#: datasheets, SXM parts: A100 312 TFLOP/s, 2,039 GB/s for 80GB and 1,555 GB/s for 40GB;
#: H100 SXM 989 TFLOP/s, 3,350 GB/s). The marketed "80GB" is 80 GiB of HBM (85.9e9 B); using
#: the nominal 80e9 B errs on the small side by 7%, about what drivers and the CUDA context
#: take. Set ``gpus.memory_gb`` to override.
GPU_PRESETS: dict[str, GpuSpec] = {
    "a100_80gb": GpuSpec(80.0, "NVIDIA A100 80GB (HBM2e)", 312.0, 2039.0),
    "a100_40gb": GpuSpec(40.0, "NVIDIA A100 40GB (HBM2)", 312.0, 1555.0),
    "h100_80gb": GpuSpec(80.0, "NVIDIA H100 80GB (HBM3, SXM)", 989.0, 3350.0),
}


#: Fitted attention efficiencies per GPU preset, ``(bandwidth, flops)``: fractions of the peak
#: HBM bandwidth reached by decode attention and of the peak FLOP/s reached by prefill
#: attention (``scripts/fit_attention.py`` on splitwise-sim's Llama-2-70B TP2 measurements,
#: ``data/profiles/attention_fits.csv``). A100: 0.30 (single-request decode steps grow by
#: 0.36 us per context token against 0.080 us at peak) and 1.0 (the fit's bound: prefills up
#: to 8,192 tokens leave attention's quadratic cost below the measurements' noise); H100:
#: 0.96 and 0.25. The A100-40GB shares the 80GB part's.
ATTENTION_EFFICIENCY_FITS: dict[str, tuple[float, float]] = {
    "a100_80gb": (0.3018, 1.0),
    "a100_40gb": (0.3018, 1.0),
    "h100_80gb": (0.9591, 0.2501),
}


def gpu_spec(name: Any, path: str = "gpu") -> GpuSpec:
    """The GPU preset ``name`` (ConfigError naming ``path`` if unknown)."""
    if not isinstance(name, str) or name not in GPU_PRESETS:
        raise _unknown("GPU preset", path, name, GPU_PRESETS)
    return GPU_PRESETS[name]


def kv_capacity_tokens(
    model: ModelSpec | str,
    gpu: GpuSpec | str | float,
    tensor_parallel: int = 1,
    weights_gb: float | None = None,
    memory_utilization: float = 0.9,
) -> int:
    """KV cache capacity of one replica, in tokens.

    ``floor((tensor_parallel * memory_gb * memory_utilization - weights_gb) * 1e9 /
    model.kv_bytes_per_token)``.

    Args:
        model: the model (or a :data:`MODEL_PRESETS` name).
        gpu: a :class:`GpuSpec`, a :data:`GPU_PRESETS` name, or the memory per GPU in GB.
        tensor_parallel: GPUs per replica (weights and KV are split across them).
        weights_gb: memory of the weights in GB; None = ``model.weights_gb``.
        memory_utilization: usable fraction of GPU memory, in (0, 1].

    Raises:
        ValueError: the weights are unknown, or they leave no memory for the KV cache.
    """
    spec = MODEL_PRESETS[model] if isinstance(model, str) else model
    memory = (gpu_spec(gpu).memory_gb if isinstance(gpu, str)
              else gpu.memory_gb if isinstance(gpu, GpuSpec) else float(gpu))
    weights = spec.weights_gb if weights_gb is None else float(weights_gb)
    if weights is None:
        raise ValueError("the model's num_params is unknown: give weights_gb")
    usable = tensor_parallel * memory * memory_utilization
    free_bytes = (usable - weights) * 1e9
    tokens = math.floor(free_bytes / spec.kv_bytes_per_token)
    if tokens < 1:
        raise ValueError(
            f"the weights ({weights:.1f} GB) do not fit in tensor_parallel * memory_gb * "
            f"memory_utilization = {tensor_parallel} * {memory:g} * {memory_utilization:g} = "
            f"{usable:.1f} GB, leaving no room for the KV cache")
    return tokens




# --------------------------------------------------------------------------------------------
# Interconnects (KV transfer between prefill and decode replicas)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InterconnectSpec:
    """A point-to-point link: bandwidth per direction in GB/s and a per-transfer latency."""

    bandwidth_gb_per_s: float
    latency_ms: float
    description: str = ""


#: Nominal per-direction bandwidths. The latency is a per-transfer software/setup cost of
#: order 10 microseconds (NCCL send/recv or a DMA launch; the link's own latency is ~1 us or
#: less): Vidur's A100 NVLink all-reduce of 2 KiB takes 7 us (median). For KV transfers of
#: megabytes the latency hardly matters.
INTERCONNECT_PRESETS: dict[str, InterconnectSpec] = {
    # NVLink 3 on A100: 12 links x 50 GB/s = 600 GB/s total, i.e. 300 GB/s per direction.
    "nvlink": InterconnectSpec(300.0, 0.01, "NVLink 3 (A100): 600 GB/s bidirectional, "
                                            "300 GB/s per direction"),
    # PCIe 4.0 x16: 16 GT/s * 16 lanes * 128/130 / 8 = 31.5 GB/s per direction.
    "pcie4": InterconnectSpec(31.5, 0.01, "PCIe 4.0 x16: 31.5 GB/s per direction"),
    # InfiniBand HDR: 200 Gb/s = 25 GB/s per direction per port.
    "infiniband": InterconnectSpec(25.0, 0.01, "InfiniBand HDR 200 Gb/s: 25 GB/s per "
                                               "direction"),
}


# --------------------------------------------------------------------------------------------
# Tensor-parallel all-reduce
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllReduceSpec:
    """One all-reduce among ``t`` GPUs of ``size`` bytes (ring algorithm) takes
    ``latency_ms + 2 * (t - 1) / t * size / (bus_bandwidth_gb_per_s * 1e6)`` ms; 0 for t = 1.
    """

    latency_ms: float
    bus_bandwidth_gb_per_s: float
    source: str = ""

    def time_ms(self, size_bytes: float, workers: int) -> float:
        """Duration of one all-reduce of ``size_bytes`` among ``workers`` GPUs, in ms."""
        if workers <= 1:
            return 0.0
        ring = 2.0 * (workers - 1) / workers
        return self.latency_ms + ring * size_bytes / (self.bus_bandwidth_gb_per_s * 1e6)


#: Fits of all-reduce profiles (``scripts/fit_service_presets.py``, ``allreduce_fits.csv``).
ALLREDUCE_FITS: dict[str, AllReduceSpec] = {
    # Vidur a100_pairwise_nvlink all_reduce.csv, 2 workers, sizes 16 KiB .. 128 MiB, OLS:
    # 0.0381 ms + size / 192.9 GB/s (RMSE 0.008 ms, median relative error 1.3%; below ~1 MB
    # the medians scatter 0.01-0.065 ms). For t > 2 the ring formula extrapolates with the
    # same bus bandwidth and latency, which assumes a full-bandwidth switch (NVSwitch, as in
    # a DGX A100). Vidur's 4-worker "pairwise" profile (pairs of NVLinked GPUs joined over
    # PCIe, ~16 GB/s) is a different topology and is not used.
    "a100_nvlink": AllReduceSpec(0.0381, 192.9,
                                 "vidur a100_pairwise_nvlink all_reduce.csv, 2 workers"),
    # Effective all-reduces fitted, with a fixed per-iteration time that does not shrink with
    # TP (presets.PresetHardware.fixed_ms: A100 19.26 ms, H100 14.56 ms), so that the TP2
    # fits of splitwise-sim's end-to-end Llama-2-70B times transform into its TP4 and TP8
    # times (scripts/fit_service_presets.py, data/profiles/tp_scaling_fits.csv). They absorb
    # whatever else grows with TP in those runs; not a measurement of the link.
    "splitwise_a100": AllReduceSpec(0.1204, 59.9, "fitted to splitwise-sim A100 TP4/TP8"),
    "splitwise_h100": AllReduceSpec(0.0910, 101.6, "fitted to splitwise-sim H100 TP4/TP8"),
}


# --------------------------------------------------------------------------------------------
# Cross-block resolution (called by SimConfig.__post_init__)
# --------------------------------------------------------------------------------------------




