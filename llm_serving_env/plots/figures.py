"""Matplotlib figures. Every axis is labelled with its unit; estimates carry 95% CIs.

Every function returns a :class:`~matplotlib.figure.Figure` (those drawing one panel also take
an ``ax`` to draw into) and never calls ``plt.show()``:

- :func:`plot_comparison`: headline metrics per policy (``compare_policies`` output).
- :func:`plot_latency_throughput`: a metric against load per policy, CI bands (sweeps).
- :func:`plot_cdf`: empirical CDFs of TTFT, TBT or E2E latency per run.
- :func:`plot_over_time`, :func:`plot_gpu_timeseries`: one run binned in time
  (:func:`time_series`).
- :func:`plot_batch_timeline`: each iteration of each GPU, prefill and decode tokens stacked.
- :func:`plot_capacity_bars`: SLO capacity per policy with its bisection bracket.
- :func:`plot_welch`: Welch's plot with the MSER-5 warm-up cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llm_serving_env.analysis.stats import mser_truncation, welch_average

if TYPE_CHECKING:
    from llm_serving_env.sim.result import RunResult

COMPARISON_PANELS = (
    ("throughput_rps", "throughput (requests/s)", 1.0),
    ("ttft_p95_s", "TTFT P95 (s)", 1.0),
    ("tbt_p95_s", "TBT P95 (ms)", 1000.0),
    ("e2e_mean_s", "mean end-to-end latency (s)", 1.0),
)


def plot_comparison(long: pd.DataFrame) -> Figure:
    """Bar charts of headline metrics per policy with 95% CI error bars.

    ``long`` is the table from :func:`llm_serving_env.analysis.comparison.compare_policies`
    (columns policy, metric, mean, half_width).
    """
    policies = list(dict.fromkeys(long["policy"]))
    fig, axes = plt.subplots(1, len(COMPARISON_PANELS), figsize=(4 * len(COMPARISON_PANELS), 3.6))
    x = np.arange(len(policies))
    for ax, (metric, label, scale) in zip(axes, COMPARISON_PANELS, strict=True):
        rows = long[long["metric"] == metric].set_index("policy").reindex(policies)
        ax.bar(x, rows["mean"] * scale, yerr=rows["half_width"].fillna(0) * scale, capsize=4,
               color=plt.cm.tab10(x % 10))
        ax.set_xticks(x, policies, rotation=20, ha="right")
        values = (rows["mean"] * scale).dropna()
        if len(values) > 1 and values.min() > 0 and values.max() / values.min() > 50:
            ax.set_yscale("log")  # policies differ by orders of magnitude
        ax.set_ylabel(label)
        ax.set_xlabel("scheduler (name)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Scheduler comparison (mean over replications, 95% CI)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Axis labels
# --------------------------------------------------------------------------------------------

_STAT_NAMES = {"mean": "mean", "p50": "P50", "p95": "P95", "p99": "P99"}
_LATENCY_NAMES = {"ttft": "TTFT", "tbt": "TBT", "e2e": "end-to-end latency"}

#: Axis labels (with units) of summary metrics and common config paths.
LABELS: dict[str, str] = {
    "num_completed": "completed requests (requests)",
    "throughput_rps": "throughput (requests/s)",
    "throughput_tokens_per_s": "output token throughput (tokens/s)",
    "queue_wait_mean_s": "mean queue wait (s)",
    "gpu_utilization": "GPU utilization (fraction)",
    "mean_batch_tokens": "mean batch size (tokens)",
    "mean_batch_requests": "mean batch size (requests)",
    "num_preemptions": "preemptions (count)",
    "slo_attainment": "SLO attainment (fraction)",
    "goodput_rps": "goodput (requests/s)",
    "workload.arrival.rate_per_s": "arrival rate (requests/s)",
    "rate_per_s": "arrival rate (requests/s)",
    "scheduler.token_budget": "token budget (tokens)",
    "gpus.count": "GPUs (count)",
    "gpus.max_batch_tokens": "max batch size (tokens)",
    "gpus.max_batch_requests": "max batch size (requests)",
    "num_requests": "requests simulated (requests)",
}

_SUFFIX_UNITS = (("_per_s", "1/s"), ("_ms", "ms"), ("_s", "s"), ("_tokens", "tokens"),
                 ("_gb", "GB"), ("_bytes", "bytes"))


def axis_label(name: str) -> str:
    """A label with its unit in parentheses for a summary metric or a dotted config path.

    Known names come from :data:`LABELS` and ``{ttft,tbt,e2e}_{mean,p50,p95,p99}_s``; others get
    the unit their suffix names (``_per_s``, ``_ms``, ``_s``, ``_tokens``, ...), else
    ``(config units)``.
    """
    if name in LABELS:
        return LABELS[name]
    parts = name.split("_")
    if len(parts) == 3 and parts[0] in _LATENCY_NAMES and parts[1] in _STAT_NAMES \
            and parts[2] == "s":
        return f"{_LATENCY_NAMES[parts[0]]} {_STAT_NAMES[parts[1]]} (s)"
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            return f"{name} ({unit})"
    return f"{name} (config units)"


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, new_ax = plt.subplots(figsize=figsize)
    return fig, new_ax


def _auto_bin(result: RunResult, bins: int = 100) -> float:
    end = float(np.nanmax(np.concatenate((result.finish_s, result.batch_columns["end_s"],
                                          [1e-9]))))
    return end / bins


# --------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------


def plot_latency_throughput(
    summary_df: pd.DataFrame,
    metric: str = "ttft_p95_s",
    x: str = "workload.arrival.rate_per_s",
    ax: Axes | None = None,
    logy: bool = False,
) -> Figure:
    """``metric`` against grid column ``x``, one curve per policy, with t-CI bands.

    ``summary_df`` is :func:`llm_serving_env.analysis.sweep.summarize_sweep` output (grid columns,
    ``policy``, ``metric``, ``mean``, ``low``, ``high``). Other grid columns split the curves
    too (labelled ``policy, path=value``). Bands span ``[low, high]`` (none with one
    replication). Units follow :func:`axis_label`.
    """
    columns = list(summary_df.columns)
    if "metric" not in columns or x not in columns:
        raise ValueError(f"summary_df must be summarize_sweep output with a column {x!r}; "
                         f"it has {columns}")
    rows = summary_df[summary_df["metric"] == metric]
    if rows.empty:
        raise ValueError(f"metric {metric!r} not in summary_df "
                         f"(it has {sorted(set(summary_df['metric']))})")
    series_cols = [c for c in columns[: columns.index("metric")] if c != x]
    fig, ax = _axes(ax)
    groups = rows.groupby(series_cols, sort=False, dropna=False) if series_cols \
        else [((), rows)]
    for key, part in groups:
        values = key if isinstance(key, tuple) else (key,)
        named = dict(zip(series_cols, values, strict=True))
        parts = [str(named.pop("policy"))] if "policy" in named else []
        label = ", ".join(parts + [f"{c}={v}" for c, v in named.items()]) or metric
        part = part.sort_values(x)
        (line,) = ax.plot(part[x], part["mean"], marker="o", ms=3, label=label)
        ax.fill_between(part[x], part["low"].astype(float), part["high"].astype(float),
                        color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(metric))
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(title="mean, 95% CI band", fontsize="small")
    return fig


# --------------------------------------------------------------------------------------------
# Distributions of one run
# --------------------------------------------------------------------------------------------

_CDF_METRICS = {
    "ttft": ("time to first token (s)", "requests"),
    "tbt": ("time between tokens (s)", "token gaps"),
    "e2e": ("end-to-end latency (s)", "requests"),
}


def _metric_values(result: RunResult, metric: str) -> np.ndarray:
    m = result.measured
    if metric == "ttft":
        return result.ttft_s[m]
    if metric == "e2e":
        return result.e2e_s[m]
    return np.asarray(result.tbt_gaps_s, dtype=float)


def plot_cdf(
    results: Mapping[str, RunResult],
    metric: str = "ttft",
    logx: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Empirical CDFs of TTFT, TBT gaps or E2E latency (seconds), one curve per run.

    ``results`` maps a label (e.g. the policy) to a run; measured requests only (TBT: every gap
    between consecutive output tokens of measured requests). When all runs share an SLO, its
    TTFT or TBT threshold is drawn as a dashed vertical line. ``logx`` puts x on a log scale.
    """
    if metric not in _CDF_METRICS:
        raise ValueError(f"metric = {metric!r}: expected one of {sorted(_CDF_METRICS)}")
    if not results:
        raise ValueError("results is empty: pass {label: RunResult}")
    xlabel, unit = _CDF_METRICS[metric]
    fig, ax = _axes(ax)
    for label, result in results.items():
        x = np.sort(_metric_values(result, metric))
        x = x[np.isfinite(x)]
        if logx:
            x = x[x > 0]
        y = np.arange(1, x.size + 1) / max(x.size, 1)
        ax.step(x, y, where="post", label=str(label))
    slos = {r.config.slo for r in results.values()}
    if metric in ("ttft", "tbt") and len(slos) == 1 and None not in slos:
        (slo,) = slos
        limit = (slo.ttft_ms if metric == "ttft" else slo.tbt_ms) / 1000.0
        ax.axvline(limit, color="k", ls="--", lw=1, label=f"SLO {limit:g} s")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"empirical CDF (fraction of {unit})")
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


