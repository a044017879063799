"""The ``llm-serving`` command line.

Subcommands:
    simulate   one run; prints the summary table, ``--json`` writes it
    compare    several schedulers over replications with common random numbers; mean ± 95% CI
    stability  backlog growth by scheduler and load (which policies stay stable)
    capacity   largest arrival rate whose SLO attainment meets a target (bisection)

Every subcommand takes ``--config FILE|PRESET`` and any number of ``--set key.path=value``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from llm_serving_env.config import ConfigError, SimConfig, load_config, parse_override
from llm_serving_env.simulation import simulate

HEADLINE = ("throughput_rps", "ttft_mean_s", "ttft_p95_s", "tbt_mean_s", "tbt_p95_s",
            "e2e_mean_s", "e2e_p95_s", "gpu_utilization", "slo_attainment", "goodput_rps")


def _load(args: argparse.Namespace) -> SimConfig:
    cfg = load_config(args.config)
    if args.set:
        cfg = cfg.replace(dict(parse_override(text) for text in args.set))
    return cfg


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML config file or preset name")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config field, e.g. workload.arrival.rate_per_s=3 (repeatable)")


def _write_parent(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def cmd_simulate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    t0 = time.perf_counter()
    result = simulate(cfg, policy=args.policy, seed=args.seed)
    wall = time.perf_counter() - t0
    summary = result.summary()
    name = args.policy or cfg.scheduler.name
    print(f"scheduler={name} seed={args.seed} requests={cfg.num_requests} "
          f"(warm-up {cfg.warmup_requests}) wall={wall:.2f}s")
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {text}")
    if args.json:
        out = _write_parent(args.json)
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in summary.items()}
        out.write_text(json.dumps({"scheduler": name, "seed": args.seed, **clean}, indent=2))
        print(f"wrote {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from llm_serving_env.comparison import compare_policies, wide_table

    cfg = _load(args)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if policies == ["all"]:
        from llm_serving_env.scheduling import canonical_schedulers

        policies = canonical_schedulers()
    long = compare_policies(cfg, policies, num_seeds=args.seeds, first_seed=args.first_seed,
                            workers=args.workers)
    shown = [m for m in HEADLINE if m in set(long["metric"])]
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(f"{args.seeds} replications per policy, mean ± 95% CI half-width "
              f"(seconds, requests/s)")
        print(wide_table(long, shown).to_string())
    if args.out:
        out = _write_parent(args.out)
        long.to_csv(out, index=False)
        print(f"wrote {out}")
    if args.plot:
        from llm_serving_env.plots import plot_comparison

        out = _write_parent(args.plot)
        plot_comparison(long).savefig(out, dpi=120, bbox_inches="tight")
        print(f"wrote {out}")
    return 0


def cmd_capacity(args: argparse.Namespace) -> int:
    """Search the SLO capacity (req/s) of one policy; print the bracket and the probe table."""
    from llm_serving_env.capacity import CapacityError, capacity

    cfg = _load(args)
    t0 = time.perf_counter()
    try:
        result = capacity(cfg, policy=args.policy, slo_attainment=args.target,
                          replications=args.replications, rel_tol=args.rel_tol,
                          low_rate_per_s=args.low, high_rate_per_s=args.high, seed=args.seed)
    except ConfigError:
        raise  # reported by main() with exit code 2
    except (CapacityError, ValueError) as exc:
        print(f"llm-serving: error: {exc}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    print(result)
    print(f"  wall={wall:.2f}s, {cfg.num_requests} requests per run (warm-up "
          f"{cfg.warmup_requests})")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(result.probes.to_string(float_format=lambda x: f"{x:.4g}"))
    if args.json:
        out = _write_parent(args.json)
        out.write_text(json.dumps(result.to_dict(), indent=2))
        print(f"wrote {out}")
    return 0


def cmd_stability(args: argparse.Namespace) -> int:
    from llm_serving_env.stability import backlog_table, work_conserving_capacity

    cfg = _load(args)
    loads = [float(x) for x in args.loads.split(",")]
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    table = backlog_table(cfg, loads, policies, seed=args.seed)
    print(f"work-conserving capacity K / ((E[L] + E[B] - 1) S(K)) = "
          f"{work_conserving_capacity(cfg):.3f} requests/s; backlog growth (requests/s, 95% CI)")
    cells = table.assign(growth=[f"{m:+.3f} ± {h:.3f}" + ("" if s else " unstable")
                                 for m, h, s in zip(table["growth_per_s"], table["half_width"],
                                                    table["stable"], strict=True)])
    print(cells.pivot(index="policy", columns="load", values="growth")
          .loc[policies].to_string())
    if args.out:
        out = _write_parent(args.out)
        table.to_csv(out, index=False)
        print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="run one simulation and print its summary")
    _add_config_args(p)
    p.add_argument("--policy", default=None, help="scheduler name (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="OUT", help="write the summary as JSON")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("compare", help="compare schedulers over replications (mean ± 95%% CI)")
    _add_config_args(p)
    p.add_argument("--policies", default="request_level,hybrid",
                   help="comma-separated scheduler names, or 'all'")
    p.add_argument("--seeds", type=int, default=5, help="replications per policy (>= 2)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None,
                   help="local processes (default: one per CPU)")
    p.add_argument("--out", default=None, metavar="CSV", help="write the long table as CSV")
    p.add_argument("--plot", default=None, metavar="PNG", help="write a comparison plot")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("capacity",
                       help="largest arrival rate whose SLO attainment meets a target")
    _add_config_args(p)
    p.add_argument("--policy", default=None, help="scheduler name (default: the config's)")
    p.add_argument("--target", type=float, default=0.9,
                   help="SLO attainment target in (0, 1) (default 0.9)")
    p.add_argument("--replications", type=int, default=5, help="replications per rate (>= 2)")
    p.add_argument("--rel-tol", type=float, default=0.02,
                   help="stop when (high - low) / low < REL_TOL (default 0.02)")
    p.add_argument("--low", type=float, default=None, metavar="RATE",
                   help="starting lower bound, requests/s (default: bracket automatically)")
    p.add_argument("--high", type=float, default=None, metavar="RATE",
                   help="starting upper bound, requests/s")
    p.add_argument("--seed", type=int, default=0, help="first replication seed")
    p.add_argument("--json", default=None, metavar="OUT", help="write the result as JSON")
    p.set_defaults(func=cmd_capacity)
    p = sub.add_parser("stability", help="backlog growth by policy and load (Li et al.)")
    _add_config_args(p)
    p.add_argument("--loads", default="0.5,0.8,0.9,0.95",
                   help="arrival rates as fractions of the work-conserving capacity")
    p.add_argument("--policies", default="request_level,prefill_first,orca,hybrid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="CSV")
    p.set_defaults(func=cmd_stability)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"llm-serving: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
