"""LLMServing-v1: every scheduler's batches composed through micro-actions, bit for bit; an
exact mask (whatever it allows runs as chosen); bounded decisions; safe random exploration."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from helpers import ENV_CONFIGS, ENV_SLO, assert_same_result, make_config

import llm_serving_env as lse
from llm_serving_env.env import COMPOSE_ENV_ID, LLMComposeEnv, NotExpressible
from llm_serving_env.env.compose import ComposeLayout
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.scheduler import canonical_schedulers


def replay(env: LLMComposeEnv, policy: str, seed: int) -> int:
    """Drive ``env`` with ``BaselineAgent(policy, native=True)`` to the end, checking every
    action is an allowed element of the action space; returns the number of steps."""
    agent = lse.BaselineAgent(policy, native=True)
    env.reset(seed=seed)
    steps = 0
    while True:
        action = agent.act(env)
        assert isinstance(action, (int, np.integer)) and env.action_space.contains(int(action))
        assert env.action_masks()[action]
        _, _, terminated, truncated, info = env.step(action)
        assert not info["repaired"] and not truncated
        steps += 1
        if terminated:
            return steps


@pytest.mark.parametrize("num_slots", [16, 2])
@pytest.mark.parametrize("config_name", ["single", "kv_2gpu", "disaggregated", "tight"])
@pytest.mark.parametrize("policy", canonical_schedulers())
def test_every_scheduler_composes_its_batches_through_native_actions(policy, config_name,
                                                                   num_slots):
    """The run equals simulate() bit for bit. With two slots per page almost every pick
    pages through the queue (a request far beyond the first page is reachable)."""
    cfg = ENV_CONFIGS[config_name].replace({"num_requests": 80})
    seed = 11
    try:
        expected = lse.simulate(cfg, policy, seed=seed)
    except ConfigError as err:  # the policy cannot serve this workload at all
        assert config_name == "tight", err
        pytest.skip(f"{policy} rejects the tight config: {err}")
    # TTFT objective 0.8 s: the default holds 0.1, 0.2, 0.4, 0.8 s include fixed_batch's
    # 200 ms timeout and dynamic_batch's 0.5 x 0.8 s
    env = gym.make(COMPOSE_ENV_ID, config=cfg, guards=False, num_slots=num_slots).unwrapped
    replay(env, policy, seed)
    assert_same_result(env.result(), expected)
    replay(env, policy, seed + 1)  # a second episode, the scheduler rebuilt
    assert_same_result(env.result(), lse.simulate(cfg, policy, seed=seed + 1))


SHIPPED = {
    # two GPUs with 8,850 tokens of KV each: preemptions
    "configs/benchmarks/kv_pressure.yaml": 300,
    # disaggregated prefill and decode pools
    "configs/distserve.yaml": 200,
    # five replicas, the Azure conversation trace
    "configs/azure_conv.yaml": 200,
    # two SLO classes: slo_classes plans each decode by its own class's TBT
    "configs/benchmarks/two_class.yaml": 300,
    # context-aware iteration time (service.attention), long prompts
    "configs/benchmarks/long_context.yaml": 40,
}


@pytest.mark.parametrize("path", sorted(SHIPPED))
@pytest.mark.parametrize("policy", canonical_schedulers())
def test_shipped_configs_compose_bit_for_bit(policy, path):
    cfg = lse.load_config(path).replace({"num_requests": SHIPPED[path], "warmup_requests": 20})
    try:
        expected = lse.simulate(cfg, policy, seed=5)
    except ConfigError as err:
        pytest.skip(f"{policy} rejects {path}: {err}")
    ttft = cfg.slo.ttft_ms / 1000.0 if cfg.slo is not None else 1.0
    holds = (0.2, 0.5 * ttft, 0.5)  # fixed_batch's and dynamic_batch's default holds
    env = LLMComposeEnv(cfg, guards=False, hold_s=holds)
    replay(env, policy, seed=5)
    assert_same_result(env.result(), expected)


def fill_and_dispatch(env: LLMComposeEnv, seed: int) -> lse.RunResult:
    """Pick the first pickable request of the first page until none is, then DISPATCH:
    the default budget filled in queue order, never moved."""
    lay = env.layout
    env.reset(seed=seed)
    while True:
        picks = np.flatnonzero(env.action_masks()[lay.pick: lay.pick + lay.num_slots])
        action = lay.pick + int(picks[0]) if picks.size else lay.dispatch
        _, _, terminated, _, _ = env.step(action)
        if terminated:
            return env.result()


def test_long_context_default_budget_keeps_the_tbt_objective_only_with_attention():
    """With context-aware iteration time (``service.attention``), the default budget planned
    with the decodes' KV reads and the chunk's attention keeps TBT P99 within the 150 ms
    objective when filled; planned with S(b) alone it overruns it (the engine's service times
    are the judge, not the planner's)."""
    cfg = lse.load_config("configs/benchmarks/long_context.yaml").replace(
        {"num_requests": 300, "warmup_requests": 30})
    objective = cfg.slo.tbt_ms / 1000.0
    aware = fill_and_dispatch(LLMComposeEnv(cfg), seed=3).summary()
    blind = fill_and_dispatch(LLMComposeEnv(cfg, attention_aware=False), seed=3).summary()
    assert aware["tbt_p99_s"] <= objective < blind["tbt_p99_s"]
    assert aware["slo_attainment"] > blind["slo_attainment"]


def test_long_context_slo_triage_never_moves_the_default_budget():
    """The default budget is slo_triage's own deadline budget (both plan attention the same
    way), so its native actions need no budget move: a clone of it learns no correction."""
    cfg = lse.load_config("configs/benchmarks/long_context.yaml").replace(
        {"num_requests": 150, "warmup_requests": 15})
    env = LLMComposeEnv(cfg, guards=False)
    lay = env.layout
    agent = lse.BaselineAgent("slo_triage", native=True)
    env.reset(seed=10_000)
    moves = decisions = 0
    while True:
        action = agent.act(env)
        moves += lay.budget_up <= action < lay.wait
        _, _, terminated, _, info = env.step(action)
        decisions += info["decided"]
        if terminated:
            break
    assert decisions > 1000 and moves == 0
    assert_same_result(env.result(), lse.simulate(cfg, "slo_triage", seed=10_000))
    with pytest.raises(ValueError, match="attention_aware"):
        LLMComposeEnv(cfg, attention_aware="yes")


def random_episode(env: LLMComposeEnv, seed: int) -> tuple[lse.RunResult, list[int]]:
    """A uniformly random masked policy; checks that every dispatched batch is the composed
    one and returns the result and the micro-steps of each decision."""
    rng = np.random.default_rng(seed)
    sim = env.sim
    started: list[tuple[lse.Batch | lse.Wait, lse.Batch | None]] = []
    execute = sim.execute

    def spy(command):  # what the env hands the engine, and the batch the engine starts
        execute(command)
        started.append((command, sim.in_flight[sim._decision_gpu]
                        if isinstance(command, lse.Batch) else None))

    sim.execute = spy
    env.reset(seed=seed)
    lay = env.layout
    per_decision, micro = [], 0
    while True:
        c = env.composer
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        waits = c.hold_targets() if c.picks else None
        preempted = int(sim.preemptions.sum())
        _, _, terminated, truncated, info = env.step(action)
        micro += 1
        assert not info["repaired"] and not truncated
        if not info["decided"]:
            continue
        per_decision.append(micro)
        micro = 0
        command, ran = started.pop()
        if action == lay.dispatch:
            composed = c.command()
            assert type(command) is type(composed)
            if isinstance(composed, lse.Batch):
                for field in ("prefill_ids", "prefill_tokens", "decode_ids"):
                    np.testing.assert_array_equal(getattr(command, field),
                                                  getattr(composed, field))
                if int(sim.preemptions.sum()) == preempted:
                    # the engine runs it as is (unless it preempted for the decodes' KV growth)
                    for field in ("prefill_ids", "prefill_tokens", "decode_ids"):
                        np.testing.assert_array_equal(getattr(ran, field),
                                                      getattr(composed, field))
        else:  # a timed hold of the picked cohort
            assert action >= lay.wait and isinstance(command, lse.Wait)
            assert command.until_s == waits[action - lay.wait]
        if terminated:
            return env.result(), per_decision


@pytest.mark.parametrize(("config_name", "guards"), [
    ("single", True), ("kv_2gpu", True), ("disaggregated", True), ("tight", True),
    ("single", False), ("disaggregated", False), ("tight", False)])
def test_random_masked_policy_runs_exactly_what_it_composes(config_name, guards):
    """(Without the guards and with a KV limit, a random policy can fill memory with partial
    prefills that cannot finish; the env then raises SchedulingError("deadlock"): see the
    next test.)"""
    cfg = ENV_CONFIGS[config_name].replace({"num_requests": 60})
    env = LLMComposeEnv(cfg, guards=guards, num_slots=4)
    result, per_decision = random_episode(env, seed=3)
    assert int(result.requests["finish_s"].notna().sum()) == 60
    # each decision ends: at most every pick, page move, toggle and one-shot move once, and
    # one more tour of the pages on an idle GPU with nothing else to come
    lay = env.layout
    w_max, d_max = 60, cfg.gpus.max_batch_requests
    n = lay.num_slots
    bound = (w_max + (w_max + 1) * (w_max // n + 2) + (w_max // n + 1) + d_max
             + (d_max + 1) * (d_max // n + 2) + 2 + 2 * lay.budget_bits + 1)
    assert max(per_decision) <= bound


def test_a_policy_that_pages_whenever_it_can_still_ends_every_decision():
    """An agent that prefers NEXT_PAGE, then FIRST_PAGE, then DISPATCH, and picks only when
    nothing else is allowed: while events are pending it idles the GPU after a tour; at the
    end of the run (nothing to come, GPU idle, requests waiting) it must pick once it reaches
    a page where a pick is possible (the pages used to stay open for ever there)."""
    cfg = ENV_CONFIGS["single"].replace({"num_requests": 60})
    env = LLMComposeEnv(cfg, num_slots=2, max_steps=200_000)
    lay = env.layout
    env.reset(seed=3)
    micro = longest = 0
    while True:
        mask = env.action_masks()
        for preferred in (lay.next_page, lay.first_page, lay.dispatch):
            if mask[preferred]:
                action = preferred
                break
        else:
            action = int(np.flatnonzero(mask)[0])
        _, _, terminated, truncated, info = env.step(action)
        assert not truncated
        micro += 1
        if info["decided"]:
            longest, micro = max(longest, micro), 0
        if terminated:
            break
    assert int(env.result().requests["finish_s"].notna().sum()) == 60
    assert longest <= 2 * (60 // 2 + 1) + 2 * lay.budget_bits + 2


def test_unguarded_random_policy_can_fill_kv_memory_and_is_told_so():
    cfg = ENV_CONFIGS["kv_2gpu"].replace({"num_requests": 60})
    with pytest.raises(lse.SchedulingError, match="guards=True"):
        random_episode(LLMComposeEnv(cfg, guards=False, num_slots=4), seed=3)


def test_random_exploration_keeps_the_tbt_objective_with_guards():
    """configs/default.yaml (TBT objective 200 ms, S(b) = 45.5 ms + 0.3 ms x max(0, b - 64),
    8.1 req/s): a uniformly random masked policy. With the guards every iteration's planned
    time meets every decode's deadline (deterministic service), so no measured TBT gap may
    exceed the objective; without them a random policy holds decodes back and misses it."""
    cfg = lse.load_config("configs/default.yaml").replace(
        {"num_requests": 1500, "warmup_requests": 100})
    tbt = cfg.slo.tbt_ms / 1000.0
    guarded, _ = random_episode(LLMComposeEnv(cfg, guards=True), seed=1)
    assert float(np.max(guarded.tbt_gaps_s)) <= tbt + 1e-9
    free, _ = random_episode(LLMComposeEnv(cfg, guards=False), seed=1)
    assert float(np.mean(free.tbt_gaps_s > tbt + 1e-9)) > 0.01


def test_layout_names_every_action_once():
    lay = ComposeLayout(num_slots=3, budget_bits=4, num_holds=2)
    names = [lay.name(a) for a in range(lay.size)]
    assert len(set(names)) == lay.size == 3 * 3 + 6 + 2 * 4 + 2 * 2
    assert names[lay.dispatch] == "DISPATCH" and names[lay.wait_service + 1] == "WAIT_SERVICE_1"
    with pytest.raises(ValueError, match="outside"):
        lay.name(lay.size)


def test_masked_action_changes_nothing():
    env = LLMComposeEnv(ENV_CONFIGS["single"])
    obs, _ = env.reset(seed=0)
    mask = env.action_masks()
    masked = np.flatnonzero(~mask)
    after, reward, terminated, truncated, info = env.step(int(masked[0]))
    assert info["masked"] and not info["decided"] and reward == 0.0
    assert not terminated and not truncated
    np.testing.assert_array_equal(env.action_masks(), mask)
    assert env.composer.picks == [] and env.sim.now_s == info["now_s"]
    with pytest.raises(ValueError, match="masked"):
        env.composer.apply(int(masked[0]))  # the composer itself refuses it
    with pytest.raises(ValueError, match="not an element"):
        env.step(env.layout.size)


def test_checkers_pass():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(LLMComposeEnv(ENV_CONFIGS["kv_2gpu"]), skip_render_check=True)
    sb3_check_env(LLMComposeEnv(ENV_CONFIGS["disaggregated"]))


def test_a_hold_off_the_ladder_is_not_expressible():
    cfg = ENV_CONFIGS["single"].replace({"num_requests": 40})
    env = LLMComposeEnv(cfg, guards=False, hold_s=(0.05,))
    with pytest.raises(NotExpressible, match="hold_s"):
        replay(env, "fixed_batch", seed=0)


def test_guards_refuse_what_breaks_the_tbt_objective():
    """prefill_first holds every decode back whenever a prompt waits: the guards refuse that
    while a decode cannot afford the wait, and the agent says which option replays it."""
    cfg = ENV_CONFIGS["single"].replace({"num_requests": 60})
    with pytest.raises(NotExpressible, match="guards=False"):
        replay(LLMComposeEnv(cfg, guards=True), "prefill_first", seed=0)


def test_observation_stays_in_the_box_and_names_match():
    env = LLMComposeEnv(ENV_CONFIGS["kv_2gpu"], num_slots=4)
    assert len(env.observation_names) == env.observation_space.shape[0]
    obs, _ = env.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(400):
        obs, _, terminated, _, _ = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        assert env.observation_space.contains(obs)
        assert not math.isnan(float(obs.sum()))
        if terminated:
            break


@pytest.mark.parametrize("guards", [True, False])
def test_hold_from_mask_equals_its_definition(guards):
    """HOLD_FROM_j is allowed iff the decodes in the batch from page position j on are not
    none and may all be held (Composer._can_hold, the rule every other hold uses)."""
    cfg = lse.load_config("configs/default.yaml").replace(
        {"num_requests": 300, "warmup_requests": 0})
    env = LLMComposeEnv(cfg, guards=guards, num_slots=4)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    lay = env.layout
    checked = 0
    for _ in range(3000):
        c = env.composer
        mask = env.action_masks()
        dpos = c.decode_page_positions()
        for k, p in enumerate(dpos.tolist()):
            tail = c.in_batch.copy()
            tail[:p] = False
            want = (not c.hold_from_used) and bool(tail.any()) and c._can_hold(tail)
            assert mask[lay.hold_from + k] == want
            checked += 1
        _, _, terminated, _, _ = env.step(int(rng.choice(np.flatnonzero(mask))))
        if terminated:
            break
    assert checked > 1000


@pytest.mark.parametrize("slo", [ENV_SLO, None])
@pytest.mark.parametrize("guards", [True, False])
@pytest.mark.parametrize("kv_tokens", [160, 192, 300])
def test_toggle_heavy_random_policies_never_break_the_engines_rules(kv_tokens, guards, slo):
    """A random policy that favours picks and decode toggles, on a KV cache of a few blocks:
    a decode may rejoin the batch only if the picked chunks' KV still fits (else the engine
    would raise kv_memory), and with the guards no state is left without an allowed action
    (the pick rule that lets a decode leave is the PICK mask itself). Found by review: both
    failed before."""
    cfg = make_config(num_requests=30, slo=slo, **{
        "gpus.kv_capacity_tokens": kv_tokens, "workload.arrival.rate_per_s": 20.0,
        "workload.prompt_tokens": {"dist": "uniform", "low": 20, "high": 90},
        "workload.output_tokens": {"dist": "fixed", "value": 20}})
    for seed in range(4):
        env = LLMComposeEnv(cfg, guards=guards, num_slots=4, max_steps=200_000)
        lay = env.layout
        favoured = np.zeros(lay.size)
        favoured[lay.pick: lay.pick + lay.num_slots] = 5.0
        favoured[lay.toggle: lay.toggle + lay.num_slots] = 5.0
        favoured[lay.hold_all] = 3.0
        rng = np.random.default_rng(seed)
        env.reset(seed=seed)
        try:
            while True:
                weight = env.action_masks() * (1.0 + favoured)
                action = int(rng.choice(lay.size, p=weight / weight.sum()))
                _, _, terminated, truncated, _ = env.step(action)
                assert not truncated  # no decision loops without end
                if terminated:
                    break
        except lse.SchedulingError as err:  # only an unguarded agent may fill the memory
            assert not guards and err.rule == "deadlock", err
