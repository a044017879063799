"""The ``llm-serving`` command line.

Subcommands:
    simulate   one run; prints the summary table, ``--json`` writes it
    compare    several schedulers over replications with common random numbers; mean ± 95% CI
    stability  backlog growth by scheduler and load (which policies stay stable)
    capacity   largest arrival rate whose SLO attainment meets a target (bisection)
    sweep      a grid of config values x schedulers x replications, appended to a CSV as runs
               finish (a rerun resumes); local processes or a Dask cluster
    train      train a learned scheduler (PPO / MaskablePPO, agents/train.py)
    evaluate   learned and hand-written schedulers on held-out seeds; mean ± 95% CI
    report     the study behind main_report.ipynb: every analysis, CSVs in data/report/

Every subcommand but ``report`` takes ``--config FILE|PRESET`` and any number of
``--set key.path=value``.
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

from llm_serving_env.config.files import load_config, parse_override
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.simulate import simulate

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
    from llm_serving_env.analysis.comparison import compare_policies, wide_table

    cfg = _load(args)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if policies == ["all"]:
        from llm_serving_env.sim.scheduler import canonical_schedulers

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
        from llm_serving_env.plots.figures import plot_comparison

        out = _write_parent(args.plot)
        plot_comparison(long).savefig(out, dpi=120, bbox_inches="tight")
        print(f"wrote {out}")
    return 0


def cmd_capacity(args: argparse.Namespace) -> int:
    """Search the SLO capacity (req/s) of one policy; print the bracket and the probe table."""
    from llm_serving_env.analysis.capacity import CapacityError, capacity

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
    from llm_serving_env.analysis.stability import backlog_table, work_conserving_capacity

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


SWEEP_SHOWN = ("throughput_rps", "ttft_p95_s", "tbt_p95_s", "e2e_mean_s", "slo_attainment")


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep (see llm_serving_env.analysis.sweep); print mean ± 95% CI of headline metrics."""
    from llm_serving_env.analysis.sweep import parse_grid, summarize_sweep, sweep

    cfg = _load(args)
    grid: dict = {}
    for text in args.grid:
        path, values = parse_grid(text)
        if path in grid:
            raise ConfigError("given twice in --grid", path)
        grid[path] = values
    policies = [p.strip() for p in args.policies.split(",") if p.strip()] if args.policies \
        else None
    if policies == ["all"]:
        from llm_serving_env.sim.scheduler import canonical_schedulers

        policies = canonical_schedulers()
    done_now = {"simulations": 0, "rows": 0}

    def count(rows: list) -> None:
        done_now["simulations"] += 1
        done_now["rows"] += len(rows)

    t0 = time.perf_counter()
    try:
        df = sweep(cfg, grid, policies, args.replications, out=_write_parent(args.out),
                   executor=args.executor, workers=args.workers, first_seed=args.first_seed,
                   on_run=count)
    except ConfigError:
        raise  # reported by main() with exit code 2
    except (ImportError, ValueError, OSError) as exc:
        print(f"llm-serving: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nllm-serving: interrupted after {done_now['rows']} new runs; every finished "
              f"run is in {args.out}: rerun the same command to resume", file=sys.stderr)
        return 130
    wall = time.perf_counter() - t0
    print(f"{len(df)} runs: {done_now['rows']} new ({done_now['simulations']} simulations), "
          f"{len(df) - done_now['rows']} already in {args.out}; wall={wall:.2f}s")
    print(f"mean ± 95% CI half-width over {args.replications} replications "
          f"(seconds, requests/s, fractions)")
    summary = summarize_sweep(df)
    shown = [m for m in SWEEP_SHOWN if m in set(summary["metric"])]
    keys = list(summary.columns[: list(summary.columns).index("metric")])
    rows = summary[summary["metric"].isin(shown)]
    cells = rows.assign(cell=[f"{m:.4g}" if pd.isna(h) else f"{m:.4g} ± {h:.2g}"
                              for m, h in zip(rows["mean"], rows["half_width"], strict=True)])
    table = cells.pivot_table(index=keys, columns="metric", values="cell", aggfunc="first",
                              sort=False, dropna=False)
    with pd.option_context("display.width", 200, "display.max_columns", 50,
                           "display.max_rows", 500):
        print(table[shown].to_string())
    print(f"wrote {args.out}")
    if args.summary:
        out = _write_parent(args.summary)
        summary.to_csv(out, index=False)
        print(f"wrote {out}")
    if args.plot:
        from llm_serving_env.plots.figures import plot_latency_throughput

        if not grid:
            print("llm-serving: error: --plot needs a --grid (its x axis)", file=sys.stderr)
            return 1
        out = _write_parent(args.plot)
        fig = plot_latency_throughput(summary, metric=args.metric, x=next(iter(grid)))
        fig.savefig(out, dpi=120, bbox_inches="tight")
        print(f"wrote {out}")
    return 0


