"""The ``service`` config section: the batch service-time model S(b).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm_serving_env.hardware.presets import resolve_service_preset
from llm_serving_env.schema.fields import (
    ConfigError,
    as_float,
    as_int,
    as_mapping,
    choice,
    from_flat_dict,
    to_flat_dict,
)

SERVICE_MODELS: tuple[str, ...] = ("piecewise_linear", "staircase")


SERVICE_NOISES: tuple[str, ...] = ("deterministic", "exponential", "gamma")


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Batch service time S(b) for token load b (see ``llm_serving_env.hardware.service``).

    ``piecewise_linear``: S(b) = c + a * max(0, b - b0);  ``staircase``: S(b) = c + a*ceil(b/b0).
    ``c_ms`` is the per-batch setup time (ms), ``a_ms`` the cost per token (ms/token) or per
    step of ``b0_tokens`` (staircase). ``noise``: ``deterministic`` (S is the formula),
    ``exponential`` (C, A exponential with means c, a) or ``gamma`` (C, A gamma with means c, a
    and coefficient of variation ``cv``, required > 0 and only allowed for gamma).

    ``preset`` names the preset (``llm_serving_env.hardware.presets``) the fields came
    from; fields given
    beside it override it. ``tensor_parallel`` is the number of GPUs of one replica that S(b)
    describes (None = unspecified, taken as 1 for the KV capacity); with a preset it defaults
    to the preset's own, and a different value rescales the preset
    (``presets.transform_tensor_parallel``), e.g. ``{preset: llama3_70b_a100_tp2,
    tensor_parallel: 4}``. Explicit ``c_ms``/``a_ms``/``b0_tokens`` are taken as given.

    ``attention: true`` adds the context's attention time to S(b)
    (``llm_serving_env.hardware.attention``): decodes read their KV at
    ``attention_bandwidth_efficiency`` x the GPU's peak HBM bandwidth, prefill chunks attend at
    ``attention_flops_efficiency`` x its peak FLOP/s (each in (0, 1]; None = the fit for the
    GPU in ``hardware.specs.ATTENTION_EFFICIENCY_FITS``). The model's shape and the GPU come
    from the top-level ``model`` block and ``gpus.gpu``, else from what the preset was measured
    on; the tensor parallelism from ``tensor_parallel``. Off by default (the brief's model).
    """

    model: str = "piecewise_linear"
    c_ms: float
    a_ms: float
    b0_tokens: int
    noise: str = "deterministic"
    cv: float | None = None
    preset: str | None = None  # the named preset the fields came from (documentation only)
    tensor_parallel: int | None = None  # GPUs per replica (see the class docstring)
    attention: bool = False
    attention_bandwidth_efficiency: float | None = None
    attention_flops_efficiency: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.attention, bool):
            raise ConfigError("must be true or false", "attention", self.attention)
        for name in ("attention_bandwidth_efficiency", "attention_flops_efficiency"):
            value = getattr(self, name)
            if value is None:
                continue
            if not self.attention:
                raise ConfigError("is only used with attention: true", name, value)
            value = as_float(name, value, gt=0.0)
            if value > 1.0:
                raise ConfigError("must be in (0, 1]: a fraction of the GPU's peak (above 1 "
                                  "would beat the hardware)", name, value)
            object.__setattr__(self, name, value)
        if self.tensor_parallel is not None:
            object.__setattr__(self, "tensor_parallel",
                               as_int("tensor_parallel", self.tensor_parallel, ge=1))
        model = choice("model", self.model, SERVICE_MODELS)
        object.__setattr__(self, "c_ms", as_float("c_ms", self.c_ms, ge=0.0))
        object.__setattr__(self, "a_ms", as_float("a_ms", self.a_ms, ge=0.0))
        min_b0 = 1 if model == "staircase" else 0
        extra = f" for model {model!r}" if model == "staircase" else ""
        object.__setattr__(
            self, "b0_tokens", as_int("b0_tokens", self.b0_tokens, ge=min_b0, extra=extra)
        )
        noise = choice("noise", self.noise, SERVICE_NOISES)
        if noise == "gamma":
            if self.cv is None:
                raise ConfigError("required (a number > 0) when noise is 'gamma'", "cv", None)
            object.__setattr__(self, "cv", as_float("cv", self.cv, gt=0.0))
        elif self.cv is not None:
            raise ConfigError(
                f"must be null unless noise is 'gamma' (noise is {noise!r})", "cv", self.cv
            )

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form. With a preset: ``preset``, ``tensor_parallel`` and only the fields
        that differ from the (rescaled) preset, so ``replace`` of the preset or of
        ``tensor_parallel`` re-resolves the rest."""
        d = to_flat_dict(self)
        # the attention fields at their defaults are left out (the brief's model keeps the
        # YAML form it always had), unless a preset sets them otherwise
        defaults = {"attention": False, "attention_bandwidth_efficiency": None,
                    "attention_flops_efficiency": None}
        if self.preset is None:
            return {k: v for k, v in d.items() if k not in defaults or v != defaults[k]}

        try:
            base = resolve_service_preset(self.preset, self.tensor_parallel)
        except ConfigError:  # built by hand with a preset name that does not resolve
            return d
        keep = ("preset", "tensor_parallel")
        return {k: v for k, v in d.items() if k in keep or (
            base[k] != v if k in base else k not in defaults or v != defaults[k])}

    @classmethod
    def from_dict(cls, d: Any, path: str = "service") -> ServiceConfig:
        """Fields from ``d``; with ``preset: NAME`` the preset's fields (rescaled to
        ``tensor_parallel`` if given) are the defaults."""
        d = as_mapping(path, d)
        name = d.get("preset")
        if name is not None:

            d = {**resolve_service_preset(name, d.get("tensor_parallel"), path),
                 **{k: v for k, v in d.items() if not (k == "tensor_parallel" and v is None)}}
        return from_flat_dict(cls, d, path)

