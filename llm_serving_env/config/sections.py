"""The cluster's config sections: ``gpus``, ``scheduler``, ``slo`` and ``disaggregation``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llm_serving_env.hardware.service_config import ServiceConfig
from llm_serving_env.hardware.specs import GPU_PRESETS, INTERCONNECT_PRESETS
from llm_serving_env.schema.fields import (
    ConfigError,
    FrozenDict,
    as_float,
    as_int,
    as_mapping,
    as_optional_int,
    check_keys,
    choice,
    construct,
    from_flat_dict,
    join_path,
    to_flat_dict,
)

ROUTERS: tuple[str, ...] = ("central", "round_robin", "jsq", "least_tokens", "prefix_affinity")


@dataclass(frozen=True)
class GpuConfig:
    """The GPU workers.

    ``count`` identical GPUs; ``router`` assigns requests to GPUs (``central``: one shared
    queue; ``round_robin``; ``jsq``: join the queue with the fewest outstanding requests;
    ``least_tokens``: the fewest outstanding tokens of work, prefill tokens plus decodes, i.e.
    L + B - 1 per request, counting what a request has left; ``prefix_affinity``: the GPU
    holding the longest prefix of the request, balanced against load, see
    ``llm_serving_env.sim.routing``); ``max_batch_tokens`` (K) caps
    the token load of one batch; ``max_batch_requests`` caps the requests resident on one GPU;
    ``kv_capacity_tokens`` is the KV cache size per GPU in tokens (None = unlimited), allocated
    in blocks of ``kv_block_tokens`` tokens.

    A "GPU" here is one model replica, which may span ``service.tensor_parallel`` physical
    GPUs. ``gpu`` (a ``hardware.GPU_PRESETS`` name: a100_80gb, a100_40gb, h100_80gb) and/or
    ``memory_gb`` (GB = 1e9 bytes per physical GPU; overrides the preset's) with a top-level
    ``model`` block derive ``kv_capacity_tokens`` when it is not given:
    ``(tensor_parallel * memory_gb * memory_utilization - weights) / kv_bytes_per_token``
    (``hardware.resolve_kv_capacity``). A given ``kv_capacity_tokens`` overrides them.
    ``kv_capacity_derived`` (not a YAML key) marks a derived value, which ``to_dict`` writes as
    null so that it is derived again.

    ``prefix_caching: true`` gives each GPU a cache of KV prefix blocks
    (``llm_serving_env.sim.prefix_cache``): a request reuses the longest cached prefix of its
    prompt and prefills the rest; unreferenced blocks are evicted least recently used when KV
    memory is needed. Prefix identity comes from the workload (a replayed trace's
    ``hash_ids``, or ``workload.prefix_sharing``).
    """

    count: int = 1
    router: str = "central"
    max_batch_tokens: int = 2048
    max_batch_requests: int = 128
    kv_capacity_tokens: int | None = None
    kv_block_tokens: int = 16
    gpu: str | None = None
    memory_gb: float | None = None
    memory_utilization: float = 0.9
    prefix_caching: bool = False
    kv_capacity_derived: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.gpu is not None:

            choice("gpu", self.gpu, list(GPU_PRESETS))
        if self.memory_gb is not None:
            object.__setattr__(self, "memory_gb", as_float("memory_gb", self.memory_gb, gt=0.0))
        util = as_float("memory_utilization", self.memory_utilization, gt=0.0)
        if util > 1.0:
            raise ConfigError("must be a number > 0 and <= 1", "memory_utilization",
                              self.memory_utilization)
        object.__setattr__(self, "memory_utilization", util)
        object.__setattr__(self, "count", as_int("count", self.count, ge=1))
        choice("router", self.router, ROUTERS)
        if not isinstance(self.prefix_caching, bool):
            raise ConfigError("must be true or false", "prefix_caching", self.prefix_caching)
        if self.router == "prefix_affinity" and not self.prefix_caching:
            raise ConfigError("routes by cached prefixes: it needs prefix_caching: true",
                              "router", self.router)
        object.__setattr__(
            self, "max_batch_tokens", as_int("max_batch_tokens", self.max_batch_tokens, ge=1)
        )
        object.__setattr__(
            self, "max_batch_requests", as_int("max_batch_requests", self.max_batch_requests, ge=1)
        )
        object.__setattr__(
            self,
            "kv_capacity_tokens",
            as_optional_int("kv_capacity_tokens", self.kv_capacity_tokens, ge=1),
        )
        object.__setattr__(
            self, "kv_block_tokens", as_int("kv_block_tokens", self.kv_block_tokens, ge=1)
        )

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        if self.kv_capacity_derived:
            d["kv_capacity_tokens"] = None
        if not self.prefix_caching:
            del d["prefix_caching"]
        return d

    @classmethod
    def from_dict(cls, d: Any, path: str = "gpus") -> GpuConfig:
        return from_flat_dict(cls, d, path)


@dataclass(frozen=True)
class SchedulerConfig:
    """Which scheduler and its free parameters.

    YAML ``{name: hybrid, token_budget: 512}`` is ``SchedulerConfig("hybrid",
    {"token_budget": 512})``. Only ``name`` (a non-empty string) is checked here; the scheduler
    registry validates the name and the parameters. ``params`` is stored as a read-only
    :class:`FrozenDict` over a deep copy.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("must be a non-empty string (a scheduler name)", "name", self.name)
        params = self.params
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ConfigError("must be a mapping of parameter name -> value", "params", params)
        for key in params:
            if not isinstance(key, str) or not key:
                raise ConfigError("parameter names must be non-empty strings", "params", params)
            if key == "name":
                raise ConfigError("'name' cannot be a parameter name", "params", params)
        object.__setattr__(self, "params", FrozenDict(copy.deepcopy(dict(params))))

    def to_dict(self) -> dict[str, Any]:
        """Flat YAML form: ``{"name": ..., **params}``."""
        return {"name": self.name, **copy.deepcopy(dict(self.params))}

    @classmethod
    def from_dict(cls, d: Any, path: str = "scheduler") -> SchedulerConfig:
        d = as_mapping(path, d, "a mapping like {name: hybrid, token_budget: 512}")
        if "name" not in d:
            raise ConfigError("missing required key 'name' (the scheduler's name)", path)
        params = {k: v for k, v in d.items() if k != "name"}
        return construct(cls, path, {"name": d["name"], "params": params})


def default_scheduler() -> SchedulerConfig:
    return SchedulerConfig("hybrid", {"token_budget": 512})


@dataclass(frozen=True)
class SloClass:
    """One class of requests with its own objectives (interactive chat, batch jobs, ...):
    ``share`` of the arrivals (each request's class is drawn independently), TTFT and TBT
    objectives in ms."""

    name: str
    share: float
    ttft_ms: float
    tbt_ms: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ConfigError("must be a name made of letters, digits and _ (it becomes part "
                              "of summary keys such as slo_attainment_NAME)", "name", self.name)
        object.__setattr__(self, "share", as_float("share", self.share, gt=0.0))
        if self.share > 1.0:
            raise ConfigError("must be in (0, 1]", "share", self.share)
        object.__setattr__(self, "ttft_ms", as_float("ttft_ms", self.ttft_ms, gt=0.0))
        object.__setattr__(self, "tbt_ms", as_float("tbt_ms", self.tbt_ms, gt=0.0))

    def to_dict(self) -> dict[str, Any]:
        return to_flat_dict(self)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> SloClass:
        return from_flat_dict(cls, d, path)


@dataclass(frozen=True)
class SloConfig:
    """Service-level objectives: time to first token and time between tokens, both in ms.

    Either one pair for every request (``{ttft_ms, tbt_ms}``) or ``classes``: a list of
    :class:`SloClass` (at least two, shares summing to 1), each request's class drawn at
    random with those shares (a stream of its own: lengths and arrivals do not change) and
    known to schedulers from its arrival, as a priority header would be. With classes,
    ``ttft_ms`` and ``tbt_ms`` are the tightest class's: what a scheduler that ignores the
    classes plans for.
    """

    ttft_ms: float | None = None
    tbt_ms: float | None = None
    classes: tuple[SloClass, ...] = ()

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        object.__setattr__(self, "classes", classes)
        if not classes:
            if self.ttft_ms is None or self.tbt_ms is None:
                missing = "ttft_ms" if self.ttft_ms is None else "tbt_ms"
                raise ConfigError(f"missing required key {missing!r} (give ttft_ms and tbt_ms, "
                                  "or classes)", missing)
            object.__setattr__(self, "ttft_ms", as_float("ttft_ms", self.ttft_ms, gt=0.0))
            object.__setattr__(self, "tbt_ms", as_float("tbt_ms", self.tbt_ms, gt=0.0))
            return
        if len(classes) < 2:
            raise ConfigError("needs at least two classes (one class: write ttft_ms and tbt_ms)",
                              "classes", len(classes))
        names = [c.name for c in classes]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError("class names must differ", f"classes[{i}].name", name)
        total = sum(c.share for c in classes)
        if abs(total - 1.0) > 1e-9:
            raise ConfigError("the classes' shares must sum to 1", "classes", round(total, 12))
        object.__setattr__(self, "ttft_ms", min(c.ttft_ms for c in classes))
        object.__setattr__(self, "tbt_ms", min(c.tbt_ms for c in classes))

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes' names (empty without classes)."""
        return tuple(c.name for c in self.classes)

    def objectives_s(self, slo_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-request (TTFT, TBT) objectives in seconds, float64 arrays shaped like
        ``slo_class`` (class indices; ignored without classes)."""
        if not self.classes:
            shape = np.shape(slo_class)
            return (np.full(shape, self.ttft_ms) / 1000.0, np.full(shape, self.tbt_ms) / 1000.0)
        ttft = np.array([c.ttft_ms for c in self.classes])
        tbt = np.array([c.tbt_ms for c in self.classes])
        return ttft[slo_class] / 1000.0, tbt[slo_class] / 1000.0

    def to_dict(self) -> dict[str, Any]:
        if self.classes:
            return {"classes": [c.to_dict() for c in self.classes]}
        return {"ttft_ms": self.ttft_ms, "tbt_ms": self.tbt_ms}

    @classmethod
    def from_dict(cls, d: Any, path: str = "slo") -> SloConfig:
        d = as_mapping(path, d)
        check_keys(path, d, ("ttft_ms", "tbt_ms", "classes"), ())
        if "classes" not in d:
            return from_flat_dict(cls, d, path)
        for key in ("ttft_ms", "tbt_ms"):
            if key in d:
                raise ConfigError("give it per class when slo.classes is set",
                                  join_path(path, key), d[key])
        items = d["classes"]
        if not isinstance(items, list):
            raise ConfigError("must be a list of {name, share, ttft_ms, tbt_ms}",
                              join_path(path, "classes"), items)
        classes = tuple(SloClass.from_dict(item, f"{join_path(path, 'classes')}[{i}]")
                        for i, item in enumerate(items))
        return construct(cls, path, {"classes": classes})


@dataclass(frozen=True)
class PoolConfig:
    """One pool of a disaggregated deployment: ``count`` GPUs, optionally their own service
    model and scheduler (None = the top-level ``service`` / ``scheduler``)."""

    count: int = 1
    service: ServiceConfig | None = None
    scheduler: SchedulerConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", as_int("count", self.count, ge=1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "service": None if self.service is None else self.service.to_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any, path: str) -> PoolConfig:
        d = as_mapping(path, d)
        check_keys(path, d, ("count", "service", "scheduler"), ())
        kwargs: dict[str, Any] = {}
        if "count" in d:
            kwargs["count"] = d["count"]
        if d.get("service") is not None:
            kwargs["service"] = ServiceConfig.from_dict(d["service"], f"{path}.service")
        if d.get("scheduler") is not None:
            kwargs["scheduler"] = SchedulerConfig.from_dict(d["scheduler"], f"{path}.scheduler")
        return construct(cls, path, kwargs)


@dataclass(frozen=True)
class DisaggregationConfig:
    """Separate prefill and decode pools (DistServe / Splitwise).

    GPUs ``0 .. prefill.count - 1`` only prefill; the rest only decode. A request's prefill
    emits its first token on a prefill GPU; its KV cache (``kv_tokens * kv_bytes_per_token``
    bytes) then moves to a decode GPU, and it joins the decode GPU with the fewest outstanding
    requests. ``gpus.count`` must equal the two counts' sum.

    The network: ``interconnect`` (``nvlink``, ``pcie4``, ``infiniband``; see
    ``hardware.INTERCONNECT_PRESETS``) sets the bandwidth per direction and the per-transfer
    latency; ``bandwidth_gb_per_s`` (GB/s = 1e9 B/s; null with no interconnect = instantaneous
    bytes) and ``latency_ms`` override it. ``links``: ``per_source`` (default) gives every
    prefill GPU its own outgoing link (its NIC / NVLink port, the bottleneck when it sends to
    many decode GPUs); ``shared`` puts every transfer on one link. Transfers on one link share
    its bandwidth equally (fluid processor sharing: each of the n active transfers drains at
    bandwidth / n); a transfer lands ``latency_ms`` after its last byte leaves. Alone on its
    link a transfer takes ``bytes / bandwidth + latency``. ``kv_bytes_per_token`` defaults to
    the top-level ``model`` block's (else 0).
    """

    prefill: PoolConfig = field(default_factory=PoolConfig)
    decode: PoolConfig = field(default_factory=PoolConfig)
    kv_bytes_per_token: float | None = None
    bandwidth_gb_per_s: float | None = None
    latency_ms: float | None = None
    interconnect: str | None = None
    links: str = "per_source"

    def __post_init__(self) -> None:
        if self.kv_bytes_per_token is not None:
            object.__setattr__(self, "kv_bytes_per_token",
                               as_float("kv_bytes_per_token", self.kv_bytes_per_token, ge=0.0))
        if self.bandwidth_gb_per_s is not None:
            object.__setattr__(self, "bandwidth_gb_per_s",
                               as_float("bandwidth_gb_per_s", self.bandwidth_gb_per_s, gt=0.0))
        if self.latency_ms is not None:
            object.__setattr__(self, "latency_ms", as_float("latency_ms", self.latency_ms,
                                                          ge=0.0))
        if self.interconnect is not None:

            choice("interconnect", self.interconnect, list(INTERCONNECT_PRESETS))
        choice("links", self.links, ("per_source", "shared"))

    @property
    def link_bandwidth_gb_per_s(self) -> float | None:
        """Bandwidth of one link in GB/s: ``bandwidth_gb_per_s``, else the interconnect's,
        else None (instantaneous bytes)."""
        if self.bandwidth_gb_per_s is not None or self.interconnect is None:
            return self.bandwidth_gb_per_s

        return INTERCONNECT_PRESETS[self.interconnect].bandwidth_gb_per_s

    @property
    def link_latency_ms(self) -> float:
        """Per-transfer latency in ms: ``latency_ms``, else the interconnect's, else 0."""
        if self.latency_ms is not None:
            return self.latency_ms
        if self.interconnect is None:
            return 0.0

        return INTERCONNECT_PRESETS[self.interconnect].latency_ms

    def transfer_s(self, kv_tokens: Any, kv_bytes_per_token: float | None = None) -> Any:
        """Time in seconds of a KV transfer of ``kv_tokens`` tokens (scalar or array) alone on
        its link: bytes / bandwidth + latency. ``kv_bytes_per_token`` defaults to this
        block's (None = 0)."""
        seconds = self.link_latency_ms / 1000.0
        bandwidth = self.link_bandwidth_gb_per_s
        per_token = self.kv_bytes_per_token if kv_bytes_per_token is None else kv_bytes_per_token
        if bandwidth is None or not per_token:
            return kv_tokens * 0.0 + seconds
        return kv_tokens * per_token / (bandwidth * 1e9) + seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefill": self.prefill.to_dict(),
            "decode": self.decode.to_dict(),
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "bandwidth_gb_per_s": self.bandwidth_gb_per_s,
            "latency_ms": self.latency_ms,
            "interconnect": self.interconnect,
            "links": self.links,
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "disaggregation") -> DisaggregationConfig:
        d = as_mapping(path, d)
        keys = ("prefill", "decode", "kv_bytes_per_token", "bandwidth_gb_per_s", "latency_ms",
                "interconnect", "links")
        check_keys(path, d, keys, ("prefill", "decode"))
        kwargs: dict[str, Any] = {
            "prefill": PoolConfig.from_dict(d["prefill"], f"{path}.prefill"),
            "decode": PoolConfig.from_dict(d["decode"], f"{path}.decode"),
        }
        for key in keys[2:]:
            if key in d:
                kwargs[key] = d[key]
        return construct(cls, path, kwargs)

