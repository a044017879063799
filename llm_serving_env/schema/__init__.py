"""The foundation of the config schema: :class:`ConfigError` and the field validators every
section uses. Imports nothing from the rest of the package.
"""

from llm_serving_env.schema.fields import ConfigError, FrozenDict

__all__ = ["ConfigError", "FrozenDict"]
