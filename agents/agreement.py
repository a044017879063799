"""Is a learned policy state-dependent, or one of the rules in disguise?

:func:`state_dependence` runs a policy (a learned model as a plain scheduler, ``ppo:PATH``) and,
at each of its decisions, asks every hand-written scheduler what it would run in the same
state (the same :class:`~llm_serving_env.sim.scheduler.DecisionView`). It reports the share of
decisions at which the policy's batch equals each rule's, and the share at which it differs
from every rule's: the learned-scheduler issue's measure of a policy that is more than a
hand-written mode (aim: at least 10%).

Batches are equal when they hold the same prefill chunks (request and tokens) and the same set
of decodes; two ``Wait``\\s are equal when they wait until the same time. Rules keep their own
state (cohorts, timers) from the views they are shown, which here follow the learned policy's
trajectory, not theirs: a stateful rule is asked what it would do having seen this history,
which is the only meaning "its batch in the same state" can have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.engine import config_limits
from llm_serving_env.sim.scheduler import (
    DecisionView,
    Scheduler,
    WorkloadLimits,
    canonical_schedulers,
    make_scheduler,
)
from llm_serving_env.sim.simulate import simulate

__all__ = ["same_command", "state_dependence"]


def same_command(a: Batch | Wait, b: Batch | Wait) -> bool:
    """Whether two answers run the same iteration (or wait until the same time)."""
    if isinstance(a, Wait) or isinstance(b, Wait):
        return isinstance(a, Wait) and isinstance(b, Wait) and a.until_s == b.until_s
    if a.prefill_ids.size != b.prefill_ids.size or a.decode_ids.size != b.decode_ids.size:
        return False
    pa, pb = np.argsort(a.prefill_ids), np.argsort(b.prefill_ids)
    return (np.array_equal(a.prefill_ids[pa], b.prefill_ids[pb])
            and np.array_equal(a.prefill_tokens[pa], b.prefill_tokens[pb])
            and np.array_equal(np.sort(a.decode_ids), np.sort(b.decode_ids)))


class _Witness(Scheduler):
    """Runs ``policy`` and records, per decision, which rules would have answered alike."""

    name = "witness"

    def __init__(self, policy: Scheduler, rules: dict[str, Scheduler],
                 sim_config: SimConfig) -> None:
        super().__init__(None, sim_config)
        self.policy = policy
        self.rules = rules
        self.agree = {name: 0 for name in rules}
        self.unlike_all = 0
        self.decisions = 0

    def check_feasible(self, limits: WorkloadLimits) -> None:
        self.policy.check_feasible(limits)

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self.policy.reset(rng)
        for k, rule in enumerate(self.rules.values()):
            rule.reset(np.random.default_rng(k))

    def schedule(self, view: DecisionView) -> Batch | Wait:
        command = self.policy.schedule(view)
        alike = False
        for name, rule in self.rules.items():
            if same_command(command, rule.schedule(view)):
                self.agree[name] += 1
                alike = True
        self.decisions += 1
        self.unlike_all += not alike
        return command


def state_dependence(config: SimConfig, policy: str, seed: int,
                     rules: Sequence[str] | None = None) -> dict[str, Any]:
    """One run of ``policy`` on ``config`` with ``seed``, its decisions compared with
    ``rules`` (default: every registered scheduler that can run on the config).

    Returns ``{"decisions": n, "differs_from_all": share, "agrees_with": {rule: share},
    "result": RunResult}``; the run is ``simulate(config, policy, seed)``'s, bit for bit (the
    rules only watch).
    """
    names = list(rules) if rules is not None else canonical_schedulers()
    watching: dict[str, Scheduler] = {}
    limits = config_limits(config)
    for name in names:
        try:
            watching[name] = make_scheduler(config, name)
            watching[name].check_feasible(limits)
        except ConfigError:  # a rule that cannot run on this config is skipped
            watching.pop(name, None)
            if rules is not None:
                raise
    witness = _Witness(make_scheduler(config, policy), watching, config)
    result = simulate(config, witness, seed=seed)
    n = max(witness.decisions, 1)
    return {"decisions": witness.decisions, "differs_from_all": witness.unlike_all / n,
            "agrees_with": {name: count / n for name, count in witness.agree.items()},
            "result": result}
