"""A clairvoyant lookahead planner: a *privileged* teacher for behaviour cloning, never a policy.

At a decision point where the rule's candidates disagree, :class:`LookaheadExpert` copies the
simulator, runs each candidate batch followed by the base rule for ``horizon_s`` simulated
seconds, and keeps the candidate whose window scores best (one-step rollout policy
improvement, Bertsekas 1997; ties go to the base rule). The candidates are the base rule's
batch and those of a few variants of it (smaller token budgets, a wider deadline margin, plain
SRPT without triage). The score of a window [now, now + horizon_s] counts, over the requests
that arrive by its end and have no first token before ``now``: +1 for each whose first token
meets its TTFT objective, -1 for each whose TTFT deadline passes inside the window unmet.

It is clairvoyant: the copy holds the true future (arrivals, output lengths, service noise),
so it plans with knowledge no scheduler has. That is why it is only a teacher ("learning by
cheating", Chen et al., CoRL 2019): a student cloned from it (``llm-serving train
--bc-expert lookahead:RULE``) acts on the public observation alone, and whatever part of the
teacher's gain is predictable from that observation is what it can learn. Its own
attainment is an existence proof of headroom (a feasible schedule), not a result a scheduler
could reach. It needs the simulator it plans on (:meth:`attach`); ``simulate`` cannot run it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.scheduler import DecisionView, Scheduler, WorkloadLimits, make_scheduler
from llm_serving_env.sim.simulate import run_policy

__all__ = ["DEFAULT_VARIANTS", "LOOKAHEAD_PREFIX", "LookaheadExpert", "run_lookahead"]

#: ``--bc-expert lookahead:RULE`` names this teacher around RULE.
LOOKAHEAD_PREFIX = "lookahead:"
#: The candidates beside the base rule: (scheduler name or None for the base rule, params).
DEFAULT_VARIANTS: tuple[tuple[str | None, Mapping[str, Any]], ...] = (
    (None, {"max_token_budget": 512}),
    (None, {"max_token_budget": 256}),
    (None, {"safety_margin_ms": 50.0}),
    ("slo_aware", {}),
)
#: Default window, in multiples of the tightest TTFT objective.
DEFAULT_HORIZON_TTFTS = 3.0


def _key(command: Batch | Wait) -> tuple:
    if isinstance(command, Batch):
        return (tuple(command.prefill_ids.tolist()), tuple(command.prefill_tokens.tolist()),
                tuple(command.decode_ids.tolist()))
    return ("wait", command.until_s)


class LookaheadExpert(Scheduler):
    """One-step clairvoyant rollout around a base rule (module docstring).

    Args:
        sim_config: the run's config (its SLO sets the TTFT objectives scored).
        base: the base rule's name (it also plays the rollouts).
        variants: the other candidates, ``(name or None for base, params)``.
        horizon_s: the scored window in simulated seconds (default 3 x the tightest TTFT
            objective).

    Attributes:
        considered: decisions at which the candidates differed (rollouts ran).
        changed: decisions at which a candidate other than the base rule's won.
    """

    name = "lookahead"

    def __init__(self, sim_config: SimConfig, base: str = "slo_triage",
                 variants: Sequence[tuple[str | None, Mapping[str, Any]]] = DEFAULT_VARIANTS,
                 horizon_s: float | None = None) -> None:
        super().__init__(None, sim_config)
        if sim_config.slo is None:
            raise ConfigError("slo: the lookahead teacher scores TTFT deadlines and needs an SLO")
        self.base_name = base
        self.rule = make_scheduler(sim_config, base)
        self.candidates = [self.rule]
        for name, params in variants:
            cfg = sim_config.replace({"scheduler": {"name": name or base, **dict(params)}})
            self.candidates.append(make_scheduler(cfg))
        tightest = sim_config.slo.ttft_ms  # the tightest class's with slo.classes
        self.horizon_s = (DEFAULT_HORIZON_TTFTS * tightest / 1000.0 if horizon_s is None
                          else float(horizon_s))
        if not self.horizon_s > 0.0:
            raise ConfigError(f"lookahead horizon_s = {horizon_s!r}: must be > 0")
        self.sim: Simulator | None = None
        self.considered = 0
        self.changed = 0

    @property
    def label(self) -> str:
        return f"{LOOKAHEAD_PREFIX}{self.base_name}"

    def attach(self, sim: Simulator) -> None:
        """Plan on ``sim``: the simulator whose decision points this expert answers."""
        self.sim = sim

    def check_feasible(self, limits: WorkloadLimits) -> None:
        for c in self.candidates:
            c.check_feasible(limits)

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        for c in self.candidates:
            c.reset(rng)

    def schedule(self, view: DecisionView) -> Batch | Wait:
        first = self.rule.schedule(view)
        if view.waiting.size == 0 or not isinstance(first, Batch):
            return first
        options, seen = [first], {_key(first)}
        for c in self.candidates[1:]:
            command = c.schedule(view)
            if _key(command) not in seen:
                seen.add(_key(command))
                options.append(command)
        if len(options) == 1:
            return first
        if self.sim is None or self.sim.now_s != view.now_s:
            raise RuntimeError("LookaheadExpert plans on its simulator: attach(sim) first "
                               "(it is a teacher for behaviour cloning, not a scheduler)")
        self.considered += 1
        scores = [self._rollout(command, view.now_s) for command in options]
        best = int(np.argmax(scores))  # the first maximum: ties keep the base rule's batch
        self.changed += best != 0
        return options[best]

    def _rollout(self, command: Batch | Wait, now: float) -> int:
        """The window's score after ``command`` then the base rule (module docstring)."""
        sim = copy.deepcopy(self.sim)
        sim.execute(command)
        end = now + self.horizon_s
        schedule = self.rule.schedule
        while (view := sim.next_decision()) is not None and view.now_s < end:
            sim.execute(schedule(view))
        arrival, first = sim.arrival_s, sim.first_token_s
        deadline = arrival + sim._ttft_objective_s
        open_ = (arrival <= end) & ~(first < now)  # first token NaN or not before now
        met = open_ & (first <= deadline)
        missed = open_ & ~met & (deadline <= end)
        return int(np.count_nonzero(met)) - int(np.count_nonzero(missed))


def run_lookahead(config: SimConfig, seed: int, base: str = "slo_triage",
                  horizon_s: float | None = None) -> tuple[RunResult, LookaheadExpert]:
    """One run of the teacher on ``config`` with ``seed`` (the requests ``simulate(config,
    policy, seed)`` serves): its RunResult and the teacher (``considered``, ``changed``)."""
    teacher = LookaheadExpert(config, base=base, horizon_s=horizon_s)
    sim = Simulator(config, seed=seed)
    sim.reset()
    teacher.attach(sim)
    return run_policy(sim, teacher), teacher


def lookahead_expert(spec: str, sim_config: SimConfig) -> LookaheadExpert | None:
    """The teacher ``spec`` names (``lookahead:RULE``), or None for any other spec."""
    if not spec.startswith(LOOKAHEAD_PREFIX):
        return None
    return LookaheadExpert(sim_config, base=spec[len(LOOKAHEAD_PREFIX):] or "slo_triage")
