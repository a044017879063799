"""The Gymnasium adapter: the ``LLMServing-v0`` environment, its wrappers and ``BaselineAgent``."""

from llm_serving_env.env.core import (
    ENV_ID,
    BaselineAgent,
    CompactActionWrapper,
    CompactMultiDiscreteWrapper,
    LLMServingEnv,
)

__all__ = [
    "BaselineAgent",
    "CompactActionWrapper",
    "CompactMultiDiscreteWrapper",
    "ENV_ID",
    "LLMServingEnv",
]