# --------------------------------------------------------------------------------------------
# Time series of one run
# --------------------------------------------------------------------------------------------


def _binned_stats(
    idx: np.ndarray, values: np.ndarray, n: int, q: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: count, mean and the ``q`` quantile (linear interpolation, as np.quantile)."""
    count = np.bincount(idx, minlength=n)
    sums = np.bincount(idx, weights=values, minlength=n)
    has = count > 0
    mean = np.full(n, np.nan)
    mean[has] = sums[has] / count[has]
    quant = np.full(n, np.nan)
    if values.size:
        ordered = values[np.lexsort((values, idx))]
        first = np.concatenate(([0], np.cumsum(count)[:-1]))[has]
        pos = q * (count[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, count[has] - 1)
        v_lo, v_hi = ordered[first + lo], ordered[first + hi]
        quant[has] = v_lo + (pos - lo) * (v_hi - v_lo)
    return count, mean, quant


def _busy_until(starts: np.ndarray, ends: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Busy time in [0, t] of one GPU whose batches (sorted, non-overlapping) span
    [starts, ends]: the durations of batches started by t, less the unfinished part of the one
    running at t."""
    cum = np.concatenate(([0.0], np.cumsum(ends - starts)))
    k = np.searchsorted(starts, t, side="right")
    running = np.where(k > 0, np.maximum(0.0, ends[np.maximum(k - 1, 0)] - t), 0.0) \
        if starts.size else np.zeros_like(t)
    return cum[k] - running


def time_series(result: RunResult, bin_s: float, gpu: int | None = None) -> pd.DataFrame:
    """The run binned in time: bins ``[k bin_s, (k+1) bin_s)`` from 0 to the last event.

    The last bin ends at the last event (arrival, first token, finish or batch end), so it may
    be shorter than ``bin_s``; it includes its right end.

    Computed with ``np.bincount`` / ``np.searchsorted`` (no Python loop over events). Columns:

    - ``t_start_s``, ``t_end_s``, ``width_s``: bin edges and width (s of simulated time).
    - ``arrivals``, ``arrival_rps``: requests arriving in the bin, and per second.
    - ``completions``, ``throughput_rps``: requests finishing in the bin, and per second.
    - ``tokens``, ``tokens_per_s``: output tokens emitted in the bin (a request's first token
      at its first-token time, each decode at the end of its batch), and per second.
    - ``first_tokens``, ``ttft_mean_s``, ``ttft_p95_s``: requests whose first token falls in the
      bin and the mean / P95 of their TTFT (s).
    - ``tbt_gaps``, ``tbt_mean_s``, ``tbt_p95_s``: gaps between consecutive output tokens,
      binned by the end time of the batch that emitted the later token (``tbt_gaps_s`` and
      ``tbt_gap_batch``); mean / P95 in s. Only measured requests (the run stores gaps of those).
    - ``batches``, ``mean_batch_tokens``, ``mean_batch_requests``: batches starting in the bin,
      their mean token load (tokens) and number of requests (prefill chunks + decodes).
    - ``busy_s``, ``gpu_utilization``: GPU busy time within the bin (s; a batch spanning bins is
      split between them) and busy / (GPUs x width_s) (fraction).

    Rates (``*_rps``, ``*_per_s``) are counts / ``width_s``. Request counts include warm-up
    requests (``result.measured`` marks them). P95 uses linear interpolation, as
    ``np.quantile``; empty bins give NaN means and quantiles. ``gpu`` restricts everything to
    events of that GPU: its batches and gaps, the requests it first served (arrivals, first
    tokens) and those it finished (completions).
    """
    if not (isinstance(bin_s, (int, float, np.floating)) and bin_s > 0 and np.isfinite(bin_s)):
        raise ValueError(f"bin_s = {bin_s!r}: must be a number > 0 (seconds)")
    b = result.batch_columns
    b_gpu = np.asarray(b["gpu"])
    b_start = np.asarray(b["start_s"], dtype=float)
    b_end = np.asarray(b["end_s"], dtype=float)
    arrival = np.asarray(result.arrival_s, dtype=float)
    first_tok = np.asarray(result.first_token_s, dtype=float)
    finish = np.asarray(result.finish_s, dtype=float)
    gaps = np.asarray(result.tbt_gaps_s, dtype=float)
    gap_t = b_end[np.asarray(result.tbt_gap_batch, dtype=np.int64)] if gaps.size \
        else np.zeros(0)
    events = np.concatenate((arrival, first_tok, finish, b_end, [0.0]))
    t_last = float(np.nanmax(events))
    n = max(1, math.ceil(t_last / bin_s))
    edges = np.arange(n + 1) * float(bin_s)
    if t_last > 0.0:
        edges[-1] = t_last  # events at t_last fall in the last bin (bins() clips)
    width = np.diff(edges)

    all_req = np.ones(arrival.size, dtype=bool)
    first_mask = all_req if gpu is None else np.asarray(result.first_gpu) == gpu
    done_mask = all_req if gpu is None else np.asarray(result.gpu) == gpu
    batch_mask = np.ones(b_gpu.size, dtype=bool) if gpu is None else b_gpu == gpu
    gap_mask = (np.ones(gaps.size, dtype=bool) if gpu is None
                else b_gpu[np.asarray(result.tbt_gap_batch, dtype=np.int64)] == gpu)

    def bins(t: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(t / bin_s).astype(np.int64), 0, n - 1)

    def count(t: np.ndarray, mask: np.ndarray) -> np.ndarray:
        keep = mask & np.isfinite(t)
        return np.bincount(bins(t[keep]), minlength=n)

    ttft = first_tok - arrival
    keep = first_mask & np.isfinite(first_tok)
    n_first, ttft_mean, ttft_p95 = _binned_stats(bins(first_tok[keep]), ttft[keep], n)
    n_gaps, tbt_mean, tbt_p95 = _binned_stats(bins(gap_t[gap_mask]), gaps[gap_mask], n)
    decodes = np.bincount(bins(b_end[batch_mask]),
                          weights=np.asarray(b["num_decodes"], dtype=float)[batch_mask],
                          minlength=n)
    load = np.asarray(b["token_load"], dtype=float)[batch_mask]
    reqs = (np.asarray(b["num_prefills"], dtype=float)
            + np.asarray(b["num_decodes"], dtype=float))[batch_mask]
    n_batches, batch_tokens, _ = _binned_stats(bins(b_start[batch_mask]), load, n)
    _, batch_requests, _ = _binned_stats(bins(b_start[batch_mask]), reqs, n)
    gpus = range(result.num_gpus) if gpu is None else [gpu]
    busy_cum = np.zeros(n + 1)
    for g in gpus:
        on = b_gpu == g
        order = np.argsort(b_start[on], kind="stable")
        busy_cum += _busy_until(b_start[on][order], b_end[on][order], edges)
    busy = np.diff(busy_cum)
    arrivals = count(arrival, first_mask)
    completions = count(finish, done_mask)
    tokens = n_first + decodes
    return pd.DataFrame({
        "t_start_s": edges[:-1],
        "t_end_s": edges[1:],
        "width_s": width,
        "arrivals": arrivals,
        "arrival_rps": arrivals / width,
        "completions": completions,
        "throughput_rps": completions / width,
        "tokens": tokens.astype(np.int64),
        "tokens_per_s": tokens / width,
        "first_tokens": n_first,
        "ttft_mean_s": ttft_mean,
        "ttft_p95_s": ttft_p95,
        "tbt_gaps": n_gaps,
        "tbt_mean_s": tbt_mean,
        "tbt_p95_s": tbt_p95,
        "batches": n_batches,
        "mean_batch_tokens": batch_tokens,
        "mean_batch_requests": batch_requests,
        "busy_s": busy,
        "gpu_utilization": busy / (len(gpus) * width),
    })


def _shade_warmup(ax: Axes, result: RunResult) -> None:
    if result.warmup > 0 and result.warmup < result.arrival_s.size:
        ax.axvspan(0.0, float(result.arrival_s[result.warmup]), color="0.85", alpha=0.5,
                   lw=0, label="warm-up")


def plot_over_time(result: RunResult, bin_s: float | None = None) -> Figure:
    """Throughput, TTFT and TBT of one run over simulated time (see :func:`time_series`).

    Three panels: arrivals and completions per second; mean and P95 TTFT by first-token time
    (s); mean and P95 TBT by token time (s). The warm-up (until the first measured arrival) is
    shaded. ``bin_s`` defaults to 1/100 of the run.
    """
    bin_s = bin_s or _auto_bin(result)
    ts = time_series(result, bin_s)
    t = (ts["t_start_s"] + ts["t_end_s"]) / 2
    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    panels = (
        ("rate (requests/s)", (("arrival_rps", "arrivals"), ("throughput_rps", "completions"))),
        ("TTFT (s)", (("ttft_mean_s", "mean"), ("ttft_p95_s", "P95"))),
        ("TBT (s)", (("tbt_mean_s", "mean"), ("tbt_p95_s", "P95"))),
    )
    for ax, (ylabel, lines) in zip(axes, panels, strict=True):
        _shade_warmup(ax, result)
        for column, label in lines:
            ax.plot(t, ts[column], label=label, lw=1.2)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("simulated time (s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper right")
    axes[0].set_title(f"{result.policy_name}, seed {result.seed}: "
                      f"{bin_s:.3g} s bins")
    fig.tight_layout()
    return fig


def plot_gpu_timeseries(
    result: RunResult, bin_s: float | None = None, per_gpu: bool = False
) -> Figure:
    """GPU utilization and batch occupancy of one run over simulated time.

    Panels: utilization (busy fraction of each bin); mean tokens per batch (token load); mean
    requests per batch (prefill chunks + decodes), of batches starting in the bin. One curve
    for all GPUs together, or one per GPU with ``per_gpu``. ``bin_s`` defaults to 1/100 of the
    run.
    """
    bin_s = bin_s or _auto_bin(result)
    series = ([(f"GPU {g}", time_series(result, bin_s, gpu=g)) for g in range(result.num_gpus)]
              if per_gpu else [(f"all {result.num_gpus} GPUs", time_series(result, bin_s))])
    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    panels = (("gpu_utilization", "GPU utilization (fraction)"),
              ("mean_batch_tokens", "tokens per batch (tokens)"),
              ("mean_batch_requests", "requests per batch (requests)"))
    for ax, (column, ylabel) in zip(axes, panels, strict=True):
        _shade_warmup(ax, result)
        for label, ts in series:
            ax.plot((ts["t_start_s"] + ts["t_end_s"]) / 2, ts[column], label=label, lw=1.2)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("simulated time (s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper right")
    axes[0].set_ylim(0.0, 1.05)
    axes[0].set_title(f"{result.policy_name}, seed {result.seed}: "
                      f"{bin_s:.3g} s bins")
    fig.tight_layout()
    return fig


def plot_batch_timeline(
    result: RunResult, t0: float, t1: float, gpus: Sequence[int] | None = None
) -> Figure:
    """Iterations of each GPU in ``[t0, t1]`` (s of simulated time), one panel per GPU.

    Each batch is a bar from its start to its end; its height is its token load, prefill tokens
    at the bottom and decode tokens (one per decode) stacked on top. ``gpus`` picks GPUs
    (default all).
    """
    if not t1 > t0:
        raise ValueError(f"t0 = {t0}, t1 = {t1}: need t1 > t0 (seconds)")
    gpus = list(range(result.num_gpus)) if gpus is None else list(gpus)
    bad = [g for g in gpus if not 0 <= g < result.num_gpus]
    if bad or not gpus:
        raise ValueError(f"gpus = {gpus}: must be ids in 0..{result.num_gpus - 1}")
    b = result.batch_columns
    fig, axes = plt.subplots(len(gpus), 1, figsize=(9, 1.6 + 1.9 * len(gpus)), sharex=True,
                             squeeze=False)
    for ax, g in zip(axes[:, 0], gpus, strict=True):
        sel = (b["gpu"] == g) & (b["end_s"] > t0) & (b["start_s"] < t1)
        start = np.asarray(b["start_s"], dtype=float)[sel]
        width = np.asarray(b["end_s"], dtype=float)[sel] - start
        prefill = np.asarray(b["prefill_tokens"], dtype=float)[sel]
        decode = np.asarray(b["num_decodes"], dtype=float)[sel]
        ax.bar(start, prefill, width=width, align="edge", color="tab:blue",
               edgecolor="white", linewidth=0.3, label="prefill tokens")
        ax.bar(start, decode, width=width, bottom=prefill, align="edge", color="tab:orange",
               edgecolor="white", linewidth=0.3, label="decode tokens")
        ax.set_ylabel(f"GPU {g} batch (tokens)")
        ax.set_xlabel("simulated time (s)")
        ax.set_xlim(t0, t1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small", loc="upper right")
    axes[0, 0].set_title(f"{result.policy_name}: batches in [{t0:g}, {t1:g}] s")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Capacity and warm-up
# --------------------------------------------------------------------------------------------


def plot_capacity_bars(df: pd.DataFrame | Sequence[Any], ax: Axes | None = None) -> Figure:
    """SLO capacity per policy: a bar at ``rate_per_s`` with the bisection bracket
    ``[low_per_s, high_per_s]`` as an error bar (requests/s).

    ``df`` has columns ``policy``, ``rate_per_s``, ``low_per_s``, ``high_per_s`` (e.g. rows of
    :meth:`CapacityResult.to_dict`), or is a sequence of
    :class:`~llm_serving_env.analysis.capacity.CapacityResult`.
    A ``target`` column goes in the title.
    """
    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame([r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in df])
    missing = {"policy", "rate_per_s", "low_per_s", "high_per_s"} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}")
    fig, ax = _axes(ax, figsize=(max(4.0, 1.2 * len(df) + 2), 4.0))
    x = np.arange(len(df))
    rate = df["rate_per_s"].to_numpy(float)
    err = np.vstack((rate - df["low_per_s"].to_numpy(float),
                     df["high_per_s"].to_numpy(float) - rate))
    ax.bar(x, rate, color=plt.cm.tab10(x % 10), label="capacity (largest meeting rate)")
    ax.errorbar(x, rate, yerr=np.clip(err, 0.0, None), fmt="none", ecolor="k", capsize=5,
                label="bracket [low, high]")
    ax.set_xticks(x, [str(p) for p in df["policy"]], rotation=20, ha="right")
    ax.set_xlabel("scheduler (name)")
    ax.set_ylabel("SLO capacity (requests/s)")
    if "target" in df.columns and df["target"].nunique() == 1:
        ax.set_title(f"capacity at SLO attainment >= {df['target'].iloc[0]:g}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_welch(
    replications_array: Any,
    window: int,
    batch_size: int = 5,
    ax: Axes | None = None,
    ylabel: str = "output (s)",
    xlabel: str = "observation index (requests, arrival order)",
) -> Figure:
    """Welch's plot with the MSER cut.

    ``replications_array`` has shape (R, n): one output series per replication (e.g. each
    request's sojourn time in arrival order, seconds). Draws the mean over replications, its
    Welch moving average of half-width ``window``
    (:func:`~llm_serving_env.analysis.stats.welch_average`)
    and a vertical line at the MSER-``batch_size`` truncation of the mean series
    (:func:`~llm_serving_env.analysis.stats.mser_truncation`): delete the observations left of it.
    """
    y = np.asarray(replications_array, dtype=float)
    if y.ndim == 1:
        y = y[None, :]
    avg = welch_average(y, window)
    mean = y.mean(axis=0)
    cut = mser_truncation(mean, batch_size=batch_size)
    fig, ax = _axes(ax, figsize=(7.0, 4.0))
    idx = np.arange(mean.size)
    ax.plot(idx, mean, color="0.7", lw=0.8, label=f"mean over {y.shape[0]} replications")
    ax.plot(idx, avg, color="tab:blue", lw=1.5, label=f"Welch average (window {window})")
    ax.axvline(cut, color="tab:red", ls="--", lw=1.2, label=f"MSER-{batch_size} cut: {cut}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
