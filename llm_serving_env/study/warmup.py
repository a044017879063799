"""Analysis 11: warm-up (Welch's plot, MSER-5) and precision per number of replications.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llm_serving_env.analysis.stats import (
    mser_truncation,
    t_interval,
    welch_average,
)
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.sim.simulate import simulate
from llm_serving_env.study.common import RATE, Study, default_config

WARMUP_RATES = (6.3, 8.5)



WELCH_BLOCK = 10  # requests averaged per stored point of the Welch curve



def _ttft_series_job(cfg: SimConfig, policy: str, seed: int) -> np.ndarray:

    return simulate(cfg, policy=policy, seed=seed).ttft_s.astype(np.float64)



def warmup(study: Study) -> dict[str, pd.DataFrame]:
    """Warm-up and replication strategy on ``configs/default.yaml`` (hybrid, 70% and 94% load).

    Each replication's TTFT series by request index (arrival order, from an empty system);
    Welch's procedure averages it over replications and smooths it (window 100 requests);
    MSER-5 picks the truncation of the averaged series and of each replication. Writes
    ``warmup_welch.csv`` (rate_per_s, request (start of a block of 10), mean_ttft_s,
    welch_ttft_s), ``warmup_mser.csv`` (rate_per_s, series, cut_requests) and
    ``replication_precision.csv`` (rate_per_s, metric, replications, mean, half_width,
    relative_half_width: the 95% CI after deleting the study's warm-up, using the first R
    replications).
    """
    sz = study.sizes
    base = default_config(sz, warmup_requests=0)
    jobs, keys = [], []
    for rate in WARMUP_RATES:
        for seed in range(sz.welch_reps):
            jobs.append((base.replace({RATE: rate}), "hybrid", seed))
            keys.append((rate, seed))
    series = study.map(_ttft_series_job, jobs)
    welch_rows, mser_rows, prec_rows = [], [], []
    window = 100
    for rate in WARMUP_RATES:
        runs = np.vstack([s for (r, _), s in zip(keys, series, strict=True) if r == rate])
        mean = runs.mean(axis=0)
        smooth = welch_average(runs, window)
        n_blocks = mean.size // WELCH_BLOCK
        for b in range(n_blocks):
            sl = slice(b * WELCH_BLOCK, (b + 1) * WELCH_BLOCK)
            welch_rows.append({"rate_per_s": rate, "request": b * WELCH_BLOCK,
                               "mean_ttft_s": float(mean[sl].mean()),
                               "welch_ttft_s": float(smooth[sl].mean())})
        mser_rows.append({"rate_per_s": rate, "series": "mean over replications",
                          "cut_requests": mser_truncation(mean)})
        for i, run in enumerate(runs):
            mser_rows.append({"rate_per_s": rate, "series": f"replication {i}",
                              "cut_requests": mser_truncation(run)})
        kept = runs[:, sz.warmup:]
        per_rep = {"ttft_mean_s": kept.mean(axis=1),
                   "ttft_p95_s": np.quantile(kept, 0.95, axis=1)}
        for metric, values in per_rep.items():
            for reps in range(2, runs.shape[0] + 1):
                est = t_interval(values[:reps])
                prec_rows.append({"rate_per_s": rate, "metric": metric, "replications": reps,
                                  "mean": est.mean, "half_width": est.half_width,
                                  "relative_half_width": est.relative_half_width})
    return {"warmup_welch": study.write("warmup_welch", pd.DataFrame(welch_rows)),
            "warmup_mser": study.write("warmup_mser", pd.DataFrame(mser_rows)),
            "replication_precision": study.write("replication_precision",
                                                 pd.DataFrame(prec_rows))}

