"""Engine speed: simulated requests per wall second.

Runs ``hybrid`` on ``configs/default.yaml`` (20,000 requests) a few times and prints the best
and median figures. Usage::

    .venv/bin/python benchmarks/bench_engine.py [--config FILE] [--policy NAME]
        [--engine auto|compiled|reference] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import llm_serving_env as lse

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--policy", default="hybrid")
    parser.add_argument("--engine", choices=lse.ENGINES, default="auto",
                        help="simulate's engine (auto: compiled when it covers the run)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cfg = lse.load_config(args.config)
    lse.simulate(cfg.replace(num_requests=2000, warmup_requests=0), policy=args.policy,
                 engine=args.engine)  # warm
    rates, batches = [], 0
    for seed in range(args.repeat):
        t0 = time.perf_counter()
        result = lse.simulate(cfg, policy=args.policy, seed=seed, engine=args.engine)
        wall = time.perf_counter() - t0
        rates.append(cfg.num_requests / wall)
        batches = len(result.batches)
    print(f"{args.policy} on {Path(args.config).name}: {cfg.num_requests} requests, "
          f"{batches} batches per run")
    print(f"simulated requests per wall second: best {max(rates):,.0f}, "
          f"median {statistics.median(rates):,.0f} over {args.repeat} runs")


if __name__ == "__main__":
    main()
