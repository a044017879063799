"""The simulation study behind ``main_report.ipynb``: every experiment, its CSVs and its figures.

``run_all(quick, out_dir)`` (command line: ``llm-serving report [--full] [--out-dir DIR]``) runs
the analyses below and writes their results to ``out_dir`` (default ``data/report/``) as small
long-format CSVs: one row per (setting, policy, metric) with the mean over independent
replications, the half-width of its 95% Student-t confidence interval and the number of
replications ``n`` (columns ``mean, half_width, low, high, n``). The notebook only reads these
CSVs (and runs a few small live demos), so it executes in seconds.

Analyses (one function each; the CSVs they write in brackets):

1. :func:`demo` -- the brief's demo: one GPU, fixed prompt and output lengths, request-level vs
   prefill-first (and hybrid) batching; throughput, TTFT and TBT over time with ensemble CIs
   [``demo_summary.csv``, ``demo_timeseries.csv``]. :func:`validation` -- the simulator against
   queueing theory: M/M/1 (mean, P95, waiting time) at four loads, M/D/1, M/M/2 and the
   two-GPU prefill/decode tandem [``validation.csv``].
2. :func:`comparison` -- every scheduler on ``configs/default.yaml`` with common random numbers;
   paired differences against ``hybrid``; SLO capacity per scheduler by bisection
   [``comparison.csv``, ``comparison_paired.csv``, ``capacity_slo.csv``].
3. :func:`chunk_size` -- hybrid's token budget (prefill chunk size) from 64 to 2048 tokens at two
   loads [``chunk_size.csv``].
4. :func:`batching` -- fixed-size vs dynamic vs request-level batching at loads they can carry
   [``batching.csv``].
5. :func:`load_sweep` -- latency against arrival rate up to and past capacity (phase
   transitions) [``load_sweep.csv``, ``capacities.csv``]; :func:`workload` -- sensitivity to the
   prompt-length mix, the output length and the burstiness of arrivals [``workload.csv``].
6. :func:`scaling` -- 1, 2 and 4 GPUs behind a central queue, join-shortest-queue or
   round-robin routing [``scaling.csv``]; :func:`disaggregation` -- colocated vs disaggregated
   prefill/decode pools at equal GPU count on a prefill-heavy load [``disaggregation.csv``].
7. :func:`kv_memory` -- Llama-3-70B on 2xA100: 80 GB vs 160 GB per GPU (KV-cache size),
   preemptions and latency [``kv_memory.csv``, ``kv_memory_long.csv``].
8. :func:`traces` -- real workloads (Azure conversation and code traces replayed, ShareGPT
   lengths) per policy [``traces.csv``].
9. :func:`learned` -- reads the learned scheduler's evaluation (``learned_vs_baselines.csv``,
   written by ``llm-serving evaluate --out``) when present; nothing is simulated here.
10. :func:`sensitivity` -- setup cost ``c`` and per-token cost ``a`` of S(b), and the service
    time distribution (deterministic, gamma, exponential) [``sensitivity_service.csv``,
    ``sensitivity_noise.csv``].
11. :func:`warmup` -- Welch's plot, MSER-5 and the precision reached per number of replications
    [``warmup_welch.csv``, ``warmup_mser.csv``, ``replication_precision.csv``].

``run_info.csv`` records each analysis's run size and wall time.

**Sizes.** ``quick=False`` (``--full``) runs the study's real sizes: 20,000 requests per run
with the first 2,000 deleted as warm-up (the brief's rule of thumb; checked in analysis 11),
3-10 replications per setting. ``quick=True`` (the default of the command, or the environment
variable ``LLM_SERVING_QUICK=1``) runs the same code on small sizes (a few thousand requests,
2-3 replications) to check that everything works, in a couple of minutes; its numbers are noisy.
See :func:`study_sizes`.

**Replications and common random numbers.** Replication ``r`` of every setting and policy uses
seed ``r`` (:func:`llm_serving_env.analysis.sweep.sweep`), so within one analysis all policies and
settings see the same arrivals and lengths in a replication; differences between policies are
therefore estimated with less noise (paired-t intervals in ``comparison_paired.csv``).

**Figures.** ``fig_*`` functions draw each analysis from the loaded CSVs (:func:`load`); every
axis has a label with its unit and estimates carry 95% CI bands or bars.
:func:`key_findings` computes the numbers quoted in the notebook's executive summary.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llm_serving_env.analysis import queueing as q
from llm_serving_env.analysis.capacity import CapacityError, capacity
from llm_serving_env.analysis.stats import (
    mser_truncation,
    paired_difference,
    t_interval,
    welch_average,
)
from llm_serving_env.analysis.sweep import summarize_sweep, sweep
from llm_serving_env.config.files import load_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.plots.figures import (
    plot_batch_timeline,
    plot_capacity_bars,
    plot_comparison,
    plot_latency_throughput,
    time_series,
)
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.sim.scheduler import canonical_schedulers, scheduler_class
from llm_serving_env.sim.simulate import simulate

__all__ = [
    "ANALYSES",
    "DEFAULT_OUT_DIR",
    "FIGURES",
    "Sizes",
    "Study",
    "key_findings",
    "load",
    "quick_mode",
    "run_all",
    "scheduler_rules",
    "study_sizes",
    "token_capacity",
]

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


# --------------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The study context: sizes, executor, output directory
# --------------------------------------------------------------------------------------------


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
        """``[fn(*job) for job in jobs]``, on the pool when there is one (results in order)."""
        if self.executor is None:
            return [fn(*job) for job in jobs]
        futures = [self.executor.submit(fn, *job) for job in jobs]
        return [f.result() for f in futures]


def default_config(sizes: Sizes, **changes: Any) -> SimConfig:
    """``configs/default.yaml`` with the study's run size (and any dotted-path changes)."""
    cfg = load_config(CONFIGS_DIR / "default.yaml")
    return cfg.replace({"num_requests": sizes.requests, "warmup_requests": sizes.warmup,
                        **changes})


def token_capacity(cfg: SimConfig, budget: int | None = None) -> float:
    """Li et al.'s work-conserving capacity (requests/s) with ``budget`` tokens per iteration.

    ``gpus.count * K / ((E[L] + E[B] - 1) * S(K))`` with ``K = budget`` (default: the config's
    ``scheduler.token_budget``, else ``gpus.max_batch_tokens``) and ``S`` the mean service
    time. Any policy that fills every iteration to K tokens reaches it (hybrid with
    ``token_budget = K``); none can exceed the value at K = ``gpus.max_batch_tokens``.
    """
    if budget is None:
        budget = int(cfg.scheduler.params.get("token_budget", cfg.gpus.max_batch_tokens))
    s_k = float(ServiceModel.from_config(cfg.service).mean_s(budget))
    work = cfg.workload.prompt_tokens.mean() + cfg.workload.output_tokens.mean() - 1.0
    return cfg.gpus.count * budget / (work * s_k)


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


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


def _t_row(values: Iterable[float]) -> dict[str, float]:
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if x.size >= 2:
        est = t_interval(x)
        return {"mean": est.mean, "half_width": est.half_width, "n": int(x.size)}
    return {"mean": float(x.mean()) if x.size else math.nan, "half_width": math.nan,
            "n": int(x.size)}


# --------------------------------------------------------------------------------------------
# Workers (top level: they run in the process pool)
# --------------------------------------------------------------------------------------------


def _demo_job(cfg: SimConfig, policy: str, seed: int, bin_s: float,
              num_bins: int) -> tuple[dict, pd.DataFrame]:

    result = simulate(cfg, policy=policy, seed=seed)
    ts = time_series(result, bin_s).iloc[:num_bins]
    cols = ["t_start_s", "t_end_s", "throughput_rps", "ttft_mean_s", "tbt_mean_s",
            "gpu_utilization", "mean_batch_tokens"]
    return result.summary(), ts[cols].reset_index(drop=True)


def _noop() -> None:
    """Does nothing (used to start the pool's processes)."""


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


