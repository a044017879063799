"""The compiled rules' dispatcher: the configured rule's answer at a decision point."""

from __future__ import annotations

import math

import numba as nb

from llm_serving_env.sim.fast.layout import (
    DYNAMIC_BATCH,
    FIXED_BATCH,
    HYBRID,
    ORCA,
    REQUEST_LEVEL,
    RULE,
    SLO_AWARE,
    WAIT_S,
)
from llm_serving_env.sim.fast.rules import cohort, hybrid, orca, prefill_first, request_level
from llm_serving_env.sim.fast.slo import slo_aware


@nb.njit(cache=True)
def schedule(g, lists, req_i, req_f, gpu_i, sc_i, sc_f, plan, scratch):
    """The configured rule's answer for free GPU ``g``: ``(kind, num_prefills, num_decodes)``
    (see :mod:`.rules`)."""
    rule = sc_i[RULE]
    sc_f[WAIT_S] = math.inf
    if rule == HYBRID:
        return hybrid(g, lists, req_i, gpu_i, sc_i, scratch)
    if rule == SLO_AWARE:
        return slo_aware(g, lists, req_i, req_f, gpu_i, sc_i, sc_f, plan, scratch)
    if rule in (FIXED_BATCH, DYNAMIC_BATCH):
        return cohort(g, lists, req_i, req_f, gpu_i, sc_i, sc_f, scratch)
    if rule == ORCA:
        return orca(g, lists, req_i, gpu_i, sc_i, scratch)
    if rule == REQUEST_LEVEL:
        return request_level(g, lists, req_i, gpu_i, sc_i, scratch)
    return prefill_first(g, lists, req_i, gpu_i, sc_i, sc_f, scratch)
