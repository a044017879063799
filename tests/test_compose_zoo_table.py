"""study.learned.compose_zoo: the README's and the report's table of the compose models, read
from evaluation CSVs (checked on a hand-made one, values computed by hand)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from llm_serving_env.study.learned import compose_zoo

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_compose_zoo_reads_each_scenarios_own_evaluation(tmp_path):
    rows = [
        {"policy": "hybrid", "slo_attainment_mean": 0.5},
        {"policy": "slo_triage", "slo_attainment_mean": 0.8},
        {"policy": "ppo:agents/zoo/compose_s1.zip", "slo_attainment_mean": 0.84,
         "goodput_ratio_mean": 1.05, "goodput_ratio_ci95": 0.01, "gap_closed_mean": 0.2,
         "gap_closed_ci95": 0.05},
    ]
    df = pd.DataFrame(rows)
    df["n"] = 3
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
    assert row["seeds"] == 3 and math.isnan(row["num_requests"])  # no column, no config
    configs = tmp_path / "configs"
    configs.mkdir()
    text = (CONFIGS / "default.yaml").read_text()
    assert "num_requests: 20000\n" in text
    (configs / "s1.yaml").write_text(text.replace("num_requests: 20000\n", "num_requests: 12345\n"))
    assert compose_zoo(tmp_path, configs).iloc[0]["num_requests"] == 12345
    df["num_requests"] = 500  # recorded by evaluate: it wins over the config
    df.to_csv(tmp_path / "compose_s1.eval_s1.csv", index=False)
    assert compose_zoo(tmp_path, configs).iloc[0]["num_requests"] == 500
    assert compose_zoo(tmp_path / "none").empty
