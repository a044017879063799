"""Hand-written schedulers. Every module in this package is imported on first use of the
registry, so adding a scheduler is adding one file that decorates its class with
``llm_serving_env.sim.scheduler.register_scheduler``."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
