"""The Gymnasium environment LLMServing-v0: checkers, vector envs, baseline equivalence, reward
identities, masks and repair, seeding and truncation, compact wrappers."""

from __future__ import annotations

import functools
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from helpers import ENV_CONFIGS as CONFIGS
from helpers import ENV_SMALL as SMALL
from helpers import assert_same_result, make_config

import llm_serving_env as lse
from llm_serving_env.env import (
    ENV_ID,
    CompactActionWrapper,
    CompactMultiDiscreteWrapper,
    LLMServingEnv,
)
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait


def masked_sample(env: LLMServingEnv, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random action among those the masks allow, per dimension."""
    mask = env.action_masks()
    out, i = [], 0
    for k in env.action_space.nvec:
        out.append(rng.choice(np.flatnonzero(mask[i: i + k])))
        i += k
    return np.asarray(out, dtype=np.int64)


def run_episode(env: gym.Env, act, seed: int) -> tuple[float, list[dict], int]:
    """Run one episode to termination; returns (sum of rewards, infos, steps)."""
    env.reset(seed=seed)
    total, infos, steps = 0.0, [], 0
    while True:
        _, reward, terminated, truncated, info = env.step(act())
        total += reward
        infos.append(info)
        steps += 1
        assert not truncated
        if terminated:
            return total, infos, steps


# ---------------------------------------------------------------------- registration, checkers
def test_make_accepts_config_objects_paths_presets_and_overrides(tmp_path):
    env = gym.make(ENV_ID, config=SMALL)
    assert isinstance(env.unwrapped, LLMServingEnv)
    assert env.unwrapped.config is SMALL
    path = tmp_path / "small.yaml"
    lse.save_config(SMALL, path)
    assert gym.make(ENV_ID, config=str(path)).unwrapped.config == SMALL
    env = gym.make(ENV_ID, config="default", overrides={"num_requests": 30, "warmup_requests": 0},
                   num_slots=4, chunk_ladder=(16, 128), reward="goodput")
    base = env.unwrapped
    assert base.config.num_requests == 30
    assert base.action_space.nvec.tolist() == [4] * 4 + [2] * 4 + [2]
    assert base.observation_space.shape == (16 + 10 * 4,)
    assert len(base.observation_names) == base.observation_space.shape[0]


def test_bad_options_are_errors():
    with pytest.raises(ConfigError, match="needs an SLO"):
        LLMServingEnv(make_config(), reward="slo")
    with pytest.raises(ValueError, match="reward"):
        LLMServingEnv(SMALL, reward="throughput")
    with pytest.raises(ValueError, match="render"):
        LLMServingEnv(SMALL, render_mode="human")
    with pytest.raises(ValueError, match="chunk_ladder"):
        LLMServingEnv(SMALL, chunk_ladder=(64, 32))
    with pytest.raises(ValueError, match="num_slots"):
        LLMServingEnv(SMALL, num_slots=0)


def _wrapped(kind: str, config=SMALL, **kw) -> gym.Env:
    env = LLMServingEnv(config, **kw)
    if kind == "compact":
        return lse.CompactActionWrapper(env)
    if kind == "compact_md":
        return lse.CompactMultiDiscreteWrapper(env)
    return env


@pytest.mark.parametrize("kind", ["raw", "compact", "compact_md"])
@pytest.mark.parametrize("reward", ["latency", "slo", "goodput"])
def test_gymnasium_and_sb3_env_checkers_pass(kind, reward):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(_wrapped(kind, reward=reward), skip_render_check=True)
        sb3_check_env(_wrapped(kind, reward=reward), warn=True)
    other = [str(w.message) for w in caught
             if "is different from the unwrapped version" not in str(w.message)]
    assert other == []


def test_checkers_pass_on_multi_gpu_kv_config():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(LLMServingEnv(CONFIGS["kv_2gpu"]), skip_render_check=True)
    sb3_check_env(LLMServingEnv(CONFIGS["disaggregated"]))


# ---------------------------------------------------------------------- vector envs
def test_gymnasium_sync_vector_env_steps():
    venv = gym.vector.SyncVectorEnv([functools.partial(gym.make, ENV_ID, config=SMALL)] * 3)
    obs, _ = venv.reset(seed=[0, 1, 2])
    assert obs.shape == (3, venv.single_observation_space.shape[0])
    venv.action_space.seed(0)
    ended = 0
    for _ in range(400):  # runs past episode ends (autoreset)
        obs, reward, terminated, truncated, _ = venv.step(venv.action_space.sample())
        assert obs.dtype == np.float32 and reward.shape == (3,)
        assert np.all((obs >= 0) & (obs <= 1))
        ended += int(terminated.sum())
    assert ended > 0
    venv.close()


def test_sb3_dummy_vec_env_steps():
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: lse.CompactActionWrapper(LLMServingEnv(SMALL))] * 2)
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (2, 16 + 10 * 16)
    dones = 0
    for i in range(300):
        obs, reward, done, infos = venv.step(np.array([i % 18, (5 * i) % 18]))
        dones += int(done.sum())
        assert np.all((obs >= 0) & (obs <= 1))
    assert dones > 0  # episodes ended and were reset
    venv.close()


def test_sb3_subproc_vec_env_steps():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = SubprocVecEnv([functools.partial(gym.make, ENV_ID, config=SMALL, num_slots=4)] * 2,
                         start_method="fork")
    try:
        obs = venv.reset()
        assert obs.shape == (2, 16 + 10 * 4)
        for _ in range(5):
            obs, reward, done, infos = venv.step(
                np.stack([venv.action_space.sample() for _ in range(2)]))
            assert reward.shape == (2,) and "repaired" in infos[0]
    finally:
        venv.close()


# ---------------------------------------------------------------------- baselines through the env
@pytest.mark.parametrize("config_name", ["single", "kv_2gpu", "disaggregated"])
@pytest.mark.parametrize("policy", lse.available_schedulers())
def test_every_scheduler_through_the_env_matches_simulate_bit_for_bit(policy, config_name):
    cfg = CONFIGS[config_name].replace({"num_requests": 80})
    seed = 11
    expected = lse.simulate(cfg, policy, seed=seed)
    env = gym.make(ENV_ID, config=cfg)
    agent = lse.BaselineAgent(policy, env)
    run_episode(env, agent.act, seed)
    assert_same_result(env.unwrapped.result(), expected)
    # a second episode on the same env and agent (scheduler rebuilt and reset) matches too
    run_episode(env, agent.act, seed + 1)
    assert_same_result(env.unwrapped.result(), lse.simulate(cfg, policy, seed=seed + 1))


def test_baseline_agent_accepts_a_scheduler_instance():
    cfg = CONFIGS["kv_2gpu"]
    env = LLMServingEnv(cfg)
    agent = lse.BaselineAgent(lse.make_scheduler(cfg, "slo_aware"))
    run_episode(env, lambda: agent.act(env), 5)
    assert_same_result(env.result(), lse.simulate(cfg, "slo_aware", seed=5))


# ---------------------------------------------------------------------- reward identities
def _agents(env: LLMServingEnv, seed: int):
    rng = np.random.default_rng(seed)
    hybrid = lse.BaselineAgent("hybrid", env)
    return {"masked_random": lambda: masked_sample(env, rng),
            "unmasked_random": lambda: env.action_space.sample(),
            "hybrid": hybrid.act}


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("agent", ["masked_random", "unmasked_random", "hybrid"])
def test_latency_reward_sums_to_minus_total_e2e(config_name, agent):
    env = LLMServingEnv(CONFIGS[config_name], num_slots=6, reward="latency", reward_scale=2.0)
    env.action_space.seed(3)
    total, _, _ = run_episode(env, _agents(env, 3)[agent], seed=3)
    e2e = env.result().e2e_s
    assert not np.isnan(e2e).any()
    assert total == pytest.approx(-e2e.sum() / 2.0, rel=1e-9)


def _token_score(result: lse.RunResult) -> int:
    """+1 / -1 per output token from the RunResult: first tokens against the TTFT target,
    every other token (its gap) against the TBT target."""
    slo = result.config.slo
    assert result.warmup == 0  # tbt_gaps_s then holds every gap of every request
    ttft_ok = result.ttft_s <= slo.ttft_ms / 1000.0
    gap_ok = result.tbt_gaps_s <= slo.tbt_ms / 1000.0
    return int(2 * ttft_ok.sum() - ttft_ok.size + 2 * gap_ok.sum() - gap_ok.size)


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("agent", ["masked_random", "hybrid"])
def test_slo_reward_sums_to_the_token_score(config_name, agent):
    env = LLMServingEnv(CONFIGS[config_name], num_slots=6, reward="slo")
    total, _, _ = run_episode(env, _agents(env, 4)[agent], seed=4)
    result = env.result()
    assert total == _token_score(result)
    # every token was scored: a first token per request plus one gap per later token
    assert result.tbt_gaps_s.size == int(result.output_tokens.sum()) - result.output_tokens.size


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("agent", ["masked_random", "hybrid"])
def test_goodput_reward_sums_to_slo_meeting_requests(config_name, agent):
    env = LLMServingEnv(CONFIGS[config_name], num_slots=6, reward="goodput", reward_scale=0.5)
    total, _, _ = run_episode(env, _agents(env, 5)[agent], seed=5)
    met = int(env.result().slo_met().sum())
    assert total == 2 * met
    if agent == "hybrid" and config_name == "single":
        assert met > 0


def test_kv_config_exercises_preemption():
    result = lse.simulate(CONFIGS["kv_2gpu"], "hybrid", seed=4)
    assert result.preemptions.sum() > 0


# ---------------------------------------------------------------------- masks and repair
def _naive_fits(env: LLMServingEnv, action: np.ndarray):
    """The composition a native action names, without repair, if it satisfies every limit
    (tokens, slots, KV) and is non-empty; else None."""
    view = env.decision_view
    n, lv = env.num_slots, env.num_levels
    w = view.waiting[:n]
    levels = action[: w.size]
    pos = np.flatnonzero(levels > 0)
    ids = w[pos]
    rem = view.remaining_prompt(ids)
    ladder = np.asarray(env.chunk_ladder)
    tokens = np.where(levels[pos] == lv, rem, ladder[np.minimum(levels[pos], lv - 1) - 1])
    d = view.decoding[:n]
    dids = d[action[n: n + d.size] > 0]
    if action[2 * n]:
        dids = np.concatenate((dids, view.decoding[n:]))
    if ids.size == 0 and dids.size == 0:
        return None
    if (tokens > rem).any() or tokens.sum() + dids.size > view.max_batch_tokens:
        return None
    if np.count_nonzero(pos >= view.num_partial) > view.free_slots:
        return None
    if view.kv_free_blocks != math.inf:
        # the decodes' growth, the KV to finish every partial prefill (the admission
        # reserve) and the whole prompts of the new requests fit in the free blocks
        partial = view.waiting[: view.num_partial]
        new = ids[pos >= view.num_partial]
        need = (view.kv_blocks_needed(dids, 1).sum()
                + view.kv_blocks_needed(partial, view.remaining_prompt(partial)).sum()
                + view.kv_blocks_needed(new, view.remaining_prompt(new)).sum())
        if need > view.kv_free_blocks:
            return None
    return ids, tokens, dids


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("seed", [0, 1])
def test_masked_random_policy_never_breaks_a_rule_and_fitting_actions_are_not_repaired(
        config_name, seed):
    env = LLMServingEnv(CONFIGS[config_name], num_slots=5, chunk_ladder=(8, 32, 128))
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    fitting = repaired = 0
    while True:
        action = masked_sample(env, rng)
        assert env.action_space.contains(action)
        naive = _naive_fits(env, action)
        command, was_repaired = env.native_to_command(action)
        if naive is not None:
            fitting += 1
            assert not was_repaired
            ids, tokens, dids = naive
            np.testing.assert_array_equal(command.prefill_ids, ids)
            np.testing.assert_array_equal(command.prefill_tokens, tokens)
            np.testing.assert_array_equal(command.decode_ids, dids)
        _, _, terminated, _, info = env.step(action)  # SchedulingError would fail the test
        assert info["repaired"] == was_repaired
        repaired += was_repaired
        if terminated:
            break
    assert env.result().num_gpus == env.num_gpus
    assert fitting > 0
    if config_name == "tight":
        assert repaired > 0


@pytest.mark.parametrize("config_name", ["tight", "kv_2gpu"])
def test_masks_follow_the_view(config_name):
    env = LLMServingEnv(CONFIGS[config_name], num_slots=4, chunk_ladder=(32, 64, 128))
    limit = env.max_batch_tokens
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    checked = kv_masked = 0
    for _ in range(400):
        view = env.decision_view
        if view is None:
            break
        mask = env.action_masks()
        lv = env.num_levels
        assert mask.shape == (int(env.action_space.nvec.sum()),)
        chunk = mask[: 4 * (lv + 1)].reshape(4, lv + 1)
        dec = mask[4 * (lv + 1): -2].reshape(4, 2)
        w = view.waiting[:4]
        rem = view.remaining_prompt(w)
        free = view.free_slots
        partial = view.waiting[: view.num_partial]
        reserve = view.kv_blocks_needed(partial, view.remaining_prompt(partial)).sum()
        for i in range(4):
            assert chunk[i, 0] and dec[i, 0]
            if i >= w.size:
                assert not chunk[i, 1:].any()
                continue
            can = i < view.num_partial or free > 0
            if i >= view.num_partial and view.kv_free_blocks != math.inf:
                fits = view.kv_blocks_needed(w[i: i + 1], rem[i: i + 1])[0] \
                    <= view.kv_free_blocks - reserve
                kv_masked += can and not fits
                can = can and fits
            assert chunk[i, lv] == can
            for j, size in enumerate((32, 64, 128)):
                assert chunk[i, 1 + j] == (can and size <= rem[i] and size <= limit)
            checked += 1
        assert (dec[:, 1] == (np.arange(4) < view.decoding.size)).all()
        assert mask[-2] and mask[-1] == (view.decoding.size > 4)
        if env.step(masked_sample(env, rng))[2]:
            break
    assert checked > 0
    if config_name == "kv_2gpu":
        assert kv_masked > 0


def test_empty_actions_wait_and_never_deadlock():
    """The all-zero action is Wait(); when nothing can happen any more the repair forces a
    batch, so even this agent finishes the episode."""
    env = LLMServingEnv(CONFIGS["single"].replace({"num_requests": 10}), num_slots=4)
    zeros = np.zeros(env.action_space.shape, dtype=np.int64)
    env.reset(seed=0)
    forced = 0
    while True:
        pending = env._event_pending()
        command, repaired = env.native_to_command(zeros)
        assert isinstance(command, Wait) == pending
        assert repaired == (not pending)
        _, _, terminated, _, info = env.step(zeros)
        forced += info["repaired"]
        if terminated:
            break
    assert forced > 0
    assert not np.isnan(env.result().finish_s).any()


def test_repair_drops_new_requests_beyond_slots_then_cuts_to_the_token_room():
    cfg = SMALL.replace({"gpus.max_batch_tokens": 100, "gpus.max_batch_requests": 2,
                         "workload.arrival.rate_per_s": 200.0,
                         "workload.prompt_tokens": {"dist": "fixed", "value": 70}})
    env = LLMServingEnv(cfg, num_slots=4, chunk_ladder=(16, 32))
    env.reset(seed=0)
    # idle until three requests wait
    while env.decision_view.waiting.size < 3:
        env.step(Wait())
    view = env.decision_view
    w = view.waiting
    action = np.zeros(env.action_space.shape, dtype=np.int64)
    action[:3] = [3, 1, 3]  # whole 70, 16 tokens, whole 70: three new requests, 2 free slots
    command, repaired = env.native_to_command(action)
    assert repaired
    # the third is dropped (slots), the second is cut to the token room 100 - 70 = 30 -> 16 fits
    np.testing.assert_array_equal(command.prefill_ids, w[:2])
    np.testing.assert_array_equal(command.prefill_tokens, [70, 16])
    action[:3] = [3, 3, 0]
    command, repaired = env.native_to_command(action)
    assert repaired
    np.testing.assert_array_equal(command.prefill_tokens, [70, 30])
    action[:3] = [3, 0, 0]
    assert env.native_to_command(action)[1] is False


def test_step_accepts_batch_and_wait_objects_and_checks_them():
    env = LLMServingEnv(SMALL)
    env.reset(seed=0)
    view = env.decision_view
    r = int(view.waiting[0])
    _, _, _, _, info = env.step(Batch.of({r: 1}))
    assert info["repaired"] is False
    while env.decision_view.waiting.size == 0:
        env.step(env.native_to_command(np.zeros(env.action_space.shape, np.int64))[0])
    bad = Batch.of({int(env.decision_view.waiting[0]): 10_000})
    with pytest.raises(lse.SchedulingError, match="chunk_size"):
        env.step(bad)


# ---------------------------------------------------------------------- observation
@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_observations_are_bounded_float32_and_informative(config_name):
    env = LLMServingEnv(CONFIGS[config_name], num_slots=4)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    seen = np.zeros(env.obs_size, dtype=bool)
    while True:
        assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
        assert env.observation_space.contains(obs)
        seen |= obs > 0
        obs, _, terminated, _, _ = env.step(masked_sample(env, rng))
        if terminated:
            break
    names = np.asarray(env.observation_names)
    assert obs[names == "arrived_fraction"][0] == 1.0 and obs.sum() == 1.0
    for feature in ("waiting", "decoding", "oldest_waiting_age", "max_decode_stall",
                    "arrival_rate", "waiting_remaining_prompt_0", "decoding_since_last_token_0",
                    "decoding_generated_0"):
        assert seen[names == feature][0], feature
    if env.num_gpus > 1:
        assert seen[names == "gpu_index"][0] and seen[names == "other_gpus_busy"][0]
    if config_name == "kv_2gpu":
        assert seen[names == "kv_used"][0]


def test_observation_values_match_their_definitions():
    env = LLMServingEnv(SMALL, num_slots=3)
    env.reset(seed=1)
    agent = lse.BaselineAgent("hybrid", env)
    for _ in range(40):
        obs, *_ = env.step(agent.act())
    view = env.decision_view
    names = list(env.observation_names)
    t = view.requests
    now = view.now_s
    value = dict(zip(names, obs.tolist(), strict=True))
    w, d = view.waiting.size, view.decoding.size
    assert value["waiting"] == pytest.approx(w / (w + 3), rel=1e-6)
    assert value["decoding"] == pytest.approx(d / (d + 3), rel=1e-6)
    assert value["resident"] == pytest.approx(view.resident / 128, rel=1e-6)
    if d:
        r = view.decoding[0]
        since = now - t.last_token_s[r]
        assert value["decoding_since_last_token_0"] == pytest.approx(since / (since + 0.06),
                                                                     rel=1e-6)
        g, m = t.generated_tokens[r], env.observer.output_scale
        assert value["decoding_generated_0"] == pytest.approx(g / (g + m), rel=1e-6)
        # the default predictor knows nothing: no remaining-output information
        assert value["decoding_predicted_remaining_0"] == 0.0
        stall = now - np.min(t.last_token_s[view.decoding])
        assert value["max_decode_stall"] == pytest.approx(stall / (stall + 0.06), rel=1e-6)
    assert value["role_mixed"] == 1.0


# ---------------------------------------------------------------------- episodes
def _trajectory(env: gym.Env, seed: int | None, steps: int = 50):
    obs, info = env.reset(seed=seed)
    out = [obs]
    env.action_space.seed(0)
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out.append(obs)
        out.append(np.float32(reward))
        if terminated or truncated:
            break
    return info["sim_seed"], np.concatenate([np.ravel(x) for x in out])


def test_reset_with_a_seed_reproduces_exactly_and_none_draws_from_np_random():
    env = LLMServingEnv(CONFIGS["kv_2gpu"])
    s1, a = _trajectory(env, 123)
    s2, b = _trajectory(env, 123)
    assert s1 == s2 == 123
    np.testing.assert_array_equal(a, b)
    s3, c = _trajectory(env, None)  # drawn from np_random, seeded by the last reset
    other = LLMServingEnv(CONFIGS["kv_2gpu"])
    other.reset(seed=123)
    s4, d = _trajectory(other, None)
    assert s3 == s4 != 123
    np.testing.assert_array_equal(c, d)
    s5, _ = _trajectory(env, None)
    assert s5 != s3


def test_truncation_by_steps_and_time():
    env = LLMServingEnv(SMALL, max_steps=7)
    env.reset(seed=0)
    zeros = np.zeros(env.action_space.shape, np.int64)
    for i in range(7):
        _, _, terminated, truncated, _ = env.step(zeros)
        assert not terminated and truncated == (i == 6)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(zeros)
    env.reset(seed=0)  # a new episode starts after truncation
    env = LLMServingEnv(SMALL, max_time_s=2.0)
    env.reset(seed=0)
    agent = lse.BaselineAgent("hybrid", env)
    while True:
        _, _, terminated, truncated, info = env.step(agent.act())
        assert not terminated
        if truncated:
            break
    assert info["now_s"] >= 2.0
    assert 0 < info["num_finished"] < SMALL.num_requests
    assert np.isnan(env.result().finish_s).any()


def test_terminated_episode_gives_the_run_result_and_refuses_more_steps():
    env = gym.make(ENV_ID, config=SMALL)
    agent = lse.BaselineAgent("hybrid", env)
    _, infos, steps = run_episode(env, agent.act, 0)
    assert infos[-1]["gpu"] == -1 and infos[-1]["num_finished"] == SMALL.num_requests
    assert env.unwrapped.decision_view is None
    assert len(env.unwrapped.result().batches) == steps
    with pytest.raises(RuntimeError):
        env.step(np.zeros(env.action_space.shape, np.int64))


# ---------------------------------------------------------------------- compact wrappers
def test_compact_action_maps_to_rule_then_fill_prefill_budget():
    env = lse.CompactActionWrapper(LLMServingEnv(SMALL.replace(
        {"workload.arrival.rate_per_s": 40.0})), budgets=(0, 50, 1000))
    env.reset(seed=0)
    base = env.unwrapped
    seen = set()
    agent = lse.BaselineAgent("hybrid", env)
    for _ in range(200):
        view = base.decision_view
        if view is None:
            break
        w_rem = int(view.remaining_prompt(view.waiting).sum()) if view.waiting.size else 0
        for b_idx, budget in enumerate((0, 50, 1000)):
            for r_idx, rule in enumerate(("all", "at_risk", "none")):
                command, _ = env.command(b_idx, r_idx)
                if isinstance(command, Wait) or not base._event_pending():
                    continue  # (no event pending: an empty composition is forced to hybrid)
                if rule == "all":
                    np.testing.assert_array_equal(command.decode_ids, view.decoding)
                elif rule == "none":
                    assert command.decode_ids.size == 0 or (budget == 0 and w_rem == 0)
                else:
                    since = view.now_s - view.requests.last_token_s[command.decode_ids]
                    assert (since + env.risk_horizon_s > env.tbt_target_s).all() \
                        or command.decode_ids.size == view.decoding.size
                if command.prefill_ids.size and budget != 0:
                    assert command.prefill_tokens.sum() == min(budget, w_rem)
                    np.testing.assert_array_equal(
                        command.prefill_ids, view.waiting[: command.prefill_ids.size])
                    seen.add(rule)
        env.step(agent.act())  # advance with hybrid
    assert seen == {"all", "at_risk", "none"}


def test_compact_wrappers_finish_episodes_with_fixed_actions():
    for wrapper, action in ((lse.CompactActionWrapper, 0), (lse.CompactActionWrapper, 13),
                            (lse.CompactMultiDiscreteWrapper, np.array([3, 2]))):
        env = wrapper(LLMServingEnv(CONFIGS["kv_2gpu"], reward="slo"))
        total, infos, _ = run_episode(env, lambda a=action: a, 0)
        assert total == _token_score(env.unwrapped.result())
        assert {"repaired", "budget_tokens", "decode_rule"} <= infos[0].keys()


def test_discrete_and_multidiscrete_compact_wrappers_agree():
    a = lse.CompactActionWrapper(LLMServingEnv(SMALL))
    b = lse.CompactMultiDiscreteWrapper(LLMServingEnv(SMALL))
    a.reset(seed=3)
    b.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(100):
        k = int(rng.integers(a.action_space.n))
        ra = a.step(k)
        rb = b.step(np.array(divmod(k, 3)))
        np.testing.assert_array_equal(ra[0], rb[0])
        assert ra[1:4] == rb[1:4] and ra[4] == rb[4]
        if ra[2]:
            break


@pytest.mark.parametrize("wrapper", [None, "compact", "compact_md"])
def test_non_integer_actions_are_rejected_not_truncated(wrapper):
    """A float 0.5 used to be truncated to 0 silently; whole-number floats still pass."""
    env = LLMServingEnv("default", overrides={"num_requests": 50, "warmup_requests": 0})
    if wrapper == "compact":
        env = CompactActionWrapper(env)
    elif wrapper == "compact_md":
        env = CompactMultiDiscreteWrapper(env)
    env.reset(seed=0)
    zero = np.zeros(env.action_space.shape or (), dtype=np.int64)
    half = zero.astype(np.float64) + 0.5
    with pytest.raises(ValueError, match="not an integer action"):
        env.step(half)
    with pytest.raises(ValueError, match="not an integer action"):
        env.step(zero.astype(np.float64) + np.nan)
    _, _, terminated, _, _ = env.step(zero.astype(np.float64))  # 0.0: a whole number
    assert not terminated


@pytest.mark.parametrize("reward", ["latency", "slo", "goodput"])
def test_rewards_count_measured_requests_only(reward):
    """With warm-up requests, each reward's episode sum is its identity over the measured
    requests alone (those RunResult.summary() reports)."""
    cfg = SMALL.replace({"warmup_requests": 20})
    env = LLMServingEnv(cfg, num_slots=6, reward=reward)
    hybrid = lse.BaselineAgent("hybrid", env)
    total, infos, _ = run_episode(env, hybrid.act, seed=6)
    result = env.result()
    m = result.measured
    assert m.sum() == 40
    if reward == "latency":
        assert total == pytest.approx(-result.e2e_s[m].sum(), rel=1e-9)
    elif reward == "goodput":
        assert total == int(result.slo_met()[m].sum())
    else:
        slo = cfg.slo
        ttft_ok = result.ttft_s[m] <= slo.ttft_ms / 1000.0
        gap_ok = result.tbt_gaps_s <= slo.tbt_ms / 1000.0  # gaps of measured requests only
        assert total == 2 * ttft_ok.sum() - ttft_ok.size + 2 * gap_ok.sum() - gap_ok.size
    # each step's duration: the simulated time between consecutive decision points
    now = [info["now_s"] for info in infos]
    np.testing.assert_allclose([info["dt_s"] for info in infos[1:]], np.diff(now), atol=0)
