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

from helpers import hand_view, make_config  # noqa: E402

import llm_serving_env as lse  # noqa: E402
from agents.actions import SloActionWrapper, make_env  # noqa: E402
from agents.evaluate import parse_policy  # noqa: E402
from agents.policy import FixedMode, ModelLoadError, TrainedModel  # noqa: E402
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
# A hand-built state for the six default modes (budget {deadline, 1024, 2048} x order {srpt,
# triage}). S(b) = 10 ms + 1 ms * b (helpers), K = 2048, SLO TTFT 2.1 s / TBT 100 ms,
# slo_aware's defaults (min budget 32, margin 5 ms, deterministic service). At now = 10 s:
# request 0 decodes (last token 0.5 ms ago: slack 99.5 ms); waiting in FCFS order:
# 1 (prompt 200, arrived at 5 s: waited 5 s > TTFT, doomed under triage), then 2 (40),
# 3 (900) and 4 (1500), arrived now.
MODE_STATE = dict(now_s=10.0, prompts=[10, 200, 40, 900, 1500],
                  arrivals=[0.0, 5.0, 10.0, 10.0, 10.0], waiting=[1, 2, 3, 4], decoding=[0],
                  last_token_s=10.0 - 0.0005)
MODE_CHUNKS = {
    # deadline: largest b with T(b) = 10 + b <= 99.5 - 5 ms -> b = 84; the decode takes 1,
    # 83 left. srpt: 2 (40), then 1 (200) cut to 43.
    0: {2: 40, 1: 43},
    # triage, p = 83, T(84) = 94 ms: 3 needs ceil(900/83) = 11 iterations = 1.034 s and 4
    # needs 19 = 1.786 s, both <= 2.1 s: viable; 1 (5 s waited) is doomed and goes last.
    1: {2: 40, 3: 43},
    # 1024: every decode, then 1023 prefill tokens: 40 + 200 + 900 cut to 783
    2: {2: 40, 1: 200, 3: 783},
    # triage, p = 1023, T(1024) = 1.034 s: 3 needs 1 iteration, 4 needs 2 (2.068 s <= 2.1):
    # viable; 1 doomed: 40 + 900 + 4 cut to 83
    3: {2: 40, 3: 900, 4: 83},
    # 2048: 2047 prefill tokens: 40 + 200 + 900 + 4 cut to 907
    4: {2: 40, 1: 200, 3: 900, 4: 907},
    # triage, T(2048) = 2.058 s <= 2.1: 2, 3 and 4 viable, 1 doomed: 40 + 900 + 1107
    5: {2: 40, 3: 900, 4: 1107},
}


@pytest.mark.parametrize("mode", sorted(MODE_CHUNKS))
def test_each_mode_composes_the_batch_its_rule_gives_on_a_hand_built_state(mode):
    cfg = make_config(slo={"ttft_ms": 2100, "tbt_ms": 100})
    env = SloActionWrapper(lse.LLMServingEnv(cfg, reward="goodput"))
    assert env.action_space.n == 6
    view = hand_view(cfg, **MODE_STATE)
    batch = env.compose(view, *env.decode(mode))
    assert batch.decode_ids.tolist() == [0]
    got = dict(zip(batch.prefill_ids.tolist(), batch.prefill_tokens.tolist(), strict=True))
    assert got == MODE_CHUNKS[mode]
    if mode == 0:  # documented: mode 0 is slo_aware's own decision
        ref = lse.make_scheduler(cfg, "slo_aware").schedule(view)
        assert dict(zip(ref.prefill_ids.tolist(), ref.prefill_tokens.tolist(),
                        strict=True)) == got


