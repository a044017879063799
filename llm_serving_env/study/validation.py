"""Analysis 1: the brief's demo (request-level vs prefill-first vs hybrid over time) and the
simulator against queueing theory.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from llm_serving_env.analysis import queueing as q
from llm_serving_env.config.files import load_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.plots.figures import (
    time_series,
)
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.sim.simulate import simulate
from llm_serving_env.study.common import RATE, Sizes, Study, default_config, summarize, t_row

DEMO_LENGTHS = {"prompt_tokens": 256, "output_tokens": 32}



DEMO_RATES = (3.0, 4.5)



DEMO_POLICIES = ("request_level", "prefill_first", "hybrid")



def _demo_job(cfg: SimConfig, policy: str, seed: int, bin_s: float,
              num_bins: int) -> tuple[dict, pd.DataFrame]:

    result = simulate(cfg, policy=policy, seed=seed)
    ts = time_series(result, bin_s).iloc[:num_bins]
    cols = ["t_start_s", "t_end_s", "throughput_rps", "ttft_mean_s", "tbt_mean_s",
            "gpu_utilization", "mean_batch_tokens"]
    return result.summary(), ts[cols].reset_index(drop=True)



def demo(study: Study) -> dict[str, pd.DataFrame]:
    """The brief's demo: one GPU, every prompt 256 tokens and every output 32 tokens, Poisson
    arrivals at 3.0 req/s (all policies stable) and 4.5 req/s (past request-level's capacity).

    Writes ``demo_summary.csv`` (rate_per_s, policy, metric, mean, half_width, low, high, n)
    and ``demo_timeseries.csv`` (rate_per_s, policy, t_start_s, t_end_s, metric in
    {throughput_rps, ttft_mean_s, tbt_mean_s, gpu_utilization, mean_batch_tokens}, mean,
    half_width, n): each run binned in time (:func:`llm_serving_env.plots.time_series`), then
    the ensemble mean and t-CI per bin over replications (Welch-style averaging across runs).
    """
    sz = study.sizes
    base = default_config(sz, **{
        "workload.prompt_tokens": {"dist": "fixed", "value": DEMO_LENGTHS["prompt_tokens"]},
        "workload.output_tokens": {"dist": "fixed", "value": DEMO_LENGTHS["output_tokens"]}})
    jobs, keys = [], []
    for rate in DEMO_RATES:
        cfg = base.replace({RATE: rate})
        horizon = sz.requests / rate
        bin_s = horizon / sz.demo_bins
        for policy in DEMO_POLICIES:
            for seed in range(sz.demo_reps):
                jobs.append((cfg, policy, seed, bin_s, sz.demo_bins))
                keys.append((rate, policy, seed))
    results = study.map(_demo_job, jobs)
    rows = [{"rate_per_s": r, "policy": p, "seed": s, **res[0]}
            for (r, p, s), res in zip(keys, results, strict=True)]
    summary = summarize(pd.DataFrame(rows), rate_col="rate_per_s")
    series = []
    for rate in DEMO_RATES:
        for policy in DEMO_POLICIES:
            runs = [res[1] for (r, p, _), res in zip(keys, results, strict=True)
                    if r == rate and p == policy]
            n_bins = min(len(ts) for ts in runs)
            for metric in ("throughput_rps", "ttft_mean_s", "tbt_mean_s", "gpu_utilization",
                           "mean_batch_tokens"):
                values = np.vstack([ts[metric].to_numpy(float)[:n_bins] for ts in runs])
                for k in range(n_bins):
                    series.append({"rate_per_s": rate, "policy": policy,
                                   "t_start_s": float(runs[0]["t_start_s"].iloc[k]),
                                   "t_end_s": float(runs[0]["t_end_s"].iloc[k]),
                                   "metric": metric, **t_row(values[:, k])})
    return {"demo_summary": study.write("demo_summary", summary),
            "demo_timeseries": study.write("demo_timeseries", pd.DataFrame(series))}



def _validation_cases(sz: Sizes) -> list[dict[str, Any]]:
    """(case, config, closed forms) of the queueing validation."""

    mm1 = load_config(CONFIGS_DIR / "mm1.yaml").replace(
        {"num_requests": sz.mm1_requests, "warmup_requests": sz.mm1_warmup})
    mu = 2.5  # 1 / (100 tokens * 4 ms/token)
    cases = []
    for rho in (0.5, 0.7, 0.8, 0.9):
        lam = rho * mu
        cases.append({
            "case": "M/M/1", "rho": rho, "cfg": mm1.replace({RATE: lam}),
            "theory": {"e2e_mean_s": q.mm1_sojourn_mean(lam, mu),
                       "e2e_p95_s": q.mm1_sojourn_quantile(lam, mu, 0.95),
                       "queue_wait_mean_s": q.mm1_waiting_mean(lam, mu)}})
    cases.append({
        "case": "M/D/1", "rho": 0.8,
        "cfg": mm1.replace({RATE: 2.0, "service.noise": "deterministic"}),
        "theory": {"e2e_mean_s": q.md1_sojourn_mean(2.0, 0.4)}})
    cases.append({
        "case": "M/M/2", "rho": 0.8, "cfg": mm1.replace({RATE: 4.0, "gpus.count": 2}),
        "theory": {"e2e_mean_s": q.mmc_sojourn_mean(4.0, mu, 2)}})
    # the brief's two-GPU case: GPU 0 prefills (Exp(mean 0.4 s)), GPU 1 decodes one token
    # (Exp(mean 0.3 s)); Jackson's theorem: E2E = 1/(2.5-1.5) + 1/(3.33-1.5)
    tandem = mm1.replace({
        RATE: 1.5, "workload.output_tokens": {"dist": "fixed", "value": 2}, "gpus.count": 2,
        "disaggregation": {
            "prefill": {"count": 1},
            "decode": {"count": 1, "service": {"c_ms": 300.0, "a_ms": 0.0, "b0_tokens": 0,
                                               "noise": "exponential"}}}})
    cases.append({
        "case": "tandem prefill->decode", "rho": 0.6, "cfg": tandem,
        "theory": {"e2e_mean_s": q.tandem_mm1_sojourn_mean(1.5, [2.5, 1 / 0.3]),
                   "ttft_mean_s": q.mm1_sojourn_mean(1.5, 2.5)}})
    return cases



def validation(study: Study) -> dict[str, pd.DataFrame]:
    """Simulator vs closed-form queueing results (the brief's validation case and more).

    One GPU, one request per batch, c = 0 and exponential service of mean 0.4 s
    (``configs/mm1.yaml``): an M/M/1 queue at rho = 0.5, 0.7, 0.8, 0.9 (mean and P95 sojourn,
    mean wait); the same with deterministic service (M/D/1, Pollaczek-Khinchine); two GPUs
    behind one queue (M/M/2, Erlang C); and a prefill GPU feeding a decode GPU (tandem of two
    M/M/1 queues, Jackson). Writes ``validation.csv``: case, rho, metric, theory, mean,
    half_width, n (replications), rel_error = mean / theory - 1, covered (theory inside the
    95% CI).
    """
    sz = study.sizes
    cases = _validation_cases(sz)

    def one(case: dict[str, Any]) -> pd.DataFrame:
        df = study.sweep(case["cfg"], {}, None, sz.mm1_reps)
        df.insert(0, "variant", f"{case['case']}|{case['rho']}")
        return df

    if study.executor is None:
        frames = [one(c) for c in cases]
    else:
        with ThreadPoolExecutor(max_workers=len(cases)) as threads:
            frames = list(threads.map(one, cases))
    raw = pd.concat(frames, ignore_index=True)
    rows = []
    for case in cases:
        part = raw[raw["variant"] == f"{case['case']}|{case['rho']}"]
        for metric, truth in case["theory"].items():
            est = t_row(part[metric])
            rows.append({"case": case["case"], "rho": case["rho"], "metric": metric,
                         "theory": truth, **est,
                         "rel_error": est["mean"] / truth - 1.0,
                         "covered": bool(abs(est["mean"] - truth) <= est["half_width"])})
    return {"validation": study.write("validation", pd.DataFrame(rows))}

