"""Named service-time presets: fits of S(b) for a model on given hardware, with provenance.

Use one in a config as ``service: {preset: NAME}``; fields given beside it override the preset
(e.g. ``{preset: llama3_70b_a100_tp2, noise: exponential}``). The fits are made by
``scripts/fit_service_presets.py`` from the profiles in ``data/profiles/`` (provenance and
licenses in ``data/profiles/README.md``), which writes every fit with its error to
``data/profiles/service_fits.csv``. Errors quoted below are over the fitted profile points:
RMSE, largest and median relative error ``|S(b) - y| / y``; the fits minimize the squared
relative error, with b0 chosen on an integer grid.

**Tensor parallelism.** ``service: {preset: NAME, tensor_parallel: T}`` rescales a piecewise-
linear preset measured at ``T0`` GPUs (:data:`SERVICE_PRESET_HARDWARE`) to ``T`` GPUs
(:func:`transform_tensor_parallel`). Assumptions, stated plainly:

* the compute of an iteration (everything but the TP all-reduces) splits evenly over the GPUs,
  so both its fixed part and its per-token part scale by ``T0 / T``. Vidur's Llama-3-70B
  linear-op profiles support this from TP 1 to 4 (c = 92.3, 47.5, 25.9 ms and a = 0.618,
  0.311, 0.159 ms/token at TP 1, 2, 4); at TP 8 the fixed part shrinks less (14.8 ms, not
  11.9);
* each of the ``2 * num_layers`` all-reduces per iteration (after attention and after the MLP)
  of ``b * hidden_size * bytes_per_value`` bytes costs what the all-reduce fit of the GPU's
  interconnect says (:data:`llm_serving_env.hardware.specs.ALLREDUCE_FITS`, ring algorithm): its
  latency adds to c, its per-token part to a (applied from b = 0 in truth; folding it into a
  above b0 errs by at most ``b0 * per-token cost``, under 1 ms here); the preset is taken to
  include the all-reduces of its own T0;
* b0 does not change (the knee is where a GEMM's token dimension saturates the GPU, which
  splitting the weight dimension leaves alone; Vidur's b0 are 65, 63, 69, 66 at TP 1-8).

* for the presets fitted to splitwise-sim's end-to-end runs (``llama2_70b_*``) a part ``f``
  of c does not shrink with T (CPU scheduling, sampling, kernel launches), and the all-reduce
  is an effective one; ``f`` and the all-reduce's latency and bandwidth are fitted so the TP2
  fit transforms into the TP4 and TP8 measurements (A100: f = 19.26 ms, 0.120 ms + size /
  59.9 GB/s; H100: 14.56 ms, 0.091 ms + size / 101.6 GB/s).

Residual (``data/profiles/tp_transform_check.csv``): against splitwise-sim's TP4 / TP8 points
the transformed A100 preset errs by a median 11.6% / 14.2% (max 27.8% / 27.1%), the H100 one
by 10.6% / 15.5% (max 27.8% / 41.8%); the piecewise-linear form fitted directly to those
points errs by 8.2% / 8.9% (A100) and 8.9% / 15.7% (H100), so most of what is left is the
form's. Without the fixed part, with Vidur's NVLink all-reduce, the A100 transformation
under-predicted by a median 25% / 52%. The Vidur/Li presets keep f = 0 and Vidur's all-reduce
(Vidur's linear ops do scale as 1/T to TP 4); for them the transformation is an optimistic
bound on the benefit of more GPUs.
A preset without an all-reduce fit or of staircase form cannot be transformed; the weights
must fit in ``T`` GPUs' memory.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from llm_serving_env.hardware.specs import (
    ALLREDUCE_FITS,
    GPU_PRESETS,
    MODEL_PRESETS,
    AllReduceSpec,
)
from llm_serving_env.schema.fields import ConfigError

__all__ = [
    "SERVICE_PRESETS",
    "SERVICE_PRESET_HARDWARE",
    "TENSOR_PARALLEL_SIZES",
    "PresetHardware",
    "resolve_service_preset",
    "transform_tensor_parallel",
]

SERVICE_PRESETS: dict[str, dict[str, Any]] = {
    # Li, Dai, Peng et al., "Throughput-optimal scheduling algorithms for LLM inference and AI
    # agents" (arXiv 2504.07347, v1, Sec. 2.1): Llama-3-70B on two A100-80GB with NVLink,
    # tensor parallel: S(b) = 45.5 ms + 0.30 ms/token * max(0, b - 64). Quoted by the brief.
    # Close to the fit of Vidur's linear ops alone (47.5 ms, 0.311 ms/token, b0 63).
    "llama3_70b_a100_tp2": {
        "model": "piecewise_linear", "c_ms": 45.5, "a_ms": 0.30, "b0_tokens": 64,
    },
    # The same paper's later version fits a staircase for CodeLlama-34B on one A100:
    # S(b) = 11.28 ms + 35.47 ms * ceil(b / 128).
    "codellama34b_a100_staircase": {
        "model": "staircase", "c_ms": 11.28, "a_ms": 35.47, "b0_tokens": 128,
    },
    # Fit of data/profiles/llama3-70b_a100_tp2_iteration_time_derived.csv, total_ms (Vidur's
    # measured linear ops of 80 layers + 2 TP all-reduces per layer, interpolated from Vidur's
    # A100 NVLink profile), b = 1..8192 (323 points). No attention kernel, LM head or CPU
    # overhead (not in the profile): a lower bound on a real iteration.
    # Error: RMSE 15.9 ms, max relative 20.4% (at the knee), median 1.7%.
    "llama3_70b_a100_tp2_fit": {
        "model": "piecewise_linear", "c_ms": 55.06, "a_ms": 0.3232, "b0_tokens": 60,
    },
    # Staircase fit of the same profile, which fits it better (GEMM tiles of 128 tokens):
    # S(b) = 16.66 ms + 41.48 ms * ceil(b / 128). Error: RMSE 14.5 ms, max relative 19.8%,
    # median 1.3%.
    "llama3_70b_a100_tp2_staircase_fit": {
        "model": "staircase", "c_ms": 16.66, "a_ms": 41.48, "b0_tokens": 128,
    },
    # splitwise-sim's measured perf model (data/profiles/splitwise_sim_perf_model.csv),
    # Llama-2-70B, A100-80GB, TP 2, end to end: 8 prefill points (b = prompt x batch tokens,
    # 128..16384) and 6 decode-step points (b = batch = 1..32), batch 64 dropped.
    # Error: RMSE 160 ms (the long prefills, where attention grows with the prompt squared),
    # max relative 13.9%, median 4.5%. Its smallest prefill has 128 tokens, so b0 rests on the
    # decode points.
    "llama2_70b_a100_tp2": {
        "model": "piecewise_linear", "c_ms": 62.15, "a_ms": 0.3655, "b0_tokens": 96,
    },
    # The same on H100-80GB, TP 2. Error: RMSE 16.8 ms, max relative 20.7%, median 3.4%.
    "llama2_70b_h100_tp2": {
        "model": "piecewise_linear", "c_ms": 41.44, "a_ms": 0.1458, "b0_tokens": 196,
    },
    # Staircase fit of the H100 profile, better in RMSE (13.7 ms) and max relative error
    # (18.9%), worse in median (4.5%).
    "llama2_70b_h100_tp2_staircase": {
        "model": "staircase", "c_ms": 3.851, "a_ms": 38.56, "b0_tokens": 261,
    },
    # Context-aware presets (service.attention: true, llm_serving_env.hardware.attention):
    # S(b) prices the linear layers and the attention term the context.
    # Vidur's linear ops + TP all-reduces (the llama3_70b_a100_tp2_fit above: its profile has no
    # attention kernel) plus attention at the A100 fit's efficiencies.
    "llama3_70b_a100_tp2_attention": {
        "model": "piecewise_linear", "c_ms": 55.06, "a_ms": 0.3232, "b0_tokens": 60,
        "attention": True,
    },
    # Joint fits to splitwise-sim's Llama-2-70B TP2 points, each prefill and decode step with
    # its own context (scripts/fit_attention.py, data/profiles/attention_fits.csv). A100: max
    # relative error 13.9% (token-count model on the same 24 points: 19.3%), median 5.7%
    # (6.3%); H100: RMSE 13.0 ms (28.0), median 2.9% (4.2%), max 23.1% (24.6%).
    "llama2_70b_a100_tp2_attention": {
        "model": "piecewise_linear", "c_ms": 57.2788, "a_ms": 0.35878, "b0_tokens": 81,
        "attention": True,
    },
    "llama2_70b_h100_tp2_attention": {
        "model": "piecewise_linear", "c_ms": 39.234, "a_ms": 0.140431, "b0_tokens": 179,
        "attention": True,
    },
}


@dataclass(frozen=True)
class PresetHardware:
    """What a preset was measured on: the model (a ``hardware.MODEL_PRESETS`` name or None),
    the GPU (``hardware.GPU_PRESETS``), GPUs per replica, the all-reduce fit of its
    interconnect (``hardware.ALLREDUCE_FITS``; None = no profile) and the per-iteration time
    in ms that does not shrink with more GPUs (:func:`transform_tensor_parallel`)."""

    model: str | None
    gpu: str
    tensor_parallel: int
    allreduce: str | None
    fixed_ms: float = 0.0


#: Per-iteration time (ms) that does not shrink with TP in splitwise-sim's runs, fitted with the
#: ``splitwise_*`` all-reduces of ``hardware.specs.ALLREDUCE_FITS``.
SPLITWISE_FIXED_MS: dict[str, float] = {"a100": 19.26, "h100": 14.56}

SERVICE_PRESET_HARDWARE: dict[str, PresetHardware] = {
    "llama3_70b_a100_tp2": PresetHardware("llama3_70b", "a100_80gb", 2, "a100_nvlink"),
    "codellama34b_a100_staircase": PresetHardware(None, "a100_80gb", 1, None),
    "llama3_70b_a100_tp2_fit": PresetHardware("llama3_70b", "a100_80gb", 2, "a100_nvlink"),
    "llama3_70b_a100_tp2_staircase_fit": PresetHardware("llama3_70b", "a100_80gb", 2,
                                                        "a100_nvlink"),
    "llama2_70b_a100_tp2": PresetHardware("llama2_70b", "a100_80gb", 2, "splitwise_a100",
                                          SPLITWISE_FIXED_MS["a100"]),
    "llama2_70b_h100_tp2": PresetHardware("llama2_70b", "h100_80gb", 2, "splitwise_h100",
                                          SPLITWISE_FIXED_MS["h100"]),
    "llama2_70b_h100_tp2_staircase": PresetHardware("llama2_70b", "h100_80gb", 2, None),
    "llama3_70b_a100_tp2_attention": PresetHardware("llama3_70b", "a100_80gb", 2,
                                                    "a100_nvlink"),
    "llama2_70b_a100_tp2_attention": PresetHardware("llama2_70b", "a100_80gb", 2,
                                                    "splitwise_a100", SPLITWISE_FIXED_MS["a100"]),
    "llama2_70b_h100_tp2_attention": PresetHardware("llama2_70b", "h100_80gb", 2,
                                                    "splitwise_h100", SPLITWISE_FIXED_MS["h100"]),
}

#: Tensor-parallel sizes a preset may be transformed to (the range Vidur profiles, 1-8).
TENSOR_PARALLEL_SIZES: tuple[int, ...] = (1, 2, 4, 8)


def transform_tensor_parallel(
    c_ms: float,
    a_ms: float,
    b0_tokens: int,
    *,
    from_tp: int,
    to_tp: int,
    num_layers: int,
    hidden_size: int,
    bytes_per_value: float,
    allreduce: str | AllReduceSpec | None,
    fixed_ms: float = 0.0,
) -> tuple[float, float, int]:
    """Rescale a piecewise-linear S(b) from ``from_tp`` to ``to_tp`` GPUs (module docstring).

    With ``L = num_layers``, all-reduce latency ``lat`` (ms) and per-token all-reduce cost
    ``k_t = 2 L * 2 (t - 1) / t * hidden_size * bytes_per_value / bus_bandwidth`` (ms/token),
    ``lam_t = 2 L * lat`` for t >= 2 and ``lam_1 = k_1 = 0``::

        c_T = f + (T0 / T) * (c - f - lam_T0) + lam_T
        a_T = (T0 / T) * (a - k_T0) + k_T
        b0_T = b0

    where ``f = fixed_ms`` is per-iteration time that does not shrink with T (CPU scheduling,
    sampling, launches; 0 assumes all of it splits). ``allreduce`` is an
    :data:`~llm_serving_env.hardware.specs.ALLREDUCE_FITS` name or a spec; None models no
    communication (lam = k = 0). Returns ``(c_ms, a_ms, b0_tokens)`` rounded to 6 decimals.
    Raises ValueError if the preset is smaller than its own all-reduce and fixed cost.
    """

    def comm(t: int) -> tuple[float, float]:
        if allreduce is None or t <= 1:
            return 0.0, 0.0
        spec = ALLREDUCE_FITS[allreduce] if isinstance(allreduce, str) else allreduce
        per_token = spec.time_ms(hidden_size * bytes_per_value, t) - spec.latency_ms
        return 2 * num_layers * spec.latency_ms, 2 * num_layers * per_token

    lam0, k0 = comm(from_tp)
    lam1, k1 = comm(to_tp)
    if c_ms < lam0 + fixed_ms or a_ms < k0:
        raise ValueError(f"S(b) (c = {c_ms} ms, a = {a_ms} ms/token) is below the cost of its "
                         f"own all-reduces (c {lam0:.3f} ms, a {k0:.5f} ms/token)")
    scale = from_tp / to_tp
    return (round(fixed_ms + scale * (c_ms - fixed_ms - lam0) + lam1, 6),
            round(scale * (a_ms - k0) + k1, 6),
            int(b0_tokens))


def resolve_service_preset(name: Any, tensor_parallel: Any = None,
                           path: str = "service") -> dict[str, Any]:
    """The fields of service preset ``name`` at ``tensor_parallel`` GPUs per replica.

    Returns the preset's fields plus ``tensor_parallel`` (its own when None is asked). A
    different ``tensor_parallel`` applies :func:`transform_tensor_parallel`.

    Raises:
        ConfigError: unknown preset (naming ``path.preset``, with a did-you-mean hint), or a
            ``tensor_parallel`` the preset cannot be transformed to (naming
            ``path.tensor_parallel``).
    """
    if not isinstance(name, str) or name not in SERVICE_PRESETS:
        close = difflib.get_close_matches(str(name), SERVICE_PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown service preset{hint}; available: {', '.join(SERVICE_PRESETS)}",
            f"{path}.preset", name)
    fields = dict(SERVICE_PRESETS[name])
    hw = SERVICE_PRESET_HARDWARE.get(name)
    native = None if hw is None else hw.tensor_parallel
    if tensor_parallel is None or tensor_parallel == native:
        return {**fields, "tensor_parallel": native}
    where = f"{path}.tensor_parallel"
    if isinstance(tensor_parallel, float) and tensor_parallel.is_integer():
        tensor_parallel = int(tensor_parallel)
    if (isinstance(tensor_parallel, bool) or not isinstance(tensor_parallel, int)
            or tensor_parallel not in TENSOR_PARALLEL_SIZES):
        sizes = ", ".join(map(str, TENSOR_PARALLEL_SIZES))
        raise ConfigError(f"must be one of {sizes} to transform preset {name!r}", where,
                          tensor_parallel)
    why = None
    if hw is None or hw.model is None:
        why = "its model's shape is not recorded"
    elif fields["model"] != "piecewise_linear":
        why = f"it is a {fields['model']} fit (only piecewise_linear presets are rescaled)"
    elif hw.allreduce is None and max(tensor_parallel, hw.tensor_parallel) > 1:
        why = f"there is no all-reduce profile for its GPU ({hw.gpu})"
    if why is not None:
        raise ConfigError(f"preset {name!r} cannot be rescaled to another tensor_parallel: "
                          f"{why}; give c_ms, a_ms, b0_tokens for this hardware instead",
                          where, tensor_parallel)

    model = MODEL_PRESETS[hw.model]
    memory = GPU_PRESETS[hw.gpu].memory_gb
    if model.weights_gb is not None and model.weights_gb > tensor_parallel * memory:
        raise ConfigError(
            f"{hw.model}'s weights ({model.weights_gb:.1f} GB) do not fit in "
            f"{tensor_parallel} x {hw.gpu} ({tensor_parallel * memory:g} GB)", where,
            tensor_parallel)
    assert model.hidden_size is not None
    c, a, b0 = transform_tensor_parallel(
        fields["c_ms"], fields["a_ms"], fields["b0_tokens"], from_tp=hw.tensor_parallel,
        to_tp=tensor_parallel, num_layers=model.num_layers, hidden_size=model.hidden_size,
        bytes_per_value=model.bytes_per_value, allreduce=hw.allreduce, fixed_ms=hw.fixed_ms)
    return {**fields, "c_ms": c, "a_ms": a, "b0_tokens": b0, "tensor_parallel": tensor_parallel}
