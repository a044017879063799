"""The llm-serving command line, end to end on small runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from llm_serving_env.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "num_requests=300", "--set", "warmup_requests=50"]


def test_simulate_writes_json_summary_and_applies_overrides(tmp_path, capsys):
    out = tmp_path / "sub" / "out.json"
    code = main(["simulate", "--config", str(ROOT / "configs" / "default.yaml"), *SMALL,
                 "--set", "workload.arrival.rate_per_s=3", "--policy", "request_level",
                 "--seed", "4", "--json", str(out), "--mkdir"])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["scheduler"] == "request_level" and data["seed"] == 4
    assert data["num_completed"] == 250
    # throughput of a stable system tracks the overridden arrival rate (3/s), not the default
    assert 2.0 < data["throughput_rps"] < 4.0
    assert "ttft_p95_s" in capsys.readouterr().out


def test_preset_name_works_like_a_path(tmp_path):
    out = tmp_path / "a.json"
    assert main(["simulate", "--config", "default", *SMALL, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["scheduler"] == "hybrid"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "workload.arrival.rate_per_s=-1"], "rate_per_s"),
        (["--set", "gpus.cont=2"], "did you mean 'count'"),
        (["--set", "novalue"], "="),
        (["--policy", "hybird"], "did you mean 'hybrid'"),
    ],
)
def test_bad_input_is_a_clear_error_not_a_traceback(args, message, capsys):
    code = main(["simulate", "--config", "default", *SMALL, *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_config_file_names_it(capsys):
    assert main(["simulate", "--config", "no/such/file.yaml"]) == 2
    assert "no/such/file.yaml" in capsys.readouterr().err


def test_compare_writes_table_and_plot(tmp_path):
    csv, png = tmp_path / "cmp.csv", tmp_path / "cmp.png"
    code = main(["compare", "--config", "default", *SMALL, "--policies", "request_level,hybrid",
                 "--seeds", "2", "--out", str(csv), "--plot", str(png)])
    assert code == 0
    table = pd.read_csv(csv)
    assert set(table["policy"]) == {"request_level", "hybrid"}
    assert (table.groupby("policy")["n"].max() == 2).all()
    assert png.stat().st_size > 10_000


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("llm-serving")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "simulate" in result.stdout and "compare" in result.stdout
