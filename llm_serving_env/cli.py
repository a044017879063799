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
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from llm_serving_env.analysis.replications import Interrupted
from llm_serving_env.config.files import load_config, parse_override
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import SchedulingError
from llm_serving_env.sim.fast import ENGINES
from llm_serving_env.sim.result import SLO_KEYS, SUMMARY_KEYS
from llm_serving_env.sim.simulate import CompiledEngineUnavailable, choose_engine, simulate

HEADLINE = ("throughput_rps", "ttft_mean_s", "ttft_p95_s", "tbt_mean_s", "tbt_p95_s",
            "e2e_mean_s", "e2e_p95_s", "gpu_utilization", "slo_attainment", "goodput_rps")

#: Exit code of a usage error (bad flag, config or output path), as argparse uses.
EXIT_USAGE = 2
#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

EXAMPLES = """\
examples:
  llm-serving simulate --config default --set num_requests=2000 --policy hybrid --seed 3
  llm-serving simulate --config configs/mooncake.yaml --progress --json out/run.json --mkdir
  llm-serving compare --config default --policies all --seeds 5 --out out/cmp.csv --mkdir
  llm-serving stability --config li_chat --loads 0.5,0.9 --policies request_level,hybrid
  llm-serving capacity --config default --policy hybrid --target 0.9 --replications 3
  llm-serving sweep --config default --grid workload.arrival.rate_per_s=2:8:2 \\
      --policies hybrid,orca --replications 3 --out sweeps/rate.csv --mkdir
  llm-serving train --config bursty_chat --timesteps 200000 --out agents/zoo/mine.zip
  llm-serving evaluate --config bursty_chat --policies hybrid,ppo:agents/zoo/ppo_slo_bursty_chat.zip
  llm-serving report --only comparison

Errors in flags, configs or output paths are one line on stderr and exit code 2, before any
run. Ctrl-C stops at once (exit code 130); compare, sweep and evaluate keep the runs already
finished and write them to --out, marked as partial. Output folders must exist unless --mkdir
is given.
"""


class CliError(Exception):
    """A user mistake found by the command line: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line (and a pointer to --help), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------------------------
# Flag values
# --------------------------------------------------------------------------------------------


def _int_at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{value} is below {minimum}; must be an integer >= {minimum}{why}")
        return value
    return parse


def _number(low: float | None = None, high: float | None = None, *, open_low: bool = True,
            open_high: bool = True) -> Callable[[str], float]:
    """argparse type: a finite number in the interval given."""
    lo_text = "" if low is None else f"{'>' if open_low else '>='} {low:g}"
    hi_text = "" if high is None else f"{'<' if open_high else '<='} {high:g}"
    allowed = " and ".join(t for t in (lo_text, hi_text) if t) or "finite"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        bad = not math.isfinite(value)
        if low is not None:
            bad = bad or (value <= low if open_low else value < low)
        if high is not None:
            bad = bad or (value >= high if open_high else value > high)
        if bad:
            raise argparse.ArgumentTypeError(f"{text}: must be a number {allowed}")
        return value
    return parse


SEED = _int_at_least(0, " (seeds are non-negative)")
REPLICATIONS_CI = _int_at_least(2, ": a confidence interval needs at least 2 replications")
WORKERS = _int_at_least(1, " (1 runs in this process)")


def _names(text: str, flag: str) -> list[str]:
    """A comma-separated list: non-empty, no name twice."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CliError(f"{flag} {text!r}: empty list; give comma-separated names")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CliError(f"{flag} {text!r}: {', '.join(twice)} listed twice")
    return names


