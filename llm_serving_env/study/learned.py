"""Analysis 9: the learned scheduler's evaluation, read from ``llm-serving evaluate --out``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from llm_serving_env.study.common import DEFAULT_OUT_DIR

LEARNED_CSV = "learned_vs_baselines.csv"



def learned(out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR) -> pd.DataFrame | None:
    """The learned scheduler's evaluation table (``llm-serving evaluate ... --out``) if
    ``out_dir/learned_vs_baselines.csv`` exists, else None. Nothing is simulated here."""
    path = Path(out_dir) / LEARNED_CSV
    return pd.read_csv(path) if path.exists() else None


#: The hand-written schedulers in the order the per-scenario tables list them.
SCHEDULER_ORDER = ("request_level", "fixed_batch", "dynamic_batch", "prefill_first", "orca",
                   "hybrid", "slo_aware", "slo_triage")


def evaluation_csvs(zoo_dir: str | os.PathLike[str], model: str) -> list[Path]:
    """The evaluation CSVs of ``model`` in ``zoo_dir`` (``MODEL.eval_SCENARIO.csv``, written by
    ``llm-serving evaluate --out``), sorted by scenario."""
    return sorted(Path(zoo_dir).glob(f"{model}.eval_*.csv"))


def scenario_of(path: str | os.PathLike[str]) -> str:
    """The scenario an evaluation CSV is about (``MODEL.eval_SCENARIO.csv``)."""
    return Path(path).stem.split(".eval_")[-1]


def _own_model_row(zoo_dir: Path, scenario: str) -> pd.Series | None:
    """The row of a model trained on ``scenario`` itself (``ppo_slo_SCENARIO``), if any."""
    path = zoo_dir / f"ppo_slo_{scenario}.eval_{scenario}.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path)
    rows = df[df["policy"].str.startswith("ppo:")]
    return rows.iloc[0] if len(rows) else None


def learned_scenarios(paths: list[Path]) -> pd.DataFrame:
    """One row per benchmark scenario: every policy's mean SLO attainment (one column per
    hand-written scheduler, per evaluated model, and the model trained on that scenario
    itself if there is one), the upper bound, what the best rule leaves to it (bound / best
    - 1), and each learned policy's share of that gap (mean and 95% half-width)."""
    frames = {scenario_of(p): pd.read_csv(p) for p in paths}
    learned_cols = [n for n in frames[next(iter(frames))]["policy"] if n.startswith("ppo:")]
    rows = []
    for name, df in frames.items():
        by = df.set_index("policy")
        best = by["best_baseline"].iloc[0]
        row: dict[str, object] = {"scenario": name, "best_rule": best}
        for col in (*SCHEDULER_ORDER, *learned_cols):
            key = col.split("/")[-1].removesuffix(".zip")
            row[key] = float(by.loc[col, "slo_attainment_mean"]) if col in by.index else None
        own = _own_model_row(paths[0].parent, name)
        own_new = own is not None and own["policy"] not in learned_cols
        row["ppo_trained_on_scenario"] = float(own["slo_attainment_mean"]) if own_new else None
        bound = float(by["slo_upper_bound_mean"].iloc[0])
        row["bound"] = bound
        row["best_rule_leaves"] = bound / float(by.loc[best, "slo_attainment_mean"]) - 1
        shares = [(float(by.loc[c, "gap_closed_mean"]), float(by.loc[c, "gap_closed_ci95"]))
                  for c in learned_cols]
        if own_new:
            shares.append((float(own["gap_closed_mean"]), float(own["gap_closed_ci95"])))
        row["learned_gap_share"] = shares
        rows.append(row)
    return pd.DataFrame(rows)


def _run_length(by: pd.DataFrame, configs_dir: str | os.PathLike[str] | None,
                scenario: str) -> float:
    """Arrivals per held-out run of an evaluation table: its ``num_requests`` column; for a
    table written before evaluate recorded it (which ran the whole scenario), the scenario
    config's ``num_requests`` in ``configs_dir``; else NaN."""
    if "num_requests" in by:
        return float(by["num_requests"].iloc[0])
    path = Path(configs_dir) / f"{scenario}.yaml" if configs_dir is not None else None
    if path is None or not path.is_file():
        return float("nan")
    from llm_serving_env.config.files import load_config

    return float(load_config(path).num_requests)


def compose_zoo(zoo_dir: str | os.PathLike[str],
                configs_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """One row per scenario with a compose model (``compose_SCENARIO.zip``, evaluated on its
    own scenario by ``scripts/compose_zoo.py``): the held-out seeds and arrivals per run
    (:func:`_run_length`; ``configs_dir`` holds the scenario configs), every rule's and the
    model's mean SLO
    attainment, the bound, what the best rule leaves to it (bound / best - 1), the model's
    goodput ratio to the best rule and its share of the gap to the bound (paired, mean and
    95% half-width over the held-out seeds), and the share of its decisions at which its
    batch differs from every rule's (``agreement.json``; NaN when absent). Empty without
    evaluations. Nothing is simulated here."""
    zoo = Path(zoo_dir)
    rows = []
    for path in sorted(zoo.glob("compose_*.eval_*.csv")):
        scenario = scenario_of(path)
        if path.name != f"compose_{scenario}.eval_{scenario}.csv":
            continue  # a model evaluated on another scenario
        by = pd.read_csv(path).set_index("policy")
        learned = [p for p in by.index if p.startswith("ppo:")]
        if not learned:
            continue
        me = by.loc[learned[0]]
        best = str(by["best_baseline"].iloc[0])
        row: dict[str, object] = {"scenario": scenario, "best_rule": best,
                                  "seeds": int(by["n"].iloc[0])}
        row["num_requests"] = _run_length(by, configs_dir, scenario)
        for name in (*SCHEDULER_ORDER, "slo_classes"):
            row[name] = float(by.loc[name, "slo_attainment_mean"]) if name in by.index else None
        row["learned"] = float(me["slo_attainment_mean"])
        bound = float(by["slo_upper_bound_mean"].iloc[0])
        row["bound"] = bound
        row["best_rule_leaves"] = bound / float(by.loc[best, "slo_attainment_mean"]) - 1
        for key in ("goodput_ratio", "gap_closed"):
            row[key] = float(me[f"{key}_mean"])
            row[f"{key}_ci95"] = float(me[f"{key}_ci95"])
        audit = zoo / f"compose_{scenario}.agreement.json"
        row["differs_from_all_rules"] = (
            float(json.loads(audit.read_text())["differs_from_all"]) if audit.exists()
            else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)
