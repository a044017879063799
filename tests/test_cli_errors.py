"""The command line on user mistakes: one line on stderr naming the flag, the value and what is
allowed, exit code 2, before any run; and the checks that come with it (output paths,
duplicate YAML keys, policies a config cannot run, stale sweep CSVs, warnings)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

import llm_serving_env.cli as cli
from llm_serving_env.cli import main
from llm_serving_env.config.files import load_config, parse_override
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.simulate import ThrashingWarning, simulate

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "num_requests=300", "--set", "warmup_requests=50"]


@pytest.fixture
def no_runs(monkeypatch):
    """Fail the test if any simulation starts (errors must come before every run)."""
    def boom(*args, **kwargs):
        raise AssertionError("a run started before the error was reported")

    monkeypatch.setattr(cli, "simulate", boom)
    monkeypatch.setattr("llm_serving_env.analysis.comparison.simulate", boom)
    monkeypatch.setattr("llm_serving_env.analysis.sweep.simulate", boom)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["simulate", "--config", "default", "--seed", "-1"], ["--seed", "-1", ">= 0"]),
        (["compare", "--config", "default", "--seeds", "1"], ["--seeds", "1", ">= 2"]),
        (["compare", "--config", "default", "--first-seed", "-3"], ["--first-seed", "-3"]),
        (["compare", "--config", "default", "--policies", ""], ["--policies", "empty list"]),
        (["compare", "--config", "default", "--policies", " , "], ["--policies", "empty"]),
        (["compare", "--config", "default", "--policies", "hybrid,hybrid"],
         ["hybrid", "listed twice"]),
        (["compare", "--config", "default", "--policies", "hybird"],
         ["--policies hybird", "did you mean 'hybrid'"]),
        (["compare", "--config", "default", "--workers", "0"], ["--workers", "0", ">= 1"]),
        (["stability", "--config", "default", "--loads", ""], ["--loads", "empty list"]),
        (["stability", "--config", "default", "--loads", "0.5,abc"], ["--loads", "'abc'"]),
        (["stability", "--config", "default", "--loads", "0.5,-1"], ["--loads", "> 0"]),
        (["capacity", "--config", "default", "--target", "1.5"], ["--target", "1.5", "< 1"]),
        (["capacity", "--config", "default", "--replications", "1"], ["--replications"]),
        (["capacity", "--config", "default", "--low", "5", "--high", "2"], ["--low", "below"]),
        (["sweep", "--config", "default", "--out", "x.csv", "--replications", "0"],
         ["--replications", ">= 1"]),
        (["sweep", "--config", "default", "--out", "x.csv", "--executor", "spark://h:1"],
         ["--executor", "spark://h:1", "dask://HOST:PORT"]),
        (["sweep", "--config", "default", "--out", "x.csv", "--plot", "p.png"],
         ["--plot needs a --grid"]),
        (["evaluate", "--config", "default", "--policies", "", "--seeds", "2"],
         ["--policies", "empty"]),
        (["evaluate", "--config", "default", "--policies", "hybrid", "--seeds", "1"],
         ["--seeds", ">= 2"]),
        (["evaluate", "--config", "default", "--policies", "ppo:no/such.zip"],
         ["no/such.zip", "not found"]),
        (["simulate", "--config", "default", "--set", "gpus.count=abc"], ["gpus.count"]),
        (["report", "--only", ""], ["--only", "empty"]),
        (["train", "--config", "default", "--out", "m.txt"], ["--out", "'.txt'", ".zip"]),
        (["train", "--config", "default", "--out", "m.zip", "--hyper", "lr"],
         ["--hyper", "KEY=VALUE"]),
        (["train", "--config", "default", "--out", "m.zip", "--timesteps", "0"],
         ["--timesteps", ">= 1"]),
        (["train", "--config", "default", "--out", "m.zip", "--bc-expert", "hybrid"],
         ["--bc-expert", "--action-space compose"]),
        (["train", "--config", "default", "--out", "m.zip", "--bc-expert", "hybird",
          "--algo", "maskable_ppo", "--action-space", "compose"],
         ["hybird", "did you mean 'hybrid'"]),
        (["train", "--config", "default", "--out", "m.zip", "--dagger-rounds", "2"],
         ["--dagger-rounds", "--bc-expert"]),
    ],
)
def test_mistakes_are_one_line_and_exit_2_before_any_run(argv, expected, capsys, no_runs,
                                                         tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    line = one_error_line(capsys)
    assert "error" in line
    for text in expected:
        assert text in line, line
    assert not (tmp_path / "x.csv").exists()


def run(argv: list[str]) -> int | str | None:
    """``main``'s exit code, also when argparse rejects a flag (SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    for command in ("simulate", "compare", "sweep", "evaluate"):
        assert f"llm-serving {command} --config" in out
    assert "--mkdir" in out