def _ttft_series_job(cfg: SimConfig, policy: str, seed: int) -> np.ndarray:

    return simulate(cfg, policy=policy, seed=seed).ttft_s.astype(np.float64)


# --------------------------------------------------------------------------------------------
# 1. Demo and validation
# --------------------------------------------------------------------------------------------

DEMO_LENGTHS = {"prompt_tokens": 256, "output_tokens": 32}
DEMO_RATES = (3.0, 4.5)
DEMO_POLICIES = ("request_level", "prefill_first", "hybrid")


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
                                   "metric": metric, **_t_row(values[:, k])})
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
            est = _t_row(part[metric])
            rows.append({"case": case["case"], "rho": case["rho"], "metric": metric,
                         "theory": truth, **est,
                         "rel_error": est["mean"] / truth - 1.0,
                         "covered": bool(abs(est["mean"] - truth) <= est["half_width"])})
    return {"validation": study.write("validation", pd.DataFrame(rows))}


# --------------------------------------------------------------------------------------------
# 2. Scheduler comparison
# --------------------------------------------------------------------------------------------

PAIRED_METRICS = ("throughput_rps", "ttft_mean_s", "ttft_p95_s", "tbt_p95_s", "e2e_mean_s",
                  "e2e_p95_s", "slo_attainment", "goodput_rps")


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


# --------------------------------------------------------------------------------------------
# 3. Chunk size
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# 4. Fixed vs dynamic batching
# --------------------------------------------------------------------------------------------


def batching(study: Study) -> dict[str, pd.DataFrame]:
    """Fixed-size (threshold 512 prompt tokens or 200 ms timeout), dynamic (TTFT-target) and
    plain request-level batching, with hybrid for reference, at loads up to just below
    request-level's capacity (~3.2 req/s on the default workload). Writes ``batching.csv``."""
    sz = study.sizes
    rates = [0.5, 1.0, 1.5, 2.0, 2.5, 2.8, 3.0] if sz.dense else [0.5, 1.5, 2.5, 3.0]
    raw = study.sweep(default_config(sz), {RATE: rates},
                      ["request_level", "fixed_batch", "dynamic_batch", "hybrid"], sz.reps)
    return {"batching": study.write("batching", summarize(raw, {RATE: "rate_per_s"}))}


# --------------------------------------------------------------------------------------------
# 5. Load sweep (phase transitions) and workload sensitivity
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# 6. Hardware scaling and disaggregation
# --------------------------------------------------------------------------------------------

SCALING_LOADS = (0.5, 0.7, 0.8, 0.9, 0.95)


def scaling(study: Study) -> dict[str, pd.DataFrame]:
    """1, 2 and 4 GPUs (model replicas) running hybrid, behind one central queue (a free GPU
    takes the next request), join-the-shortest-queue routing, or round-robin routing, at the
    same load per GPU (fractions of the work-conserving capacity). Writes ``scaling.csv``
    (gpus, router, load, rate_per_s, policy, metric, ...)."""
    sz = study.sizes
    loads = SCALING_LOADS if sz.dense else (0.5, 0.8, 0.95)
    base = default_config(sz)
    cap1 = token_capacity(base)
    variants = {"1|central": {"gpus.count": 1}}
    for count in (2, 4):
        for router in ("central", "jsq", "round_robin"):
            variants[f"{count}|{router}"] = {"gpus.count": count, "gpus.router": router}
    raw = study.variants(base, variants,
                         lambda cfg: {RATE: [round(x * cfg.gpus.count * cap1, 6) for x in loads]},
                         ["hybrid"], sz.reps)
    out = summarize(raw, {RATE: "rate_per_s"}, rate_col=RATE)
    split = out["variant"].str.split("|", n=1, expand=True)
    out.insert(0, "gpus", split[0].astype(int))
    out.insert(1, "router", split[1])
    out.insert(2, "load", (out["rate_per_s"] / (out["gpus"] * cap1)).round(4))
    return {"scaling": study.write("scaling", out.drop(columns=["variant"]))}


#: The prefill-heavy workload of the disaggregation study: long prompts, medium outputs.
DISAGG_WORKLOAD = {
    "workload.prompt_tokens": {"dist": "uniform", "low": 512, "high": 2048},
    "workload.output_tokens": {"dist": "geometric", "mean": 64, "max": 256},
    "model": "llama3_70b",
    "gpus.count": 4,
    "slo": {"ttft_ms": 3000, "tbt_ms": 100},
}


def _split(prefill: int, decode: int) -> dict[str, Any]:
    return {"disaggregation": {
        "prefill": {"count": prefill, "scheduler": {"name": "hybrid", "token_budget": 2048}},
        "decode": {"count": decode}, "interconnect": "nvlink"}}


DISAGG_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "colocated, hybrid 512": ("hybrid", {"scheduler": {"name": "hybrid", "token_budget": 512}}),
    "colocated, hybrid 128": ("hybrid", {"scheduler": {"name": "hybrid", "token_budget": 128}}),
    "colocated, slo_aware": ("slo_aware", {"scheduler": {"name": "slo_aware"}}),
    "disaggregated 3P+1D": ("hybrid", _split(3, 1)),
    "disaggregated 2P+2D": ("hybrid", _split(2, 2)),
}


def disaggregation(study: Study) -> dict[str, pd.DataFrame]:
    """Colocated vs disaggregated prefill/decode on 4 replicas of Llama-3-70B (2xA100 each) and
    a prefill-heavy load (prompts uniform 512-2048 tokens, outputs geometric mean 64 capped at
    256), with an interactive SLO (TTFT 3 s, TBT 100 ms). Colocated: hybrid with a 512- or
    128-token budget, or slo_aware (budget sized to the TBT objective). Disaggregated: 3 or 2
    prefill replicas (hybrid, 2048-token prefill iterations) and 1 or 2 decode replicas, KV
    moved over NVLink (Llama-3-70B: 320 KiB per token). Writes ``disaggregation.csv``
    (variant, rate_per_s, policy, metric, ...)."""
    sz = study.sizes
    rates = [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] if sz.dense else [3.0, 6.0]
    base = default_config(sz, **DISAGG_WORKLOAD).replace(
        {"num_requests": sz.disagg_requests, "warmup_requests": sz.disagg_warmup})
    frames = []
    by_policy: dict[str, dict[str, dict[str, Any]]] = {}
    for name, (policy, changes) in DISAGG_VARIANTS.items():
        by_policy.setdefault(policy, {})[name] = changes
    for policy, variants in by_policy.items():
        frames.append(study.variants(base, variants, {RATE: rates}, [policy], sz.reps))
    raw = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(DISAGG_VARIANTS)}
    raw = raw.sort_values("variant", key=lambda s: s.map(order), kind="stable")
    out = summarize(raw, {RATE: "rate_per_s"})
    return {"disaggregation": study.write("disaggregation", out)}


# --------------------------------------------------------------------------------------------
# 7. KV memory
# --------------------------------------------------------------------------------------------

#: Llama-3-70B (fp16) on one replica of two A100s (tensor parallel 2): the KV cache is what the
#: weights leave of 90% of 2 x memory_gb (llm_serving_env.hardware.specs).
KV_HARDWARE = {"model": "llama3_70b", "gpus.gpu": "a100_80gb",
               "service": {"preset": "llama3_70b_a100_tp2", "tensor_parallel": 2}}


