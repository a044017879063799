"""Sweeps: grid syntax, rows equal to single runs, foreign scheduler parameters, resuming an
interrupted sweep from its CSV, and local processes / a real Dask cluster giving the same rows
bit for bit."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_serving_env.analysis.stats import t_interval
from llm_serving_env.analysis.sweep import (
    meta_path,
    parse_grid,
    parse_grid_values,
    summarize_sweep,
    sweep,
)
from llm_serving_env.cli import main
from llm_serving_env.config.files import load_config
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.simulate import simulate

RATE = "workload.arrival.rate_per_s"
BUDGET = "scheduler.token_budget"


@pytest.fixture(scope="module")
def small():
    """The default scenario cut to 300 requests (50 warm-up): ~20 ms per run."""
    return load_config("default").replace({"num_requests": 300, "warmup_requests": 50})


# ------------------------------------------------------------------------------ grid syntax


def test_range_is_exact_and_includes_stop_on_the_grid():
    values = parse_grid_values("1:4:0.25")
    assert values == [1.0 + 0.25 * i for i in range(13)]
    assert values[-1] == 4.0 and all(isinstance(v, float) for v in values)
    # no float drift: 0.1 + 2 * 0.1 is 0.30000000000000004 in floats, 0.3 here
    assert parse_grid_values("0.1:0.3:0.1") == [0.1, 0.2, 0.3]
    assert parse_grid_values("1:2:0.3") == [1.0, 1.3, 1.6, 1.9]  # 2.2 passes stop
    assert parse_grid_values("128:512:128") == [128, 256, 384, 512]
    assert all(isinstance(v, int) for v in parse_grid_values("128:512:128"))
    assert parse_grid_values("5:1:-2") == [5, 3, 1]
    assert parse_grid_values(" 2:2:1 ") == [2]


def test_lists_are_yaml_values():
    assert parse_grid("scheduler.token_budget=128,256,512") == (BUDGET, [128, 256, 512])
    assert parse_grid("a.b=hybrid, 0.5, null, true") == ("a.b", ["hybrid", 0.5, None, True])
    path, values = parse_grid(
        "workload.prompt_tokens={dist: fixed, value: 64},{dist: fixed, value: 128}")
    assert path == "workload.prompt_tokens"
    assert values == [{"dist": "fixed", "value": 64}, {"dist": "fixed", "value": 128}]


@pytest.mark.parametrize(
    ("text", "message"),
    [("rate", "malformed grid"), ("=1,2", "malformed grid key"), ("a=", "empty grid"),
     ("a=1:0:1", "empty range"), ("a=1:2:0", "step must not be 0"),
     ("a=0:1e9:1", "more than"), ("a=[1, 2", "not valid YAML")],
)
def test_bad_grids_are_clear_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(text)


# ------------------------------------------------------------------------------ rows


def test_rows_are_the_single_runs_with_common_random_numbers(small):
    grid = {RATE: [2.0, 5.0], BUDGET: [128, 512]}
    df = sweep(small, grid, ["hybrid", "orca"], 2, progress=False, workers=1, first_seed=3)
    assert list(df.columns[:4]) == [RATE, BUDGET, "policy", "seed"]
    assert len(df) == 2 * 2 * 2 * 2
    assert set(df["seed"]) == {3, 4}
    # product order: first grid path slowest, then policies, then seeds
    assert list(df[RATE]) == [2.0] * 8 + [5.0] * 8
    assert list(df["policy"][:4]) == ["hybrid", "hybrid", "orca", "orca"]
    for row in df.itertuples(index=False):
        point = {RATE: row[0], BUDGET: row[1]}
        expected = simulate(small.replace(point), policy=row.policy, seed=row.seed).summary()
        got = {k: getattr(row, k) for k in expected}
        assert got == pytest.approx(expected, rel=0, abs=0, nan_ok=True), (point, row.policy)
    # orca takes no token budget: its rows do not depend on it, hybrid's do
    orca = df[df["policy"] == "orca"]
    by_budget = [part.drop(columns=[BUDGET]).reset_index(drop=True)
                 for _, part in orca.groupby(BUDGET)]
    pd.testing.assert_frame_equal(by_budget[0], by_budget[1])
    hybrid = df[df["policy"] == "hybrid"]
    assert hybrid.groupby(BUDGET)["tbt_p95_s"].mean().nunique() == 2


def test_grid_parameter_foreign_to_the_configs_own_scheduler_is_ignored(small):
    """The config's scheduler is orca; a token-budget grid must not crash its runs, and runs
    that the ignored parameter makes identical are simulated once."""
    cfg = small.replace({"scheduler": {"name": "orca"}})
    calls = []
    df = sweep(cfg, {BUDGET: [256, 512]}, ["orca", "hybrid"], 2, progress=False,
               workers=1, on_run=calls.append)
    assert len(df) == 8
    assert sum(len(rows) for rows in calls) == 8
    assert len(calls) == 6  # orca: 2 seeds (shared by both budgets); hybrid: 2 x 2
    orca = df[df["policy"] == "orca"]
    expected = simulate(cfg, seed=0).summary()
    for budget in (256, 512):
        row = orca[(orca[BUDGET] == budget) & (orca["seed"] == 0)].iloc[0]
        assert {k: row[k] for k in expected} == pytest.approx(expected, rel=0, abs=0)


def test_bad_sweeps_fail_before_any_run(small, tmp_path):
    out = tmp_path / "x.csv"
    with pytest.raises(ConfigError, match="no scheduler of the sweep"):
        sweep(small, {"scheduler.token_budgett": [1, 2]}, ["hybrid"], 2, out=out,
              progress=False)
    with pytest.raises(ConfigError, match="token_budget"):
        sweep(small, {BUDGET: [0, 256]}, ["hybrid"], 2, out=out, progress=False)
    with pytest.raises(ConfigError, match="rate_per_s"):
        sweep(small, {RATE: [1.0, -1.0]}, ["hybrid"], 2, out=out, progress=False)
    with pytest.raises(ConfigError, match="did you mean"):
        sweep(small, {RATE: [1.0]}, ["hybird"], 2, out=out, progress=False)
    with pytest.raises(ConfigError, match="duplicate"):
        sweep(small, {RATE: [1.0, 1.0]}, ["hybrid"], 2, out=out, progress=False)
    with pytest.raises(ValueError, match="replications"):
        sweep(small, {RATE: [1.0]}, ["hybrid"], 0, out=out, progress=False)
    assert not out.exists()


def test_summarize_sweep_is_a_t_interval_per_point_and_policy(small):
    df = sweep(small, {RATE: [2.0, 4.0]}, ["hybrid", "orca"], 3, progress=False, workers=1)
    summary = summarize_sweep(df)
    assert list(summary.columns) == [RATE, "policy", "metric", "mean", "half_width", "low",
                                     "high", "n"]
    metrics = [c for c in df.columns if c not in (RATE, "policy", "seed")]
    assert len(summary) == 2 * 2 * len(metrics)
    for (rate, policy), part in df.groupby([RATE, "policy"]):
        row = summary[(summary[RATE] == rate) & (summary["policy"] == policy)
                      & (summary["metric"] == "ttft_p95_s")].iloc[0]
        est = t_interval(part["ttft_p95_s"], level=0.95)
        assert row["mean"] == pytest.approx(est.mean)
        assert row["half_width"] == pytest.approx(est.half_width)
        assert row["n"] == 3


def test_process_pool_matches_in_process_bit_for_bit(small):
    grid = {RATE: [3.0, 6.0]}
    local = sweep(small, grid, ["hybrid", "request_level"], 2, progress=False, workers=1)
    pooled = sweep(small, grid, ["hybrid", "request_level"], 2, progress=False, workers=2)
    pd.testing.assert_frame_equal(local, pooled, check_exact=True)


# ------------------------------------------------------------------------------ resuming


def _keys(rows) -> set[tuple]:
    return {(r[RATE], r[BUDGET], r["policy"], r["seed"]) for r in rows}


def test_interrupted_sweep_resumes_running_only_the_missing_runs(small, tmp_path):
    grid = {RATE: [2.0, 3.5, 5.0], BUDGET: [256, 512]}
    args = dict(policies=["hybrid", "orca"], replications=2, progress=False)
    full = sweep(small, grid, out=tmp_path / "full.csv", workers=2, **args)
    assert len(full) == 24

    # a sweep "interrupted" after half its runs: header + 12 rows + a line cut mid-write
    part = tmp_path / "part.csv"
    lines = (tmp_path / "full.csv").read_text().splitlines(keepends=True)
    assert len(lines) == 25 and all(line.endswith("\n") for line in lines)
    part.write_text("".join(lines[:13]) + lines[13][:40])
    shutil.copy(meta_path(tmp_path / "full.csv"), meta_path(part))  # the same sweep's
    kept = pd.read_csv(tmp_path / "full.csv").iloc[:12].to_dict("records")

    ran: list[dict] = []
    resumed = sweep(small, grid, out=part, workers=2, on_run=ran.extend, **args)
    missing = _keys(full.to_dict("records")) - _keys(kept)
    assert len(missing) == 12
    assert _keys(ran) == missing and len(ran) == 12  # exactly the missing runs, once each
    pd.testing.assert_frame_equal(resumed, full, check_exact=True)
    text = part.read_text()
    assert text.count("\n") == 25 and text.endswith("\n")
    assert text.count("workload.arrival") == 1  # one header

    # nothing left to do: no run, same table
    again: list[dict] = []
    pd.testing.assert_frame_equal(
        sweep(small, grid, out=part, workers=2, on_run=again.extend, **args), full,
        check_exact=True)
    assert again == []


def test_resume_matches_floats_robustly_and_keeps_other_rows(small, tmp_path):
    out = tmp_path / "s.csv"
    first = sweep(small, {RATE: [0.1 + 0.2]}, ["hybrid"], 2, out=out, progress=False,
                  workers=1)
    ran: list[dict] = []
    second = sweep(small, {RATE: [0.3]}, ["hybrid"], 2, out=out, progress=False, workers=1,
                   on_run=ran.extend)
    assert ran == []  # 0.30000000000000004 and 0.3 are one grid value
    pd.testing.assert_frame_equal(first, second)
    # a wider sweep into the same file adds only its new rows and returns only its own
    wider = sweep(small, {RATE: [0.3, 0.6]}, ["hybrid"], 3, out=out, progress=False,
                  workers=1, on_run=ran.extend)
    assert len(ran) == 4 and len(wider) == 6
    assert sorted(wider["seed"]) == [0, 0, 1, 1, 2, 2]


def test_csv_of_another_sweep_is_refused(small, tmp_path):
    out = tmp_path / "s.csv"
    sweep(small, {RATE: [1.0]}, ["hybrid"], 2, out=out, progress=False, workers=1)
    with pytest.raises(ValueError, match="another --out file"):
        sweep(small, {BUDGET: [128]}, ["hybrid"], 2, out=out, progress=False, workers=1)


# ------------------------------------------------------------------------------ Dask


def test_dask_cluster_gives_the_local_rows_bit_for_bit(small, tmp_path):
    distributed = pytest.importorskip("distributed")
    grid = {RATE: [2.0, 5.0], BUDGET: [256, 512]}
    local = sweep(small, grid, ["hybrid", "orca"], 2, out=tmp_path / "local.csv",
                  progress=False, workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        address = "dask://" + cluster.scheduler_address.split("://", 1)[1]
        remote = sweep(small, grid, ["hybrid", "orca"], 2, out=tmp_path / "dask.csv",
                       executor=address, progress=False)
        in_memory = sweep(small, grid, ["hybrid", "orca"], 2, executor=address,
                          progress=False)
    pd.testing.assert_frame_equal(local, remote, check_exact=True)
    from_memory = sweep(small, grid, ["hybrid", "orca"], 2, progress=False, workers=1)
    pd.testing.assert_frame_equal(in_memory, from_memory, check_exact=True)


def test_unknown_executor_is_an_error(small):
    with pytest.raises(ValueError, match="executor"):
        sweep(small, {RATE: [1.0]}, ["hybrid"], 2, executor="spark://x:1", progress=False)


def test_missing_dask_is_a_clear_error(small, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"\[dask\]"):
        sweep(small, {RATE: [1.0]}, ["hybrid"], 2, executor="dask://127.0.0.1:1",
              progress=False)


# ------------------------------------------------------------------------------ CLI


def test_cli_sweep_writes_csv_summary_plot_and_resumes(tmp_path, capsys):
    out, summary, plot = tmp_path / "d" / "s.csv", tmp_path / "sum.csv", tmp_path / "p.png"
    argv = ["sweep", "--config", "default", "--set", "num_requests=300",
            "--set", "warmup_requests=50", "--grid", f"{RATE}=2:4:1",
            "--grid", f"{BUDGET}=256,512", "--policies", "hybrid,orca", "--replications", "2",
            "--out", str(out), "--workers", "1", "--summary", str(summary),
            "--plot", str(plot), "--mkdir"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "24 runs: 24 new (18 simulations), 0 already in" in text
    df = pd.read_csv(out)
    assert len(df) == 24 and sorted(set(df[RATE])) == [2, 3, 4]
    assert set(pd.read_csv(summary)["metric"]) >= {"ttft_p95_s", "throughput_rps"}
    assert plot.stat().st_size > 0
    assert main(argv) == 0
    assert "24 runs: 0 new (0 simulations), 24 already in" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 24


def test_cli_sweep_errors(tmp_path, capsys):
    base = ["sweep", "--config", "default", "--out", str(tmp_path / "s.csv")]
    assert main([*base, "--grid", "rate"]) == 2
    assert "malformed grid" in capsys.readouterr().err
    assert main([*base, "--grid", f"{RATE}=1,2", "--grid", f"{RATE}=3"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main([*base, "--grid", f"{RATE}=1", "--executor", "nope"]) == 2
    assert "executor" in capsys.readouterr().err
    assert not Path(tmp_path / "s.csv").exists()


def test_nan_metrics_survive_the_csv(small, tmp_path):
    """One-token outputs leave no TBT gap: NaN metrics round-trip through the CSV."""
    cfg = small.replace({"workload.output_tokens": {"dist": "fixed", "value": 1}})
    df = sweep(cfg, {RATE: [2.0]}, ["hybrid"], 2, out=tmp_path / "n.csv", progress=False,
               workers=1)
    assert df["tbt_mean_s"].isna().all()
    assert np.isfinite(df["ttft_mean_s"]).all() and not math.isnan(df["e2e_p95_s"].iloc[0])