# ------------------------------------------------------------------------------ output paths


def test_output_through_a_file_fails_before_any_run(tmp_path, capsys, no_runs):
    afile = tmp_path / "FILE"
    afile.write_text("not a folder")
    code = main(["compare", "--config", "default", *SMALL, "--seeds", "2",
                 "--out", str(afile / "x.csv")])
    assert code == 2
    line = one_error_line(capsys)
    assert "--out" in line and str(afile) in line and "is a file, not a folder" in line


def test_missing_folder_is_an_error_unless_mkdir(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "x.json"
    assert main(["simulate", "--config", "default", *SMALL, "--json", str(out)]) == 2
    line = one_error_line(capsys)
    assert "--json" in line and "does not exist" in line and "--mkdir" in line
    assert not (tmp_path / "no").exists()
    assert main(["simulate", "--config", "default", *SMALL, "--json", str(out),
                 "--mkdir"]) == 0
    assert json.loads(out.read_text())["num_completed"] == 250


def test_output_that_is_a_folder_or_has_a_bad_suffix(tmp_path, capsys, no_runs):
    assert main(["compare", "--config", "default", "--out", str(tmp_path)]) == 2
    assert "is a folder" in one_error_line(capsys)
    assert main(["compare", "--config", "default", "--plot", str(tmp_path / "p.xyz")]) == 2
    line = one_error_line(capsys)
    assert "--plot" in line and ".xyz" in line and ".png" in line


# ------------------------------------------------------------------------------ YAML


def test_duplicate_yaml_keys_are_errors_naming_key_and_line(tmp_path, capsys):
    top = tmp_path / "top.yaml"
    top.write_text("num_requests: 300\nwarmup_requests: 50\nnum_requests: 400\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'num_requests' \(line 3; first at "
                                          r"line 1\)"):
        load_config(top)
    nested = tmp_path / "nested.yaml"
    nested.write_text("num_requests: 300\nworkload:\n  arrival: {process: poisson, "
                      "rate_per_s: 3, rate_per_s: 4}\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'rate_per_s' \(line 3"):
        load_config(nested)
    with pytest.raises(ConfigError, match="duplicate key 'value'"):
        parse_override("workload.output_tokens={dist: fixed, value: 3, value: 4}")
    assert main(["simulate", "--config", str(top)]) == 2
    line = one_error_line(capsys)
    assert str(top) in line and "num_requests" in line and "line 3" in line


# ------------------------------------------------------------------------------ policies


@pytest.mark.parametrize("config", ["li_chat", "mm1"])
def test_compare_all_on_shipped_configs_skips_what_cannot_run(config, tmp_path, capsys):
    out = tmp_path / "c.csv"
    code = main(["compare", "--config", str(ROOT / "configs" / f"{config}.yaml"), *SMALL,
                 "--policies", "all", "--seeds", "2", "--workers", "1", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if "skipping" in line]
    assert any("slo_aware" in line and "needs an SLO" in line for line in skipped)
    if config == "mm1":
        assert any("hybrid" in line and "max_batch_tokens" in line for line in skipped)
    table = pd.read_csv(out)
    ran = set(table["policy"])
    assert "slo_aware" not in ran and {"request_level", "orca"} <= ran
    assert not {s.split()[2].rstrip(":") for s in skipped} & ran
    # no SLO: no attainment is invented
    assert "slo_attainment" not in set(table["metric"]) or \
        table.loc[table["metric"] == "slo_attainment", "mean"].isna().all()
    assert "blank (the config has no SLO)" in captured.out


def test_all_skips_whole_prompt_schedulers_the_longest_prompt_rules_out(capsys):
    """long_context's prompts reach 65,536 tokens, beyond gpus.max_batch_tokens (2,048): the
    schedulers that prefill whole prompts are skipped before any run (they used to fail mid
    evaluation), the chunking ones run."""
    from llm_serving_env.analysis.comparison import runnable_policies
    from llm_serving_env.sim.scheduler import canonical_schedulers

    cfg = load_config(ROOT / "configs" / "benchmarks" / "long_context.yaml")
    assert cfg.workload.prompt_tokens.max_value() > cfg.gpus.max_batch_tokens
    ok, skipped = runnable_policies(cfg, canonical_schedulers())
    whole = {"request_level", "fixed_batch", "dynamic_batch", "orca", "prefill_first"}
    assert {name for name, _ in skipped} == whole
    assert all("prefills whole prompts" in reason for _, reason in skipped)
    assert {"hybrid", "slo_aware", "slo_triage", "slo_classes"} <= set(ok)


def test_a_named_policy_the_config_cannot_run_is_an_error(capsys, no_runs):
    assert main(["compare", "--config", "mm1", *SMALL, "--policies", "request_level,hybrid",
                 "--seeds", "2"]) == 2
    line = one_error_line(capsys)
    assert "--policies hybrid" in line and "max_batch_tokens" in line


# ------------------------------------------------------------------------------ sweep CSV


def test_sweep_refuses_to_resume_after_the_config_changed(tmp_path, capsys):
    out = tmp_path / "s.csv"
    argv = ["sweep", "--config", "default", "--set", "warmup_requests=20",
            "--grid", "workload.arrival.rate_per_s=2,3", "--policies", "hybrid",
            "--replications", "2", "--workers", "1", "--out", str(out)]
    assert main([*argv, "--set", "num_requests=120"]) == 0
    meta = json.loads((tmp_path / "s.csv.meta.json").read_text())
    assert len(meta["fingerprint"]) == 64
    before = out.read_text()
    capsys.readouterr()
    assert main([*argv, "--set", "num_requests=150"]) == 2
    line = one_error_line(capsys)
    assert "num_requests" in line and "start fresh" in line and str(out) in line
    assert out.read_text() == before
    # the grid sets the rate: changing the base rate is the same sweep
    assert main([*argv, "--set", "num_requests=120",
                 "--set", "workload.arrival.rate_per_s=9"]) == 0
    assert "0 new (0 simulations), 4 already in" in capsys.readouterr().out


# ------------------------------------------------------------------------------ warnings


def test_thrashing_warns_once_with_counts(capsys):
    cfg = load_config("default").replace({
        "num_requests": 300, "warmup_requests": 50, "gpus.kv_capacity_tokens": 1600,
        "workload.output_tokens": {"dist": "fixed", "value": 32}})
    with pytest.warns(ThrashingWarning) as record:
        result = simulate(cfg, policy="hybrid", seed=0)
    assert len(record) == 1
    preemptions = int(result.preemptions.sum())
    assert preemptions > 300
    text = str(record[0].message)
    assert f"{preemptions} preemptions for 300 requests" in text
    assert "kv_capacity_tokens" in text and "lower the load" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error", ThrashingWarning)
        simulate(cfg.replace({"gpus.kv_capacity_tokens": 16384}), policy="hybrid", seed=0)


def test_simulate_progress_bar_only_when_asked(capsys):
    assert main(["simulate", "--config", "default", *SMALL, "--progress"]) == 0
    assert "300/300" in capsys.readouterr().err
    assert main(["simulate", "--config", "default", *SMALL]) == 0  # stderr is not a TTY
    assert capsys.readouterr().err == ""
    assert main(["simulate", "--config", "default", *SMALL, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------ evaluate


MODEL = "ppo:agents/zoo/ppo_slo_bursty_chat.zip"


@pytest.mark.parametrize(("config", "warned"), [("heavy_tail", True), ("bursty_chat", False)])
def test_evaluate_warns_on_a_config_the_model_was_not_trained_on(config, warned, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(["evaluate", "--config", config, "--set", "num_requests=120",
                 "--set", "warmup_requests=20", "--policies", f"hybrid,{MODEL}",
                 "--seeds", "2", "--workers", "1"])
    assert code == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning" in line]
    if warned:
        assert len(lines) == 1, err
        assert "trained on configs/benchmarks/bursty_chat.yaml" in lines[0]
        assert "workload.arrival" in lines[0]
    else:
        assert lines == [], err