def test_evaluation_statistics_by_hand():
    """tabulate() on three hand-made seeds. t_{0.975, 2} = 4.302653 (Student-t table).
    Goodput per seed: hybrid 2, 4, 6; slo_aware 3, 5, 10 (best baseline: mean 6 > 4);
    mode:1 6, 5, 11."""
    from agents.evaluate import tabulate

    t2 = 4.302652729911275
    good = {"hybrid": [2.0, 4.0, 6.0], "slo_aware": [3.0, 5.0, 10.0], "mode:1": [6.0, 5.0, 11.0]}
    slo = {"hybrid": [0.5, 0.6, 0.7], "slo_aware": [0.9, 0.9, 0.9], "mode:1": [1.0, 0.8, 0.9]}
    runs = pd.DataFrame([{"policy": p, "seed": 10_000 + i, "goodput_rps": good[p][i],
                          "slo_attainment": slo[p][i]} for p in good for i in range(3)])
    ev = tabulate(runs, [parse_policy(p) for p in good], range(10_000, 10_003))
    rows = ev.table.set_index("policy")
    assert ev.best_baseline == "slo_aware" and (rows["best_baseline"] == "slo_aware").all()
    # hybrid: mean 4, s = 2 -> half-width 4.302653 * 2 / sqrt(3) = 4.968276
    assert rows.loc["hybrid", "goodput_rps_mean"] == pytest.approx(4.0)
    assert rows.loc["hybrid", "goodput_rps_ci95"] == pytest.approx(t2 * 2 / np.sqrt(3))
    # mode:1 - slo_aware per seed: 3, 0, 1: mean 4/3, s = sqrt(7/3)
    assert rows.loc["mode:1", "goodput_diff_mean"] == pytest.approx(4 / 3)
    assert rows.loc["mode:1", "goodput_diff_ci95"] == pytest.approx(
        t2 * np.sqrt(7 / 3) / np.sqrt(3))
    # ratios 2, 1, 1.1: mean 4.1 / 3, s = sqrt(((2 - m)^2 + (1 - m)^2 + (1.1 - m)^2) / 2)
    m = 4.1 / 3
    s = np.sqrt(((2 - m) ** 2 + (1 - m) ** 2 + (1.1 - m) ** 2) / 2)
    assert rows.loc["mode:1", "goodput_ratio_mean"] == pytest.approx(m)
    assert rows.loc["mode:1", "goodput_ratio_ci95"] == pytest.approx(t2 * s / np.sqrt(3))
    # hybrid - slo_aware: -1, -1, -4 (mean -2, s = sqrt(3)); attainment: -0.4, -0.3, -0.2
    assert rows.loc["hybrid", "goodput_diff_mean"] == pytest.approx(-2.0)
    assert rows.loc["hybrid", "goodput_diff_ci95"] == pytest.approx(t2)
    assert rows.loc["hybrid", "slo_attainment_diff_mean"] == pytest.approx(-0.3)
    assert rows.loc["hybrid", "slo_attainment_diff_ci95"] == pytest.approx(
        t2 * 0.1 / np.sqrt(3))


def test_mode_0_is_slo_aware_bit_for_bit():
    cfg = bursty(600)
    ref = lse.simulate(cfg, "slo_aware", seed=3)
    got = FixedMode(0).run(cfg, seed=3)
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
        # the goodput reward's episode sum counts the SLO-meeting measured requests
        assert total == int(res.slo_met()[res.measured].sum())
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
LEARN_BUDGETS, LEARN_ORDERS = [64, 16], ["srpt", "fcfs"]
LEARN_SEEDS = (10_000, 10_001)


def learning_config() -> lse.SimConfig:
    """Prefill-only (B = 1) traffic, S(b) = 20 ms + 1 ms * max(0, b - 64), 85 requests/s of
    prompts 8 (80%) or 120 (20%) tokens (mean 30.4)."""
    return make_config(**{
        "num_requests": 300, "warmup_requests": 0,
        "workload.arrival.rate_per_s": 85.0,
        "workload.prompt_tokens": {"dist": "mixture", "components": [
            {"weight": 0.8, "dist": "fixed", "value": 8},
            {"weight": 0.2, "dist": "fixed", "value": 120}]},
        "workload.output_tokens": {"dist": "fixed", "value": 1},
        "service": {"model": "piecewise_linear", "c_ms": 20.0, "a_ms": 1.0, "b0_tokens": 64,
                    "noise": "deterministic"},
        "slo": {"ttft_ms": 1000, "tbt_ms": 100}})


