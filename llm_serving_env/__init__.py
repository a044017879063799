"""llm-serving-env: a fast, validated, stochastic simulator of LLM query serving.

Quick start::

    import llm_serving_env as lse
    cfg = lse.load_config("configs/default.yaml")
    result = lse.simulate(cfg, policy="hybrid", seed=0)
    print(result.summary())
"""

import gymnasium as _gymnasium

from llm_serving_env.analysis.bounds import slo_upper_bound
from llm_serving_env.analysis.capacity import CapacityResult, capacity
from llm_serving_env.config.files import load_config, save_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.env import (
    COMPOSE_ENV_ID,
    ENV_ID,
    BaselineAgent,
    CompactActionWrapper,
    CompactMultiDiscreteWrapper,
    LLMComposeEnv,
    LLMServingEnv,
)
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, SchedulingError, Wait
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.fast import ENGINES
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.scheduler import (
    DecisionView,
    Scheduler,
    available_schedulers,
    make_scheduler,
    register_scheduler,
)
from llm_serving_env.sim.simulate import simulate

__version__ = "0.1.0"

if ENV_ID not in _gymnasium.registry:
    _gymnasium.register(id=ENV_ID, entry_point="llm_serving_env.env.serving_env:LLMServingEnv")
if COMPOSE_ENV_ID not in _gymnasium.registry:
    _gymnasium.register(id=COMPOSE_ENV_ID,
                        entry_point="llm_serving_env.env.compose_env:LLMComposeEnv")

__all__ = [
    "ENGINES",
    "COMPOSE_ENV_ID", "ENV_ID", "BaselineAgent", "CompactActionWrapper",
    "CompactMultiDiscreteWrapper", "LLMComposeEnv", "LLMServingEnv",
    "Batch", "CapacityResult", "ConfigError", "DecisionView", "RunResult", "Scheduler",
    "SchedulingError", "SimConfig", "Simulator", "Wait", "available_schedulers", "capacity",
    "load_config", "make_scheduler", "register_scheduler", "save_config", "simulate",
    "slo_upper_bound",
]
