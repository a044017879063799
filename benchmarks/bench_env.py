"""Environment speed: LLMServing-v0 and -v1 steps per wall second on one core.

Runs whole episodes of ``configs/default.yaml`` (20,000 requests, ~35,700 decision points) with

* ``engine``: ``simulate(config, "hybrid", engine="reference")`` itself (the Python engine
  the env steps), for reference (decisions per second),
* ``env + hybrid``: the raw env, ``hybrid`` acting through it via ``BaselineAgent``,
* ``gym.make + hybrid``: the same through ``gymnasium.make`` (its checker/order wrappers),
* ``compact + fixed``: ``CompactActionWrapper`` with one fixed action (budget 512, every decode:
  hybrid's composition through the repair rule),
* ``native + masks``: the native action built from the masks each step (``action_masks()`` +
  a fixed choice: whole prompts for the first slots, every decode), as a masked agent would,
* ``v1 + hybrid (native)``: ``LLMServing-v1`` driven by ``BaselineAgent("hybrid",
  native=True)``: hybrid's batches as micro-actions (steps are micro-steps; decisions are
  also printed),
* ``v1 + random masked``: a uniformly random allowed micro-action each step (guards on),

and prints the best and median steps per wall second, and the best per CPU second of the
process (``time.process_time``: less sensitive to other load on a shared machine). Usage::

    .venv/bin/python benchmarks/bench_env.py [--config FILE] [--repeat N] [--requests N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

import llm_serving_env as lse

ROOT = Path(__file__).resolve().parents[1]


class _Clock:
    """Wall and CPU time of a block."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


Timing = tuple[int, float, float]  # steps, wall seconds, CPU seconds


def _episode(env: gym.Env, act: Callable[[], object], seed: int) -> int:
    env.reset(seed=seed)
    step = env.step
    steps = 0
    while True:
        _, _, terminated, truncated, _ = step(act())
        steps += 1
        if terminated or truncated:
            return steps


def bench_engine(cfg: lse.SimConfig, seed: int) -> Timing:
    with _Clock() as clock:
        result = lse.simulate(cfg, "hybrid", seed=seed, engine="reference")  # the env's engine
    return len(result.batches), clock.wall, clock.cpu


def bench_env_hybrid(cfg: lse.SimConfig, seed: int, make: bool = False) -> Timing:
    env = gym.make(lse.ENV_ID, config=cfg) if make else lse.LLMServingEnv(cfg)
    agent = lse.BaselineAgent("hybrid", env)
    with _Clock() as clock:
        steps = _episode(env, agent.act, seed)
    return steps, clock.wall, clock.cpu


def bench_compact(cfg: lse.SimConfig, seed: int) -> Timing:
    env = lse.CompactActionWrapper(lse.LLMServingEnv(cfg))
    action = env.budgets.index(512) * len(env.decode_rules) + env.decode_rules.index("all")
    with _Clock() as clock:
        steps = _episode(env, lambda: action, seed)
    return steps, clock.wall, clock.cpu


def bench_native_masks(cfg: lse.SimConfig, seed: int) -> Timing:
    env = lse.LLMServingEnv(cfg)
    n, lv = env.num_slots, env.num_levels
    action = np.zeros(env.action_space.shape, dtype=np.int64)

    def act() -> np.ndarray:
        mask = env.action_masks()
        chunk = mask[: n * (lv + 1)].reshape(n, lv + 1)
        action[:n] = np.where(chunk[:, lv], lv, 0)  # whole prompts where allowed
        action[n: 2 * n] = mask[n * (lv + 1) + 1: n * (lv + 1) + 2 * n: 2]  # every decode
        action[2 * n] = mask[-1]
        return action

    with _Clock() as clock:
        steps = _episode(env, act, seed)
    return steps, clock.wall, clock.cpu


def bench_compose_hybrid(cfg: lse.SimConfig, seed: int) -> Timing:
    env = lse.LLMComposeEnv(cfg, guards=False)
    agent = lse.BaselineAgent("hybrid", native=True)
    with _Clock() as clock:
        steps = _episode(env, lambda: agent.act(env), seed)
    return steps, clock.wall, clock.cpu


def bench_compose_random(cfg: lse.SimConfig, seed: int) -> Timing:
    env = lse.LLMComposeEnv(cfg)
    rng = np.random.default_rng(seed)

    def act() -> int:
        allowed = np.flatnonzero(env.action_masks())
        return int(allowed[rng.integers(allowed.size)])

    with _Clock() as clock:
        steps = _episode(env, act, seed)
    return steps, clock.wall, clock.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=None,
                        help="override num_requests (default: the config's)")
    args = parser.parse_args()
    cfg = lse.load_config(args.config)
    if args.requests:
        cfg = cfg.replace(num_requests=args.requests,
                          warmup_requests=min(cfg.warmup_requests, args.requests - 1))
    warm = cfg.replace(num_requests=1000, warmup_requests=0)
    cases = {
        "engine (simulate, hybrid)": lambda s: bench_engine(cfg, s),
        "env + hybrid (BaselineAgent)": lambda s: bench_env_hybrid(cfg, s),
        "gym.make + hybrid (BaselineAgent)": lambda s: bench_env_hybrid(cfg, s, make=True),
        "compact wrapper + fixed action": lambda s: bench_compact(cfg, s),
        "native action from masks": lambda s: bench_native_masks(cfg, s),
        "v1 + hybrid (native micro-actions)": lambda s: bench_compose_hybrid(cfg, s),
        "v1 + random masked micro-actions": lambda s: bench_compose_random(cfg, s),
    }
    bench_env_hybrid(warm, 0)
    bench_compact(warm, 0)
    bench_compose_hybrid(warm, 0)
    print(f"{Path(args.config).name}: {cfg.num_requests} requests per episode, "
          f"{args.repeat} episodes (seeds 0..{args.repeat - 1}) per case")
    print(f"  {'case':36s} {'per wall s: best / median':>27s} {'per CPU s: best':>16s}")
    for name, fn in cases.items():
        wall_rates, cpu_rates, steps = [], [], 0
        for seed in range(args.repeat):
            steps, wall, cpu = fn(seed)
            wall_rates.append(steps / wall)
            cpu_rates.append(steps / cpu)
        print(f"  {name:36s} {max(wall_rates):>12,.0f} / {statistics.median(wall_rates):>9,.0f}"
              f" {max(cpu_rates):>16,.0f}   ({steps:,} steps per episode)")


if __name__ == "__main__":
    main()
