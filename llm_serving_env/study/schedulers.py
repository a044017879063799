"""Analyses 2-5: every scheduler compared with common random numbers, hybrid's chunk size,
fixed vs dynamic batching, latency against load.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from llm_serving_env.analysis.capacity import CapacityError, capacity
from llm_serving_env.analysis.stats import (
    paired_difference,
)
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.sim.scheduler import canonical_schedulers
from llm_serving_env.study.common import (
    POLICY_ORDER,
    RATE,
    Study,
    default_config,
    summarize,
    token_capacity,
)

PAIRED_METRICS = ("throughput_rps", "ttft_mean_s", "ttft_p95_s", "tbt_p95_s", "e2e_mean_s",
                  "e2e_p95_s", "slo_attainment", "goodput_rps")



def _capacity_job(cfg: SimConfig, policy: str, target: float, reps: int,
                  rel_tol: float) -> dict[str, Any]:

    try:
        res = capacity(cfg, policy=policy, slo_attainment=target, replications=reps,
                       rel_tol=rel_tol, progress=False, max_probes=40)
    except CapacityError as err:
        return {"policy": policy, "target": target, "rate_per_s": math.nan,
                "low_per_s": math.nan, "high_per_s": math.nan, "attainment_at_low": math.nan,
                "attainment_half_width": math.nan, "probes": 0, "replications": reps,
                "note": str(err).splitlines()[0][:200]}
    return {"policy": policy, "target": target, "rate_per_s": res.rate_per_s,
            "low_per_s": res.low_per_s, "high_per_s": res.high_per_s,
            "attainment_at_low": res.low_attainment.mean,
            "attainment_half_width": res.low_attainment.half_width,
            "probes": len(res.probes), "replications": reps, "note": ""}



def comparison(study: Study) -> dict[str, pd.DataFrame]:
    """Every scheduler on ``configs/default.yaml`` (6.3 req/s, 70% of hybrid's capacity).

    Writes ``comparison.csv`` (policy, metric, mean, half_width, low, high, n),
    ``comparison_paired.csv`` (policy, metric, mean, half_width, n: the paired-t interval of
    policy minus hybrid over common-random-number replications) and ``capacity_slo.csv``
    (policy, target, rate_per_s = largest rate meeting 90% SLO attainment with a stable
    backlog, bracket low_per_s/high_per_s, attainment at it with its CI half-width, probes).
    """

    sz = study.sizes
    policies = [p for p in POLICY_ORDER if p in canonical_schedulers()]
    base = default_config(sz)
    raw = study.sweep(base, {}, policies, sz.comparison_reps)
    raw.insert(0, "rate_per_s", base.workload.arrival.rate_per_s)
    long = summarize(raw, rate_col="rate_per_s").drop(columns=["rate_per_s"])
    ref = raw[raw["policy"] == "hybrid"].set_index("seed")
    paired = []
    for policy in policies:
        if policy == "hybrid":
            continue
        mine = raw[raw["policy"] == policy].set_index("seed").loc[ref.index]
        for metric in PAIRED_METRICS:
            a, b = mine[metric].to_numpy(float), ref[metric].to_numpy(float)
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() < 2:
                continue
            est = paired_difference(a[ok], b[ok])
            paired.append({"policy": policy, "reference": "hybrid", "metric": metric,
                           "mean": est.mean, "half_width": est.half_width, "n": est.n})
    cap_cfg = base.replace({"num_requests": sz.capacity_requests,
                            "warmup_requests": sz.capacity_warmup})
    caps = study.map(_capacity_job, [(cap_cfg, p, 0.9, sz.capacity_reps, sz.capacity_rel_tol)
                                     for p in policies])
    return {"comparison": study.write("comparison", long),
            "comparison_paired": study.write("comparison_paired", pd.DataFrame(paired)),
            "capacity_slo": study.write("capacity_slo", pd.DataFrame(caps))}



def chunk_size(study: Study) -> dict[str, pd.DataFrame]:
    """Hybrid's token budget (the prefill chunk size plus decodes per iteration) from 64 to 2048
    tokens, at 4.0 and 6.3 req/s on the default workload. Writes ``chunk_size.csv``
    (rate_per_s, token_budget, policy, metric, mean, half_width, low, high, n, capacity_rps =
    work-conserving capacity at that budget)."""
    sz = study.sizes
    budgets = [64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048] if sz.dense \
        else [64, 128, 256, 512, 1024, 2048]
    base = default_config(sz)
    raw = study.sweep(base, {RATE: [4.0, 6.3], "scheduler.token_budget": budgets}, ["hybrid"],
                      sz.reps)
    out = summarize(raw, {RATE: "rate_per_s", "scheduler.token_budget": "token_budget"})
    out["capacity_rps"] = [token_capacity(base, int(b)) for b in out["token_budget"]]
    return {"chunk_size": study.write("chunk_size", out)}



def batching(study: Study) -> dict[str, pd.DataFrame]:
    """Fixed-size (threshold 512 prompt tokens or 200 ms timeout), dynamic (TTFT-target) and
    plain request-level batching, with hybrid for reference, at loads up to just below
    request-level's capacity (~3.2 req/s on the default workload). Writes ``batching.csv``."""
    sz = study.sizes
    rates = [0.5, 1.0, 1.5, 2.0, 2.5, 2.8, 3.0] if sz.dense else [0.5, 1.5, 2.5, 3.0]
    raw = study.sweep(default_config(sz), {RATE: rates},
                      ["request_level", "fixed_batch", "dynamic_batch", "hybrid"], sz.reps)
    return {"batching": study.write("batching", summarize(raw, {RATE: "rate_per_s"}))}



LOAD_POLICIES = ("request_level", "prefill_first", "orca", "hybrid", "slo_aware")



def load_sweep(study: Study) -> dict[str, pd.DataFrame]:
    """TTFT, TBT and E2E latency against the arrival rate for five schedulers, from light load to
    past capacity. Writes ``load_sweep.csv`` (rate_per_s, policy, metric, ...; the metric
    ``served_fraction`` = throughput / rate marks saturation) and ``capacities.csv``
    (reference capacities: the work-conserving bounds at K = 512 and K = 2048 tokens)."""
    sz = study.sizes
    rates = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 8.5, 9.0, 9.5, 10.5] if sz.dense \
        else [1.0, 3.0, 5.0, 7.0, 8.5, 9.5, 10.5]
    base = default_config(sz)
    raw = study.sweep(base, {RATE: rates}, list(LOAD_POLICIES), sz.reps)
    out = summarize(raw, {RATE: "rate_per_s"})
    caps = pd.DataFrame([
        {"name": "work-conserving, 512-token iterations (hybrid)",
         "rate_per_s": token_capacity(base, 512), "source": "Li et al. Theorem 2"},
        {"name": "work-conserving, 2048-token iterations (upper bound)",
         "rate_per_s": token_capacity(base, base.gpus.max_batch_tokens),
         "source": "Li et al. Theorem 2"},
    ])
    return {"load_sweep": study.write("load_sweep", out),
            "capacities": study.write("capacities", caps)}

