"""Runs the study's analyses (``llm-serving report``) and loads their CSVs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_serving_env.analysis.replications import ignore_sigint
from llm_serving_env.sim.scheduler import canonical_schedulers
from llm_serving_env.study.cluster import disaggregation, kv_memory, scaling
from llm_serving_env.study.common import DEFAULT_OUT_DIR, Sizes, Study, noop, study_sizes
from llm_serving_env.study.fidelity import fidelity
from llm_serving_env.study.learned import learned
from llm_serving_env.study.schedulers import batching, chunk_size, comparison, load_sweep
from llm_serving_env.study.sensitivity import sensitivity
from llm_serving_env.study.validation import demo, validation
from llm_serving_env.study.warmup import warmup
from llm_serving_env.study.workloads import traces, workload

#: The analyses in run order (name -> function(study) -> {csv name: DataFrame}).
ANALYSES: dict[str, Callable[[Study], dict[str, pd.DataFrame]]] = {
    "validation": validation,
    "demo": demo,
    "comparison": comparison,
    "chunk_size": chunk_size,
    "batching": batching,
    "load_sweep": load_sweep,
    "workload": workload,
    "scaling": scaling,
    "disaggregation": disaggregation,
    "kv_memory": kv_memory,
    "traces": traces,
    "sensitivity": sensitivity,
    "warmup": warmup,
    "fidelity": fidelity,
}



def run_all(
    quick: bool = True,
    out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR,
    workers: int | None = None,
    only: Sequence[str] | None = None,
    log: Callable[[str], None] | None = print,
    sizes: Sizes | None = None,
) -> dict[str, pd.DataFrame]:
    """Run the study and write its CSVs to ``out_dir``; returns {csv name: DataFrame}.

    Args:
        quick: small sizes (minutes) instead of the study's real sizes (see
            :func:`study_sizes`).
        out_dir: where the CSVs go (created).
        workers: processes of the shared pool (default one per CPU; 1 = this process).
        only: run only these analyses (names of :data:`ANALYSES`); ``run_info.csv`` then keeps
            the other analyses' earlier rows.
        log: called with one line per finished analysis (None: silent).
        sizes: explicit run sizes instead of :func:`study_sizes` (e.g. tiny ones in tests).

    ``run_info.csv`` gets one row per analysis: mode, wall seconds, and the run sizes.
    """
    names = list(ANALYSES) if only is None else list(only)
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analyses {unknown}; choose from {', '.join(ANALYSES)}")
    sizes = sizes or study_sizes(quick)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1

    canonical_schedulers()  # load the scheduler registry before any fork or thread
    pool = None
    if workers > 1:
        # workers ignore SIGINT: a Ctrl-C reaches only this process, which stops the pool
        pool = ProcessPoolExecutor(max_workers=workers, initializer=ignore_sigint)
        # start every worker now, from this thread (later sweeps submit from threads)
        for future in [pool.submit(noop) for _ in range(2 * workers)]:
            future.result()
    study = Study(out, sizes, pool)
    tables: dict[str, pd.DataFrame] = {}
    info = []
    start = time.perf_counter()
    try:
        for name in names:
            t0 = time.perf_counter()
            tables.update(ANALYSES[name](study))
            wall = time.perf_counter() - t0
            info.append({"analysis": name, "mode": sizes.mode, "wall_s": round(wall, 1),
                         "workers": workers, **asdict(sizes)})
            if log is not None:
                log(f"{name:<15} {wall:7.1f} s")
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    total = time.perf_counter() - start
    info_df = pd.DataFrame(info)
    path = out / "run_info.csv"
    if only is not None and path.exists():
        old = pd.read_csv(path)
        info_df = pd.concat([old[~old["analysis"].isin(names)], info_df], ignore_index=True)
        order = {n: i for i, n in enumerate(ANALYSES)}
        info_df = info_df.sort_values("analysis", key=lambda s: s.map(order)).reset_index(
            drop=True)
    tables["run_info"] = study.write("run_info", info_df)
    if log is not None:
        log(f"{'total':<15} {total:7.1f} s ({sizes.mode} mode, {workers} workers) -> {out}")
    return tables



CSV_NAMES = (
    "demo_summary", "demo_timeseries", "validation", "comparison", "comparison_paired",
    "capacity_slo", "chunk_size", "batching", "load_sweep", "capacities", "workload",
    "scaling", "disaggregation", "kv_memory", "kv_memory_long", "traces",
    "sensitivity_service", "sensitivity_noise", "warmup_welch", "warmup_mser",
    "replication_precision", "fidelity", "run_info",
)



def load(out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR) -> dict[str, pd.DataFrame]:
    """Read every study CSV in ``out_dir`` ({name: DataFrame}); the learned scheduler's table
    is under ``"learned"`` when present. Raises FileNotFoundError naming missing files."""
    out = Path(out_dir)
    missing = [n for n in CSV_NAMES if not (out / f"{n}.csv").exists()]
    if missing:
        raise FileNotFoundError(f"{out} lacks {', '.join(m + '.csv' for m in missing)}: run "
                                f"`llm-serving report` (or report.run_all) first")
    data = {n: pd.read_csv(out / f"{n}.csv") for n in CSV_NAMES}
    table = learned(out)
    if table is not None:
        data["learned"] = table
    return data



def value(df: pd.DataFrame, metric: str, **where: Any) -> pd.Series:
    """The row (mean, half_width, n, ...) of ``metric`` where the columns equal ``where``;
    raises KeyError when there is not exactly one."""
    mask = df["metric"] == metric
    for col, v in where.items():
        mask &= np.isclose(df[col], v) if isinstance(v, float) else (df[col] == v)
    rows = df[mask]
    if len(rows) != 1:
        raise KeyError(f"{len(rows)} rows for metric={metric!r}, {where}")
    return rows.iloc[0]

