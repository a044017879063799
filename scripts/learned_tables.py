"""The README's per-benchmark tables of the learned scheduler, from the evaluation CSVs that
``llm-serving evaluate --out agents/zoo/MODEL.eval_SCENARIO.csv`` writes.

First one wide table (a row per scenario: every policy's SLO attainment, the upper bound, and
the learned policy's share of the gap between the best hand-written scheduler and the bound),
then one table per scenario: every policy's SLO attainment and goodput (mean ± 95% CI over the
held-out seeds), its goodput ratio to the best hand-written scheduler (paired, seed by seed)
and its share of the gap between that scheduler and the bound.

    .venv/bin/python scripts/learned_tables.py [agents/zoo/ppo_slo_bursty_chat]
    .venv/bin/python scripts/learned_tables.py --compose   # the compose models' table
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from llm_serving_env.study.learned import (
    SCHEDULER_ORDER,
    compose_zoo,
    evaluation_csvs,
    learned_scenarios,
)

ROOT = Path(__file__).resolve().parents[1]


def cell(mean: float, half: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def table(path: Path) -> str:
    df = pd.read_csv(path)
    best = df["best_baseline"].iloc[0]
    bound = cell(df["slo_upper_bound_mean"].iloc[0], df["slo_upper_bound_ci95"].iloc[0])
    lines = [f"**{path.stem.split('.eval_')[-1]}** (best hand-written: `{best}`; upper bound "
             f"on SLO attainment {bound})", "",
             "| policy | SLO attainment | goodput (req/s) | goodput / best | share of gap to "
             "bound |", "| --- | --- | --- | --- | --- |"]
    for _, r in df.sort_values("slo_attainment_mean").iterrows():
        name = r["policy"].split("/")[-1] if r["policy"].startswith("ppo:") else r["policy"]
        lines.append(
            f"| {name} | {cell(r['slo_attainment_mean'], r['slo_attainment_ci95'], 4)} | "
            f"{cell(r['goodput_rps_mean'], r['goodput_rps_ci95'])} | "
            f"{cell(r['goodput_ratio_mean'], r['goodput_ratio_ci95'])} | "
            f"{cell(r['gap_closed_mean'], r['gap_closed_ci95'], 2)} |")
    return "\n".join(lines)


def wide(paths: list[Path]) -> str:
    frame = learned_scenarios(paths)
    skip = {"scenario", "best_rule", "ppo_trained_on_scenario", "bound", "best_rule_leaves",
            "learned_gap_share"}
    cols = [c for c in frame.columns if c not in skip]
    head = ["scenario", *cols, "PPO trained on the scenario", "bound",
            "best rule leaves to the bound", "learned: share of that gap"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for _, r in frame.iterrows():
        att = [f"{r[c]:.3f}" if pd.notna(r[c]) else "-" for c in cols]
        own = r["ppo_trained_on_scenario"]
        att.append(f"{own:.3f}" if pd.notna(own) else "-")
        shares = " / ".join(cell(m, h, 2) for m, h in r["learned_gap_share"])
        lines.append(f"| {r['scenario']} | " + " | ".join(att)
                     + f" | {r['bound']:.3f} | {r['best_rule_leaves']:.1%} | {shares} |")
    return "\n".join(lines)


def compose() -> str:
    """One row per scenario of the compose zoo (``study.learned.compose_zoo``)."""
    frame = compose_zoo(ROOT / "agents" / "zoo", ROOT / "configs" / "benchmarks")
    rules = [*SCHEDULER_ORDER, "slo_classes"]
    head = ["scenario", "held-out runs", *rules, "learned (clone of the best rule)", "bound",
            "best rule leaves to the bound", "learned / best rule, goodput",
            "learned: share of the gap", "decisions unlike every rule"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for _, r in frame.iterrows():
        cells = [f"{r[c]:.3f}" if pd.notna(r[c]) else "-" for c in rules]
        lines.append(
            f"| {r['scenario']} | {r['seeds']} x {r['num_requests']:,.0f} | "
            + " | ".join(cells)
            + f" | {r['learned']:.3f} | {r['bound']:.3f} | {r['best_rule_leaves']:.1%} | "
            f"{cell(r['goodput_ratio'], r['goodput_ratio_ci95'])} | "
            f"{cell(r['gap_closed'], r['gap_closed_ci95'], 2)} | "
            f"{r['differs_from_all_rules']:.1%} |")
    return "\n".join(lines)


def main(stem: str = "agents/zoo/ppo_slo_bursty_chat") -> None:
    if stem == "--compose":
        print(compose())
        return
    base = ROOT / stem
    paths = evaluation_csvs(base.parent, base.name)
    if not paths:
        raise SystemExit(f"no evaluation CSVs {base.name}.eval_*.csv in {base.parent}")
    print(wide(paths), end="\n\n")
    for path in paths:
        print(table(path), end="\n\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
