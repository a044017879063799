"""What every analysis of the study shares: run sizes, the Study runner, the capacity it
scales loads by, summaries with confidence intervals.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_serving_env.analysis.replications import run_jobs
from llm_serving_env.analysis.stability import work_conserving_capacity
from llm_serving_env.analysis.stats import (
    t_interval,
)
from llm_serving_env.analysis.sweep import summarize_sweep, sweep
from llm_serving_env.config.files import load_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.sim.scheduler import canonical_schedulers

#: Where the study writes and reads its CSVs: ``data/report`` under the current directory (the
#: checkout's root when run as the README says); never a path inside the installed package.
DEFAULT_OUT_DIR = Path("data") / "report"



RATE = "workload.arrival.rate_per_s"



#: Summary metrics kept in the CSVs (RunResult.summary keys, plus served_fraction =
#: throughput / arrival rate where the rate is known).
METRICS = (
    "throughput_rps", "ttft_mean_s", "ttft_p50_s", "ttft_p95_s", "ttft_p99_s",
    "tbt_mean_s", "tbt_p95_s", "tbt_p99_s", "e2e_mean_s", "e2e_p95_s", "queue_wait_mean_s",
    "gpu_utilization", "mean_batch_tokens", "mean_batch_requests", "num_preemptions",
    "slo_attainment", "goodput_rps", "served_fraction",
)



#: A run is called *saturated* when its throughput is more than this fraction below the
#: arrival rate: the queue grew during the run (the system is past its capacity).
SATURATED_BELOW = 0.03



#: Display order and colours of the schedulers.
POLICY_ORDER = ("request_level", "fixed_batch", "dynamic_batch", "prefill_first", "orca",
                "hybrid", "slo_aware")



COLORS = {"request_level": "tab:red", "fixed_batch": "tab:pink", "dynamic_batch": "tab:brown",
          "prefill_first": "tab:orange", "orca": "tab:purple", "hybrid": "tab:blue",
          "slo_aware": "tab:green"}



def quick_mode(full: bool = False) -> bool:
    """True unless ``full`` is requested and ``LLM_SERVING_QUICK`` is not set to 1/true/yes."""
    env = os.environ.get("LLM_SERVING_QUICK", "").strip().lower()
    return (not full) or env in ("1", "true", "yes")



@dataclass(frozen=True)
class Sizes:
    """Run sizes of the study (requests per run, warm-up deleted, replications per setting).

    ``requests``/``warmup``/``reps``: runs on the default workload (analyses 2-7, 10);
    ``comparison_reps``: analysis 2; ``capacity_*``: the SLO capacity bisection of analysis 2;
    ``mm1_*``: the queueing validation; ``disagg_*``: analysis 6b; ``long_*``: the
    long-context KV study of analysis 7; ``trace_requests``: requests replayed per trace (None
    = the whole trace) and ``trace_reps`` the ShareGPT replications; ``welch_reps``: analysis 11.
    ``dense``: full grids (else thinned grids).
    """

    mode: str
    requests: int
    warmup: int
    reps: int
    comparison_reps: int
    capacity_requests: int
    capacity_warmup: int
    capacity_reps: int
    capacity_rel_tol: float
    mm1_requests: int
    mm1_warmup: int
    mm1_reps: int
    disagg_requests: int
    disagg_warmup: int
    long_requests: int
    long_warmup: int
    long_reps: int
    trace_requests: int | None
    trace_reps: int
    welch_reps: int
    demo_reps: int
    demo_bins: int
    dense: bool



def study_sizes(quick: bool) -> Sizes:
    """The run sizes of quick and full mode (see :class:`Sizes`)."""
    if quick:
        return Sizes(mode="quick", requests=2000, warmup=200, reps=2, comparison_reps=3,
                     capacity_requests=800, capacity_warmup=80, capacity_reps=2,
                     capacity_rel_tol=0.25, mm1_requests=4000, mm1_warmup=400, mm1_reps=3,
                     disagg_requests=800, disagg_warmup=80, long_requests=300,
                     long_warmup=30, long_reps=2, trace_requests=1500, trace_reps=2,
                     welch_reps=3, demo_reps=3, demo_bins=20, dense=False)
    return Sizes(mode="full", requests=20000, warmup=2000, reps=3, comparison_reps=10,
                 capacity_requests=6000, capacity_warmup=600, capacity_reps=4,
                 capacity_rel_tol=0.03, mm1_requests=55000, mm1_warmup=5000, mm1_reps=10,
                 disagg_requests=10000, disagg_warmup=1000, long_requests=3000,
                 long_warmup=300, long_reps=3, trace_requests=None, trace_reps=3,
                 welch_reps=10, demo_reps=8, demo_bins=50, dense=True)



@dataclass
class Study:
    """What every analysis needs: run sizes, where to write, and the process pool.

    ``executor`` is shared by all analyses (None = run in this process). Sweeps of several
    variants are submitted together from threads, so the pool stays busy.
    """

    out_dir: Path
    sizes: Sizes
    executor: Executor | None = None
    progress: bool = False

    def write(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        """Write ``df`` to ``out_dir/name.csv`` (no index) and return it."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        df.to_csv(self.out_dir / f"{name}.csv", index=False)
        return df

    def sweep(self, cfg: SimConfig, grid: Mapping[str, Sequence[Any]],
              policies: Sequence[str] | None, reps: int) -> pd.DataFrame:
        """:func:`llm_serving_env.analysis.sweep.sweep` on the shared executor (one row per run)."""

        return sweep(cfg, grid, policies, reps, executor=self.executor,
                     progress=self.progress, workers=1 if self.executor is None else None)

    def variants(self, base: SimConfig, variants: Mapping[str, Mapping[str, Any]],
                 grid: Mapping[str, Sequence[Any]] | Callable[[SimConfig], Mapping],
                 policies: Sequence[str] | None, reps: int,
                 label: str = "variant") -> pd.DataFrame:
        """One sweep per variant (``base.replace(changes)``), run concurrently; the rows get a
        first column ``label`` naming the variant. ``grid`` may depend on the variant's
        config (a callable)."""

        canonical_schedulers()  # load the registry once, before the threads

        def one(item: tuple[str, Mapping[str, Any]]) -> pd.DataFrame:
            name, changes = item
            cfg = base.replace(dict(changes)) if changes else base
            g = grid(cfg) if callable(grid) else grid
            df = self.sweep(cfg, g, policies, reps)
            df.insert(0, label, name)
            return df

        items = list(variants.items())
        if self.executor is None:
            frames = [one(item) for item in items]
        else:
            with ThreadPoolExecutor(max_workers=max(1, len(items))) as threads:
                frames = list(threads.map(one, items))
        return pd.concat(frames, ignore_index=True)

    def map(self, fn: Callable[..., Any], jobs: Sequence[tuple]) -> list[Any]:
        """``[fn(*job) for job in jobs]``, on the pool when there is one (results in order),
        through the package's one replication runner."""
        return run_jobs(fn, jobs, executor=self.executor, progress=self.progress,
                        workers=1 if self.executor is None else None)



