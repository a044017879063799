"""study.learned.compose_zoo: the README's and the report's table of the compose models, read
from evaluation CSVs (checked on a hand-made one, values computed by hand)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llm_serving_env.study.learned import compose_zoo


def test_compose_zoo_reads_each_scenarios_own_evaluation(tmp_path):
    rows = [
        {"policy": "hybrid", "slo_attainment_mean": 0.5},
        {"policy": "slo_triage", "slo_attainment_mean": 0.8},
        {"policy": "ppo:agents/zoo/compose_s1.zip", "slo_attainment_mean": 0.84,
         "goodput_ratio_mean": 1.05, "goodput_ratio_ci95": 0.01, "gap_closed_mean": 0.2,
         "gap_closed_ci95": 0.05},
    ]
    df = pd.DataFrame(rows)
    df["best_baseline"] = "slo_triage"
    df["slo_upper_bound_mean"] = 1.0
    df.to_csv(tmp_path / "compose_s1.eval_s1.csv", index=False)
    df.to_csv(tmp_path / "compose_s1.eval_other.csv", index=False)  # not its own scenario
    (tmp_path / "compose_s1.agreement.json").write_text(json.dumps({"differs_from_all": 0.12}))
    table = compose_zoo(tmp_path)
    assert list(table["scenario"]) == ["s1"]
    row = table.iloc[0]
    assert row["learned"] == 0.84 and row["slo_triage"] == 0.8 and row["hybrid"] == 0.5
    assert row["best_rule_leaves"] == pytest.approx(1.0 / 0.8 - 1)
    assert row["goodput_ratio"] == 1.05 and row["gap_closed_ci95"] == 0.05
    assert row["differs_from_all_rules"] == 0.12
    assert compose_zoo(tmp_path / "none").empty
