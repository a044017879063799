"""Which runs the compiled engine takes (importing this does not import numba).

It covers the built-in schedulers whose :meth:`~llm_serving_env.sim.scheduler.Scheduler.
compiled_rule` names a rule (hybrid, orca, request_level, prefill_first, fixed_batch,
dynamic_batch, slo_aware, slo_triage, slo_classes), any number of GPUs behind the
``central``, ``round_robin``, ``jsq`` and ``least_tokens`` routers, every service model and
noise, the attention term, limited KV memory with preemption, warm-up, SLO classes and
replayed traces. Not yet: disaggregation and prefix caching; for those :func:`fast_path_gap`
says why and the reference engine runs them.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from llm_serving_env.sim.fast.layout import ROUTER_CODES, RULE_CODES

if TYPE_CHECKING:
    from llm_serving_env.config.sim_config import SimConfig
    from llm_serving_env.sim.scheduler import Scheduler

__all__ = ["ENGINES", "fast_path_gap"]

#: Limits at or above this do not fit the compiled engine's int64 tables.
INT64_LIMIT = 2**62

#: ``simulate``'s engine choices: the compiled one when it can run the case (``auto``),
#: always the compiled one (an error when it cannot), always the Python reference engine.
ENGINES = ("auto", "compiled", "reference")


def fast_path_gap(config: SimConfig, scheduler: Scheduler) -> str | None:
    """Why the compiled engine cannot run ``scheduler`` on ``config`` (None: it can)."""
    if scheduler.sim_config != config:
        return ("the scheduler was built for another config (it plans with that one's "
                "service); the reference engine runs it as given")
    gpus = config.gpus
    if max(gpus.max_batch_tokens, gpus.kv_capacity_tokens or 0) >= INT64_LIMIT:
        return "a limit beyond 64-bit integers (gpus.max_batch_tokens or kv_capacity_tokens)"
    if config.disaggregation is not None:
        return "disaggregation is not compiled yet"
    if config.gpus.prefix_caching:
        return "gpus.prefix_caching is not compiled yet"
    if config.gpus.router not in ROUTER_CODES:
        return f"gpus.router {config.gpus.router!r} is not compiled yet"
    rule = scheduler.compiled_rule()
    if rule is None or rule.name not in RULE_CODES:
        return f"scheduler {scheduler.label!r} has no compiled rule"
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed"
    return None
