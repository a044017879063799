"""Matplotlib figures with units and confidence intervals."""

from llm_serving_env.plots.figures import *  # noqa: F403