def _parse_value(text: str):
    """A --hyper value: int, float, or the string itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def cmd_train(args: argparse.Namespace) -> int:
    """Train a learned scheduler (agents/train.py; torch and SB3 imported here, lazily)."""
    from agents.train import command_line, curve_path, sidecar_path, train

    cfg = _load(args)
    hyper = {}
    for text in args.hyper:
        key, sep, value = text.partition("=")
        if not sep or not key:
            print(f"llm-serving: error: --hyper {text!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        hyper[key.strip()] = _parse_value(value.strip())
    try:
        side = train(cfg, args.out, algo=args.algo, timesteps=args.timesteps, seed=args.seed,
                     episode_requests=args.episode_requests or None, reward=args.reward,
                     action_space=args.action_space, n_envs=args.n_envs, hyper=hyper,
                     tensorboard=args.tensorboard, progress=not args.no_progress,
                     config_source=args.config, overrides=args.set,
                     command=command_line(args))
    except (ValueError, TypeError) as exc:
        print(f"llm-serving: error: {exc}", file=sys.stderr)
        return 2
    last = side["last_episodes_mean"] or {}
    print(f"trained {side['algo']} for {side['timesteps']} steps ({side['episodes']} episodes) "
          f"in {side['wall_time_s']:.0f}s; last episodes: SLO attainment "
          f"{last.get('slo_attainment', float('nan')):.3f}")
    print(f"wrote {args.out}, {sidecar_path(args.out)}, {curve_path(args.out)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Learned vs hand-written schedulers on held-out seeds (agents/evaluate.py)."""
    from agents.evaluate import evaluate, format_table, write_csv
    from agents.policy import ModelLoadError

    cfg = _load(args)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    try:
        ev = evaluate(cfg, policies, num_seeds=args.seeds, first_seed=args.first_seed,
                      workers=args.workers, progress=not args.no_progress)
    except (ValueError, ModelLoadError) as exc:
        print(f"llm-serving: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(ev))
    if args.out:
        print(f"wrote {write_csv(ev, _write_parent(args.out))}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Run the report's analyses (llm_serving_env/report.py) and write their CSVs."""
    from llm_serving_env.study.report import ANALYSES, quick_mode, run_all

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    bad = [n for n in only or [] if n not in ANALYSES]
    if bad:
        print(f"llm-serving: error: --only {','.join(bad)}: unknown analysis; choose from "
              f"{', '.join(ANALYSES)}", file=sys.stderr)
        return 2
    quick = quick_mode(args.full)
    if args.full and quick:
        print("LLM_SERVING_QUICK is set: running the quick sizes despite --full")
    run_all(quick=quick, out_dir=args.out_dir, workers=args.workers, only=only)
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

    p = sub.add_parser("sweep", help="grid of config values x schedulers x replications")
    _add_config_args(p)
    p.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=VALUES",
                   help="a grid axis: key.path=start:stop:step (stop included when on the "
                        "grid) or key.path=a,b,c (YAML values); repeatable, product of all")
    p.add_argument("--policies", default=None,
                   help="comma-separated scheduler names, or 'all' (default: the config's)")
    p.add_argument("--replications", type=int, default=3,
                   help="runs per point and policy, seeds FIRST_SEED.. (default 3)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="CSV",
                   help="one row per run, appended as runs finish; a rerun skips done runs")
    p.add_argument("--executor", default="local", metavar="local|dask://HOST:PORT",
                   help="where runs execute (default: local processes)")
    p.add_argument("--workers", type=int, default=None,
                   help="local processes (default: one per CPU; 1 = this process)")
    p.add_argument("--summary", default=None, metavar="CSV",
                   help="write mean/CI per point, policy and metric as CSV")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="plot --metric against the first --grid path, per policy, with CIs")
    p.add_argument("--metric", default="ttft_p95_s", help="metric for --plot")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("train", help="train a learned scheduler (PPO / MaskablePPO)")
    _add_config_args(p)
    p.add_argument("--algo", choices=("ppo", "maskable_ppo"), default="ppo")
    p.add_argument("--timesteps", type=int, default=200_000, help="environment steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="ZIP",
                   help="model file, e.g. agents/zoo/NAME.zip (NAME.json and NAME.curve.csv "
                        "are written beside it)")
    p.add_argument("--episode-requests", type=int, default=2000, metavar="N",
                   help="arrivals per training episode (default 2000; 0 = the config's)")
    p.add_argument("--reward", choices=("goodput", "slo", "latency"), default="goodput")
    p.add_argument("--action-space", choices=("slo", "compact", "native"), default="slo",
                   help="slo: modes around slo_aware (agents/actions.py); compact: the env's "
                        "CompactActionWrapper; native: the env's MultiDiscrete action")
    p.add_argument("--n-envs", type=int, default=4, help="envs stepped in this process")
    p.add_argument("--hyper", action="append", default=[], metavar="KEY=VALUE",
                   help="PPO hyperparameter, e.g. learning_rate=1e-4 (repeatable)")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write TensorBoard logs (needs tensorboard)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate",
                       help="learned vs hand-written schedulers on held-out seeds (mean ± CI)")
    _add_config_args(p)
    p.add_argument("--policies", required=True,
                   help="comma-separated: scheduler names, ppo:PATH.zip, maskable_ppo:PATH.zip, "
                        "mode:K, or 'all'")
    p.add_argument("--seeds", type=int, default=10, help="replications per policy (>= 2)")
    p.add_argument("--first-seed", type=int, default=10_000,
                   help="first seed (default 10000; training uses seeds below)")
    p.add_argument("--workers", type=int, default=None,
                   help="local processes (default: one per CPU)")
    p.add_argument("--out", default=None, metavar="CSV", help="write the table, one row per policy")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="run the report's analyses and write data/report/*.csv")
    p.add_argument("--full", action="store_true",
                   help="the study's real sizes (about 21 min on 2 cores); default: quick "
                        "sizes (a couple of minutes; also forced by LLM_SERVING_QUICK=1)")
    p.add_argument("--out-dir", default="data/report", metavar="DIR",
                   help="where the CSVs go (default data/report)")
    p.add_argument("--workers", type=int, default=None,
                   help="local processes (default: one per CPU; 1 = this process)")
    p.add_argument("--only", default=None, metavar="A,B",
                   help="run only these analyses (comma-separated names)")
    p.set_defaults(func=cmd_report)
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
