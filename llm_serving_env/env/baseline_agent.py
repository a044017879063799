"""Hand-written schedulers acting through the environment: :class:`BaselineAgent`."""

from __future__ import annotations

import gymnasium as gym

from llm_serving_env.env.serving_env import LLMServingEnv
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import Scheduler, make_scheduler

__all__ = ["BaselineAgent"]


class BaselineAgent:
    """A hand-written scheduler acting through the env: ``agent.act(env)`` returns the
    scheduler's ``Batch`` or ``Wait`` for ``env.unwrapped.decision_view``, to pass to
    ``env.step``.

    ``policy`` is a registered scheduler name (built with ``make_scheduler(config, name)``,
    as ``simulate`` does; None = the config's scheduler) or a Scheduler instance. At the first
    decision of every episode the scheduler is (re)built, checked with ``check_feasible`` and
    reset with the simulator's policy stream, exactly as ``simulate`` does, so a run through
    the env gives the same RunResult, bit for bit, as ``simulate(config, policy, seed)``.
    """

    def __init__(self, policy: str | Scheduler | None = None, env: gym.Env | None = None
                 ) -> None:
        self.policy = policy
        self.env = env
        self.scheduler: Scheduler | None = None
        self._episode: tuple[int, int] | None = None

    def act(self, env: gym.Env | None = None) -> Batch | Wait:
        """The scheduler's answer at the env's current decision point."""
        env = env if env is not None else self.env
        if env is None:
            raise ValueError("BaselineAgent.act needs an env")
        base: LLMServingEnv = env.unwrapped  # type: ignore[assignment]
        view = base.decision_view
        if view is None:
            raise RuntimeError("no decision point: reset the env first")
        key = (id(base), base.episode_id)
        if key != self._episode:
            self._episode = key
            policy = self.policy
            scheduler = (policy if isinstance(policy, Scheduler)
                         else make_scheduler(base.config, policy))
            scheduler.check_feasible(base.sim.limits)
            scheduler.reset(base.sim.policy_rng)
            self.scheduler = scheduler
        return self.scheduler.schedule(view)

    __call__ = act


# ---------------------------------------------------------------------- compact action wrappers