def _policies(cfg: SimConfig, text: str, flag: str = "--policies") -> list[str]:
    """Scheduler names from ``--policies``, each checked against ``cfg`` before any run.

    ``all`` expands to every registered scheduler that can run on ``cfg``; one that cannot
    (its config check raises ConfigError) is skipped with a line on stderr saying why. A name
    given explicitly that cannot run is an error naming it and the reason.
    """
    from llm_serving_env.analysis.comparison import runnable_policies
    from llm_serving_env.sim.scheduler import canonical_schedulers

    names = _names(text, flag)
    if "all" in names:
        if names != ["all"]:
            raise CliError(f"{flag} {text!r}: 'all' cannot be combined with other names")
        ok, skipped = runnable_policies(cfg, canonical_schedulers())
        for name, reason in skipped:
            print(f"llm-serving: skipping {name}: cannot run on this config: {reason}",
                  file=sys.stderr)
        if not ok:
            raise CliError(f"{flag} all: no scheduler can run on this config")
        return ok
    _, skipped = runnable_policies(cfg, names)
    if skipped:
        name, reason = skipped[0]
        raise CliError(f"{flag} {name}: cannot run on this config: {reason}")
    return names


def _load(args: argparse.Namespace) -> SimConfig:
    cfg = load_config(args.config)
    if args.set:
        cfg = cfg.replace(dict(parse_override(text) for text in args.set))
    return cfg


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML config file or preset name")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config field, e.g. workload.arrival.rate_per_s=3 (repeatable)")


def _add_mkdir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mkdir", action="store_true",
                   help="create missing parent folders of the output files (default: a "
                        "missing folder is an error)")


def _add_progress(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"progress bar of {what} on stderr (default: when stderr is a terminal)")


def _progress(args: argparse.Namespace) -> bool:
    if args.progress is None:
        return sys.stderr.isatty()
    return bool(args.progress)


# --------------------------------------------------------------------------------------------
# Output paths: checked before any run
# --------------------------------------------------------------------------------------------


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output(text: str, flag: str, mkdir: bool = False, suffixes: Sequence[str] = ()
                 ) -> Path:
    """The path of an output file, checked before any run.

    Errors (CliError) when the path is empty or a folder, goes through an existing file
    (``FILE/x.csv``), its folder is missing and ``mkdir`` is False, its folder is not
    writable, or its suffix is not one of ``suffixes`` (when given). Creates nothing.
    """
    if not text.strip():
        raise CliError(f"{flag} {text!r}: empty path")
    path = Path(text)
    if path.is_dir():
        raise CliError(f"{flag} {text}: is a folder; give a file path")
    if suffixes and path.suffix.lower().lstrip(".") not in suffixes:
        raise CliError(f"{flag} {text}: unsupported file type {path.suffix or '(none)'!r}; "
                       f"allowed: {', '.join('.' + s for s in suffixes)}")
    parent = path.parent
    existing = _first_existing(parent)
    if existing.exists() and not existing.is_dir():
        raise CliError(f"{flag} {text}: {existing} is a file, not a folder")
    if existing != parent and not mkdir:
        raise CliError(f"{flag} {text}: folder {parent} does not exist; create it or pass "
                       f"--mkdir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"{flag} {text}: folder {existing} is not writable")
    return path


def _outputs(args: argparse.Namespace, flags: Sequence[tuple[str, str, Sequence[str]]]
             ) -> dict[str, Path]:
    """Check every output flag given (``(attribute, flag, suffixes)``), then create the
    missing folders when ``--mkdir``; ``{attribute: path}``."""
    mkdir = bool(getattr(args, "mkdir", False))
    paths = {}
    for attr, flag, suffixes in flags:
        value = getattr(args, attr, None)
        if value is not None:
            paths[attr] = check_output(value, flag, mkdir, suffixes)
    seen: dict[Path, str] = {}
    for attr, flag, _ in flags:
        if attr in paths:
            key = paths[attr].resolve()
            if key in seen:
                raise CliError(f"{flag} {paths[attr]}: also given as {seen[key]}")
            seen[key] = flag
    if mkdir:
        for path in paths.values():
            path.parent.mkdir(parents=True, exist_ok=True)
    return paths


def _image_types() -> tuple[str, ...]:
    from matplotlib.figure import Figure

    return tuple(Figure().canvas.get_supported_filetypes())


def _partial_note(done: int, total: int, out: Path | None, what: str = "runs") -> str:
    where = f"partial results written to {out}" if out is not None else "nothing written " \
        "(no --out)"
    return f"llm-serving: interrupted: {done} of {total} {what} finished; {where}"


# --------------------------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from llm_serving_env.sim.scheduler import make_scheduler

    cfg = _load(args)
    try:
        scheduler = make_scheduler(cfg, args.policy)
    except ConfigError as exc:
        if args.policy is None:
            raise
        raise CliError(f"--policy {args.policy}: {exc}") from None
    try:
        engine = choose_engine(cfg, scheduler, args.engine)
    except CompiledEngineUnavailable as exc:
        raise CliError(f"--engine compiled: {exc.gap}; use --engine auto or reference"
                       ) from None
    outs = _outputs(args, [("json", "--json", ())])
    t0 = time.perf_counter()
    result = simulate(cfg, policy=scheduler, seed=args.seed, progress=_progress(args),
                      engine=engine)
    wall = time.perf_counter() - t0
    summary = result.summary()
    name = args.policy or cfg.scheduler.name
    print(f"scheduler={name} seed={args.seed} requests={cfg.num_requests} "
          f"(warm-up {cfg.warmup_requests}) engine={engine} wall={wall:.2f}s")
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {text}")
    if "json" in outs:
        out = outs["json"]
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in summary.items()}
        out.write_text(json.dumps({"scheduler": name, "seed": args.seed, **clean}, indent=2))
        print(f"wrote {out}")
    return 0


