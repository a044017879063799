"""Hand-written schedulers acting through the environment: :class:`BaselineAgent`."""

from __future__ import annotations

import gymnasium as gym

from llm_serving_env.env.native_encoder import CommandEncoder
from llm_serving_env.env.serving_env import LLMServingEnv
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import Scheduler, make_scheduler

__all__ = ["BaselineAgent"]


class BaselineAgent:
    """A hand-written scheduler acting through the env: ``agent.act(env)`` returns the
    scheduler's ``Batch`` or ``Wait`` for ``env.unwrapped.decision_view``, to pass to
    ``env.step``; with ``native=True`` (``LLMServing-v1`` only) it returns instead the next
    element of ``env.action_space`` that composes that answer (a
    :class:`~llm_serving_env.env.native_encoder.CommandEncoder` plans them; ``NotExpressible``
    if the env's guards or ``hold_s`` forbid it).

    ``policy`` is a registered scheduler name (built with ``make_scheduler(config, name)``,
    as ``simulate`` does; None = the config's scheduler) or a Scheduler instance. At the first
    decision of every episode the scheduler is (re)built, checked with ``check_feasible`` and
    reset with the simulator's policy stream, exactly as ``simulate`` does, so a run through
    the env gives the same RunResult, bit for bit, as ``simulate(config, policy, seed)``.
    """

    def __init__(self, policy: str | Scheduler | None = None, env: gym.Env | None = None,
                 *, native: bool = False) -> None:
        self.policy = policy
        self.env = env
        self.native = native
        self._encoder: CommandEncoder | None = None
        self._encoded: object | None = None
        self.scheduler: Scheduler | None = None
        self.command: Batch | Wait | None = None  # (native) the current decision's answer
        self._episode: tuple[int, int] | None = None

    def act(self, env: gym.Env | None = None) -> Batch | Wait | int:
        """The scheduler's answer at the env's current decision point (``native``: the next
        micro-action composing it)."""
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
        if not self.native:
            return self.scheduler.schedule(view)
        composer = getattr(base, "composer", None)
        if composer is None:
            raise ValueError("BaselineAgent(native=True) acts on LLMServing-v1 (LLMComposeEnv)")
        if composer is not self._encoded:  # a new decision point: ask the scheduler once
            self._encoded = composer
            self.command = self.scheduler.schedule(view)
            self._encoder = CommandEncoder(composer, self.command)
        return self._encoder.next_action()

    __call__ = act


# ---------------------------------------------------------------------- compact action wrappers
