"""Analyses 5 and 8: sensitivity to the workload (prompt mix, output length, burstiness) and
real traces replayed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from llm_serving_env.config.files import load_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.sim.simulate import simulate
from llm_serving_env.study.common import Study, default_config, summarize, t_row, token_capacity


def _mixture(long_share: float) -> dict[str, Any]:
    """The default prompt mixture with the long-prompt share changed (medium stays 35%)."""
    return {"dist": "mixture", "components": [
        {"weight": round(0.65 - long_share, 6), "dist": "uniform", "low": 16, "high": 128},
        {"weight": 0.35, "dist": "uniform", "low": 128, "high": 512},
        {"weight": long_share, "dist": "uniform", "low": 512, "high": 1536}]} \
        if long_share > 0 else {"dist": "mixture", "components": [
            {"weight": 0.65, "dist": "uniform", "low": 16, "high": 128},
            {"weight": 0.35, "dist": "uniform", "low": 128, "high": 512}]}



#: (factor, level, changes) of the workload-sensitivity study; the baseline is default.yaml.
WORKLOAD_VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("baseline", "default.yaml", {}),
    ("long-prompt share", "0%", {"workload.prompt_tokens": _mixture(0.0)}),
    ("long-prompt share", "25%", {"workload.prompt_tokens": _mixture(0.25)}),
    ("long-prompt share", "30%", {"workload.prompt_tokens": _mixture(0.30)}),
    ("output length", "mean 8 (cap 16)",
     {"workload.output_tokens": {"dist": "geometric", "mean": 8, "max": 16}}),
    ("output length", "mean 32 (cap 64)",
     {"workload.output_tokens": {"dist": "geometric", "mean": 32, "max": 64}}),
    ("output length", "mean 64 (cap 128)",
     {"workload.output_tokens": {"dist": "geometric", "mean": 64, "max": 128}}),
    ("arrival burstiness", "gamma cv 2",
     {"workload.arrival": {"process": "gamma", "rate_per_s": 6.3, "cv": 2.0}}),
    ("arrival burstiness", "gamma cv 4",
     {"workload.arrival": {"process": "gamma", "rate_per_s": 6.3, "cv": 4.0}}),
)



def workload(study: Study) -> dict[str, pd.DataFrame]:
    """Which workload characteristics move tail latency most? At the default 6.3 req/s, vary
    one factor at a time: the share of long prompts (512-1536 tokens), the output length, and
    the burstiness of arrivals (gamma renewal with cv 2 and 4 instead of Poisson's 1).
    Writes ``workload.csv`` (factor, level, capacity_rps = hybrid's work-conserving capacity,
    load = rate / capacity, policy, metric, ...)."""
    sz = study.sizes
    base = default_config(sz)
    variants = {f"{f}|{lv}": ch for f, lv, ch in WORKLOAD_VARIANTS}
    raw = study.variants(base, variants, {}, ["orca", "hybrid", "slo_aware"], sz.reps)
    raw.insert(1, "rate_per_s", base.workload.arrival.rate_per_s)
    out = summarize(raw, rate_col="rate_per_s")
    cap = {k: token_capacity(base.replace(ch) if ch else base) for k, ch in variants.items()}
    out.insert(1, "capacity_rps", out["variant"].map(cap))
    out.insert(2, "load", out["rate_per_s"] / out["capacity_rps"])
    split = out["variant"].str.split("|", n=1, expand=True)
    out.insert(0, "factor", split[0])
    out.insert(1, "level", split[1])
    return {"workload": study.write("workload", out.drop(columns=["variant"]))}



TRACES = ("azure_conv", "azure_code", "sharegpt")



TRACE_POLICIES = ("prefill_first", "orca", "hybrid", "slo_aware")



#: Orca and prefill-first cannot split a prompt: they need iterations as long as the longest
#: prompt (14,050 tokens in azure_conv), so their max_batch_tokens is raised to this.
UNCHUNKED_MAX_TOKENS = 16384



TRACE_BLOCKS = 10



TRACE_METRICS = ("throughput_rps", "ttft_mean_s", "ttft_p95_s", "tbt_p95_s", "e2e_mean_s",
                 "e2e_p95_s", "slo_attainment", "goodput_rps", "gpu_utilization")



def _trace_job(cfg: SimConfig, policy: str, seed: int, blocks: int) -> dict[str, Any]:
    """One trace run: its summary and, per contiguous block of measured requests, the block
    statistics used for batch-means intervals."""

    result = simulate(cfg, policy=policy, seed=seed)
    summary = result.summary()
    m = result.measured
    ttft, e2e = result.ttft_s[m], result.e2e_s[m]
    met = result.slo_met()[m].astype(float)
    per_block = []
    for idx in np.array_split(np.arange(ttft.size), blocks):
        per_block.append({"ttft_mean_s": float(ttft[idx].mean()),
                          "ttft_p95_s": float(np.quantile(ttft[idx], 0.95)),
                          "e2e_mean_s": float(e2e[idx].mean()),
                          "e2e_p95_s": float(np.quantile(e2e[idx], 0.95)),
                          "slo_attainment": float(met[idx].mean())})
    return {"summary": summary, "blocks": per_block}



def traces(study: Study) -> dict[str, pd.DataFrame]:
    """Real workloads per policy. ``azure_conv`` and ``azure_code`` replay the Azure LLM
    inference traces (real arrival times and lengths); one replay is one sample path
    (deterministic service), so its CI is by batch means over 10 contiguous blocks of measured
    requests (quantile rows: block quantiles; approximate). ``sharegpt`` draws Poisson arrivals
    and ShareGPT lengths, so its CIs are over independent replications. Writes ``traces.csv``
    (trace, gpus, policy, metric, mean, half_width, n, method)."""
    sz = study.sizes
    jobs, keys = [], []
    for trace in TRACES:
        cfg = load_config(CONFIGS_DIR / f"{trace}.yaml")
        if sz.trace_requests is not None:
            cfg = cfg.replace({"num_requests": min(sz.trace_requests, cfg.num_requests),
                               "warmup_requests": min(cfg.warmup_requests,
                                                      sz.trace_requests // 10)})
        replay = cfg.workload.arrival.kind == "trace"
        for policy in TRACE_POLICIES:
            run_cfg = cfg if policy in ("hybrid", "slo_aware") else cfg.replace(
                {"gpus.max_batch_tokens": UNCHUNKED_MAX_TOKENS})
            seeds = [0] if replay else list(range(sz.trace_reps))
            for seed in seeds:
                jobs.append((run_cfg, policy, seed, TRACE_BLOCKS))
                keys.append((trace, policy, seed, replay, cfg.gpus.count))
    results = study.map(_trace_job, jobs)
    rows = []
    for trace in TRACES:
        for policy in TRACE_POLICIES:
            mine = [(k, r) for k, r in zip(keys, results, strict=True)
                    if k[0] == trace and k[1] == policy]
            replay, gpus = mine[0][0][3], mine[0][0][4]
            for metric in TRACE_METRICS:
                whole = [r["summary"][metric] for _, r in mine]
                if replay and metric in mine[0][1]["blocks"][0]:
                    blocks = t_row(b[metric] for b in mine[0][1]["blocks"])
                    est = {"mean": whole[0], "half_width": blocks["half_width"],
                           "n": blocks["n"]}
                    method = f"batch means over {TRACE_BLOCKS} blocks"
                elif replay:
                    est = {"mean": whole[0], "half_width": math.nan, "n": 1}
                    method = "single replay"
                else:
                    est = t_row(whole)
                    method = "independent replications"
                rows.append({"trace": trace, "gpus": gpus, "policy": policy, "metric": metric,
                             **est, "method": method})
    return {"traces": study.write("traces", pd.DataFrame(rows))}

