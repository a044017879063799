"""Train, evaluate and audit the LLMServing-v1 (compose) models of ``agents/zoo/``, one per
benchmark scenario, each cloned from that scenario's best hand-written rule.

For each scenario of :data:`SCENARIOS` (or those named on the command line):

1. ``llm-serving train``: MaskablePPO with the shared-weight compose policy, behaviour cloning
   of the rule's native actions on 30 training episodes of 2,000 requests, one DAgger round,
   then ``--timesteps`` PPO steps (default 0: see the README for why) ->
   ``agents/zoo/compose_SCENARIO.zip`` (+ ``.json`` sidecar, ``.curve.csv``);
2. ``llm-serving evaluate`` on 10 held-out seeds of the full scenario, every rule, the model
   and the bound -> ``agents/zoo/compose_SCENARIO.eval_SCENARIO.csv``;
3. :func:`agents.agreement.state_dependence` on 2 held-out seeds: the share of the model's
   decisions at which its batch equals each rule's, and differs from all ->
   ``agents/zoo/compose_SCENARIO.agreement.json``.

    .venv/bin/python scripts/compose_zoo.py [SCENARIO ...] [--timesteps N] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from agents.agreement import state_dependence
from agents.evaluate import EVAL_FIRST_SEED
from llm_serving_env.cli import main as cli
from llm_serving_env.config import load_config

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "agents" / "zoo"
#: Scenario -> the rule cloned (the best hand-written scheduler there).
SCENARIOS = {"bursty_chat": "slo_triage", "bursty_interactive": "slo_triage",
             "heavy_tail": "slo_triage", "kv_pressure": "slo_triage",
             "tight_ttft": "slo_triage", "two_class": "slo_classes"}
AGREEMENT_SEEDS = 2


def run(scenario: str, timesteps: int, skip_train: bool) -> None:
    config = f"configs/benchmarks/{scenario}.yaml"
    model = ZOO / f"compose_{scenario}.zip"
    expert = SCENARIOS[scenario]
    if not skip_train:
        code = cli(["train", "--config", config, "--algo", "maskable_ppo", "--action-space",
                    "compose", "--bc-expert", expert, "--bc-episodes", "30", "--bc-epochs",
                    "10", "--dagger-rounds", "1", "--timesteps", str(timesteps),
                    "--gamma-per-s", "0.9", "--seed", "0", "--no-progress", "--out",
                    str(model.relative_to(ROOT))])
        if code:
            raise SystemExit(code)
    code = cli(["evaluate", "--config", config, "--policies",
                f"all,ppo:{model.relative_to(ROOT)}", "--seeds", "10", "--no-progress",
                "--out", str((ZOO / f"compose_{scenario}.eval_{scenario}.csv")
                             .relative_to(ROOT))])
    if code:
        raise SystemExit(code)
    cfg = load_config(config)
    t0 = time.perf_counter()
    runs = [state_dependence(cfg, f"ppo:{model}", seed=EVAL_FIRST_SEED + k)
            for k in range(AGREEMENT_SEEDS)]
    report = {
        "model": model.name, "scenario": scenario, "expert": expert,
        "seeds": [EVAL_FIRST_SEED + k for k in range(AGREEMENT_SEEDS)],
        "decisions": [r["decisions"] for r in runs],
        "differs_from_all": float(np.mean([r["differs_from_all"] for r in runs])),
        "agrees_with": {name: float(np.mean([r["agrees_with"][name] for r in runs]))
                        for name in runs[0]["agrees_with"]},
        "wall_time_s": round(time.perf_counter() - t0, 1)}
    (ZOO / f"compose_{scenario}.agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{scenario}: differs from every rule at {report['differs_from_all']:.1%} of "
          f"{sum(report['decisions'])} decisions; agrees with {expert} at "
          f"{report['agrees_with'][expert]:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--timesteps", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            raise SystemExit(f"unknown scenario {scenario!r}: choose from {sorted(SCENARIOS)}")
        run(scenario, args.timesteps, args.skip_train)


if __name__ == "__main__":
    main()
