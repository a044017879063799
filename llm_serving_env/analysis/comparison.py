"""Compare schedulers over independent replications with common random numbers.

Replication ``r`` of every policy uses seed ``first_seed + r``, so all policies see the same
arrivals and lengths in a replication (common random numbers). Each metric is reported as the
mean over replications with a Student-t confidence interval.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import pandas as pd
from tqdm.auto import tqdm

from llm_serving_env.analysis.stats import summarize_replications
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.sim.scheduler import make_scheduler
from llm_serving_env.sim.simulate import simulate


def _summary_row(config: SimConfig, policy: str, seed: int) -> dict:
    return {"policy": policy, "seed": seed, **simulate(config, policy=policy, seed=seed).summary()}


def run_replications(
    config: SimConfig,
    policies: Sequence[str],
    seeds: Sequence[int],
    progress: bool = True,
    workers: int | None = None,
) -> pd.DataFrame:
    """One summary row per (policy, seed): columns ``policy, seed`` then the summary keys.

    ``workers`` > 1 runs the replications in that many local processes (default: one per CPU);
    results do not depend on it, since each run's randomness comes from its seed only.
    """
    for name in policies:
        make_scheduler(config, name)  # fail fast on a bad name or parameters, before any run
    jobs = [(p, s) for p in policies for s in seeds]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    bar = tqdm(total=len(jobs), desc="simulating", unit="run", disable=not progress)
    if workers <= 1:
        rows = []
        for policy, seed in jobs:
            rows.append(_summary_row(config, policy, seed))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_summary_row, config, p, s) for p, s in jobs]
            for future in as_completed(futures):
                future.result()
                bar.update()
            rows = [f.result() for f in futures]  # in job order, whatever finished first
    bar.close()
    return pd.DataFrame(rows)


def compare_policies(
    config: SimConfig,
    policies: Sequence[str],
    num_seeds: int = 5,
    first_seed: int = 0,
    level: float = 0.95,
    progress: bool = True,
    workers: int | None = None,
) -> pd.DataFrame:
    """Mean and CI of every summary metric per policy.

    Returns a long DataFrame with columns ``policy, metric, mean, half_width, low, high, n``
    (one row per policy and metric), in the order of ``policies``.
    """
    if num_seeds < 2:
        raise ValueError(f"num_seeds = {num_seeds}: need at least 2 replications for a CI")
    runs = run_replications(config, policies, range(first_seed, first_seed + num_seeds),
                            progress=progress, workers=workers)
    tables = []
    for policy in policies:
        rows = runs[runs["policy"] == policy].drop(columns=["policy", "seed"])
        table = summarize_replications(rows.to_dict("records"), level=level)
        table.insert(0, "policy", policy)
        tables.append(table.rename_axis("metric").reset_index())
    return pd.concat(tables, ignore_index=True)


def wide_table(long: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Policies as rows, metrics as columns, cells ``mean ± half_width`` (strings)."""
    df = long if metrics is None else long[long["metric"].isin(metrics)]
    pairs = zip(df["mean"], df["half_width"], strict=True)
    cells = df.assign(cell=[_format(m, h) for m, h in pairs])
    wide = cells.pivot(index="policy", columns="metric", values="cell")
    order = list(dict.fromkeys(df["policy"]))
    cols = list(dict.fromkeys(df["metric"]))
    return wide.loc[order, cols]


def _format(mean: float, half: float) -> str:
    if pd.isna(mean):
        return "nan"
    if pd.isna(half):
        return f"{mean:.4g}"
    if half <= 1e-9 * max(1.0, abs(mean)):  # identical across replications up to rounding
        half = 0.0
    return f"{mean:.4g} ± {half:.2g}"
