"""The one-call API: ``simulate(config, policy, seed) -> RunResult``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from llm_serving_env.config.files import load_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.scheduler import Scheduler, make_scheduler
from llm_serving_env.workload.generate import Workload


def as_config(config: SimConfig | str | os.PathLike | Mapping[str, Any]) -> SimConfig:
    """A SimConfig from a SimConfig, a YAML path, a preset name or a dict."""
    return config if isinstance(config, SimConfig) else load_config(config)


def run_policy(sim: Simulator, policy: Scheduler) -> RunResult:
    """Drive ``sim`` (already reset) with ``policy`` to the end and return the result."""
    policy.check_feasible(sim.workload)
    policy.reset(sim.policy_rng)
    schedule, execute, next_decision = policy.schedule, sim.execute, sim.next_decision
    while (view := next_decision()) is not None:
        execute(schedule(view))
    return sim.result(policy.label)


def simulate(
    config: SimConfig | str | os.PathLike | Mapping[str, Any],
    policy: str | Scheduler | None = None,
    seed: int = 0,
    workload: Workload | None = None,
) -> RunResult:
    """Simulate one run.

    Args:
        config: a SimConfig, a YAML path, a preset name (``configs/<name>.yaml``) or a dict.
        policy: a registered scheduler name (overrides ``config.scheduler.name``; the config's
            parameters apply when they belong to that scheduler), a Scheduler instance, or None
            to use the config's scheduler.
        seed: root seed of the run's random streams (workload, service noise, policy).
        workload: optional explicit workload (e.g. a replayed trace) instead of generating one.

    Returns:
        The run's RunResult (``.summary()``, ``.requests``, ``.batches``).
    """
    cfg = as_config(config)
    scheduler = policy if isinstance(policy, Scheduler) else make_scheduler(cfg, policy)
    sim = Simulator(cfg, seed=seed, workload=workload)
    sim.reset()
    return run_policy(sim, scheduler)
