"""How much a clairvoyant lookahead finds beyond its base rule: the teacher of
``agents.lookahead`` and the rule itself on the same held-out seeds (common random numbers),
paired seed by seed. The teacher plans with the true future: its attainment shows that the
room exists (its runs are feasible schedules), not what a scheduler could reach.

    .venv/bin/python scripts/lookahead_headroom.py tight_ttft --seeds 10 --requests 3000 \
        --out agents/zoo/lookahead_tight_ttft.headroom.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agents.evaluate import EVAL_FIRST_SEED
from agents.lookahead import run_lookahead
from llm_serving_env.analysis.stats import t_interval
from llm_serving_env.config import load_config
from llm_serving_env.sim.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario")
    parser.add_argument("--rule", default="slo_triage")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    cfg = load_config(ROOT / "configs" / "benchmarks" / f"{args.scenario}.yaml").replace(
        {"num_requests": args.requests, "warmup_requests": args.requests // 10})
    rows = []
    for k in range(args.seeds):
        seed = EVAL_FIRST_SEED + k
        t0 = time.perf_counter()
        result, teacher = run_lookahead(cfg, seed, base=args.rule)
        wall = time.perf_counter() - t0
        rule = simulate(cfg, args.rule, seed=seed).summary()
        mine = result.summary()
        rows.append({"scenario": args.scenario, "seed": seed, "num_requests": args.requests,
                     "rule": args.rule, "rule_slo_attainment": rule["slo_attainment"],
                     "rule_goodput_rps": rule["goodput_rps"],
                     "teacher_slo_attainment": mine["slo_attainment"],
                     "teacher_goodput_rps": mine["goodput_rps"],
                     "decisions_compared": teacher.considered,
                     "decisions_changed": teacher.changed, "teacher_wall_s": round(wall, 1)})
        print(f"seed {seed}: {args.rule} {rule['slo_attainment']:.4f}, teacher "
              f"{mine['slo_attainment']:.4f} ({teacher.changed} of {teacher.considered} "
              f"compared decisions changed, {wall:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out, index=False)
    ratio = t_interval((frame["teacher_goodput_rps"] / frame["rule_goodput_rps"]).to_numpy())
    print(f"teacher / {args.rule} goodput: {ratio.mean:.4f} ± {ratio.half_width:.4f} (95%, "
          f"{args.seeds} seeds); attainment {frame['rule_slo_attainment'].mean():.4f} -> "
          f"{frame['teacher_slo_attainment'].mean():.4f}; changed "
          f"{np.sum(frame['decisions_changed']) / np.sum(frame['decisions_compared']):.1%} of "
          "compared decisions")


if __name__ == "__main__":
    main()