def episode_return(env, act, seed: int) -> float:
    obs, _ = env.reset(seed=seed)
    total = 0.0
    while True:
        obs, reward, terminated, _, _ = env.step(act(obs, env))
        total += reward
        if terminated:
            return total


def test_ppo_learns_the_best_mode_within_a_bounded_budget(tmp_path):
    """Four modes, budget {64, 16} x order {srpt, fcfs}, latency reward (its episode sum is
    minus the total sojourn time). Why mode 0 (64, srpt) is the best fixed mode:

    * budget: S(b) = 20 ms for every b <= 64, so a 16-token iteration costs as much as a
      64-token one. Capacity 64 / (30.4 * 0.020) = 105 req/s with budget 64 but only
      16 / (30.4 * 0.020) = 26 req/s with 16: at 85 req/s the 16-token modes are unstable;
    * order: with one budget, every iteration takes min(budget, waiting work) tokens under
      either order, so both run the same iterations at the same times, and shortest-first
      completes at least as many requests by each iteration end (Schrage's SRPT argument, up
      to slo_aware finishing a started prefill first).

    The test does not rely on the argument alone: it runs every fixed mode on the held-out
    seeds and requires mode 0 to be the best there. PPO (20k steps, fixed seed, about 15 s)
    must then be nearer the best mode than the second best (margin: half their gap) and
    strictly better than the worst (16, fcfs) on every held-out seed. One PPO update
    (512 steps) fails this test: it picks the worst mode."""
    from agents.train import train

    cfg = learning_config()
    spec = {"reward": "latency", "action_space": "slo", "budgets": LEARN_BUDGETS,
            "orders": LEARN_ORDERS}
    env = make_env(cfg, spec)
    fixed = {seed: [episode_return(env, lambda o, e, k=k: k, seed)
                    for k in range(env.action_space.n)] for seed in LEARN_SEEDS}
    for seed, returns in fixed.items():
        assert int(np.argmax(returns)) == 0, (seed, returns)
        assert int(np.argmin(returns)) == 3, (seed, returns)
    out = tmp_path / "learn.zip"
    side = train(cfg, out, timesteps=20_000, seed=0, episode_requests=None, reward="latency",
                 budgets=LEARN_BUDGETS, orders=LEARN_ORDERS, n_envs=2,
                 hyper={"n_steps": 256, "batch_size": 128, "n_epochs": 5,
                        "learning_rate": 1e-3, "ent_coef": 0.0}, progress=False)
    assert side["timesteps"] >= 20_000 and side["train_seed_range"] == [0, 10_000]
    agent = TrainedModel(out)
    learned = agent.make_env(cfg)
    for seed, returns in fixed.items():
        best, second = sorted(returns, reverse=True)[:2]
        got = episode_return(learned, agent.act, seed)
        assert got >= best - (best - second) / 2, (seed, got, returns)
        assert got > min(returns), (seed, got, returns)


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
    agent = TrainedModel(SHIPPED)
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
    # the best baseline is the hand-written one with the highest mean goodput, and every
    # paired difference's mean is the difference of the two means
    rows = table.set_index("policy")
    best = rows.loc[["hybrid", "slo_aware", "orca"], "goodput_rps_mean"].idxmax()
    assert (table["best_baseline"] == best).all()
    np.testing.assert_allclose(rows["goodput_diff_mean"],
                               rows["goodput_rps_mean"] - rows.loc[best, "goodput_rps_mean"],
                               atol=1e-12)


def test_learned_runs_see_the_same_requests_as_baselines():
    """Common random numbers: the env run and simulate() draw the same workload per seed."""
    cfg = bursty(300)
    a = TrainedModel(SHIPPED).run(cfg, seed=10_005)
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
        TrainedModel(lonely)


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


