"""Compare schedulers over independent replications with common random numbers.

Replication ``r`` of every policy uses seed ``first_seed + r``, so all policies see the same
arrivals and lengths in a replication (common random numbers). Each metric is reported as the
mean over replications with a Student-t confidence interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

import pandas as pd

from llm_serving_env.analysis.replications import Interrupted, run_jobs
from llm_serving_env.analysis.stats import summarize_replications
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.engine import config_limits
from llm_serving_env.sim.scheduler import make_scheduler
from llm_serving_env.sim.simulate import simulate


def summary_row(config: SimConfig, policy: str, seed: int) -> dict:
    """One run's row: ``policy``, ``seed``, then every key of ``RunResult.summary()``."""
    return {"policy": policy, "seed": seed, **simulate(config, policy=policy, seed=seed).summary()}


def runnable_policies(
    config: SimConfig, policies: Sequence[str]
) -> tuple[list[str], list[tuple[str, str]]]:
    """Split ``policies`` into those that can run on ``config`` and ``(name, reason)`` for
    those whose scheduler refuses it (e.g. ``slo_aware`` without an SLO, a token budget above
    ``gpus.max_batch_tokens``, whole-prompt prefills longer than the workload's longest prompt
    allows): the reason is the scheduler's ConfigError message."""
    ok, skipped = [], []
    limits = config_limits(config)
    for name in policies:
        try:
            make_scheduler(config, name).check_feasible(limits)
        except ConfigError as exc:
            skipped.append((name, str(exc)))
        else:
            ok.append(name)
    return ok, skipped


def run_replications(
    config: SimConfig,
    policies: Sequence[str],
    seeds: Sequence[int],
    progress: bool = True,
    workers: int | None = None,
    executor: Executor | str | None = None,
) -> pd.DataFrame:
    """One summary row per (policy, seed): columns ``policy, seed`` then the summary keys.

    ``workers`` > 1 runs the replications in that many local processes (default: one per CPU);
    results do not depend on it, since each run's randomness comes from its seed only.
    ``executor``: see :func:`~llm_serving_env.analysis.replications.iter_jobs`.

    Raises:
        Interrupted: on Ctrl-C; its ``partial`` is the DataFrame of the finished runs (job
            order).
    """
    for name in policies:
        make_scheduler(config, name)  # fail fast on a bad name or parameters, before any run
    jobs = [(config, p, s) for p in policies for s in seeds]
    try:
        rows = run_jobs(summary_row, jobs, executor=executor, workers=workers,
                        progress=progress, desc="simulating")
    except Interrupted as exc:
        done = [exc.results[i] for i in sorted(exc.results)]
        raise exc.with_partial(pd.DataFrame(done)) from None
    return pd.DataFrame(rows)


def _long_table(runs: pd.DataFrame, policies: Sequence[str], level: float) -> pd.DataFrame:
    tables = []
    for policy in policies:
        if runs.empty or not (runs["policy"] == policy).any():
            continue
        rows = runs[runs["policy"] == policy].drop(columns=["policy", "seed"])
        table = summarize_replications(rows.to_dict("records"), level=level)
        table.insert(0, "policy", policy)
        tables.append(table.rename_axis("metric").reset_index())
    if not tables:
        return pd.DataFrame(columns=["policy", "metric", "mean", "half_width", "low", "high",
                                     "n"])
    return pd.concat(tables, ignore_index=True)


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

    Raises:
        ValueError: fewer than 2 seeds, or no policy.
        ConfigError: a policy that cannot run on ``config`` (before any run).
        Interrupted: on Ctrl-C; its ``partial`` is the same table over the finished runs
            (``n`` counts them; a policy with none is absent).
    """
    if num_seeds < 2:
        raise ValueError(f"num_seeds = {num_seeds}: need at least 2 replications for a CI")
    if not policies:
        raise ValueError("policies is empty: give at least one scheduler name")
    try:
        runs = run_replications(config, policies, range(first_seed, first_seed + num_seeds),
                                progress=progress, workers=workers)
    except Interrupted as exc:
        raise exc.with_partial(_long_table(exc.partial, policies, level)) from None
    return _long_table(runs, policies, level)


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
