"""Engine cost under overload: wall time per simulated request and per iteration against load.

Runs a policy on ``configs/default.yaml`` with its Poisson rate set to 0.5x, 1x, 2x and 3x
hybrid's capacity (9.05 req/s, Li et al.'s formula in the config's header), a few times each,
and prints best and median wall microseconds per simulated request and per iteration, and
each load's median per request relative to 0.5x. An overloaded run's waiting list grows to
most of its requests, so an engine whose per-iteration work grows with the backlog shows here
as a rising cost per iteration. Usage::

    .venv/bin/python benchmarks/bench_overload.py [--requests N] [--policy NAME]
        [--engine auto|compiled|reference] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import llm_serving_env as lse

ROOT = Path(__file__).resolve().parents[1]
CAPACITY_PER_S = 9.05  # hybrid (budget 512) on default.yaml, see the config's header
LOADS = (0.5, 1.0, 2.0, 3.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--policy", default="hybrid")
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--engine", choices=lse.ENGINES, default="auto",
                        help="simulate's engine (auto: compiled when it covers the run)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = lse.load_config(args.config).replace(num_requests=args.requests, warmup_requests=0)
    lse.simulate(base.replace(num_requests=2000), policy=args.policy,
                 engine=args.engine)  # warm the imports
    print(f"{args.policy} on {Path(args.config).name}, {args.requests:,} requests, "
          f"best / median of {args.repeat} runs (wall microseconds)")
    print(f"{'load':>5} {'iterations':>10} {'per request':>16} {'per iteration':>16} "
          f"{'vs 0.5x':>8}")
    reference = None
    for load in LOADS:
        cfg = base.replace({"workload.arrival.rate_per_s": CAPACITY_PER_S * load})
        walls, iterations = [], 0
        for seed in range(args.repeat):
            t0 = time.perf_counter()
            result = lse.simulate(cfg, policy=args.policy, seed=seed, engine=args.engine)
            walls.append(time.perf_counter() - t0)
            iterations = len(result.batches)
        per_req = [w / args.requests * 1e6 for w in walls]
        per_it = [w / iterations * 1e6 for w in walls]
        median = statistics.median(per_req)
        reference = median if reference is None else reference
        print(f"{load:>4}x {iterations:>10,} {min(per_req):>7.1f} / {median:>6.1f} "
              f"{min(per_it):>7.1f} / {statistics.median(per_it):>6.1f} "
              f"{median / reference:>7.2f}x")


if __name__ == "__main__":
    main()
