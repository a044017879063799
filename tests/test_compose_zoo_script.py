"""scripts/compose_zoo.py end to end on a tiny run: it trains the clone, evaluates it beside
every rule on held-out seeds of the stated length and audits its decisions; the files it
writes agree with runs recomputed here through ``simulate``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import llm_serving_env as lse
from agents.evaluate import EVAL_FIRST_SEED

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("compose_zoo", ROOT / "scripts" /
                                                  "compose_zoo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_compose_zoo_trains_evaluates_and_audits_one_scenario(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    script = load_script()
    script.main(["heavy_tail", "--zoo", str(tmp_path), "--bc-episodes", "2",
                 "--episode-requests", "60", "--eval-requests", "100", "--seeds", "2",
                 "--agreement-seeds", "1"])
    model = tmp_path / "compose_heavy_tail.zip"
    sidecar = json.loads((tmp_path / "compose_heavy_tail.json").read_text())
    assert sidecar["behaviour_cloning"]["expert"] == "slo_triage"
    assert sidecar["behaviour_cloning"]["episodes"] == 2 and sidecar["episode_requests"] == 60
    table = pd.read_csv(tmp_path / "compose_heavy_tail.eval_heavy_tail.csv").set_index("policy")
    assert (table["num_requests"] == 100).all() and (table["warmup_requests"] == 10).all()
    assert (table["n"] == 2).all()
    learned = f"ppo:{model}"
    assert {"hybrid", "slo_triage", "slo_aware", learned} <= set(table.index)
    cfg = lse.load_config("configs/benchmarks/heavy_tail.yaml").replace(
        {"num_requests": 100, "warmup_requests": 10})
    for policy in ("slo_triage", learned):  # the table's means are those of simulate's runs
        runs = [lse.simulate(cfg, policy, seed=EVAL_FIRST_SEED + k).summary()["slo_attainment"]
                for k in range(2)]
        assert table.loc[policy, "slo_attainment_mean"] == pytest.approx(np.mean(runs),
                                                                         abs=1e-12)
    audit = json.loads((tmp_path / "compose_heavy_tail.agreement.json").read_text())
    assert audit["seeds"] == [EVAL_FIRST_SEED] and audit["decisions"][0] > 0
    # a decision equal to some rule's batch is not unlike every rule's
    assert audit["differs_from_all"] <= 1.0 - max(audit["agrees_with"].values()) + 1e-12


def test_compose_zoo_refuses_an_unknown_scenario(capsys):
    with pytest.raises(SystemExit) as exc:
        load_script().main(["no_such_scenario"])
    assert exc.value.code == 2
    assert "unknown scenario 'no_such_scenario'" in capsys.readouterr().err
