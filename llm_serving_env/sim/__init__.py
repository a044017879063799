"""The engine: batches and their rules, the scheduler interface and registry, the discrete-event
simulator, the run's result and metrics, and ``simulate``.
"""

from llm_serving_env.sim.batch import Batch, SchedulingError, Wait
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.scheduler import (
    DecisionView,
    Scheduler,
    available_schedulers,
    make_scheduler,
    register_scheduler,
)
from llm_serving_env.sim.simulate import simulate

__all__ = [
    "Batch",
    "DecisionView",
    "RunResult",
    "Scheduler",
    "SchedulingError",
    "Simulator",
    "Wait",
    "available_schedulers",
    "make_scheduler",
    "register_scheduler",
    "simulate",
]
