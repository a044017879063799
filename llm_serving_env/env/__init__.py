"""The Gymnasium adapter: ``LLMServing-v0`` (the whole batch in one MultiDiscrete action, per-
dimension masks and a repair step) and ``LLMServing-v1`` (the batch composed pick by pick in
one Discrete space with an exact mask), their observation and rewards, small action wrappers
for learning, and ``BaselineAgent``.
"""

from llm_serving_env.env.baseline_agent import BaselineAgent
from llm_serving_env.env.compose_env import COMPOSE_ENV_ID, LLMComposeEnv
from llm_serving_env.env.native_encoder import NotExpressible
from llm_serving_env.env.serving_env import ENV_ID, LLMServingEnv
from llm_serving_env.env.wrappers import CompactActionWrapper, CompactMultiDiscreteWrapper

__all__ = [
    "COMPOSE_ENV_ID",
    "ENV_ID",
    "BaselineAgent",
    "CompactActionWrapper",
    "CompactMultiDiscreteWrapper",
    "LLMComposeEnv",
    "LLMServingEnv",
    "NotExpressible",
]
