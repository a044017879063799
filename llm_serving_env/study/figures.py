"""The report's figures, drawn from the study's CSVs (axes with units, 95% CIs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llm_serving_env.config.files import load_config
from llm_serving_env.plots.figures import (
    plot_batch_timeline,
    plot_capacity_bars,
    plot_comparison,
    plot_latency_throughput,
)
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.sim.scheduler import canonical_schedulers, scheduler_class
from llm_serving_env.sim.simulate import simulate
from llm_serving_env.study.common import COLORS, POLICY_ORDER, RATE
from llm_serving_env.study.validation import DEMO_POLICIES

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

