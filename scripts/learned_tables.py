"""The README's per-benchmark tables of the learned scheduler, from the evaluation CSVs that
``llm-serving evaluate --out agents/zoo/MODEL.eval_SCENARIO.csv`` writes.

First one wide table (a row per scenario: every policy's SLO attainment, the upper bound, and
the learned policy's share of the gap between the best hand-written scheduler and the bound),
then one table per scenario: every policy's SLO attainment and goodput (mean ± 95% CI over the
held-out seeds), its goodput ratio to the best hand-written scheduler (paired, seed by seed)
and its share of the gap between that scheduler and the bound.

    .venv/bin/python scripts/learned_tables.py [agents/zoo/ppo_slo_bursty_chat]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

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


ORDER = ("request_level", "fixed_batch", "dynamic_batch", "prefill_first", "orca", "hybrid",
         "slo_aware", "slo_triage")


def own_model_row(zoo: Path, scenario: str) -> pd.Series | None:
    """The row of a model trained on ``scenario`` itself (``ppo_slo_SCENARIO``), if any."""
    path = zoo / f"ppo_slo_{scenario}.eval_{scenario}.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path)
    rows = df[df["policy"].str.startswith("ppo:")]
    return rows.iloc[0] if len(rows) else None


def wide(paths: list[Path]) -> str:
    frames = {p.stem.split(".eval_")[-1]: pd.read_csv(p) for p in paths}
    learned = [n for n in frames[next(iter(frames))]["policy"] if n.startswith("ppo:")]
    cols = [*ORDER, *learned]
    head = ["scenario", *[c.split("/")[-1].removesuffix(".zip") for c in cols],
            "PPO trained on the scenario", "bound", "best rule leaves to the bound",
            "learned: share of that gap"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, df in frames.items():
        by = df.set_index("policy")
        best = by["best_baseline"].iloc[0]
        bound = float(by["slo_upper_bound_mean"].iloc[0])
        att = [f"{by.loc[c, 'slo_attainment_mean']:.3f}" if c in by.index else "-"
               for c in cols]
        shares = [cell(by.loc[c, "gap_closed_mean"], by.loc[c, "gap_closed_ci95"], 2)
                  for c in learned]
        own = own_model_row(paths[0].parent, name)
        if own is not None and own["policy"] not in learned:
            att.append(f"{own['slo_attainment_mean']:.3f}")
            shares.append(cell(own["gap_closed_mean"], own["gap_closed_ci95"], 2))
        else:
            att.append("-")
        leaves = f"{bound / by.loc[best, 'slo_attainment_mean'] - 1:.1%}"
        lines.append(f"| {name} | " + " | ".join(att) + f" | {bound:.3f} | {leaves} | "
                     + " / ".join(shares) + " |")
    return "\n".join(lines)


def main(stem: str = "agents/zoo/ppo_slo_bursty_chat") -> None:
    base = ROOT / stem
    paths = sorted(base.parent.glob(f"{base.name}.eval_*.csv"))
    if not paths:
        raise SystemExit(f"no evaluation CSVs {base.name}.eval_*.csv in {base.parent}")
    print(wide(paths), end="\n\n")
    for path in paths:
        print(table(path), end="\n\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