def _print_compare(long: pd.DataFrame, title: str) -> None:
    from llm_serving_env.analysis.comparison import wide_table

    shown = [m for m in HEADLINE if m in set(long["metric"])]
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(title)
        if len(long):
            print(wide_table(long, shown).to_string())


def cmd_compare(args: argparse.Namespace) -> int:
    from llm_serving_env.analysis.comparison import compare_policies

    cfg = _load(args)
    policies = _policies(cfg, args.policies)
    outs = _outputs(args, [("out", "--out", ("csv",)),
                           ("plot", "--plot", _image_types() if args.plot else ())])
    try:
        long = compare_policies(cfg, policies, num_seeds=args.seeds, first_seed=args.first_seed,
                                workers=args.workers, progress=_progress(args))
    except Interrupted as exc:
        partial: pd.DataFrame = exc.partial
        _print_compare(partial, f"PARTIAL: {exc.finished} of {exc.total} runs finished "
                                f"(n = replications per policy), mean ± 95% CI half-width")
        out = outs.get("out")
        if out is not None:
            partial.assign(status=f"partial: {exc.finished} of {exc.total} runs finished"
                           ).to_csv(out, index=False)
        print(_partial_note(exc.finished, exc.total, out), file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_compare(long, f"{args.seeds} replications per policy, mean ± 95% CI half-width "
                         f"(seconds, requests/s)")
    if cfg.slo is None:
        print("slo_attainment, goodput_rps: blank (the config has no SLO)")
    if "out" in outs:
        long.to_csv(outs["out"], index=False)
        print(f"wrote {outs['out']}")
    if "plot" in outs:
        from llm_serving_env.plots.figures import plot_comparison

        plot_comparison(long).savefig(outs["plot"], dpi=120, bbox_inches="tight")
        print(f"wrote {outs['plot']}")
    return 0


def cmd_capacity(args: argparse.Namespace) -> int:
    """Search the SLO capacity (req/s) of one policy; print the bracket and the probe table."""
    from llm_serving_env.analysis.capacity import CapacityError, capacity
    from llm_serving_env.sim.scheduler import make_scheduler

    cfg = _load(args)
    if args.low is not None and args.high is not None and args.low >= args.high:
        raise CliError(f"--low {args.low:g} --high {args.high:g}: --low must be below --high")
    try:
        make_scheduler(cfg, args.policy)
    except ConfigError as exc:
        raise CliError(f"--policy {args.policy or cfg.scheduler.name}: {exc}") from None
    outs = _outputs(args, [("json", "--json", ())])
    t0 = time.perf_counter()
    try:
        result = capacity(cfg, policy=args.policy, slo_attainment=args.target,
                          replications=args.replications, rel_tol=args.rel_tol,
                          low_rate_per_s=args.low, high_rate_per_s=args.high, seed=args.seed,
                          progress=_progress(args))
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
    if "json" in outs:
        outs["json"].write_text(json.dumps(result.to_dict(), indent=2))
        print(f"wrote {outs['json']}")
    return 0


def _loads(text: str) -> list[float]:
    loads = []
    for item in _names(text, "--loads"):
        try:
            value = float(item)
        except ValueError:
            raise CliError(f"--loads {text!r}: {item!r} is not a number; give fractions of "
                           f"the capacity, e.g. 0.5,0.9") from None
        if not math.isfinite(value) or value <= 0:
            raise CliError(f"--loads {text!r}: {item} must be a number > 0 (a fraction of "
                           f"the work-conserving capacity)")
        loads.append(value)
    return loads


def cmd_stability(args: argparse.Namespace) -> int:
    from llm_serving_env.analysis.stability import backlog_table, work_conserving_capacity

    cfg = _load(args)
    loads = _loads(args.loads)
    policies = _policies(cfg, args.policies)
    outs = _outputs(args, [("out", "--out", ("csv",))])
    table = backlog_table(cfg, loads, policies, seed=args.seed, progress=_progress(args))
    print(f"work-conserving capacity K / ((E[L] + E[B] - 1) S(K)) = "
          f"{work_conserving_capacity(cfg):.3f} requests/s; backlog growth (requests/s, 95% CI)")
    cells = table.assign(growth=[f"{m:+.3f} ± {h:.3f}" + ("" if s else " unstable")
                                 for m, h, s in zip(table["growth_per_s"], table["half_width"],
                                                    table["stable"], strict=True)])
    print(cells.pivot(index="policy", columns="load", values="growth")
          .loc[policies].to_string())
    if "out" in outs:
        table.to_csv(outs["out"], index=False)
        print(f"wrote {outs['out']}")
    return 0


SWEEP_SHOWN = ("throughput_rps", "ttft_p95_s", "tbt_p95_s", "e2e_mean_s", "slo_attainment")
_DASK = re.compile(r"^(dask|tcp)://[^:/\s]+:\d+$")


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
    policies = _policies(cfg, args.policies) if args.policies is not None else None
    if args.executor != "local" and not _DASK.match(args.executor):
        raise CliError(f"--executor {args.executor!r}: expected local or dask://HOST:PORT")
    if args.plot is not None and not grid:
        raise CliError("--plot needs a --grid (its x axis)")
    metrics = (*SUMMARY_KEYS, *SLO_KEYS)
    if args.plot is not None and args.metric not in metrics:
        raise CliError(f"--metric {args.metric!r}: not a run metric; choose from "
                       f"{', '.join(metrics)}")
    outs = _outputs(args, [("out", "--out", ("csv",)), ("summary", "--summary", ("csv",)),
                           ("plot", "--plot", _image_types() if args.plot else ())])
    done_now = {"simulations": 0, "rows": 0}

    def count(rows: list) -> None:
        done_now["simulations"] += 1
        done_now["rows"] += len(rows)

    t0 = time.perf_counter()
    try:
        df = sweep(cfg, grid, policies, args.replications, out=outs["out"],
                   executor=args.executor, workers=args.workers, first_seed=args.first_seed,
                   on_run=count, progress=_progress(args))
    except ImportError as exc:
        raise CliError(str(exc)) from None
    except Interrupted as exc:
        part = exc.partial
        print(f"llm-serving: interrupted: {part.done} of {part.total} runs finished "
              f"({len(part.rows)} in this call); partial results written to {outs['out']}: "
              f"rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
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
    if "summary" in outs:
        summary.to_csv(outs["summary"], index=False)
        print(f"wrote {outs['summary']}")
    if "plot" in outs:
        from llm_serving_env.plots.figures import plot_latency_throughput

        fig = plot_latency_throughput(summary, metric=args.metric, x=next(iter(grid)))
        fig.savefig(outs["plot"], dpi=120, bbox_inches="tight")
        print(f"wrote {outs['plot']}")
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
    cfg = _load(args)
    hyper = {}
    for text in args.hyper:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CliError(f"--hyper {text!r}: expected KEY=VALUE, e.g. learning_rate=1e-4")
        hyper[key.strip()] = _parse_value(value.strip())
    if args.timesteps == 0 and args.bc_expert is None:
        raise CliError("--timesteps 0: must be >= 1 (0 is allowed only with --bc-expert)")
    if args.dagger_rounds and args.bc_expert is None:
        raise CliError(f"--dagger-rounds {args.dagger_rounds}: needs --bc-expert (the expert "
                       "labels the clone's states)")
    if args.bc_expert is not None:
        if args.action_space != "compose" or args.algo != "maskable_ppo":
            raise CliError(f"--bc-expert {args.bc_expert}: behaviour cloning needs "
                           f"--action-space compose and --algo maskable_ppo")
        rule = args.bc_expert.removeprefix("lookahead:")  # the clairvoyant teacher of RULE
        if ":" in rule or rule == "all":
            raise CliError(f"--bc-expert {args.bc_expert}: name one registered scheduler "
                           "(or lookahead:RULE)")
        _policies(cfg, rule, "--bc-expert")
    args.mkdir = True  # documented in --out: a model zoo folder is created
    _outputs(args, [("out", "--out", ("zip",))])
    from agents.train import command_line, curve_path, sidecar_path, train

    try:
        side = train(cfg, args.out, algo=args.algo, timesteps=args.timesteps, seed=args.seed,
                     episode_requests=args.episode_requests or None, reward=args.reward,
                     action_space=args.action_space, n_envs=args.n_envs, hyper=hyper,
                     tensorboard=args.tensorboard, progress=not args.no_progress,
                     gamma_per_s=args.gamma_per_s, bc_expert=args.bc_expert,
                     bc_episodes=args.bc_episodes, bc_epochs=args.bc_epochs,
                     dagger_rounds=args.dagger_rounds,
                     config_source=args.config, overrides=args.set,
                     command=command_line(args))
    except (ValueError, TypeError) as exc:
        raise CliError(str(exc)) from None
    last = side["last_episodes_mean"] or {}
    attained = last.get("slo_attainment")
    bc = side.get("behaviour_cloning")
    if bc is not None:
        print(f"cloned {bc['expert']} from {bc['micro_steps']} micro-steps of {bc['episodes']} "
              f"episodes in {bc['wall_time_s']:.0f}s: held-out accuracy {bc['accuracy']:.3f}")
    print(f"trained {side['algo']} for {side['timesteps']} steps ({side['episodes']} episodes) "
          f"in {side['wall_time_s']:.0f}s; last episodes: SLO attainment "
          + ("n/a" if attained is None else f"{attained:.3f}"))
    print(f"wrote {args.out}, {sidecar_path(args.out)}, {curve_path(args.out)}")
    return 0


def _evaluate_policies(cfg: SimConfig, text: str) -> list[str]:
    """``--policies`` of evaluate: scheduler names (checked as for compare), ``all`` (the
    registered schedulers that can run on ``cfg``, plus any learned/mode entries given)."""
    from llm_serving_env.analysis.comparison import runnable_policies
    from llm_serving_env.sim.scheduler import canonical_schedulers

    names = _names(text, "--policies")
    plain = [n for n in names if ":" not in n and n != "all"]
    _, skipped = runnable_policies(cfg, plain)
    if skipped:
        name, reason = skipped[0]
        raise CliError(f"--policies {name}: cannot run on this config: {reason}")
    if "all" not in names:
        return names
    ok, skipped = runnable_policies(cfg, canonical_schedulers())
    for name, reason in skipped:
        if name not in names:
            print(f"llm-serving: skipping {name}: cannot run on this config: {reason}",
                  file=sys.stderr)
    out: list[str] = []
    for name in names:
        out += [n for n in ok if n not in names] if name == "all" else [name]
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Learned vs hand-written schedulers on held-out seeds (agents/evaluate.py)."""
    from agents.evaluate import evaluate, format_table, write_csv
    from agents.policy import ModelLoadError

    cfg = _load(args)
    policies = _evaluate_policies(cfg, args.policies)
    outs = _outputs(args, [("out", "--out", ("csv",))])
    try:
        ev = evaluate(cfg, policies, num_seeds=args.seeds, first_seed=args.first_seed,
                      workers=args.workers, progress=_progress(args), bound=not args.no_bound)
    except (ValueError, ModelLoadError) as exc:
        raise CliError(str(exc)) from None
    except Interrupted as exc:
        runs: pd.DataFrame = exc.partial
        out = outs.get("out")
        if out is not None:
            runs.assign(status=f"partial: {exc.finished} of {exc.total} runs finished; one "
                               f"row per run").to_csv(out, index=False)
        print(f"PARTIAL: {exc.finished} of {exc.total} runs finished; no table (its paired "
              f"comparisons need every run)")
        print(_partial_note(exc.finished, exc.total, out) + (" (one row per run)" if out
                                                               else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_table(ev))
    if "out" in outs:
        print(f"wrote {write_csv(ev, outs['out'])}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Run the report's analyses (llm_serving_env/study/report.py) and write their CSVs."""
    from llm_serving_env.study.report import ANALYSES, quick_mode, run_all

    only = _names(args.only, "--only") if args.only is not None else None
    bad = [n for n in only or [] if n not in ANALYSES]
    if bad:
        raise CliError(f"--only {','.join(bad)}: unknown analysis; choose from "
                       f"{', '.join(ANALYSES)}")
    out_dir = Path(args.out_dir)
    existing = _first_existing(out_dir)
    if existing.exists() and not existing.is_dir():
        raise CliError(f"--out-dir {args.out_dir}: {existing} is a file, not a folder")
    quick = quick_mode(args.full)
    if args.full and quick:
        print("LLM_SERVING_QUICK is set: running the quick sizes despite --full")
    run_all(quick=quick, out_dir=args.out_dir, workers=args.workers, only=only)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``llm-serving`` parser (one-line usage errors, exit code 2)."""
    parser = _Parser(prog="llm-serving", description=__doc__, epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="run one simulation and print its summary")
    _add_config_args(p)
    p.add_argument("--policy", default=None, help="scheduler name (default: the config's)")
    p.add_argument("--seed", type=SEED, default=0, help="root seed (>= 0, default 0)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the summary as JSON")
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="auto (default): the compiled engine when it covers the run, else the "
                        "Python reference engine (same results, bit for bit); compiled: "
                        "insist on it; reference: always Python")
    _add_mkdir(p)
    _add_progress(p, "finished requests")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("compare", help="compare schedulers over replications (mean ± 95%% CI)")
    _add_config_args(p)
    p.add_argument("--policies", default="request_level,hybrid",
                   help="comma-separated scheduler names, or 'all' (those that cannot run on "
                        "the config are skipped, with the reason)")
    p.add_argument("--seeds", type=REPLICATIONS_CI, default=5,
                   help="replications per policy (>= 2)")
    p.add_argument("--first-seed", type=SEED, default=0)
    p.add_argument("--workers", type=WORKERS, default=None,
                   help="local processes (default: one per CPU)")
    p.add_argument("--out", default=None, metavar="CSV", help="write the long table as CSV")
    p.add_argument("--plot", default=None, metavar="PNG", help="write a comparison plot")
    _add_mkdir(p)
    _add_progress(p, "runs")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("capacity",
                       help="largest arrival rate whose SLO attainment meets a target")
    _add_config_args(p)
    p.add_argument("--policy", default=None, help="scheduler name (default: the config's)")
    p.add_argument("--target", type=_number(0, 1), default=0.9,
                   help="SLO attainment target in (0, 1) (default 0.9)")
    p.add_argument("--replications", type=REPLICATIONS_CI, default=5,
                   help="replications per rate (>= 2)")
    p.add_argument("--rel-tol", type=_number(0), default=0.02,
                   help="stop when (high - low) / low < REL_TOL (default 0.02)")
    p.add_argument("--low", type=_number(0), default=None, metavar="RATE",
                   help="starting lower bound, requests/s (default: bracket automatically)")
    p.add_argument("--high", type=_number(0), default=None, metavar="RATE",
                   help="starting upper bound, requests/s")
    p.add_argument("--seed", type=SEED, default=0, help="first replication seed")
    p.add_argument("--json", default=None, metavar="OUT", help="write the result as JSON")
    _add_mkdir(p)
    _add_progress(p, "probes")
    p.set_defaults(func=cmd_capacity)

    p = sub.add_parser("stability", help="backlog growth by policy and load (Li et al.)")
    _add_config_args(p)
    p.add_argument("--loads", default="0.5,0.8,0.9,0.95",
                   help="arrival rates as fractions (> 0) of the work-conserving capacity")
    p.add_argument("--policies", default="request_level,prefill_first,orca,hybrid",
                   help="comma-separated scheduler names, or 'all'")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", default=None, metavar="CSV")
    _add_mkdir(p)
    _add_progress(p, "runs")
    p.set_defaults(func=cmd_stability)

    p = sub.add_parser("sweep", help="grid of config values x schedulers x replications")
    _add_config_args(p)
    p.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=VALUES",
                   help="a grid axis: key.path=start:stop:step (stop included when on the "
                        "grid) or key.path=a,b,c (YAML values); repeatable, product of all")
    p.add_argument("--policies", default=None,
                   help="comma-separated scheduler names, or 'all' (default: the config's)")
    p.add_argument("--replications", type=_int_at_least(1), default=3,
                   help="runs per point and policy, seeds FIRST_SEED.. (default 3)")
    p.add_argument("--first-seed", type=SEED, default=0)
    p.add_argument("--out", required=True, metavar="CSV",
                   help="one row per run, appended as runs finish; a rerun of the same sweep "
                        "skips done runs (CSV.meta.json holds the base config's fingerprint: "
                        "a changed config is refused)")
    p.add_argument("--executor", default="local", metavar="local|dask://HOST:PORT",
                   help="where runs execute (default: local processes)")
    p.add_argument("--workers", type=WORKERS, default=None,
                   help="local processes (default: one per CPU; 1 = this process)")
    p.add_argument("--summary", default=None, metavar="CSV",
                   help="write mean/CI per point, policy and metric as CSV")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="plot --metric against the first --grid path, per policy, with CIs")
    p.add_argument("--metric", default="ttft_p95_s", help="metric for --plot")
    _add_mkdir(p)
    _add_progress(p, "runs")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("train", help="train a learned scheduler (PPO / MaskablePPO)")
    _add_config_args(p)
    p.add_argument("--algo", choices=("ppo", "maskable_ppo"), default="ppo")
    p.add_argument("--timesteps", type=_int_at_least(0), default=200_000,
                   help="environment steps (0 only with --bc-expert: the cloned policy alone)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", required=True, metavar="ZIP",
                   help="model file, e.g. agents/zoo/NAME.zip (NAME.json and NAME.curve.csv "
                        "are written beside it; its folder is created if missing)")
    p.add_argument("--episode-requests", type=_int_at_least(0), default=2000, metavar="N",
                   help="arrivals per training episode (default 2000; 0 = the config's)")
    p.add_argument("--reward", choices=("goodput", "slo", "latency"), default="goodput")
    p.add_argument("--action-space", choices=("slo", "compact", "native", "compose"),
                   default="slo",
                   help="slo: modes around slo_aware (agents/actions.py); compact: the env's "
                        "CompactActionWrapper; native: the env's MultiDiscrete action; "
                        "compose: LLMServing-v1, the batch composed pick by pick (needs "
                        "--algo maskable_ppo)")
    p.add_argument("--n-envs", type=_int_at_least(1), default=4,
                   help="envs stepped in this process")
    p.add_argument("--hyper", action="append", default=[], metavar="KEY=VALUE",
                   help="PPO hyperparameter, e.g. learning_rate=1e-4 (repeatable)")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write TensorBoard logs (needs tensorboard)")
    p.add_argument("--gamma-per-s", type=_number(0.0, 1.0, open_high=False), default=None,
                   metavar="G",
                   help="discount per simulated second (gamma ** dt_s per step, dt_s the "
                        "step's duration) instead of PPO's per-step gamma, e.g. 0.9")
    p.add_argument("--bc-expert", default=None, metavar="SCHEDULER",
                   help="first clone this registered scheduler's native actions (behaviour "
                        "cloning, agents/imitation.py; compose action space), then run PPO")
    p.add_argument("--bc-episodes", type=_int_at_least(2), default=20, metavar="N",
                   help="training episodes the expert plays for cloning (the last is held "
                        "out to measure the clone's accuracy)")
    p.add_argument("--bc-epochs", type=_int_at_least(1), default=10, metavar="N",
                   help="passes over the demonstrations")
    p.add_argument("--dagger-rounds", type=_int_at_least(0), default=0, metavar="N",
                   help="after cloning, N DAgger rounds: the clone runs, the expert labels "
                        "the states it reaches, and the policy is refitted on all labels")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate",
                       help="learned vs hand-written schedulers on held-out seeds (mean ± CI)")
    _add_config_args(p)
    p.add_argument("--policies", required=True,
                   help="comma-separated: scheduler names, ppo:PATH.zip, maskable_ppo:PATH.zip, "
                        "mode:K, or 'all'")
    p.add_argument("--seeds", type=REPLICATIONS_CI, default=10,
                   help="replications per policy (>= 2)")
    p.add_argument("--first-seed", type=SEED, default=10_000,
                   help="first seed (default 10000; training uses seeds below)")
    p.add_argument("--workers", type=WORKERS, default=None,
                   help="local processes (default: one per CPU)")
    p.add_argument("--out", default=None, metavar="CSV", help="write the table, one row per policy")
    p.add_argument("--no-bound", action="store_true",
                   help="skip the upper bound on SLO attainment (slo_upper_bound, a few "
                        "seconds per seed)")
    _add_mkdir(p)
    _add_progress(p, "runs")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="run the report's analyses and write data/report/*.csv")
    p.add_argument("--full", action="store_true",
                   help="the study's real sizes (about 21 min on 2 cores); default: quick "
                        "sizes (a couple of minutes; also forced by LLM_SERVING_QUICK=1)")
    p.add_argument("--out-dir", default="data/report", metavar="DIR",
                   help="where the CSVs go (default data/report; created if missing)")
    p.add_argument("--workers", type=WORKERS, default=None,
                   help="local processes (default: one per CPU; 1 = this process)")
    p.add_argument("--only", default=None, metavar="A,B",
                   help="run only these analyses (comma-separated names)")
    p.set_defaults(func=cmd_report)
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    """Warnings as one line on stderr: ``llm-serving: warning: ...``."""
    text = " ".join(str(message).split())
    print(f"llm-serving: warning: {text}", file=file or sys.stderr)


def _first_sigint(signum: int, frame: Any) -> None:
    """The first Ctrl-C: ignore any further one (the clean-up that follows is short and
    bounded: stop the workers, write the partial results), then stop the command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code: 0 done, 1 a failed search, 2 a usage or config
    error (one line on stderr), 130 interrupted (Ctrl-C)."""
    args = build_parser().parse_args(argv)
    previous = None
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        previous = signal.signal(signal.SIGINT, _first_sigint)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            try:
                return args.func(args)
            except (CliError, ConfigError, SchedulingError) as exc:
                text = " ".join(str(exc).split())
                print(f"llm-serving: error: {text}", file=sys.stderr)
                return EXIT_USAGE
            except KeyboardInterrupt:
                print("\nllm-serving: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
    finally:
        # after a Ctrl-C, further ones stay ignored: the process is about to exit, and one
        # landing in the interpreter's shutdown (joining the pool's threads) would kill it
        if previous is not None and signal.getsignal(signal.SIGINT) is _first_sigint:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