def default_config(sizes: Sizes, **changes: Any) -> SimConfig:
    """``configs/default.yaml`` with the study's run size (and any dotted-path changes)."""
    cfg = load_config(CONFIGS_DIR / "default.yaml")
    return cfg.replace({"num_requests": sizes.requests, "warmup_requests": sizes.warmup,
                        **changes})



def token_capacity(cfg: SimConfig, budget: int | None = None) -> float:
    """:func:`~llm_serving_env.analysis.stability.work_conserving_capacity` (requests/s) with
    ``budget`` tokens per iteration; by default the config's ``scheduler.token_budget``, else
    ``gpus.max_batch_tokens``."""
    if budget is None:
        budget = int(cfg.scheduler.params.get("token_budget", cfg.gpus.max_batch_tokens))
    return work_conserving_capacity(cfg, budget)



def _with_served(raw: pd.DataFrame, rate_col: str | None) -> pd.DataFrame:
    raw = raw.copy()
    if rate_col is not None and rate_col in raw.columns:
        raw["served_fraction"] = raw["throughput_rps"] / raw[rate_col].astype(float)
    return raw



def summarize(raw: pd.DataFrame, rename: Mapping[str, str] | None = None,
              rate_col: str | None = RATE) -> pd.DataFrame:
    """Mean and 95% t-CI over replications per setting and policy (long format).

    ``raw`` is a sweep table (settings, ``policy``, ``seed``, summary keys). Returns the
    setting columns (renamed by ``rename``), ``policy``, ``metric``, ``mean``, ``half_width``,
    ``low``, ``high``, ``n``, for the metrics in :data:`METRICS`. ``served_fraction`` =
    throughput / arrival rate per run is added when ``rate_col`` is a column.
    """

    raw = _with_served(raw, rate_col)
    metrics = [m for m in METRICS if m in raw.columns]
    keep = [c for c in raw.columns[: list(raw.columns).index("seed")]] + ["seed"] + metrics
    out = summarize_sweep(raw[keep], metrics=metrics)
    return out.rename(columns=dict(rename or {}))



def t_row(values: Iterable[float]) -> dict[str, float]:
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if x.size >= 2:
        est = t_interval(x)
        return {"mean": est.mean, "half_width": est.half_width, "n": int(x.size)}
    return {"mean": float(x.mean()) if x.size else math.nan, "half_width": math.nan,
            "n": int(x.size)}



def noop() -> None:
    """Does nothing (used to start the pool's processes)."""