def kv_memory(study: Study) -> dict[str, pd.DataFrame]:
    """Doubling GPU memory: Llama-3-70B on 2 x A100 with 80 GB (as built) vs 160 GB per GPU.

    (a) The default chat workload at 5.0-8.5 req/s under hybrid, prefill_first and slo_aware
    [``kv_memory.csv``: memory_gb, kv_capacity_tokens, rate_per_s, policy, metric, ...].
    (b) A long-context workload (ShareGPT prompt and output lengths, one replica, 0.3 req/s,
    about 30% of hybrid's capacity without memory limit) under hybrid, at 80, 88, 96, 120 and
    160 GB [``kv_memory_long.csv``]. When decodes need KV blocks that are not free, the engine
    preempts the latest arrival (recompute, as vLLM).
    """
    sz = study.sizes
    base = default_config(sz, **KV_HARDWARE)
    rates = [5.0, 6.3, 7.5, 8.5] if sz.dense else [5.0, 8.5]
    variants = {str(gb): {"gpus.memory_gb": gb} for gb in (80.0, 160.0)}
    raw = study.variants(base, variants, {RATE: rates}, ["hybrid", "prefill_first", "slo_aware"],
                         sz.reps, label="memory_gb")
    out = summarize(raw, {RATE: "rate_per_s"})
    out["memory_gb"] = out["memory_gb"].astype(float)
    kv = {gb: base.replace({"gpus.memory_gb": gb}).gpus.kv_capacity_tokens for gb in (80., 160.)}
    out.insert(1, "kv_capacity_tokens", out["memory_gb"].map(kv))

    share = load_config(CONFIGS_DIR / "sharegpt.yaml")
    long_base = share.replace({**KV_HARDWARE, "gpus.count": 1, RATE: 0.3,
                               "num_requests": sz.long_requests,
                               "warmup_requests": sz.long_warmup})
    mems = (80.0, 88.0, 96.0, 120.0, 160.0) if sz.dense else (80.0, 96.0, 160.0)
    long_raw = study.variants(long_base, {str(gb): {"gpus.memory_gb": gb} for gb in mems}, {},
                              ["hybrid"], sz.long_reps, label="memory_gb")
    long_raw.insert(1, "rate_per_s", 0.3)
    long_out = summarize(long_raw, rate_col="rate_per_s")
    long_out["memory_gb"] = long_out["memory_gb"].astype(float)
    kv_long = {gb: long_base.replace({"gpus.memory_gb": gb}).gpus.kv_capacity_tokens
               for gb in mems}
    long_out.insert(1, "kv_capacity_tokens", long_out["memory_gb"].map(kv_long))
    long_out.insert(2, "capacity_rps", token_capacity(long_base))
    return {"kv_memory": study.write("kv_memory", out),
            "kv_memory_long": study.write("kv_memory_long", long_out)}


# --------------------------------------------------------------------------------------------
# 8. Real traces
# --------------------------------------------------------------------------------------------

TRACES = ("azure_conv", "azure_code", "sharegpt")
TRACE_POLICIES = ("prefill_first", "orca", "hybrid", "slo_aware")
#: Orca and prefill-first cannot split a prompt: they need iterations as long as the longest
#: prompt (14,050 tokens in azure_conv), so their max_batch_tokens is raised to this.
UNCHUNKED_MAX_TOKENS = 16384
TRACE_BLOCKS = 10
TRACE_METRICS = ("throughput_rps", "ttft_mean_s", "ttft_p95_s", "tbt_p95_s", "e2e_mean_s",
                 "e2e_p95_s", "slo_attainment", "goodput_rps", "gpu_utilization")


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
                    blocks = _t_row(b[metric] for b in mine[0][1]["blocks"])
                    est = {"mean": whole[0], "half_width": blocks["half_width"],
                           "n": blocks["n"]}
                    method = f"batch means over {TRACE_BLOCKS} blocks"
                elif replay:
                    est = {"mean": whole[0], "half_width": math.nan, "n": 1}
                    method = "single replay"
                else:
                    est = _t_row(whole)
                    method = "independent replications"
                rows.append({"trace": trace, "gpus": gpus, "policy": policy, "metric": metric,
                             **est, "method": method})
    return {"traces": study.write("traces", pd.DataFrame(rows))}


# --------------------------------------------------------------------------------------------
# 9. Learned scheduler
# --------------------------------------------------------------------------------------------

LEARNED_CSV = "learned_vs_baselines.csv"


def learned(out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR) -> pd.DataFrame | None:
    """The learned scheduler's evaluation table (``llm-serving evaluate ... --out``) if
    ``out_dir/learned_vs_baselines.csv`` exists, else None. Nothing is simulated here."""
    path = Path(out_dir) / LEARNED_CSV
    return pd.read_csv(path) if path.exists() else None


# --------------------------------------------------------------------------------------------
# 10. Sensitivity to c, a and the service distribution
# --------------------------------------------------------------------------------------------

C_VALUES = (20.0, 35.0, 50.0)
A_VALUES = (0.1, 0.3, 0.5)
NOISES: dict[str, dict[str, Any]] = {
    "deterministic": {"service.noise": "deterministic"},
    "gamma cv 0.1": {"service.noise": "gamma", "service.cv": 0.1},
    "gamma cv 0.25": {"service.noise": "gamma", "service.cv": 0.25},
    "gamma cv 0.5": {"service.noise": "gamma", "service.cv": 0.5},
    "exponential": {"service.noise": "exponential"},
}


def sensitivity(study: Study) -> dict[str, pd.DataFrame]:
    """How robust are the conclusions to the service-time model S(b) = c + a max(0, b - b0)?

    (a) c in {20, 35, 50} ms x a in {0.1, 0.3, 0.5} ms/token (and the baseline 45.5, 0.30),
    each at 70% of hybrid's capacity under that (c, a), for hybrid (fixed 512-token budget) and
    slo_aware (budget sized to the TBT objective) [``sensitivity_service.csv``: c_ms, a_ms,
    capacity_rps, rate_per_s, policy, metric, ...]. (b) The distribution of S around its mean:
    deterministic, gamma with cv 0.1 / 0.25 / 0.5, exponential (``C ~ Exp(c)``, ``A ~ Exp(a)``),
    at 70% and 90% of capacity [``sensitivity_noise.csv``: noise, load, rate_per_s, ...].
    """
    sz = study.sizes
    base = default_config(sz)
    cs = C_VALUES if sz.dense else (20.0, 50.0)
    as_ = A_VALUES if sz.dense else (0.1, 0.5)
    pairs = [(c, a) for c in cs for a in as_] + [(45.5, 0.30)]
    variants = {f"{c}|{a}": {"service.c_ms": c, "service.a_ms": a} for c, a in pairs}
    raw = study.variants(base, variants,
                         lambda cfg: {RATE: [round(0.7 * token_capacity(cfg), 6)]},
                         ["hybrid", "slo_aware"], sz.reps)
    out = summarize(raw, {RATE: "rate_per_s"})
    split = out["variant"].str.split("|", n=1, expand=True)
    out.insert(0, "c_ms", split[0].astype(float))
    out.insert(1, "a_ms", split[1].astype(float))
    out.insert(2, "capacity_rps", [token_capacity(base.replace(
        {"service.c_ms": c, "service.a_ms": a})) for c, a in zip(out["c_ms"], out["a_ms"],
                                                                  strict=True)])
    out = out.drop(columns=["variant"])

    cap = token_capacity(base)
    loads = (0.7, 0.9)
    noise_raw = study.variants(base, NOISES, {RATE: [round(x * cap, 6) for x in loads]},
                               ["hybrid", "slo_aware"], sz.reps, label="noise")
    noise = summarize(noise_raw, {RATE: "rate_per_s"})
    noise.insert(1, "load", (noise["rate_per_s"] / cap).round(3))
    return {"sensitivity_service": study.write("sensitivity_service", out),
            "sensitivity_noise": study.write("sensitivity_noise", noise)}


# --------------------------------------------------------------------------------------------
# 11. Warm-up and replications
# --------------------------------------------------------------------------------------------

WARMUP_RATES = (6.3, 8.5)
WELCH_BLOCK = 10  # requests averaged per stored point of the Welch curve


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


# --------------------------------------------------------------------------------------------
# run_all
# --------------------------------------------------------------------------------------------

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
        pool = ProcessPoolExecutor(max_workers=workers)
        # start every worker now, from this thread (later sweeps submit from threads)
        for future in [pool.submit(_noop) for _ in range(2 * workers)]:
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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

