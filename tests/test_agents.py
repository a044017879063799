"""The learned scheduler (agents/): the action wrapper, training smoke test, the shipped model,
evaluation on held-out seeds, clear loading errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

import llm_serving_env as lse  # noqa: E402
from agents.actions import SloActionWrapper, make_env  # noqa: E402
from agents.evaluate import parse_policy  # noqa: E402
from agents.policy import LearnedScheduler, ModelLoadError, ModeScheduler  # noqa: E402
from llm_serving_env.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "configs" / "benchmarks"
SHIPPED = ROOT / "agents" / "zoo" / "ppo_slo_bursty_chat.zip"
SHORT = ["--set", "num_requests=1200", "--set", "warmup_requests=200"]


def bursty(num_requests: int = 800, **changes) -> lse.SimConfig:
    return lse.load_config(BENCH / "bursty_chat.yaml").replace(
        {"num_requests": num_requests, "warmup_requests": num_requests // 10, **changes})


# ---------------------------------------------------------------------- scenarios
@pytest.mark.parametrize("name", ["bursty_chat", "bursty_interactive", "heavy_tail"])
def test_benchmark_scenarios_sit_at_70_to_90_percent_of_hybrid_capacity(name):
    from llm_serving_env.analysis.stability import work_conserving_capacity

    cfg = lse.load_config(BENCH / f"{name}.yaml")
    assert cfg.slo is not None
    assert cfg.scheduler.name == "hybrid"
    budget = cfg.scheduler.params["token_budget"]
    hybrid = work_conserving_capacity(cfg.replace({"gpus.max_batch_tokens": budget}))
    assert 0.70 <= cfg.workload.arrival.rate_per_s / hybrid <= 0.90


# ---------------------------------------------------------------------- the action wrapper
def test_mode_0_is_slo_aware_bit_for_bit():
    cfg = bursty(600)
    ref = lse.simulate(cfg, "slo_aware", seed=3)
    got = ModeScheduler(0).run(cfg, seed=3)
    pd.testing.assert_frame_equal(got.requests, ref.requests)
    assert got.summary() == ref.summary()


@pytest.mark.parametrize("kv", [None, 6000])
def test_every_mode_completes_every_request(kv):
    cfg = bursty(300, **{"gpus.kv_capacity_tokens": kv})
    env = make_env(cfg, {"reward": "goodput", "action_space": "slo",
                         "orders": ["srpt", "triage", "fcfs"]})
    assert isinstance(env, SloActionWrapper)
    rng = np.random.default_rng(0)
    for mode in [*range(env.action_space.n), "random"]:
        obs, _ = env.reset(seed=11)
        total, terminated, info = 0.0, False, {}
        while not terminated:
            a = int(rng.integers(env.action_space.n)) if mode == "random" else mode
            obs, reward, terminated, truncated, info = env.step(a)
            assert not truncated and env.observation_space.contains(obs)
            total += reward
        res = env.unwrapped.result()
        assert np.all(res.output_tokens > 0)
        assert int(np.isfinite(res.finish_s).sum()) == cfg.num_requests
        # the goodput reward's episode sum counts the SLO-meeting requests
        assert total == int(res.slo_met().sum())
        assert info["budget"] in env.budgets and info["order"] in env.orders


def test_wrapper_rejects_bad_parameters():
    base = lse.LLMServingEnv(bursty(100), reward="goodput")
    with pytest.raises(ValueError, match="deadline"):
        SloActionWrapper(base, budgets=("deadline", 99999))
    with pytest.raises(ValueError, match="orders"):
        SloActionWrapper(base, orders=("lifo",))
    with pytest.raises(lse.ConfigError, match="slo"):
        SloActionWrapper(lse.LLMServingEnv(bursty(100).replace({"slo": None})))


# ---------------------------------------------------------------------- training
def test_train_20000_steps_smoke(tmp_path, capsys):
    out = tmp_path / "zoo" / "smoke.zip"
    code = main(["train", "--config", str(BENCH / "bursty_chat.yaml"), "--algo", "ppo",
                 "--timesteps", "20000", "--seed", "1", "--episode-requests", "500",
                 "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    side = json.loads((tmp_path / "zoo" / "smoke.json").read_text())
    assert side["timesteps"] >= 20000 and side["seed"] == 1 and side["algo"] == "ppo"
    assert side["command"].startswith("llm-serving train")
    assert {"torch", "stable_baselines3", "sb3_contrib"} <= set(side["libraries"])
    assert side["train_seed_range"] == [0, 10_000]
    curve = pd.read_csv(tmp_path / "zoo" / "smoke.curve.csv")
    assert len(curve) >= 5 and curve["timesteps"].is_monotonic_increasing
    assert curve["slo_attainment"].between(0, 1).all()
    agent = LearnedScheduler(out)
    res = agent.run(bursty(200), seed=10_000)
    assert int(np.isfinite(res.finish_s).sum()) == 200


def test_maskable_ppo_on_the_native_action_trains(tmp_path):
    out = tmp_path / "mask.zip"
    code = main(["train", "--config", str(BENCH / "bursty_chat.yaml"), "--algo",
                 "maskable_ppo", "--action-space", "native", "--timesteps", "512",
                 "--n-envs", "1", "--episode-requests", "100", "--out", str(out),
                 "--hyper", "n_steps=256", "--hyper", "batch_size=64", "--no-progress"])
    assert code == 0
    agent = LearnedScheduler(out)
    assert agent.algo == "maskable_ppo"
    env = agent.make_env(bursty(100))
    obs, _ = env.reset(seed=10_000)
    action = agent.act(obs, env)
    assert env.action_space.contains(action)


def test_train_rejects_bad_output_name(tmp_path, capsys):
    code = main(["train", "--config", str(BENCH / "bursty_chat.yaml"), "--timesteps", "10",
                 "--out", str(tmp_path / "model.pt"), "--no-progress"])
    assert code == 2 and ".zip" in capsys.readouterr().err


# ---------------------------------------------------------------------- the shipped model
def test_shipped_model_is_small_and_documented():
    assert SHIPPED.stat().st_size < 5_000_000
    side = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert side["command"].startswith("llm-serving train")
    assert side["config"] == "configs/benchmarks/bursty_chat.yaml"
    curve = pd.read_csv(SHIPPED.with_name("ppo_slo_bursty_chat.curve.csv"))
    assert curve["timesteps"].iloc[-1] <= side["timesteps"]


def test_numpy_policy_equals_sb3_predict():
    agent = LearnedScheduler(SHIPPED)
    env = agent.make_env(bursty(300))
    obs, _ = env.reset(seed=10_001)
    for _ in range(300):
        want, _ = agent.model.predict(obs, deterministic=True)
        got = agent.act(obs, env)
        assert got == int(want)
        obs, _, terminated, _, _ = env.step(got)
        if terminated:
            break


def test_evaluate_shipped_model_against_baselines(tmp_path, capsys):
    csv = tmp_path / "eval.csv"
    code = main(["evaluate", "--config", str(BENCH / "bursty_chat.yaml"), *SHORT,
                 "--policies", f"hybrid,slo_aware,orca,ppo:{SHIPPED}", "--seeds", "2",
                 "--workers", "1", "--out", str(csv), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "10000..10001" in out and "best baseline" in out and "goodput ratio" in out
    table = pd.read_csv(csv)
    assert list(table["policy"]) == ["hybrid", "slo_aware", "orca", f"ppo:{SHIPPED}"]
    assert (table["n"] == 2).all()
    assert {"goodput_rps_mean", "goodput_rps_ci95", "slo_attainment_mean",
            "goodput_ratio_mean", "goodput_ratio_ci95", "goodput_diff_mean",
            "best_baseline"} <= set(table.columns)
    best = table["best_baseline"].iloc[0]
    assert best in {"hybrid", "slo_aware", "orca"}
    row = table.set_index("policy").loc[best]
    assert row["goodput_ratio_mean"] == 1.0 and row["goodput_diff_mean"] == 0.0


def test_learned_runs_see_the_same_requests_as_baselines():
    """Common random numbers: the env run and simulate() draw the same workload per seed."""
    cfg = bursty(300)
    a = LearnedScheduler(SHIPPED).run(cfg, seed=10_005)
    b = lse.simulate(cfg, "hybrid", seed=10_005)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)


# ---------------------------------------------------------------------- errors
def test_missing_model_is_a_clear_error(tmp_path, capsys):
    code = main(["evaluate", "--config", str(BENCH / "bursty_chat.yaml"), *SHORT,
                 "--policies", "hybrid,ppo:agents/zoo/no_such_model.zip", "--seeds", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no_such_model.zip" in err and "not found" in err


def test_model_without_sidecar_is_a_clear_error(tmp_path):
    lonely = tmp_path / "lonely.zip"
    lonely.write_bytes(SHIPPED.read_bytes())
    with pytest.raises(ModelLoadError, match="sidecar"):
        LearnedScheduler(lonely)


def test_training_seeds_are_refused_for_evaluation(capsys):
    code = main(["evaluate", "--config", str(BENCH / "bursty_chat.yaml"), *SHORT,
                 "--policies", f"slo_aware,ppo:{SHIPPED}", "--seeds", "2",
                 "--first-seed", "0"])
    assert code == 2 and "overlap" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["ppo:", "mode:x", "dqn:a.zip"])
def test_bad_policy_specs(text):
    with pytest.raises(ValueError):
        parse_policy(text)


def test_the_package_imports_no_torch():
    code = ("import sys, llm_serving_env, llm_serving_env.cli, llm_serving_env.env; "
            "assert 'torch' not in sys.modules and 'stable_baselines3' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
