"""Train, evaluate and audit the LLMServing-v1 (compose) models of ``agents/zoo/``, one per
benchmark scenario, each cloned from that scenario's best hand-written rule.

For each scenario of :data:`SCENARIOS` (or those named on the command line):

1. ``llm-serving train``: MaskablePPO with the shared-weight compose policy, behaviour cloning
   of the rule's native actions on 30 training episodes of 2,000 requests (long_context: 12
   of 1,000; see :data:`SCENARIOS`), one DAgger round,
   then ``--timesteps`` PPO steps (default 0: see the README for why) ->
   ``agents/zoo/compose_SCENARIO.zip`` (+ ``.json`` sidecar, ``.curve.csv``);
2. ``llm-serving evaluate`` on 10 held-out seeds of the full scenario (long_context: 3,000
   requests per seed), every rule, the model
   and the bound -> ``agents/zoo/compose_SCENARIO.eval_SCENARIO.csv``;
3. :func:`agents.agreement.state_dependence` on 2 held-out seeds: the share of the model's
   decisions at which its batch equals each rule's, and differs from all ->
   ``agents/zoo/compose_SCENARIO.agreement.json``.

    .venv/bin/python scripts/compose_zoo.py [SCENARIO ...] [--timesteps N] [--skip-train]
        [--zoo DIR] [--seeds K] [--episode-requests N] [--bc-episodes N] [--eval-requests N]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from agents.agreement import state_dependence
from agents.evaluate import EVAL_FIRST_SEED
from llm_serving_env.cli import main as cli
from llm_serving_env.config import load_config

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "agents" / "zoo"

@dataclass(frozen=True)
class Scenario:
    """How one scenario's compose model is trained and evaluated.

    expert: the rule cloned (the best hand-written scheduler there).
    episode_requests: arrivals per training episode.
    bc_episodes: behaviour-cloning episodes (DAgger adds a quarter of them).
    eval_requests: arrivals per held-out evaluation run (None: the config's ``num_requests``),
        with a tenth of them warm-up.
    """

    expert: str = "slo_triage"
    episode_requests: int = 2000
    bc_episodes: int = 30
    eval_requests: int | None = None


#: The zoo's scenarios. long_context's runs are long in decisions (about 36 per request: its
#: prompts take many chunks and its answers average 128 tokens), and a compose model decides
#: at about 1,000 decisions per wall second, so it trains on shorter episodes and is
#: evaluated on 3,000 requests per seed rather than its config's 20,000.
SCENARIOS = {"bursty_chat": Scenario(), "bursty_interactive": Scenario(),
             "heavy_tail": Scenario(), "kv_pressure": Scenario(), "tight_ttft": Scenario(),
             "two_class": Scenario(expert="slo_classes"),
             "long_context": Scenario(episode_requests=1000, bc_episodes=12,
                                      eval_requests=3000)}
AGREEMENT_SEEDS = 2


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (sidecars and CSVs stay portable)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run(scenario: str, plan: Scenario, timesteps: int = 0, skip_train: bool = False,
        zoo: Path = ZOO, seeds: int = 10, agreement_seeds: int = AGREEMENT_SEEDS) -> dict:
    """Train (unless ``skip_train``), evaluate and audit ``scenario``'s compose model in
    ``zoo`` as ``plan`` says; returns the agreement report written beside it."""
    config = f"configs/benchmarks/{scenario}.yaml"
    model = zoo / f"compose_{scenario}.zip"
    expert = plan.expert
    if not skip_train:
        code = cli(["train", "--config", config, "--algo", "maskable_ppo", "--action-space",
                    "compose", "--bc-expert", expert, "--bc-episodes", str(plan.bc_episodes),
                    "--bc-epochs", "10", "--dagger-rounds", "1", "--timesteps", str(timesteps),
                    "--gamma-per-s", "0.9", "--seed", "0", "--episode-requests",
                    str(plan.episode_requests), "--no-progress", "--out", _shown(model)])
        if code:
            raise SystemExit(code)
    cfg = load_config(ROOT / config)
    length: list[str] = []
    if plan.eval_requests is not None:
        length = ["--set", f"num_requests={plan.eval_requests}",
                  "--set", f"warmup_requests={plan.eval_requests // 10}"]
        cfg = cfg.replace({"num_requests": plan.eval_requests,
                           "warmup_requests": plan.eval_requests // 10})
    code = cli(["evaluate", "--config", config, *length, "--policies",
                f"all,ppo:{_shown(model)}", "--seeds", str(seeds), "--no-progress",
                "--out", _shown(zoo / f"compose_{scenario}.eval_{scenario}.csv")])
    if code:
        raise SystemExit(code)
    t0 = time.perf_counter()
    runs = [state_dependence(cfg, f"ppo:{model}", seed=EVAL_FIRST_SEED + k)
            for k in range(agreement_seeds)]
    report = {
        "model": model.name, "scenario": scenario, "expert": expert,
        "seeds": [EVAL_FIRST_SEED + k for k in range(agreement_seeds)],
        "decisions": [r["decisions"] for r in runs],
        "differs_from_all": float(np.mean([r["differs_from_all"] for r in runs])),
        "agrees_with": {name: float(np.mean([r["agrees_with"][name] for r in runs]))
                        for name in runs[0]["agrees_with"]},
        "wall_time_s": round(time.perf_counter() - t0, 1)}
    (zoo / f"compose_{scenario}.agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{scenario}: differs from every rule at {report['differs_from_all']:.1%} of "
          f"{sum(report['decisions'])} decisions; agrees with {expert} at "
          f"{report['agrees_with'][expert]:.1%}")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--timesteps", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--zoo", type=Path, default=ZOO, help="where the models go")
    parser.add_argument("--seeds", type=int, default=10, help="held-out evaluation seeds")
    parser.add_argument("--agreement-seeds", type=int, default=AGREEMENT_SEEDS)
    for name in ("episode_requests", "bc_episodes", "eval_requests"):
        parser.add_argument("--" + name.replace("_", "-"), type=int,
                            help=f"override each scenario's {name}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}: choose from {sorted(SCENARIOS)}")
    overrides = {k: getattr(args, k) for k in ("episode_requests", "bc_episodes",
                                               "eval_requests") if getattr(args, k) is not None}
    args.zoo.mkdir(parents=True, exist_ok=True)
    for scenario in args.scenarios:
        run(scenario, replace(SCENARIOS[scenario], **overrides), args.timesteps,
            args.skip_train, args.zoo.resolve(), args.seeds, args.agreement_seeds)


if __name__ == "__main__":
    main()