CSV_NAMES = (
    "demo_summary", "demo_timeseries", "validation", "comparison", "comparison_paired",
    "capacity_slo", "chunk_size", "batching", "load_sweep", "capacities", "workload",
    "scaling", "disaggregation", "kv_memory", "kv_memory_long", "traces",
    "sensitivity_service", "sensitivity_noise", "warmup_welch", "warmup_mser",
    "replication_precision", "run_info",
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


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

NICE = {
    "ttft_mean_s": "TTFT mean (s)", "ttft_p95_s": "TTFT P95 (s)", "ttft_p99_s": "TTFT P99 (s)",
    "tbt_mean_s": "TBT mean (s)", "tbt_p95_s": "TBT P95 (s)", "e2e_mean_s": "E2E mean (s)",
    "e2e_p95_s": "E2E P95 (s)", "throughput_rps": "throughput (requests/s)",
    "goodput_rps": "goodput (requests/s)", "slo_attainment": "SLO attainment (fraction)",
    "num_preemptions": "preemptions (count per run)",
    "queue_wait_mean_s": "mean queue wait (s)", "gpu_utilization": "GPU utilization (fraction)",
    "mean_batch_tokens": "mean batch size (tokens)", "served_fraction":
    "throughput / arrival rate (fraction)",
}


def _color(policy: str, i: int = 0) -> Any:
    return COLORS.get(policy, plt.cm.tab10(i % 10))


def _line(ax: Axes, x: Any, part: pd.DataFrame, label: str, color: Any = None,
          marker: str = "o", ls: str = "-", logy: bool = False,
          floor: float | None = None) -> None:
    """Mean line with a 95% CI band (``mean ± half_width``; no band where it is NaN).

    With ``logy`` the axis is made logarithmic and the band's lower edge is cut at a tenth of
    the mean where the interval reaches below it (a log axis cannot show values <= 0).
    ``floor`` cuts the band below at a bound the quantity cannot cross (e.g. 0 for counts).
    """
    part = part.assign(_x=np.asarray(x, dtype=float)).sort_values("_x")
    xs = part["_x"].to_numpy(float)
    m = part["mean"].to_numpy(float)
    h = part["half_width"].fillna(0.0).to_numpy(float)
    lo = np.maximum(m - h, 0.1 * m) if logy else m - h
    if floor is not None:
        lo = np.maximum(lo, floor)
    (ln,) = ax.plot(xs, m, marker=marker, ms=3.5, lw=1.4, ls=ls, label=label, color=color)
    ax.fill_between(xs, lo, m + h, color=ln.get_color(), alpha=0.18, linewidth=0)
    if logy:
        ax.set_yscale("log")


def _finish(fig: Figure, title: str | None = None) -> Figure:
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return fig


def fig_validation(data: Mapping[str, pd.DataFrame]) -> Figure:
    """Simulated / closed form, per case and metric, with 95% CI bars (1 = exact)."""
    df = data["validation"].copy()
    labels = [f"{c} rho={r:g}\n{m}" for c, r, m in zip(df["case"], df["rho"], df["metric"],
                                                        strict=True)]
    ratio = df["mean"] / df["theory"]
    err = df["half_width"] / df["theory"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    x = np.arange(len(df))
    ax.errorbar(x, ratio, yerr=err, fmt="o", capsize=4, color="tab:blue",
                label="simulation / closed form (95% CI)")
    ax.axhline(1.0, color="k", lw=1, ls="--", label="exact agreement")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize="x-small")
    ax.set_xlabel("queueing case and metric (rho = utilization)")
    ax.set_ylabel("simulated / theoretical (ratio)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, "Validation against queueing theory")


def fig_demo_timeseries(data: Mapping[str, pd.DataFrame]) -> Figure:
    """Demo: throughput, TTFT and TBT over time (ensemble mean and 95% CI band per bin)."""
    ts = data["demo_timeseries"]
    rates = sorted(ts["rate_per_s"].unique())
    panels = (("throughput_rps", "throughput (requests/s)", False),
              ("ttft_mean_s", "TTFT mean (s)", True), ("tbt_mean_s", "TBT mean (ms)", False))
    fig, axes = plt.subplots(len(panels), len(rates), figsize=(5.2 * len(rates), 8.2),
                             squeeze=False)
    for j, rate in enumerate(rates):
        for i, (metric, label, logy) in enumerate(panels):
            ax = axes[i, j]
            for policy in DEMO_POLICIES:
                part = ts[(ts["rate_per_s"] == rate) & (ts["policy"] == policy)
                          & (ts["metric"] == metric)]
                if part.empty:
                    continue
                scale = 1000.0 if metric == "tbt_mean_s" else 1.0
                part = part.assign(mean=part["mean"] * scale,
                                   half_width=part["half_width"] * scale)
                mid = (part["t_start_s"] + part["t_end_s"]) / 2
                _line(ax, mid, part, policy, _color(policy), marker="", logy=logy,
                      floor=0.0)
            if metric == "throughput_rps":
                ax.axhline(rate, color="k", lw=0.8, ls=":", label="arrival rate")
                ax.set_title(f"arrival rate {rate:g} requests/s")
            ax.set_xlabel("simulated time (s)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small")
    return _finish(fig, "Demo: one GPU, 256-token prompts, 32-token outputs "
                        "(mean over replications, 95% CI band)")


def fig_comparison(data: Mapping[str, pd.DataFrame]) -> Figure:
    """Headline metrics per scheduler (llm_serving_env.plots.plot_comparison)."""

    return plot_comparison(data["comparison"])


def _bars(ax: Axes, df: pd.DataFrame, metric: str, policies: Sequence[str],
          scale: float = 1.0) -> None:
    rows = df[df["metric"] == metric].set_index("policy").reindex(policies)
    x = np.arange(len(policies))
    ax.bar(x, rows["mean"] * scale, yerr=rows["half_width"].fillna(0) * scale, capsize=4,
           color=[_color(p, i) for i, p in enumerate(policies)])
    ax.set_xticks(x, policies, rotation=25, ha="right")
    ax.set_xlabel("scheduler (name)")
    ax.grid(axis="y", alpha=0.3)


def fig_slo(data: Mapping[str, pd.DataFrame]) -> Figure:
    """SLO attainment and goodput per scheduler at 6.3 req/s, and SLO capacity (bisection)."""

    df = data["comparison"]
    policies = list(dict.fromkeys(df["policy"]))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    _bars(axes[0], df, "slo_attainment", policies)
    axes[0].set_ylabel("SLO attainment at 6.3 req/s (fraction)")
    _bars(axes[1], df, "goodput_rps", policies)
    axes[1].set_ylabel("goodput at 6.3 req/s (requests/s)")
    cap = data["capacity_slo"].copy()
    cap = cap.set_index("policy").reindex(policies).reset_index()
    cap[["rate_per_s", "low_per_s", "high_per_s"]] = cap[
        ["rate_per_s", "low_per_s", "high_per_s"]].fillna(0.0)
    plot_capacity_bars(cap, ax=axes[2])
    for patch, policy in zip(axes[2].patches, policies, strict=False):
        patch.set_color(_color(policy))
    axes[2].set_title("")
    axes[2].set_ylabel("SLO capacity, 90% attainment (req/s)")
    return _finish(fig, "SLO attainment (TTFT <= 2 s and every TBT <= 200 ms), "
                        "95% CI bars / bisection brackets")


def fig_paired(data: Mapping[str, pd.DataFrame]) -> Figure:
    """Paired differences vs hybrid (CRN) for SLO attainment, TTFT P95 and TBT P95."""
    df = data["comparison_paired"]
    panels = (("slo_attainment", "SLO attainment minus hybrid's (fraction)", 1.0),
              ("ttft_p95_s", "TTFT P95 minus hybrid's (s)", 1.0),
              ("tbt_p95_s", "TBT P95 minus hybrid's (ms)", 1000.0))
    policies = [p for p in POLICY_ORDER if p in set(df["policy"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 3.8))
    for ax, (metric, label, scale) in zip(axes, panels, strict=True):
        rows = df[df["metric"] == metric].set_index("policy").reindex(policies)
        y = np.arange(len(policies))
        ax.errorbar(rows["mean"] * scale, y, xerr=rows["half_width"].fillna(0) * scale,
                    fmt="o", capsize=4, color="tab:blue", label="paired mean, 95% CI")
        ax.axvline(0.0, color="k", lw=0.8, ls="--", label="equal to hybrid")
        ax.set_yticks(y, policies)
        ax.set_ylabel("scheduler (name)")
        ax.set_xlabel(label)
        if metric == "ttft_p95_s" and rows["mean"].abs().max() > 100:
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(-10.0, 5 * float((rows["mean"] + rows["half_width"]).max()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _finish(fig, "Paired differences against hybrid (common random numbers)")


def fig_chunk_size(data: Mapping[str, pd.DataFrame]) -> Figure:
    """TTFT P95, TBT P95 and goodput against hybrid's token budget, at two loads."""
    df = data["chunk_size"]
    panels = (("ttft_p95_s", "TTFT P95 (s)", True), ("tbt_p95_s", "TBT P95 (s)", False),
              ("goodput_rps", "goodput (requests/s)", False))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    for ax, (metric, label, logy) in zip(axes, panels, strict=True):
        for i, rate in enumerate(sorted(df["rate_per_s"].unique())):
            part = df[(df["metric"] == metric) & (df["rate_per_s"] == rate)]
            _line(ax, part["token_budget"], part, f"{rate:g} requests/s", plt.cm.tab10(i),
                  logy=logy, floor=0.0)
        if metric == "tbt_p95_s":
            ax.axhline(0.2, color="k", ls=":", lw=1, label="TBT SLO (0.2 s)")
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("token budget per iteration (tokens)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _finish(fig, "Chunk size (hybrid's token budget): mean over replications, 95% CI")


def fig_batching(data: Mapping[str, pd.DataFrame]) -> Figure:
    """Fixed vs dynamic vs request-level batching: TTFT mean, TTFT P95 and batch size vs load."""
    df = data["batching"]
    panels = (("ttft_mean_s", "TTFT mean (s)"), ("ttft_p95_s", "TTFT P95 (s)"),
              ("mean_batch_tokens", "mean batch size (tokens)"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for i, policy in enumerate(dict.fromkeys(df["policy"])):
            part = df[(df["metric"] == metric) & (df["policy"] == policy)]
            _line(ax, part["rate_per_s"], part, policy, _color(policy, i),
                  logy=metric.startswith("ttft"))
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _finish(fig, "Batching rules at loads request-level batching can carry "
                        "(95% CI bands)")


def fig_load_sweep(data: Mapping[str, pd.DataFrame]) -> Figure:
    """TTFT P95, TBT P95 and E2E P95 vs arrival rate per scheduler, with capacity lines."""

    df = data["load_sweep"]
    caps = data["capacities"]
    panels = (("ttft_p95_s", True), ("tbt_p95_s", False), ("e2e_p95_s", True))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, (metric, logy) in zip(axes, panels, strict=True):
        part = df[["rate_per_s", "policy", "metric", "mean", "low", "high"]]
        plot_latency_throughput(part, metric=metric, x="rate_per_s", ax=ax, logy=logy)
        for line in ax.get_lines():
            line.set_color(_color(line.get_label()))
        for coll, line in zip(ax.collections, ax.get_lines(), strict=False):
            coll.set_color(line.get_color())
        for (_, row), ls in zip(caps.iterrows(), ("--", ":"), strict=False):
            ax.axvline(row["rate_per_s"], color="k", lw=1, ls=ls,
                       label=f"capacity bound {row['rate_per_s']:.2f} req/s")
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel(NICE[metric])
        ax.legend(fontsize="x-small")
    return _finish(fig, "Latency against load: the phase transition at capacity "
                        "(95% CI bands; dashed: work-conserving capacity)")


def fig_workload(data: Mapping[str, pd.DataFrame]) -> Figure:
    """TTFT P95 and SLO attainment per workload variant (at 6.3 req/s) and policy."""
    df = data["workload"]
    labels = list(dict.fromkeys(zip(df["factor"], df["level"], df["load"], strict=True)))
    policies = list(dict.fromkeys(df["policy"]))
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.6))
    width = 0.8 / len(policies)
    x = np.arange(len(labels))
    for ax, metric in zip(axes, ("ttft_p95_s", "slo_attainment"), strict=True):
        for i, policy in enumerate(policies):
            rows = []
            for f, lv, _ in labels:
                sel = df[(df["factor"] == f) & (df["level"] == lv) & (df["policy"] == policy)
                         & (df["metric"] == metric)]
                rows.append(sel.iloc[0] if len(sel) else None)
            m = [r["mean"] if r is not None else np.nan for r in rows]
            h = [r["half_width"] if r is not None else 0.0 for r in rows]
            ax.bar(x + (i - (len(policies) - 1) / 2) * width, m, width, yerr=np.nan_to_num(h),
                   capsize=2, label=policy, color=_color(policy, i))
        ax.set_xticks(x, [f"{f}:\n{lv} (load {ld:.2f})" for f, lv, ld in labels], rotation=45,
                      ha="right", fontsize="x-small")
        ax.set_xlabel("workload variant (load = rate / hybrid's capacity)")
        ax.set_ylabel(NICE[metric])
        if metric == "ttft_p95_s":
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    return _finish(fig, "Workload sensitivity at 6.3 requests/s (95% CI bars)")


def fig_scaling(data: Mapping[str, pd.DataFrame]) -> Figure:
    """TTFT P95 and TBT P95 vs load per GPU, by GPU count and router."""
    df = data["scaling"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    styles = {"central": "-", "jsq": "--", "round_robin": ":"}
    markers = {1: "o", 2: "s", 4: "^"}
    for ax, metric in zip(axes, ("ttft_p95_s", "e2e_p95_s"), strict=True):
        for i, ((gpus, router), part) in enumerate(df[df["metric"] == metric].groupby(
                ["gpus", "router"], sort=True)):
            _line(ax, part["load"], part, f"{gpus} GPU{'s' if gpus > 1 else ''}, {router}",
                  plt.cm.tab10(i), marker=markers.get(int(gpus), "o"),
                  ls=styles.get(router, "-"), logy=True)
        ax.set_xlabel("load per GPU (fraction of hybrid's capacity)")
        ax.set_ylabel(NICE[metric])
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _finish(fig, "Hardware scaling: same load per GPU, more GPUs (95% CI bands)")


def fig_disaggregation(data: Mapping[str, pd.DataFrame]) -> Figure:
    """TBT P95, TTFT P95 and goodput vs arrival rate, colocated vs disaggregated."""
    df = data["disaggregation"]
    panels = (("tbt_p95_s", "TBT P95 (s)", False), ("ttft_p95_s", "TTFT P95 (s)", True),
              ("goodput_rps", "goodput (requests/s)", False))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for ax, (metric, label, logy) in zip(axes, panels, strict=True):
        for i, variant in enumerate(dict.fromkeys(df["variant"])):
            part = df[(df["metric"] == metric) & (df["variant"] == variant)]
            _line(ax, part["rate_per_s"], part, variant, plt.cm.tab10(i),
                  ls="--" if variant.startswith("disagg") else "-", logy=logy, floor=0.0)
        if metric == "tbt_p95_s":
            ax.axhline(0.1, color="k", ls=":", lw=1, label="TBT SLO (0.1 s)")
        ax.set_xlabel("arrival rate (requests/s, 4 replicas)")
        ax.set_ylabel(label)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _finish(fig, "Colocated vs disaggregated prefill/decode, prefill-heavy load "
                        "(95% CI bands)")


def fig_kv_memory(data: Mapping[str, pd.DataFrame]) -> Figure:
    """Chat workload: preemptions and TTFT P95 vs load at 80 vs 160 GB; long-context workload:
    throughput and TTFT P95 vs memory."""
    df = data["kv_memory"]
    long = data["kv_memory_long"]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for ax, metric in zip(axes[:2], ("num_preemptions", "ttft_p95_s"), strict=True):
        for i, ((policy, gb), part) in enumerate(df[df["metric"] == metric].groupby(
                ["policy", "memory_gb"], sort=False)):
            _line(ax, part["rate_per_s"], part, f"{policy}, {gb:g} GB", _color(policy, i),
                  ls="-" if gb < 100 else "--", logy=metric == "ttft_p95_s", floor=0.0)
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel(NICE[metric])
        if metric == "ttft_p95_s":
            ax.set_yscale("log")
        else:
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set_title("chat workload (default.yaml)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax, metric in zip(axes[2:], ("throughput_rps", "ttft_p95_s"), strict=True):
        part = long[long["metric"] == metric]
        _line(ax, part["memory_gb"], part, "hybrid, 0.3 requests/s", _color("hybrid"),
              logy=metric == "ttft_p95_s", floor=0.0)
        if metric == "throughput_rps":
            ax.axhline(0.3, color="k", ls=":", lw=1, label="arrival rate")
        else:
            ax.set_yscale("log")
        ax.set_xlabel("memory per GPU (GB; 2 GPUs per replica)")
        ax.set_ylabel(NICE[metric])
        ax.set_title("long-context workload (ShareGPT lengths)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _finish(fig, "KV-cache memory: Llama-3-70B on 2 x A100 (95% CI bands)")


def fig_traces(data: Mapping[str, pd.DataFrame]) -> Figure:
    """SLO attainment, TTFT P95 and TBT P95 per real workload and policy."""
    df = data["traces"]
    traces_ = list(dict.fromkeys(df["trace"]))
    policies = list(dict.fromkeys(df["policy"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0))
    width = 0.8 / len(policies)
    x = np.arange(len(traces_))
    for ax, metric in zip(axes, ("slo_attainment", "ttft_p95_s", "tbt_p95_s"), strict=True):
        for i, policy in enumerate(policies):
            rows = df[(df["metric"] == metric) & (df["policy"] == policy)].set_index(
                "trace").reindex(traces_)
            ax.bar(x + (i - (len(policies) - 1) / 2) * width, rows["mean"], width,
                   yerr=rows["half_width"].fillna(0.0).clip(lower=0), capsize=2, label=policy,
                   color=_color(policy, i))
        ax.set_xticks(x, traces_)
        ax.set_xlabel("workload (trace)")
        ax.set_ylabel(NICE[metric])
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="x-small")
    return _finish(fig, "Real workloads (95% CI bars: replications, or batch means for "
                        "replayed traces)")


def fig_service_sensitivity(data: Mapping[str, pd.DataFrame]) -> Figure:
    """TBT P95, TTFT P95 and attainment vs a, one line per c, for hybrid and slo_aware."""
    df = data["sensitivity_service"]
    grid = df[~((df["c_ms"] == 45.5) & (df["a_ms"] == 0.3))]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, metric in zip(axes, ("tbt_p95_s", "ttft_p95_s", "slo_attainment"), strict=True):
        for i, c in enumerate(sorted(grid["c_ms"].unique())):
            for policy, ls in (("hybrid", "-"), ("slo_aware", "--")):
                part = grid[(grid["metric"] == metric) & (grid["c_ms"] == c)
                            & (grid["policy"] == policy)]
                _line(ax, part["a_ms"], part, f"{policy}, c = {c:g} ms", plt.cm.tab10(i),
                      ls=ls, floor=0.0)
        if metric == "tbt_p95_s":
            ax.axhline(0.2, color="k", ls=":", lw=1, label="TBT SLO (0.2 s)")
        ax.set_xlabel("per-token cost a (ms/token)")
        ax.set_ylabel(NICE[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _finish(fig, "Sensitivity to c and a at 70% of each setting's capacity (95% CI)")


def fig_noise(data: Mapping[str, pd.DataFrame]) -> Figure:
    """TTFT P95, TBT P95 and attainment per service-time distribution, at 70% and 90% load."""
    df = data["sensitivity_noise"]
    noises = list(dict.fromkeys(df["noise"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    x = np.arange(len(noises))
    for ax, metric in zip(axes, ("ttft_p95_s", "tbt_p95_s", "slo_attainment"), strict=True):
        for i, ((policy, load), part) in enumerate(df[df["metric"] == metric].groupby(
                ["policy", "load"], sort=False)):
            part = part.set_index("noise").reindex(noises)
            ax.errorbar(x + 0.06 * (i - 1.5), part["mean"], yerr=part["half_width"].fillna(0),
                        fmt="o-" if policy == "hybrid" else "s--", capsize=3, ms=4,
                        label=f"{policy}, load {load:g}", color=plt.cm.tab10(i))
        ax.set_xticks(x, noises, rotation=20, ha="right")
        ax.set_xlabel("service-time distribution around S(b)")
        ax.set_ylabel(NICE[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _finish(fig, "Sensitivity to the service-time distribution (95% CI bars)")


def fig_welch(data: Mapping[str, pd.DataFrame]) -> Figure:
    """Welch's plot of TTFT by request index with the MSER-5 cut and the study's warm-up."""
    welch = data["warmup_welch"]
    mser = data["warmup_mser"]
    info = data["run_info"]
    rates = sorted(welch["rate_per_s"].unique())
    fig, axes = plt.subplots(1, len(rates), figsize=(6.5 * len(rates), 4.0), squeeze=False)
    warm = int(info["warmup"].iloc[0]) if "warmup" in info else None
    for ax, rate in zip(axes[0], rates, strict=True):
        part = welch[welch["rate_per_s"] == rate]
        ax.plot(part["request"], part["mean_ttft_s"], color="0.7", lw=0.7,
                label="mean over replications (blocks of 10 requests)")
        ax.plot(part["request"], part["welch_ttft_s"], color="tab:blue", lw=1.5,
                label="Welch moving average (window 100)")
        cut = mser[(mser["rate_per_s"] == rate) & (mser["series"] == "mean over replications")]
        if len(cut):
            ax.axvline(cut["cut_requests"].iloc[0], color="tab:red", ls="--",
                       label=f"MSER-5 cut: {int(cut['cut_requests'].iloc[0])} requests")
        if warm:
            ax.axvline(warm, color="k", ls=":", label=f"warm-up deleted: {warm} requests")
        ax.set_xlabel("request index (arrival order)")
        ax.set_ylabel("TTFT (s)")
        ax.set_title(f"hybrid, {rate:g} requests/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _finish(fig, "Warm-up: Welch's plot and MSER-5 (default.yaml)")


def fig_replications(data: Mapping[str, pd.DataFrame]) -> Figure:
    """Relative CI half-width of TTFT mean and P95 against the number of replications."""
    df = data["replication_precision"]
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for i, ((rate, metric), part) in enumerate(df.groupby(["rate_per_s", "metric"])):
        ax.plot(part["replications"], 100 * part["relative_half_width"], marker="o", ms=3,
                label=f"{NICE.get(metric, metric)}, {rate:g} req/s", color=plt.cm.tab10(i))
    ax.set_xlabel("replications (count)")
    ax.set_ylabel("95% CI half-width (% of the mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return _finish(fig, "Precision against replications (hybrid, default.yaml)")


def fig_learned(data: Mapping[str, pd.DataFrame]) -> Figure | None:
    """The learned scheduler's evaluation (``llm-serving evaluate`` table: one row per policy,
    columns ``<metric>_mean`` and ``<metric>_ci95``): SLO attainment, goodput, and goodput
    relative to the best baseline (paired), with 95% CI bars. None when absent."""
    df = data.get("learned")
    if df is None or "policy" not in df.columns:
        return None
    panels = [(m, NICE.get(m, m)) for m in ("slo_attainment", "goodput_rps")
              if f"{m}_mean" in df.columns]
    if "goodput_ratio_mean" in df.columns:
        panels.append(("goodput_ratio", "goodput / best baseline's (ratio, paired)"))
    if not panels:
        return None
    names = [str(n).split("/")[-1].removesuffix(".zip") for n in df["policy"]]
    colors = [_color(str(p), i) if str(p) in COLORS else "0.35"
              for i, p in enumerate(df["policy"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    x = np.arange(len(df))
    for ax, (metric, label) in zip(axes[0], panels, strict=True):
        m = df[f"{metric}_mean"].to_numpy(float)
        h = df.get(f"{metric}_ci95", df.get(f"{metric}_half_width"))
        err = None if h is None else np.nan_to_num(np.asarray(h, float))
        ax.bar(x, m, yerr=err, capsize=4, color=colors)
        if metric == "goodput_ratio":
            ax.axhline(1.0, color="k", ls="--", lw=1, label="best baseline")
            ax.legend(fontsize="x-small")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_xlabel("scheduler (name)")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    return _finish(fig, "Learned scheduler vs baselines (held-out seeds, 95% CI bars)")


#: Figure functions over the loaded CSVs (name -> function(data) -> Figure or None).
FIGURES: dict[str, Callable[[Mapping[str, pd.DataFrame]], Figure | None]] = {
    "validation": fig_validation,
    "demo_timeseries": fig_demo_timeseries,
    "comparison": fig_comparison,
    "slo": fig_slo,
    "paired": fig_paired,
    "chunk_size": fig_chunk_size,
    "batching": fig_batching,
    "load_sweep": fig_load_sweep,
    "workload": fig_workload,
    "scaling": fig_scaling,
    "disaggregation": fig_disaggregation,
    "kv_memory": fig_kv_memory,
    "traces": fig_traces,
    "learned": fig_learned,
    "service_sensitivity": fig_service_sensitivity,
    "noise": fig_noise,
    "welch": fig_welch,
    "replications": fig_replications,
}


def timeline_runs(num_requests: int = 120, rate_per_s: float = 2.5, seed: int = 1) -> dict:
    """Short live runs for the iteration-timeline diagram: the default workload on one GPU under
    request_level and hybrid ({policy: RunResult})."""

    cfg = load_config(CONFIGS_DIR / "default.yaml").replace(
        {"num_requests": num_requests, "warmup_requests": 0, RATE: rate_per_s})
    return {p: simulate(cfg, policy=p, seed=seed) for p in ("request_level", "hybrid")}


def fig_timelines(runs: Mapping[str, Any], t0: float = 10.0, t1: float = 16.0) -> list[Figure]:
    """One iteration-timeline figure per run (llm_serving_env.plots.plot_batch_timeline), with
    a symmetric-log token axis (linear below 32 tokens) so that small decode-only iterations
    show beside large prefills."""

    figs = []
    for policy, result in runs.items():
        fig = plot_batch_timeline(result, t0, t1)
        ax = fig.axes[0]
        ax.set_yscale("symlog", linthresh=32)
        ax.set_ylim(0, result.config.gpus.max_batch_tokens)
        ax.set_title(f"{policy}: iterations in [{t0:g}, {t1:g}] s (bar width = iteration "
                     f"time; token axis linear below 32, logarithmic above)")
        figs.append(fig)
    return figs


def scheduler_rules() -> dict[str, str]:
    """Each built-in scheduler's rule as pseudo-code, taken from its module docstring in
    ``baselines/`` (the paragraph from ``Rule`` through the indented code block)."""
    import importlib


    rules = {}
    for name in [p for p in POLICY_ORDER if p in canonical_schedulers()]:
        doc = importlib.import_module(scheduler_class(name).__module__).__doc__ or ""
        lines = doc.splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.startswith("Rule")), None)
        if start is None:
            continue
        block, seen_code = [], False
        for ln in lines[start:]:
            if ln.startswith("    ") or not ln.strip():
                seen_code = seen_code or ln.startswith("    ")
                block.append(ln)
            elif seen_code:
                break
            else:
                block.append(ln)
        rules[name] = "\n".join(block).rstrip()
    return rules


# --------------------------------------------------------------------------------------------
# Key findings (the numbers of the executive summary)
# --------------------------------------------------------------------------------------------


def _ci(row: pd.Series, digits: int = 3, scale: float = 1.0) -> str:
    """``"mean ± half_width"`` of a result row (just the mean when there is no interval)."""
    m, h = float(row["mean"]) * scale, float(row["half_width"]) * scale
    if not np.isfinite(h):
        return f"{m:.{digits}f}"
    if h > 0:  # at least one significant digit of the half-width
        digits = max(digits, -math.floor(math.log10(h)))
    return f"{m:.{digits}f} ± {h:.{digits}f}"


def _learned_summary(df: pd.DataFrame) -> dict[str, str]:
    """Sentences on the learned scheduler's evaluation table (``llm-serving evaluate``)."""
    cols = set(df.columns)
    kind = df["kind"] if "kind" in cols else pd.Series([""] * len(df))
    learned_rows = df[kind.astype(str).str.contains("learned")]
    if learned_rows.empty or "slo_attainment_mean" not in cols:
        return {"learned_text": "was evaluated; see Section 4.11.",
                "learned_result": "The evaluation table is shown below."}
    lr = learned_rows.iloc[0]
    best = str(lr["best_baseline"]) if "best_baseline" in cols else "the best baseline"
    br = df[df["policy"] == best]
    att_l = f"{lr['slo_attainment_mean']:.3f} ± {lr.get('slo_attainment_ci95', np.nan):.3f}"
    att_b = (f"{br['slo_attainment_mean'].iloc[0]:.3f} ± "
             f"{br['slo_attainment_ci95'].iloc[0]:.3f}") if len(br) else "n/a"
    ratio = ""
    if "goodput_ratio_mean" in cols:
        ratio = (f"; goodput ratio {lr['goodput_ratio_mean']:.3f} ± "
                 f"{lr.get('goodput_ratio_ci95', np.nan):.3f}")
    n = int(lr["n"]) if "n" in cols else 0
    text = (f"reached SLO attainment {att_l} against {att_b} for the best hand-written "
            f"scheduler ({best}) on {n} held-out runs of its bursty benchmark{ratio}: a "
            f"small but real gain, short of the +10% we aimed for.")
    result = (f"Learned policy `{lr['policy']}`: SLO attainment {att_l}; best hand-written "
              f"scheduler `{best}`: {att_b}{ratio} (paired over {n} held-out seeds).")
    return {"learned_text": text, "learned_result": result}


def key_findings(data: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The numbers quoted in the executive summary and conclusions, computed from the CSVs.

    A flat dict: floats, ints and preformatted ``"mean ± half-width"`` strings (``att.*``,
    ``*_att``). Keys are documented by their use in ``main_report.ipynb``.
    """
    f: dict[str, Any] = {}
    info = data["run_info"]
    f["mode"] = str(info["mode"].iloc[0])
    f["requests"] = int(info["requests"].iloc[0])
    f["warmup"] = int(info["warmup"].iloc[0])
    f["wall_min"] = float(info["wall_s"].sum()) / 60.0
    f["num_analyses"] = len(info)
    f["level"] = 0.95  # every interval of the study is a 95% Student-t interval
    base = load_config(CONFIGS_DIR / "default.yaml")
    assert base.slo is not None
    f["slo_ttft_s"] = base.slo.ttft_ms / 1000.0
    f["slo_tbt_ms"] = base.slo.tbt_ms
    f["rate"] = base.workload.arrival.rate_per_s
    svc = base.service
    f["budget_rule"] = svc.b0_tokens + (base.slo.tbt_ms - svc.c_ms) / svc.a_ms

    val = data["validation"]
    f["val_cases"] = len(val)
    f["val_covered"] = int(val["covered"].sum())
    f["val_max_err_pct"] = 100 * float(val["rel_error"].abs().max())

    cmp_ = data["comparison"]
    for p in dict.fromkeys(cmp_["policy"]):
        f[f"att.{p}"] = _ci(value(cmp_, "slo_attainment", policy=p))
    f["rl_capacity"] = float(value(cmp_, "throughput_rps", policy="request_level")["mean"])
    f["cap_target"] = float(data["capacity_slo"]["target"].iloc[0])
    cap = data["capacity_slo"].set_index("policy")["rate_per_s"]
    for p, r in cap.items():
        f[f"cap.{p}"] = float(r)
    f["cap_gain_pct"] = 100 * (f["cap.slo_aware"] / f["cap.hybrid"] - 1)
    f["cap_vs_rl"] = f["cap.slo_aware"] / f["cap.request_level"]

    ch = data["chunk_size"]
    at = ch[(ch["metric"] == "slo_attainment") & np.isclose(ch["rate_per_s"], f["rate"])]
    at = at.sort_values("token_budget")
    top = at.loc[at["mean"].idxmax()]
    f["budget_best"] = int(top["token_budget"])
    f["budget_best_att"] = _ci(top)
    big = at[at["token_budget"] > f["budget_best"]]
    big_row = big.iloc[min(1, len(big) - 1)] if len(big) else top
    f["budget_big"] = int(big_row["token_budget"])
    f["budget_big_att"] = _ci(big_row)
    caps_b = ch[["token_budget", "capacity_rps"]].drop_duplicates().sort_values("token_budget")
    short = caps_b[caps_b["capacity_rps"] < f["rate"]]
    small_row = short.iloc[-1] if len(short) else caps_b.iloc[0]
    f["budget_small"] = int(small_row["token_budget"])
    f["budget_small_cap"] = float(small_row["capacity_rps"])

    ls = data["load_sweep"]
    wc = float(data["capacities"]["rate_per_s"].iloc[0])
    hy = ls[(ls["policy"] == "hybrid") & (ls["metric"] == "ttft_p95_s")].set_index(
        "rate_per_s")["mean"]
    for key, target in (("6", 6.0), ("8", 8.0), ("9", 9.0)):
        rate = float(hy.index[np.argmin(np.abs(hy.index.to_numpy(float) - target))])
        f[f"ls.{key}"] = float(hy.loc[rate])
        f[f"ls.{key}.load"] = rate / wc
    att_h = ls[(ls["policy"] == "hybrid") & (ls["metric"] == "slo_attainment")]
    good_rates = att_h[att_h["mean"] >= 0.95]["rate_per_s"]
    f["plan_att"] = 0.95
    f["plan_load"] = float(good_rates.max()) / wc if len(good_rates) else math.nan

    wl = data["workload"]
    def wrow(factor: str, level: str, policy: str, metric: str) -> pd.Series:
        sel = wl[(wl["factor"] == factor) & (wl["level"] == level) & (wl["policy"] == policy)
                 & (wl["metric"] == metric)]
        return sel.iloc[0]
    f["wl.base_share"] = "15%"
    f["wl.long_share"] = "30%"
    b_row = wrow("baseline", "default.yaml", "hybrid", "ttft_p95_s")
    l_row = wrow("long-prompt share", "30%", "hybrid", "ttft_p95_s")
    f["wl.base_load"], f["wl.base_ttft"] = float(b_row["load"]), float(b_row["mean"])
    f["wl.long_load"], f["wl.long_ttft"] = float(l_row["load"]), float(l_row["mean"])
    f["wl.cv"] = 4.0
    for p in ("hybrid", "slo_aware"):
        f[f"wl.burst_att.{p}"] = _ci(wrow("arrival burstiness", "gamma cv 4", p,
                                          "slo_attainment"))

    sc = data["scaling"]
    top_load = float(sc["load"].max())
    f["sc.load"] = top_load
    e = sc[(sc["metric"] == "ttft_p95_s") & np.isclose(sc["load"], top_load)].set_index(
        ["gpus", "router"])["mean"]
    f["sc.1"] = float(e.loc[(1, "central")])
    f["sc.4.central"] = float(e.loc[(4, "central")])
    f["sc.4.jsq"] = float(e.loc[(4, "jsq")])
    f["sc.4.rr"] = float(e.loc[(4, "round_robin")])

    dg = data["disaggregation"]
    f["dg.tbt_ms"] = float(DISAGG_WORKLOAD["slo"]["tbt_ms"])
    low = float(dg["rate_per_s"].min())
    f["dg.tbt.3P"] = 1000 * float(value(dg, "tbt_p95_s", variant="disaggregated 3P+1D",
                                        rate_per_s=low)["mean"])
    f["dg.tbt.h512"] = 1000 * float(value(dg, "tbt_p95_s", variant="colocated, hybrid 512",
                                          rate_per_s=low)["mean"])
    f["dg.att.h512"] = _ci(value(dg, "slo_attainment", variant="colocated, hybrid 512",
                                 rate_per_s=low))
    good = dg[dg["metric"] == "goodput_rps"].groupby("variant")["mean"].max()
    f["dg.good.3P"] = float(good["disaggregated 3P+1D"])
    f["dg.good.slo"] = float(good["colocated, slo_aware"])

    kv = data["kv_memory"]
    f["kv_gb_small"], f["kv_gb_big"] = float(kv["memory_gb"].min()), float(kv["memory_gb"].max())
    f["kv80"] = int(kv[kv["memory_gb"] == f["kv_gb_small"]]["kv_capacity_tokens"].iloc[0])
    f["kv160"] = int(kv[kv["memory_gb"] == f["kv_gb_big"]]["kv_capacity_tokens"].iloc[0])
    kv_rate = float(kv["rate_per_s"].max())
    f["kv.rate"] = kv_rate
    f["kv.pre.pf80"] = float(value(kv, "num_preemptions", policy="prefill_first",
                                   memory_gb=80.0, rate_per_s=kv_rate)["mean"])
    f["kv.ttft.pf80"] = float(value(kv, "ttft_p95_s", policy="prefill_first", memory_gb=80.0,
                                    rate_per_s=kv_rate)["mean"])
    f["kv.ttft.pf160"] = float(value(kv, "ttft_p95_s", policy="prefill_first",
                                     memory_gb=160.0, rate_per_s=kv_rate)["mean"])
    kl = data["kv_memory_long"]
    f["kvl.rate"] = float(kl["rate_per_s"].iloc[0])
    f["kvl.80"] = float(kl[(kl["metric"] == "throughput_rps")
                           & (kl["memory_gb"] == 80.0)]["mean"].iloc[0])
    att_l = kl[kl["metric"] == "slo_attainment"].set_index("memory_gb")["mean"].sort_index()
    ok = att_l[att_l >= att_l.iloc[-1] - 0.01]  # within a point of the largest memory's
    f["kvl.enough"] = float(ok.index.min()) if len(ok) else math.nan

    tr = data["traces"]
    for t in dict.fromkeys(tr["trace"]):
        for p in dict.fromkeys(tr["policy"]):
            f[f"tr.{t}.{p}"] = _ci(value(tr, "slo_attainment", trace=t, policy=p))

    ss = data["sensitivity_service"]
    hyb = ss[(ss["policy"] == "hybrid") & (ss["metric"] == "tbt_p95_s")]
    f["sens_tbt_violations"] = int((hyb["mean"] > base.slo.tbt_ms / 1000.0).sum())
    f["sens_settings"] = int(len(hyb))
    att_s = ss[ss["metric"] == "slo_attainment"].groupby("policy")["mean"].min()
    f["sens_min_att_hybrid"] = float(att_s.get("hybrid", math.nan))
    f["sens_min_att_slo"] = float(att_s.get("slo_aware", math.nan))

    ms = data["warmup_mser"]
    f["mser_max_cut"] = int(ms[ms["series"] == "mean over replications"]["cut_requests"].max())
    rp = data["replication_precision"]
    f["prec_reps"] = int(rp["replications"].max())
    f["prec_max_rel_pct"] = 100 * float(
        rp[rp["replications"] == f["prec_reps"]]["relative_half_width"].max())

    f["learned_present"] = "learned" in data
    if "learned" in data:
        f.update(_learned_summary(data["learned"]))
    else:
        f["learned_text"] = ("was not evaluated in this run: no evaluation table was found "
                             "(see Section 4.11).")
        f["learned_result"] = ""
    return f
