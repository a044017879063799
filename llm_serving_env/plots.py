"""Matplotlib figures. Every axis is labelled with its unit; estimates carry 95% CI bars."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

COMPARISON_PANELS = (
    ("throughput_rps", "throughput (requests/s)", 1.0),
    ("ttft_p95_s", "TTFT P95 (s)", 1.0),
    ("tbt_p95_s", "TBT P95 (ms)", 1000.0),
    ("e2e_mean_s", "mean end-to-end latency (s)", 1.0),
)


def plot_comparison(long: pd.DataFrame) -> Figure:
    """Bar charts of headline metrics per policy with 95% CI error bars.

    ``long`` is the table from :func:`llm_serving_env.comparison.compare_policies`
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
        ax.set_xlabel("scheduler")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Scheduler comparison (mean over replications, 95% CI)")
    fig.tight_layout()
    return fig
