"""DistServe's qualitative result: at equal GPU count, separating prefill and decode lowers TBT.

Sweeps the arrival rate on ``configs/distserve.yaml`` (a prefill-heavy workload on 4 GPUs) for
colocated serving (hybrid, prefill_first on 4 mixed GPUs) and disaggregated serving (2 prefill
+ 2 decode, 3 prefill + 1 decode, hybrid in each pool, KV over NVLink). Writes
``data/distserve_sweep.csv`` (mean and 95% CI per metric, variant and rate, over replications
with common random numbers) and ``data/distserve_sweep.png``. Usage::

    .venv/bin/python scripts/distserve_sweep.py [--seeds 3] [--rates 0.5,1,1.5,2,2.5,3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import llm_serving_env as lse
from llm_serving_env.analysis.comparison import run_replications
from llm_serving_env.analysis.stats import summarize_replications

ROOT = Path(__file__).resolve().parents[1]
NVLINK = {"interconnect": "nvlink"}
VARIANTS = {
    "colocated, hybrid": (None, "hybrid"),
    "colocated, prefill_first": (None, "prefill_first"),
    "disaggregated 2P+2D": ({"prefill": {"count": 2}, "decode": {"count": 2}, **NVLINK}, "hybrid"),
    "disaggregated 3P+1D": ({"prefill": {"count": 3}, "decode": {"count": 1}, **NVLINK}, "hybrid"),
}
PANELS = (("tbt_mean_s", "mean TBT (ms)", 1000.0), ("tbt_p95_s", "TBT P95 (ms)", 1000.0),
          ("ttft_p95_s", "TTFT P95 (s)", 1.0), ("slo_attainment", "SLO attainment (fraction)", 1.0))


def sweep(rates: list[float], seeds: int) -> pd.DataFrame:
    base = lse.load_config(ROOT / "configs" / "distserve.yaml")
    tables = []
    for variant, (dis, policy) in VARIANTS.items():
        for rate in rates:
            cfg = base.replace({"workload.arrival.rate_per_s": rate, "disaggregation": dis})
            runs = run_replications(cfg, [policy], range(seeds), progress=False)
            table = summarize_replications(
                runs.drop(columns=["policy", "seed"]).to_dict("records"))
            table = table.rename_axis("metric").reset_index()
            table.insert(0, "rate_per_s", rate)
            table.insert(0, "variant", variant)
            tables.append(table)
            print(f"{variant:26s} rate {rate:4.2f}/s done")
    return pd.concat(tables, ignore_index=True)


def plot(df: pd.DataFrame):
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    for ax, (metric, label, scale) in zip(axes, PANELS, strict=True):
        for variant in VARIANTS:
            rows = df[(df["variant"] == variant) & (df["metric"] == metric)]
            mean, half = rows["mean"] * scale, rows["half_width"].fillna(0) * scale
            ax.plot(rows["rate_per_s"], mean, marker="o", label=variant)
            ax.fill_between(rows["rate_per_s"], mean - half, mean + half, alpha=0.2)
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("4 GPUs, prefill-heavy load: colocated vs disaggregated (mean, 95% CI)")
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rates", default="0.5,1,1.5,2,2.5,3")
    args = parser.parse_args()
    df = sweep([float(r) for r in args.rates.split(",")], args.seeds)
    out = ROOT / "data" / "distserve_sweep.csv"
    df.to_csv(out, index=False)
    plot(df).savefig(out.with_suffix(".png"), dpi=120, bbox_inches="tight")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
