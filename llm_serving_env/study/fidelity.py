"""Analysis 12: what the fidelity features change on Mooncake's hour of Kimi traffic.

``configs/mooncake.yaml`` (mean prompt 12,035 tokens) replayed with the token-count service
model (the brief's), with prefix caching (the trace's ``hash_ids``; central queue, the
``least_tokens`` router and the cache-aware ``prefix_affinity`` router), and with context-aware
iteration time (``service.attention``) at 20, 30 and 40 replicas, with and without prefix
caching, under ``hybrid`` and under ``slo_aware``, which plans with the attention term.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from llm_serving_env.config.files import load_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.sim.simulate import simulate
from llm_serving_env.study.common import Study

#: (variant, replicas, config changes); ``hybrid`` with a 512-token budget unless the variant
#: names ``slo_aware`` (which plans each iteration with the attention term).
FIDELITY_VARIANTS: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("token count", 20, {}),
    ("prefix caching, central queue", 20, {"gpus.prefix_caching": True}),
    ("prefix caching, least_tokens", 20,
     {"gpus.prefix_caching": True, "gpus.router": "least_tokens"}),
    ("prefix caching, prefix_affinity", 20,
     {"gpus.prefix_caching": True, "gpus.router": "prefix_affinity"}),
    ("attention", 20, {"service.attention": True}),
    ("attention", 40, {"service.attention": True}),
    ("attention, slo_aware", 20, {"service.attention": True, "scheduler": {"name": "slo_aware"}}),
    ("attention, slo_aware", 30, {"service.attention": True, "scheduler": {"name": "slo_aware"}}),
    ("attention + prefix caching, least_tokens", 40,
     {"service.attention": True, "gpus.prefix_caching": True, "gpus.router": "least_tokens"}),
    ("attention + prefix caching, prefix_affinity", 40,
     {"service.attention": True, "gpus.prefix_caching": True,
      "gpus.router": "prefix_affinity"}),
)

FIDELITY_METRICS: tuple[str, ...] = (
    "throughput_rps", "ttft_mean_s", "ttft_p99_s", "tbt_p99_s", "e2e_mean_s",
    "slo_attainment", "prefix_hit_rate")


def _fidelity_job(cfg: SimConfig) -> dict[str, float]:
    summary = simulate(cfg, seed=0).summary()
    return {m: float(summary.get(m, 0.0)) for m in FIDELITY_METRICS}


def fidelity(study: Study) -> dict[str, pd.DataFrame]:
    """One replay (seed 0) per variant of :data:`FIDELITY_VARIANTS`; the study's
    ``trace_requests`` limits the replayed requests. Writes ``fidelity.csv`` (variant,
    replicas, scheduler, router, attention, prefix_caching, requests, then the metrics;
    prefix_hit_rate 0 without caching)."""
    base = load_config(CONFIGS_DIR / "mooncake.yaml")
    n = study.sizes.trace_requests
    if n is not None and n < base.num_requests:
        base = base.replace({"num_requests": n, "warmup_requests": min(base.warmup_requests,
                                                                       n // 10)})
    configs = [base.replace({**changes, "gpus.count": replicas})
               for _, replicas, changes in FIDELITY_VARIANTS]
    results = study.map(_fidelity_job, [(cfg,) for cfg in configs])
    rows = []
    for (variant, replicas, _), cfg, metrics in zip(FIDELITY_VARIANTS, configs, results,
                                                     strict=True):
        rows.append({"variant": variant, "replicas": replicas,
                     "scheduler": cfg.scheduler.name, "router": cfg.gpus.router,
                     "attention": cfg.service.attention,
                     "prefix_caching": cfg.gpus.prefix_caching,
                     "requests": cfg.num_requests, **metrics})
    return {"fidelity": study.write("fidelity", pd.DataFrame(rows))}
