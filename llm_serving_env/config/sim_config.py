"""The whole simulation config: :class:`SimConfig`, its dict form and ``replace``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llm_serving_env.config.sections import (
    DisaggregationConfig,
    GpuConfig,
    SchedulerConfig,
    SloConfig,
    default_scheduler,
)
from llm_serving_env.hardware.attention import AttentionCost
from llm_serving_env.hardware.presets import SERVICE_PRESET_HARDWARE
from llm_serving_env.hardware.service_config import ServiceConfig
from llm_serving_env.hardware.specs import (
    ATTENTION_EFFICIENCY_FITS,
    GPU_PRESETS,
    MODEL_PRESETS,
    ModelSpec,
    kv_capacity_tokens,
    model_from_yaml,
)
from llm_serving_env.schema.fields import (
    ConfigError,
    as_int,
    as_mapping,
    check_keys,
    did_you_mean,
)
from llm_serving_env.workload.config import WorkloadConfig

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
    transfer its ``kv_bytes_per_token`` when that is not given
    (see ``llm_serving_env.hardware.specs``).
    """

    num_requests: int
    warmup_requests: int = 0
    workload: WorkloadConfig
    service: ServiceConfig
    gpus: GpuConfig = field(default_factory=GpuConfig)
    scheduler: SchedulerConfig = field(default_factory=default_scheduler)
    slo: SloConfig | None = None
    disaggregation: DisaggregationConfig | None = None
    model: ModelSpec | None = None

    def __post_init__(self) -> None:
        n = as_int("num_requests", self.num_requests, ge=1)
        object.__setattr__(self, "num_requests", n)
        w = as_int(
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
        d = as_mapping("config", d)
        check_keys("", d, _TOP_KEYS, _TOP_REQUIRED)
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
#: Optional keys whose YAML form is omitted at their default, so ``replace`` may add them.
_OPTIONAL_KEYS: tuple[str, ...] = ("workload.prefix_sharing", "gpus.prefix_caching")


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
        may_add = created or (depth == 1 and parts[0] in _OPEN_BLOCKS) or here in _OPTIONAL_KEYS
        if part not in node and not may_add:
            allowed = sorted(node)
            raise ConfigError(
                f"no such key{did_you_mean(part, allowed)}; allowed keys: {', '.join(allowed)}",
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
# Fields derived across sections (called by SimConfig.__post_init__)
# --------------------------------------------------------------------------------------------

def resolve_kv_capacity(cfg: SimConfig) -> int | None:
    """The KV capacity (tokens per replica) a config implies, or None to leave it as given.

    None when ``gpus.kv_capacity_tokens`` is given explicitly (it overrides) or when the config
    names no GPU memory (``gpus.gpu`` / ``gpus.memory_gb``). Otherwise the model block is
    required, and the capacity is :func:`kv_capacity_tokens` with the replica's
    ``service.tensor_parallel`` (1 when unset).

    Raises:
        ConfigError: GPU memory without a model, a model without ``num_params``, weights that
            do not fit, or disaggregated pools whose tensor parallelism differs from the
            top-level service's (one capacity serves every GPU).
    """
    gpus = cfg.gpus
    if gpus.kv_capacity_tokens is not None and not gpus.kv_capacity_derived:
        return None
    memory = gpus.memory_gb if gpus.memory_gb is not None else (
        None if gpus.gpu is None else GPU_PRESETS[gpus.gpu].memory_gb)
    if memory is None:
        return None
    field = "gpus.memory_gb" if gpus.memory_gb is not None else "gpus.gpu"
    value = gpus.memory_gb if gpus.memory_gb is not None else gpus.gpu
    if cfg.model is None:
        raise ConfigError(
            "needs a top-level model block (e.g. model: llama3_70b) to derive "
            "gpus.kv_capacity_tokens; or give gpus.kv_capacity_tokens", field, value)
    tp = cfg.service.tensor_parallel or 1
    dis = cfg.disaggregation
    if dis is not None:
        for pool_name, pool in (("prefill", dis.prefill), ("decode", dis.decode)):
            if pool.service is not None and (pool.service.tensor_parallel or 1) != tp:
                raise ConfigError(
                    f"differs from service.tensor_parallel (= {tp}) while gpus.kv_capacity_tokens "
                    "is derived (one capacity for every GPU); give gpus.kv_capacity_tokens",
                    f"disaggregation.{pool_name}.service.tensor_parallel",
                    pool.service.tensor_parallel)
    if cfg.model.num_params is None:
        raise ConfigError("is needed to derive gpus.kv_capacity_tokens (weights = num_params * "
                          "bytes_per_value)", "model.num_params", None)
    try:
        return kv_capacity_tokens(cfg.model, memory, tp,
                                  memory_utilization=gpus.memory_utilization)
    except ValueError as err:
        raise ConfigError(str(err), field, value) from None


def resolve_hardware(cfg: SimConfig) -> None:
    """Check the hardware fields of ``cfg`` together and derive what they imply, in place.

    * ``model`` must be a :class:`ModelSpec` (or None);
    * ``gpus.kv_capacity_tokens`` is derived when it is not given (:func:`resolve_kv_capacity`)
      and stored with ``gpus.kv_capacity_derived = True``;
    * a disaggregation link with a bandwidth needs the bytes it carries: ``kv_bytes_per_token``
      or a model block.

    Raises:
        ConfigError: naming the field at fault.
    """
    if cfg.model is not None and not isinstance(cfg.model, ModelSpec):
        raise ConfigError("must be null or a ModelSpec", "model", cfg.model)
    dis = cfg.disaggregation
    if (dis is not None and dis.link_bandwidth_gb_per_s is not None
            and dis.kv_bytes_per_token is None and cfg.model is None):
        field = "disaggregation.interconnect" if dis.bandwidth_gb_per_s is None else \
            "disaggregation.bandwidth_gb_per_s"
        value = dis.interconnect if dis.bandwidth_gb_per_s is None else dis.bandwidth_gb_per_s
        raise ConfigError("needs the bytes per token it carries: set "
                          "disaggregation.kv_bytes_per_token or a top-level model block", field,
                          value)
    roles = ("mixed",) if dis is None else ("prefill", "decode")
    for role in roles:
        attention_cost(cfg, role)  # ConfigError now rather than at the first batch
    derived = resolve_kv_capacity(cfg)
    if derived is not None:
        gpus = dataclasses.replace(cfg.gpus, kv_capacity_tokens=derived)
        object.__setattr__(gpus, "kv_capacity_derived", True)
        object.__setattr__(cfg, "gpus", gpus)


def transfer_bytes_per_token(cfg: SimConfig) -> float:
    """Bytes per KV token a disaggregated transfer moves: ``disaggregation.kv_bytes_per_token``,
    else the model block's, else 0."""
    dis = cfg.disaggregation
    if dis is not None and dis.kv_bytes_per_token is not None:
        return float(dis.kv_bytes_per_token)
    return 0.0 if cfg.model is None else float(cfg.model.kv_bytes_per_token)



def attention_cost(cfg: SimConfig, role: str = "mixed") -> AttentionCost | None:
    """The attention term of the GPUs of ``role`` (None unless their service has
    ``attention: true``): the model is the top-level ``model`` block, else the one the service
    preset was measured on; the GPU ``gpus.gpu``, else the preset's; the tensor parallelism
    ``service.tensor_parallel``, else the preset's, else 1; unset efficiencies the GPU's fit.

    Raises:
        ConfigError: naming ``service.attention`` (or the pool's) when the model or the GPU is
            unknown or lacks what the term needs.
    """
    service = cfg.service_for(role)
    if not service.attention:
        return None
    own = role != "mixed" and service is not cfg.service
    field = f"disaggregation.{role}.service.attention" if own else "service.attention"
    hardware = SERVICE_PRESET_HARDWARE.get(service.preset or "")
    model = cfg.model
    if model is None and hardware is not None and hardware.model is not None:
        model = MODEL_PRESETS[hardware.model]
    if model is None or model.hidden_size is None:
        raise ConfigError("needs the model's shape with its hidden_size: a top-level model "
                          "block (e.g. model: llama3_70b) or a service preset measured on a "
                          "known model", field, True)
    gpu = cfg.gpus.gpu if cfg.gpus.gpu is not None else (
        hardware.gpu if hardware is not None else None)
    if gpu is None:
        raise ConfigError("needs the GPU's peak FLOP/s and HBM bandwidth: set gpus.gpu (one "
                          f"of {', '.join(GPU_PRESETS)}) or use a service preset", field, True)
    tp = service.tensor_parallel or (hardware.tensor_parallel if hardware is not None else 1)
    bandwidth, flops = ATTENTION_EFFICIENCY_FITS[gpu]
    if service.attention_bandwidth_efficiency is not None:
        bandwidth = service.attention_bandwidth_efficiency
    if service.attention_flops_efficiency is not None:
        flops = service.attention_flops_efficiency
    return AttentionCost.from_hardware(model, GPU_PRESETS[gpu], tp, bandwidth, flops)