# ---------------------------------------------------------------------- plain schedulers
def same_result(a, b) -> None:
    for name in ("arrival_s", "first_scheduled_s", "first_token_s", "finish_s", "max_tbt_s",
                 "gpu", "preemptions", "tbt_gaps_s"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for col, values in a.batch_columns.items():
        np.testing.assert_array_equal(values, b.batch_columns[col], err_msg=col)


@pytest.mark.parametrize("spec", [f"ppo:{SHIPPED}", "mode:1", "mode:4"])
def test_a_learned_policy_runs_as_a_plain_scheduler_bit_for_bit(spec):
    """simulate(cfg, "ppo:PATH") builds the env's observation from each DecisionView and the
    mode's batch from it: the same RunResult as the model acting through its env."""
    cfg = lse.load_config("bursty_chat").replace({"num_requests": 2500, "warmup_requests": 250})
    plain = lse.simulate(cfg, spec, seed=10_003)
    kind, target = spec.split(":", 1)
    through_env = (TrainedModel(target) if kind == "ppo" else FixedMode(int(target))).run(
        cfg, seed=10_003)
    same_result(plain, through_env)
    assert plain.policy_name == spec


def test_learned_policies_work_wherever_a_scheduler_name_does():
    from llm_serving_env.analysis.comparison import compare_policies

    cfg = lse.load_config("bursty_chat").replace({"num_requests": 800, "warmup_requests": 100})
    table = compare_policies(cfg, ["slo_aware", "mode:0", f"ppo:{SHIPPED}"], num_seeds=2,
                             progress=False)
    means = table.pivot_table(index="policy", columns="metric", values="mean")
    # mode 0 is slo_aware exactly (the module docstring's claim), seed by seed
    assert means.loc["mode:0", "slo_attainment"] == means.loc["slo_aware", "slo_attainment"]


@pytest.mark.parametrize(("spec", "message"), [
    ("ppo:/no/such/model.zip", "not found"),
    ("crystal:ball", "unknown policy prefix 'crystal'"),
    ("mode:99", "the mode must be an integer in 0..5"),
    ("mode:x", "the mode must be an integer"),
])
def test_bad_policy_specs_are_config_errors(spec, message):
    cfg = lse.load_config("bursty_chat")
    with pytest.raises(lse.ConfigError, match=message):
        lse.make_scheduler(cfg, spec)


def test_evaluate_reports_the_upper_bound_and_each_policys_share_of_the_gap():
    from agents.evaluate import evaluate, format_table

    cfg = lse.load_config("bursty_chat").replace({"num_requests": 1500, "warmup_requests": 150})
    ev = evaluate(cfg, ["slo_aware", "hybrid", "mode:1"], num_seeds=3, progress=False,
                  workers=1)
    assert ev.bounds is not None and ev.bounds.shape == (3,)
    runs = ev.runs
    for seed, bound in zip(ev.seeds, ev.bounds, strict=True):
        # the bound is at or above every policy's attainment on the same seed
        assert (runs.loc[runs["seed"] == seed, "slo_attainment"] <= bound + 1e-12).all()
    # the share of the gap, by hand from the runs: (policy - best) / (bound - best), averaged
    best = ev.best_baseline
    att = runs.pivot(index="seed", columns="policy", values="slo_attainment")
    share = ((att["mode:1"] - att[best]) / (ev.bounds - att[best])).mean()
    row = ev.table.set_index("policy")
    assert row.loc["mode:1", "gap_closed_mean"] == pytest.approx(share, rel=1e-12)
    assert row.loc[best, "gap_closed_mean"] == 0.0
    assert "upper bound on SLO attainment" in format_table(ev)


def test_evaluate_says_why_there_is_no_bound_with_noisy_service():
    from agents.evaluate import evaluate, format_table

    cfg = lse.load_config("bursty_chat").replace({
        "num_requests": 300, "warmup_requests": 30, "service.noise": "exponential"})
    ev = evaluate(cfg, ["slo_aware", "hybrid"], num_seeds=2, progress=False, workers=1)
    assert ev.bounds is None and "service noise" in format_table(ev)


def test_triage_is_a_registered_baseline_equal_to_mode_1():
    """The strongest hand-written rule on bursty loads is a plain registered scheduler; the
    learned policy's mode 1 ("deadline" budget, triage order) is exactly it."""
    cfg = lse.load_config("bursty_chat").replace({"num_requests": 1500, "warmup_requests": 150})
    assert "slo_triage" in lse.available_schedulers()
    same_result(lse.simulate(cfg, "slo_triage", seed=10_007),
                lse.simulate(cfg, "mode:1", seed=10_007))
