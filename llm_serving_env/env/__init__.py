"""The Gymnasium adapter: the ``LLMServing-v0`` environment (native action, masks,
observation), its rewards, small action wrappers for learning, and ``BaselineAgent``.
"""

from llm_serving_env.env.baseline_agent import BaselineAgent
from llm_serving_env.env.serving_env import ENV_ID, LLMServingEnv
from llm_serving_env.env.wrappers import CompactActionWrapper, CompactMultiDiscreteWrapper

__all__ = [
    "ENV_ID",
    "BaselineAgent",
    "CompactActionWrapper",
    "CompactMultiDiscreteWrapper",
    "LLMServingEnv",
]
