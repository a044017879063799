"""The one-call API: ``simulate(config, policy, seed) -> RunResult``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

from llm_serving_env.config.files import load_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.fast.support import ENGINES, fast_path_gap
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.scheduler import Scheduler, make_scheduler
from llm_serving_env.workload.generate import Workload


def as_config(config: SimConfig | str | os.PathLike | Mapping[str, Any]) -> SimConfig:
    """A SimConfig from a SimConfig, a YAML path, a preset name or a dict."""
    return config if isinstance(config, SimConfig) else load_config(config)


#: Decisions between two progress-bar updates (an update costs about one decision).
PROGRESS_EVERY = 2048


class ThrashingWarning(RuntimeWarning):
    """A run preempted more often than it has requests: KV memory is too small for the load."""


def run_policy(sim: Simulator, policy: Scheduler, progress: bool = False) -> RunResult:
    """Drive ``sim`` (already reset) with ``policy`` to the end and return the result.

    ``progress``: show a tqdm bar (stderr) of finished requests, updated every
    :data:`PROGRESS_EVERY` decisions (the loop without it is untouched).
    """
    policy.check_feasible(sim.limits)
    policy.reset(sim.policy_rng)
    schedule, execute, next_decision = policy.schedule, sim.execute, sim.next_decision
    if not progress:
        while (view := next_decision()) is not None:
            execute(schedule(view))
        return sim.result(policy.label)
    from tqdm.auto import tqdm

    with tqdm(total=sim.n, desc="simulating", unit="req", mininterval=0.5) as bar:
        countdown = PROGRESS_EVERY
        while (view := next_decision()) is not None:
            execute(schedule(view))
            countdown -= 1
            if not countdown:
                countdown = PROGRESS_EVERY
                bar.update(sim.num_finished - bar.n)
        bar.update(sim.num_finished - bar.n)
    return sim.result(policy.label)


def warn_if_thrashing(result: RunResult, stacklevel: int = 3) -> None:
    """One :class:`ThrashingWarning` when the run's preemptions exceed its requests."""
    preemptions = int(result.preemptions.sum())
    requests = int(result.preemptions.size)
    if preemptions > requests:
        kv = result.config.gpus.kv_capacity_tokens
        warnings.warn(ThrashingWarning(
            f"{preemptions} preemptions for {requests} requests (gpus.kv_capacity_tokens = "
            f"{kv}): the KV cache thrashes; give the GPUs more KV memory "
            f"(gpus.kv_capacity_tokens) or lower the load (workload.arrival.rate_per_s)"),
            stacklevel=stacklevel)


class CompiledEngineUnavailable(ConfigError):
    """``engine="compiled"`` was asked for a run the compiled engine does not cover; ``gap``
    names what is missing (for example ``gpus.prefix_caching is not compiled ...``)."""

    def __init__(self, gap: str) -> None:
        super().__init__(f"engine = 'compiled': {gap}; use engine='auto' or 'reference'")
        self.gap = gap


def choose_engine(config: SimConfig, scheduler: Scheduler, engine: str = "auto") -> str:
    """The engine a run of ``scheduler`` on ``config`` takes: ``"compiled"`` or
    ``"reference"`` (see :func:`simulate`'s ``engine``).

    Raises:
        ConfigError: ``engine`` is not one of ``ENGINES``.
        CompiledEngineUnavailable: ``engine == "compiled"`` and the compiled engine does not
            cover the run.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine = {engine!r}: must be one of {', '.join(ENGINES)}")
    if engine == "reference":
        return "reference"
    gap = fast_path_gap(config, scheduler)
    if gap is None:
        return "compiled"
    if engine == "compiled":
        raise CompiledEngineUnavailable(gap)
    return "reference"


def simulate(
    config: SimConfig | str | os.PathLike | Mapping[str, Any],
    policy: str | Scheduler | None = None,
    seed: int = 0,
    workload: Workload | None = None,
    progress: bool = False,
    engine: str = "auto",
) -> RunResult:
    """Simulate one run.

    Args:
        config: a SimConfig, a YAML path, a preset name (``configs/<name>.yaml``) or a dict.
        policy: a registered scheduler name (overrides ``config.scheduler.name``; the config's
            parameters apply when they belong to that scheduler), a Scheduler instance, or None
            to use the config's scheduler.
        seed: root seed of the run's random streams (workload, service noise, policy).
        workload: optional explicit workload (e.g. a replayed trace) instead of generating one.
        progress: show a progress bar of finished requests (stderr).
        engine: ``"auto"`` (default) runs the compiled engine when it covers the case (a
            built-in scheduler with a compiled rule; see ``llm_serving_env.sim.fast``) and
            the Python reference engine otherwise; ``"compiled"`` insists on the compiled
            one (ConfigError naming why it cannot); ``"reference"`` always runs Python. Both
            give the same RunResult, bit for bit.

    Returns:
        The run's RunResult (``.summary()``, ``.requests``, ``.batches``).

    Warns:
        ThrashingWarning: more preemptions than requests (too little KV memory for the load).
    """
    if engine not in ENGINES:  # before the config is read: the cheaper error first
        raise ConfigError(f"engine = {engine!r}: must be one of {', '.join(ENGINES)}")
    cfg = as_config(config)
    scheduler = policy if isinstance(policy, Scheduler) else make_scheduler(cfg, policy)
    chosen = choose_engine(cfg, scheduler, engine)
    sim = Simulator(cfg, seed=seed, workload=workload)
    sim.reset()
    if chosen == "compiled":
        from llm_serving_env.sim.fast.runner import run_compiled

        result = run_compiled(sim, scheduler, progress=progress)
    else:
        result = run_policy(sim, scheduler, progress=progress)
    warn_if_thrashing(result)
    return result
