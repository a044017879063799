"""The scheduler interface, the view a scheduler sees, and the scheduler registry.

A scheduler is a plain object: ``schedule(view) -> Batch | Wait``. Each one lives in its own
file under ``baselines/`` (or anywhere else) and registers itself with
:func:`register_scheduler`; its parameters are a typed frozen dataclass ``Config`` whose fields
are the YAML keys of the ``scheduler:`` block besides ``name``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait

if TYPE_CHECKING:
    from llm_serving_env.config.sim_config import SimConfig
    from llm_serving_env.hardware.attention import AttentionCost


_NO_IDS = np.zeros(0, np.int64)
_NO_IDS.flags.writeable = False


class RequestTable:
    """Read-only per-request state, one entry per request id (ids are arrival order, 0-based).

    Attributes (numpy arrays of shape (num_requests,)):
        arrival_s: arrival time, seconds.
        prompt_tokens: L_i.
        predicted_output_tokens: what the config's ``workload.length_predictor`` says of B_i
            (float64; NaN when nothing is known, the default). The true B_i is not here: a
            real scheduler does not know it.
        prefilled_tokens: tokens of the current prefill already processed.
        prefill_target_tokens: tokens the current prefill must cover: L_i, or L_i plus the
            tokens generated so far after a preemption (recompute).
        generated_tokens: output tokens already emitted (the first comes with the prefill).
        last_token_s: time the latest output token was emitted (NaN before the first).
        gpu: GPU the request is bound to (-1 while waiting in a queue).
        slo_class: index into ``slo.classes`` (0 without classes; -1 before arrival).
        ttft_objective_s, tbt_objective_s: the request's TTFT and TBT objectives, seconds
            (its class's; inf without an SLO; NaN before arrival).
        kv_tokens, kv_blocks: KV-cache tokens and paged blocks the request holds (only
            tracked when ``gpus.kv_capacity_tokens`` is set).
        kv_shared_tokens: of ``kv_tokens``, those in cached prefix blocks it shares
            (``gpus.prefix_caching``; the cache owns their blocks, ``kv_blocks`` counts the
            rest).
    """

    __slots__ = (
        "arrival_s", "prompt_tokens", "predicted_output_tokens", "prefilled_tokens",
        "prefill_target_tokens", "generated_tokens", "last_token_s", "gpu", "kv_tokens",
        "kv_blocks", "slo_class", "ttft_objective_s", "tbt_objective_s", "kv_shared_tokens",
    )

    def __init__(self, **arrays: np.ndarray) -> None:
        n = np.shape(arrays["arrival_s"])[0]
        defaults = {"slo_class": lambda: np.zeros(n, np.int64),  # a table built by hand
                    "ttft_objective_s": lambda: np.full(n, math.inf),
                    "tbt_objective_s": lambda: np.full(n, math.inf),
                    "kv_shared_tokens": lambda: np.zeros(n, np.int64)}
        for name in self.__slots__:
            value = arrays.get(name)
            setattr(self, name, defaults[name]() if value is None else value)


@dataclasses.dataclass(frozen=True)
class CompiledRule:
    """A rule of the compiled engine (``llm_serving_env.sim.fast.layout.RULE_CODES``) and its
    parameters: what a built-in scheduler's :meth:`Scheduler.compiled_rule` returns.

    Attributes:
        name: the rule's name (``"hybrid"``, ``"orca"``, ...).
        ints: its integer parameters (hybrid: the token budget), at most 8.
        floats: its real parameters (prefill_first: the KV watermark), at most 8.
        table: a planning rule's iteration times T(b) in seconds for b = 0..K, float64
            ``(K + 1,)`` (slo_aware), else None.
    """

    name: str
    ints: tuple[int, ...] = ()
    floats: tuple[float, ...] = ()
    table: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class WorkloadLimits:
    """The limits a run's requests stay within, as a serving engine's ``max_model_len`` and
    ``max_tokens`` would state them: the longest prompt and the longest output (tokens). All a
    scheduler learns of the workload before it starts (:meth:`Scheduler.check_feasible`)."""

    max_prompt_tokens: int
    max_output_tokens: int


class DecisionView:
    """What a scheduler sees when ``gpu`` is free at time ``now_s``.

    Attributes:
        now_s: current simulated time, seconds.
        gpu: index of the free GPU to fill.
        waiting: int64 (w,), requests this GPU may prefill: first those already bound to it
            with a partial prefill (in the order they started), then the shared or per-GPU
            queue in FCFS order.
        decoding: int64 (d,), requests bound to this GPU in their decode phase, each ready
            for its next decode (in the order their prefill finished).
        num_partial: how many leading entries of ``waiting`` are already bound to this GPU
            (partially prefilled; they hold a slot already).
        resident: requests holding a slot on this GPU (partial prefills + decoding).
        max_batch_tokens, max_batch_requests: the GPU's limits (K and the slot count).
        requests: the read-only :class:`RequestTable`.
        kv_free_blocks: free KV-cache blocks on this GPU (inf when memory is unlimited).
        kv_block_tokens: tokens per KV block.
        role: ``"mixed"`` (prefill and decode), or under disaggregation ``"prefill"`` or
            ``"decode"`` (a decode GPU's ``waiting`` is always empty).
        num_arrived, num_finished: requests arrived and finished so far (all GPUs).
        kv_capacity_blocks: this GPU's KV-cache blocks (inf when memory is unlimited).
        other_gpus_busy: how many other GPUs are running a batch.
        event_pending: whether anything can still happen if this GPU idles now (an arrival,
            a batch end, a KV transfer landing or a timed Wait); False means an idle answer
            would deadlock. It says no more than that about the future.

    Nothing here tells the future: ``requests`` reveals a request's arrival time, prompt
    and predicted output length only once it has arrived, and no true output length at all.
    """

    __slots__ = (
        "now_s", "gpu", "waiting", "num_partial", "decoding", "resident", "max_batch_tokens",
        "max_batch_requests", "requests", "kv_free_blocks", "kv_block_tokens", "role",
        "num_arrived", "num_finished", "kv_capacity_blocks", "other_gpus_busy",
        "event_pending",
    )

    def __init__(self, now_s: float, gpu: int, waiting: np.ndarray, num_partial: int,
                 decoding: np.ndarray, resident: int, max_batch_tokens: int,
                 max_batch_requests: int, requests: RequestTable,
                 kv_free_blocks: float = math.inf, kv_block_tokens: int = 16,
                 role: str = "mixed", *, num_arrived: int = 0, num_finished: int = 0,
                 kv_capacity_blocks: float = math.inf, other_gpus_busy: int = 0,
                 event_pending: bool = True) -> None:
        self.now_s = now_s
        self.gpu = gpu
        self.waiting = waiting
        self.num_partial = num_partial
        self.decoding = decoding
        self.resident = resident
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.requests = requests
        self.kv_free_blocks = kv_free_blocks
        self.kv_block_tokens = kv_block_tokens
        self.role = role
        self.num_arrived = num_arrived
        self.num_finished = num_finished
        self.kv_capacity_blocks = kv_capacity_blocks
        self.other_gpus_busy = other_gpus_busy
        self.event_pending = event_pending

    def remaining_prompt(self, ids: np.ndarray) -> np.ndarray:
        """Prefill tokens still to process for ``ids`` (int64, same shape)."""
        return self.requests.prefill_target_tokens[ids] - self.requests.prefilled_tokens[ids]

    def planned_with_attention(self, base_s: np.ndarray, attention: AttentionCost) -> np.ndarray:
        """A planner's iteration time at each load b (seconds, like ``base_s``): ``base_s``
        plus this view's attention as :meth:`AttentionCost.planned_s` plans it (every decode's
        KV read, a b-token chunk at the first waiting request's offset). Public state only."""
        t, dec, waiting = self.requests, self.decoding, self.waiting
        context = float((t.prompt_tokens[dec] + t.generated_tokens[dec]).sum()) if dec.size \
            else 0.0
        offset = float(t.prefilled_tokens[waiting[0]]) if waiting.size else 0.0
        return attention.planned_s(base_s, context, offset)

    def kv_blocks_needed(self, ids: np.ndarray, tokens: np.ndarray | int) -> np.ndarray:
        """Extra KV blocks each of ``ids`` needs to add ``tokens`` tokens (int64, same shape).

        A decode adds 1 token; a prefill chunk adds its size. Zero when memory is unlimited.
        """
        if self.kv_free_blocks == math.inf:
            return np.zeros(np.shape(ids), dtype=np.int64)
        t = self.requests
        bs = self.kv_block_tokens
        own = t.kv_tokens[ids] - t.kv_shared_tokens[ids]
        return -(-(own + tokens) // bs) - t.kv_blocks[ids]

    def kv_room_after_decodes(self, decode_ids: np.ndarray) -> float:
        """KV blocks left for prefill once ``decode_ids`` have each grown by one token
        (>= 0; inf when memory is unlimited)."""
        if self.kv_free_blocks == math.inf:
            return math.inf
        return max(0, self.kv_free_blocks - int(self.kv_blocks_needed(decode_ids, 1).sum()))

    def kv_fit_prefill(self, ids: np.ndarray, tokens: np.ndarray, free_blocks: float,
                       allow_partial: bool) -> tuple[np.ndarray, np.ndarray]:
        """The longest prefix of the chunks (ids, tokens) whose KV fits in ``free_blocks``.

        With ``allow_partial`` the first chunk that does not fit is shortened to what fits
        (chunking policies); otherwise it and everything after it are dropped.
        """
        if free_blocks == math.inf or ids.size == 0:
            return ids, tokens
        need = self.kv_blocks_needed(ids, tokens)
        count = int(np.searchsorted(np.cumsum(need), free_blocks, side="right"))
        if count == ids.size or not allow_partial:
            return ids[:count], tokens[:count]
        left = int(free_blocks - need[:count].sum())
        r = ids[count]
        t = self.requests
        room = ((int(t.kv_blocks[r]) + left) * self.kv_block_tokens
                - int(t.kv_tokens[r] - t.kv_shared_tokens[r]))
        if room <= 0:
            return ids[:count], tokens[:count]
        cut = tokens[: count + 1].copy()
        cut[-1] = min(int(cut[-1]), room)
        return ids[: count + 1], cut

    @property
    def free_slots(self) -> int:
        """Requests that may still join this GPU: ``max_batch_requests`` minus the resident
        ones (<= 0 when it is full)."""
        return self.max_batch_requests - self.resident


@dataclasses.dataclass(frozen=True)
class NoParams:
    """For schedulers without parameters."""


class Scheduler(ABC):
    """Base class of every policy.

    Subclasses set ``Config`` (a frozen dataclass of their parameters) and implement
    :meth:`schedule`. ``__init__`` receives the parsed config and the whole simulation config
    (for limits). :meth:`check_feasible` raises a clear error at start if the policy can never
    serve some request of the workload.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoParams

    def __init__(self, config: Any, sim_config: SimConfig) -> None:
        self.config = config
        self.sim_config = sim_config

    def reset(self, rng: np.random.Generator) -> None:
        """Called once per run before the first decision; ``rng`` is the policy's own stream."""
        self.rng = rng

    @classmethod
    def from_spec(cls, target: str, sim_config: SimConfig) -> Scheduler:
        """The scheduler of the policy spec ``PREFIX:target`` (factories override this)."""
        raise ConfigError(f"scheduler {cls.name!r} takes no ':' target (got {target!r})")

    def check_feasible(self, limits: WorkloadLimits) -> None:  # noqa: B027 - optional hook
        """Raise ``ConfigError`` if a request within ``limits`` could never be served by this
        policy (called once before the run)."""

    @abstractmethod
    def schedule(self, view: DecisionView) -> Batch | Wait:
        """Return the next batch for ``view.gpu``, or a Wait."""

    def compiled_rule(self) -> CompiledRule | None:
        """The compiled engine's version of this scheduler's rule, or None (the default: the
        reference engine runs it). A scheduler returns one only when the compiled rule builds
        exactly the batches its :meth:`schedule` would, so not for a subclass that may
        override ``schedule``."""
        return None

    @property
    def label(self) -> str:
        """The name a run of this scheduler is reported under (its registered name)."""
        return self.name


_REGISTRY: dict[str, type[Scheduler]] = {}
_BUILTINS_LOADED = False


def register_scheduler(name: str, *aliases: str) -> Callable[[type[Scheduler]], type[Scheduler]]:
    """Class decorator: make a scheduler available under ``name`` (and ``aliases``)."""

    def decorate(cls: type[Scheduler]) -> type[Scheduler]:
        for key in (name, *aliases):
            if key in _REGISTRY and _REGISTRY[key] is not cls:
                raise ValueError(f"scheduler name {key!r} is already registered "
                                 f"by {_REGISTRY[key].__qualname__}")
            _REGISTRY[key] = cls
        cls.name = name
        return cls

    return decorate


#: Entry-point group through which installed packages contribute schedulers. This project's
#: ``pyproject.toml`` points it at the ``baselines`` package, whose import registers every file.
SCHEDULER_ENTRY_POINTS = "llm_serving_env.schedulers"


def _load_builtins() -> None:
    """Import every package registered under :data:`SCHEDULER_ENTRY_POINTS` (once). The core
    never names ``baselines`` itself: it sits above the core and is found like any plug-in."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        for entry_point in entry_points(group=SCHEDULER_ENTRY_POINTS):
            entry_point.load()
        _BUILTINS_LOADED = True  # only once every module has registered (threads, forks)


#: Entry-point group of scheduler *factories*: a policy spec ``PREFIX:TARGET`` (e.g.
#: ``ppo:agents/zoo/model.zip``, ``mode:1``) names the class registered under ``PREFIX``, whose
#: ``from_spec(target, sim_config)`` builds the scheduler. This project's ``pyproject.toml``
#: registers the learned schedulers of ``agents`` (``ppo``, ``maskable_ppo``, ``mode``).
SCHEDULER_FACTORIES = "llm_serving_env.scheduler_factories"
_FACTORIES: dict[str, type[Scheduler]] = {}


def _factory(spec: str) -> type[Scheduler]:
    prefix = spec.split(":", 1)[0]
    if not _FACTORIES:
        for entry_point in entry_points(group=SCHEDULER_FACTORIES):
            _FACTORIES[entry_point.name] = entry_point.load()
    cls = _FACTORIES.get(prefix)
    if cls is None:
        known = ", ".join(f"{p}:..." for p in sorted(_FACTORIES)) or "(none installed)"
        raise ConfigError(f"scheduler {spec!r}: unknown policy prefix {prefix!r}; "
                          f"available: {known}")
    return cls


def available_schedulers() -> list[str]:
    """Every registered scheduler name (aliases included), sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def canonical_schedulers() -> list[str]:
    """Registered scheduler names without aliases, sorted."""
    _load_builtins()
    return sorted(key for key, cls in _REGISTRY.items() if cls.name == key)


def scheduler_class(name: str) -> type[Scheduler]:
    """The class registered under ``name`` (or, for a ``PREFIX:TARGET`` spec, the factory
    registered under ``PREFIX``); a ConfigError with a suggestion otherwise."""
    if isinstance(name, str) and ":" in name:
        return _factory(name)
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"scheduler.name = {name!r}: unknown scheduler{hint}; "
            f"available: {', '.join(sorted(_REGISTRY))}"
        ) from None


def parse_scheduler_params(cls: type[Scheduler], params: dict[str, Any]) -> Any:
    """Build ``cls.Config`` from the YAML parameters, naming any bad key or value."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for key in params:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(sorted(fields)) or "none"
            raise ConfigError(
                f"scheduler.{key}: unknown parameter for scheduler {cls.name!r}{hint}; "
                f"allowed: {allowed}"
            )
    return cls.Config(**params)


def make_scheduler(sim_config: SimConfig, name: str | None = None) -> Scheduler:
    """Instantiate the scheduler named by ``name`` or, if None, by ``sim_config.scheduler``.

    When ``name`` differs from the config's scheduler, the config's parameters are used only if
    they are valid for the named scheduler's ``Config``; otherwise its defaults apply.
    Under disaggregation the result is a :class:`PooledScheduler`: each pool uses its own
    ``scheduler`` block if it has one, else this one.
    """
    dis = sim_config.disaggregation
    if dis is None:
        return _make_single(sim_config, name)
    by_role = {}
    for role, pool in (("prefill", dis.prefill), ("decode", dis.decode)):
        if pool.scheduler is None:
            by_role[role] = _make_single(sim_config, name)
        else:
            own = sim_config.replace({"scheduler": pool.scheduler.to_dict()})
            by_role[role] = _make_single(own, None)
    return PooledScheduler(by_role, sim_config)


class PooledScheduler(Scheduler):
    """One scheduler per pool of a disaggregated deployment, chosen by ``view.role``."""

    name = "pooled"

    def __init__(self, by_role: dict[str, Scheduler], sim_config: SimConfig) -> None:
        super().__init__(None, sim_config)
        self.by_role = by_role

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        for scheduler in self.by_role.values():
            scheduler.reset(rng)

    def check_feasible(self, limits: WorkloadLimits) -> None:
        for scheduler in self.by_role.values():
            scheduler.check_feasible(limits)

    def schedule(self, view: DecisionView) -> Batch | Wait:
        return self.by_role[view.role].schedule(view)

    @property
    def label(self) -> str:
        """``name`` when every pool runs the same scheduler, else ``prefill:a+decode:b``."""
        labels = {role: s.label for role, s in self.by_role.items()}
        if len(set(labels.values())) == 1:
            return next(iter(labels.values()))
        return "+".join(f"{role}:{label}" for role, label in labels.items())


def _make_single(sim_config: SimConfig, name: str | None) -> Scheduler:
    spec = name or sim_config.scheduler.name
    if ":" in spec:
        return _factory(spec).from_spec(spec.split(":", 1)[1], sim_config)
    config_name = sim_config.scheduler.name
    cls = scheduler_class(name or config_name)
    params = dict(sim_config.scheduler.params)
    if name is not None and scheduler_class(config_name) is not cls:
        known = {f.name for f in dataclasses.fields(cls.Config)}
        params = {k: v for k, v in params.items() if k in known}
    return cls(parse_scheduler_params(cls, params), sim_config)


def positive_int(path: str, value: Any, *, minimum: int = 1) -> None:
    """Raise ConfigError unless ``value`` is an int >= minimum (for scheduler Configs)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{path} = {value!r}: must be an integer >= {minimum}")


def positive_number(path: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a real number > 0 (or >= 0 with allow_zero)."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))
          and (value >= 0 if allow_zero else value > 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{path} = {value!r}: must be a number {bound}")
