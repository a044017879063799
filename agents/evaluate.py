"""Evaluate learned schedulers against the hand-written ones on held-out seeds.

``llm-serving evaluate --config FILE --policies hybrid,slo_aware,...,ppo:agents/zoo/NAME.zip
--seeds 10 [--first-seed 10000] [--out FILE.csv]``

Policies: registered scheduler names (run with ``simulate``), ``ppo:PATH`` /
``maskable_ppo:PATH`` (a model trained by ``llm-serving train``; run through its env, see
:class:`agents.policy.TrainedModel`), ``mode:K`` (one fixed action of the ``slo`` action
space at every step, e.g. ``mode:1`` = ``slo_aware`` with the triage order: the building
blocks the learned policy chooses between, for ablation), and ``all`` for every
registered scheduler (may be combined with the others: ``all,ppo:PATH``).

Every policy runs replications ``first_seed .. first_seed + seeds - 1`` (default from 10,000;
training episodes use seeds below 10,000, and a model whose training seed range overlaps the
evaluation seeds is refused), so all policies see the same requests per seed (common random
numbers). Each metric of ``RunResult.summary()`` is reported as mean ± Student-t 95% CI
half-width over the seeds. The *best baseline* is the hand-written scheduler with the highest
mean goodput (throughput without an SLO); every other policy is compared with it seed by seed:
``goodput_diff`` (paired-t interval of the difference,
:func:`~llm_serving_env.analysis.stats.paired_difference`), ``goodput_ratio`` (t-interval of the
per-seed ratio) and ``slo_attainment_diff``.

The returned / written table has one row per policy: ``policy, kind, n`` (seeds),
``num_requests, warmup_requests`` (each run's arrivals and unmeasured warm-up), then
``<metric>_mean`` and ``<metric>_ci95`` for each metric of :data:`METRICS` (and, with
``slo.classes``, each class's ``slo_attainment_NAME`` and ``goodput_rps_NAME``), then the
comparison columns (``best_baseline``, ``goodput_diff_mean``, ``goodput_diff_ci95``,
``goodput_ratio_mean``, ``goodput_ratio_ci95``, ``slo_attainment_diff_mean``,
``slo_attainment_diff_ci95``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_serving_env.analysis.bounds import slo_upper_bound
from llm_serving_env.analysis.replications import Interrupted, run_jobs
from llm_serving_env.analysis.stats import paired_difference, summarize_replications, t_interval
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.sim.scheduler import canonical_schedulers, make_scheduler
from llm_serving_env.sim.simulate import simulate

__all__ = ["EVAL_FIRST_SEED", "METRICS", "ConfigMismatchWarning", "Evaluation", "evaluate",
           "format_table", "parse_policy"]

#: First evaluation seed: training episodes use seeds below it.
EVAL_FIRST_SEED = 10_000
METRICS = ("throughput_rps", "ttft_mean_s", "ttft_p95_s", "tbt_mean_s", "tbt_p95_s",
           "e2e_mean_s", "slo_attainment", "goodput_rps")
LEARNED_PREFIXES = ("ppo", "maskable_ppo")


class ConfigMismatchWarning(UserWarning):
    """A learned model is evaluated on a config other than the one it was trained on."""


@dataclass(frozen=True)
class PolicySpec:
    text: str  # as given
    kind: str  # "baseline", "learned", "mode"
    target: str  # scheduler name, model path or mode index


def parse_policy(text: str) -> PolicySpec:
    """``hybrid`` -> baseline; ``ppo:agents/zoo/x.zip`` -> learned; ``mode:1`` -> mode."""
    text = text.strip()
    head, sep, rest = text.partition(":")
    if sep and head in LEARNED_PREFIXES:
        if not rest:
            raise ValueError(f"policy {text!r}: give the model path, e.g. ppo:agents/zoo/NAME.zip")
        return PolicySpec(text, "learned", rest)
    if sep and head == "mode":
        if not rest.isdigit():
            raise ValueError(f"policy {text!r}: mode:K needs an action index K >= 0")
        return PolicySpec(text, "mode", rest)
    if sep:
        raise ValueError(f"policy {text!r}: unknown prefix {head!r} (use ppo:PATH, "
                         f"maskable_ppo:PATH, mode:K or a scheduler name)")
    return PolicySpec(text, "baseline", text)


_AGENTS: dict[str, Any] = {}


def _agent(spec: PolicySpec):
    """The (per-process cached) TrainedModel / FixedMode of a policy spec."""
    from agents.policy import FixedMode, TrainedModel

    agent = _AGENTS.get(spec.text)
    if agent is None:
        agent = (TrainedModel(spec.target) if spec.kind == "learned"
                 else FixedMode(int(spec.target)))
        _AGENTS[spec.text] = agent
    return agent


def class_metrics(columns: Sequence[str]) -> list[str]:
    """The per-class SLO metrics (``slo_attainment_NAME``, ``goodput_rps_NAME``) among
    ``columns``, in their order (none without ``slo.classes``)."""
    return [c for c in columns
            if c.startswith(("slo_attainment_", "goodput_rps_")) and not c.endswith(
                ("_mean", "_ci95", "_diff", "_ratio"))]


def _row(config: SimConfig, spec: PolicySpec, seed: int) -> dict[str, Any]:
    if spec.kind == "baseline":

        result = simulate(config, policy=spec.target, seed=seed)
    else:
        result = _agent(spec).run(config, seed)
    return {"policy": spec.text, "seed": seed, **result.summary()}


def _check(config: SimConfig, specs: Sequence[PolicySpec], seeds: Sequence[int]) -> None:
    """Fail fast, before any run: bad names, missing models, overlapping seeds, env mismatch."""

    for spec in specs:
        if spec.kind == "baseline":
            make_scheduler(config, spec.target)
            continue
        agent = _agent(spec)
        agent.make_env(config)  # spaces match the model's
        if spec.kind == "learned":
            _warn_if_other_config(spec, agent, config)
            r = agent.train_seed_range
            if r is not None and min(seeds) < r[1] and max(seeds) >= r[0]:
                raise ValueError(f"{spec.text}: evaluation seeds {min(seeds)}..{max(seeds)} "
                                 f"overlap its training seeds [{r[0]}, {r[1]}); use "
                                 f"--first-seed {r[1]} or above (held-out seeds)")


def _warn_if_other_config(spec: PolicySpec, agent: Any, config: SimConfig) -> None:
    """One ConfigMismatchWarning when ``config`` is not the model's training config."""
    differences = agent.trained_config_differences(config)
    if differences is None:
        warnings.warn(ConfigMismatchWarning(
            f"{spec.text}: cannot tell whether this config is the one it was trained on "
            f"(its sidecar names {agent.sidecar.get('config')!r}, which is not readable here)"),
            stacklevel=3)
    elif differences:
        shown = ", ".join(differences[:6]) + (", ..." if len(differences) > 6 else "")
        warnings.warn(ConfigMismatchWarning(
            f"{spec.text} was trained on {agent.sidecar.get('config')} and is evaluated on a "
            f"config that differs in {shown}: results measure how it transfers"),
            stacklevel=3)


@dataclass(frozen=True)
class Evaluation:
    """``runs``: one summary row per (policy, seed); ``table``: one row per policy (see the
    module docstring); ``best_baseline``: its name (None without baselines)."""

    runs: pd.DataFrame
    table: pd.DataFrame
    best_baseline: str | None
    seeds: tuple[int, ...]
    level: float
    bounds: np.ndarray | None = None  # slo_upper_bound per seed (None: not computed)
    bound_note: str = ""  # why there is no bound, when there is none


def _bound_job(config: SimConfig, seed: int) -> float:
    return slo_upper_bound(config, seed=seed)


def bound_blocker(config: SimConfig) -> str:
    """Why :func:`~llm_serving_env.analysis.bounds.slo_upper_bound` cannot bound ``config``
    ("" when it can)."""
    if config.slo is None:
        return "no SLO in the config"
    noisy = {role: config.service_for(role).noise for role in ("mixed", "prefill", "decode")}
    if any(n != "deterministic" for n in noisy.values()):
        return ("service noise: an iteration can be arbitrarily short, so no scheduler-free "
                "bound holds (bound the deterministic config instead)")
    if config.gpus.prefix_caching:
        return ("prefix caching: cached prefixes skip prefill work the bound charges in full "
                "(bound the config without it)")
    return ""


def evaluate(
    config: SimConfig,
    policies: Sequence[str],
    num_seeds: int = 10,
    first_seed: int = EVAL_FIRST_SEED,
    level: float = 0.95,
    progress: bool = True,
    workers: int | None = None,
    bound: bool = True,
) -> Evaluation:
    """Run every policy on seeds ``first_seed .. first_seed + num_seeds - 1`` and tabulate.

    With ``bound`` (and an SLO, deterministic service), also computes
    :func:`~llm_serving_env.analysis.bounds.slo_upper_bound` on every seed: the table gains
    the bound and each policy's share of the gap between the best hand-written scheduler and
    the bound (``gap_closed``, paired seed by seed).

    Warns:
        ConfigMismatchWarning: a learned model whose training config differs from ``config``.

    Raises:
        Interrupted: on Ctrl-C; its ``partial`` is the DataFrame of the finished runs (one row
            per run, as :attr:`Evaluation.runs`).
    """
    if num_seeds < 2:
        raise ValueError(f"seeds = {num_seeds}: need at least 2 replications for a CI")
    names: list[str] = []
    for p in policies:
        if p == "all":  # every registered scheduler, in place

            names += [n for n in canonical_schedulers() if n not in policies]
        else:
            names.append(p)
    specs = [parse_policy(p) for p in names]
    if not specs:
        raise ValueError("no policy given")
    texts = [s.text for s in specs]
    if len(set(texts)) != len(texts):
        twice = sorted({t for t in texts if texts.count(t) > 1})
        raise ValueError(f"policies listed twice: {twice}")
    seeds = tuple(range(first_seed, first_seed + num_seeds))
    _check(config, specs, seeds)
    jobs = [(config, s, seed) for s in specs for seed in seeds]
    # learned runs are the slow ones: submit them first so they spread over the workers
    order = sorted(range(len(jobs)), key=lambda i: jobs[i][1].kind == "baseline")
    try:
        done = run_jobs(_row, [jobs[i] for i in order], workers=workers, progress=progress,
                        desc="evaluating")
    except Interrupted as exc:
        finished = sorted(exc.results, key=lambda k: order[k])  # back in job order
        raise exc.with_partial(pd.DataFrame([exc.results[k] for k in finished])) from None
    rows: list[dict[str, Any]] = [{}] * len(jobs)
    for k, row in enumerate(done):
        rows[order[k]] = row
    runs = pd.DataFrame(rows)
    note = bound_blocker(config) if bound else "not asked for (--no-bound)"
    bounds = None
    if not note:
        try:
            bounds = np.asarray(run_jobs(_bound_job, [(config, s) for s in seeds],
                                         workers=workers, progress=progress, desc="bounds"))
        except Interrupted as exc:
            raise exc.with_partial(runs) from None
    ev = tabulate(runs, specs, seeds, level, has_slo=config.slo is not None, bounds=bounds)
    # the run length beside each row, so that a saved table says what it averaged over
    ev.table.insert(3, "num_requests", int(config.num_requests))
    ev.table.insert(4, "warmup_requests", int(config.warmup_requests))
    return dataclasses.replace(ev, bound_note=note)


def tabulate(runs: pd.DataFrame, specs: Sequence[PolicySpec], seeds: Sequence[int],
             level: float = 0.95, has_slo: bool = True,
             bounds: np.ndarray | None = None) -> Evaluation:
    """The per-policy table of :func:`evaluate` from its per-run rows (and, when given, the
    per-seed upper bounds on SLO attainment, in ``seeds`` order)."""
    key = "goodput_rps" if has_slo else "throughput_rps"
    metrics = [m for m in METRICS if m in runs.columns] + class_metrics(runs.columns)
    per: dict[str, pd.DataFrame] = {}
    rows = []
    for spec in specs:
        sub = runs[runs["policy"] == spec.text].sort_values("seed")
        per[spec.text] = sub
        stats = summarize_replications(sub[metrics].to_dict("records"), level=level)
        row: dict[str, Any] = {"policy": spec.text, "kind": spec.kind, "n": len(sub)}
        for m in metrics:
            row[f"{m}_mean"] = float(stats.loc[m, "mean"])
            row[f"{m}_ci95"] = float(stats.loc[m, "half_width"])
        rows.append(row)
    table = pd.DataFrame(rows)
    baselines = [s.text for s in specs if s.kind == "baseline"]
    best = None
    if baselines:
        means = {b: float(per[b][key].mean()) for b in baselines}
        best = max(baselines, key=lambda b: (means[b], -baselines.index(b)))
        ref = per[best]
        stem = key.removesuffix("_rps")
        names = (f"{stem}_diff_mean", f"{stem}_diff_ci95", f"{stem}_ratio_mean",
                 f"{stem}_ratio_ci95", "slo_attainment_diff_mean", "slo_attainment_diff_ci95")
        cols: dict[str, list[float]] = {c: [] for c in names}
        for spec in specs:
            sub = per[spec.text]
            if spec.text == best:
                vals = (0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
            else:
                a, b = sub[key].to_numpy(float), ref[key].to_numpy(float)
                d = _safe(lambda a=a, b=b: paired_difference(a, b, level))
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = a / b
                r = _safe(lambda ratio=ratio: t_interval(ratio, level))
                s = (_safe(lambda sub=sub: paired_difference(
                    sub["slo_attainment"].to_numpy(float),
                    ref["slo_attainment"].to_numpy(float), level))
                    if has_slo else (math.nan, math.nan))
                vals = (*d, *r, *s)
            for c, v in zip(names, vals, strict=True):
                cols[c].append(v)
        table.insert(3, "best_baseline", best)
        for c in names[: 6 if has_slo else 4]:
            table[c] = cols[c]
        if bounds is not None and has_slo:
            ref_att = ref["slo_attainment"].to_numpy(float)
            gap = np.asarray(bounds, dtype=float) - ref_att
            table["slo_upper_bound_mean"], table["slo_upper_bound_ci95"] = _safe(
                lambda: t_interval(np.asarray(bounds, dtype=float), level))
            closed = []
            for spec in specs:
                att = per[spec.text]["slo_attainment"].to_numpy(float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    share = np.where(gap > 0, (att - ref_att) / gap, np.nan)
                closed.append(_safe(lambda share=share: t_interval(share, level))
                              if np.isfinite(share).all() else (math.nan, math.nan))
            table["gap_closed_mean"] = [c[0] for c in closed]
            table["gap_closed_ci95"] = [c[1] for c in closed]
    return Evaluation(runs=runs, table=table, best_baseline=best, seeds=tuple(seeds),
                      level=level, bounds=None if bounds is None else np.asarray(bounds))


def _safe(fn) -> tuple[float, float]:
    try:
        est = fn()
    except ValueError:  # NaN / inf values (e.g. a zero goodput in a ratio)
        return math.nan, math.nan
    return est.mean, est.half_width


def _cell(mean: float, half: float, digits: int = 4) -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return "nan"
    if isinstance(half, float) and math.isnan(half):
        return f"{mean:.{digits}g}"
    if half <= 1e-9 * max(1.0, abs(mean)):
        half = 0.0
    return f"{mean:.{digits}g} ± {half:.2g}"


def format_table(ev: Evaluation) -> str:
    """The table as text: mean ± CI per metric per policy, then the comparison with the best
    baseline."""
    t = ev.table
    metrics = [m for m in METRICS if f"{m}_mean" in t.columns] + class_metrics(
        [c.removesuffix("_mean") for c in t.columns if c.endswith("_mean")])
    wide = pd.DataFrame({m: [_cell(a, b) for a, b in zip(t[f"{m}_mean"], t[f"{m}_ci95"],
                                                         strict=True)] for m in metrics})
    wide.index = t["policy"]
    lines = [f"{len(ev.seeds)} held-out seeds ({ev.seeds[0]}..{ev.seeds[-1]}), common random "
             f"numbers; mean ± {ev.level:.0%} CI half-width (seconds, requests/s)"]
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        lines.append(wide.to_string())
    if ev.best_baseline is not None:
        stem = "goodput" if "goodput_diff_mean" in t.columns else "throughput"
        lines.append(f"\npaired with the best baseline by {stem} ({ev.best_baseline}), seed by "
                     f"seed:")
        comp = {f"{stem} diff (req/s)": [_cell(a, b) for a, b in zip(
                    t[f"{stem}_diff_mean"], t[f"{stem}_diff_ci95"], strict=True)],
                f"{stem} ratio": [_cell(a, b) for a, b in zip(
                    t[f"{stem}_ratio_mean"], t[f"{stem}_ratio_ci95"], strict=True)]}
        if "slo_attainment_diff_mean" in t.columns:
            comp["SLO attainment diff"] = [_cell(a, b) for a, b in zip(
                t["slo_attainment_diff_mean"], t["slo_attainment_diff_ci95"], strict=True)]
        if "gap_closed_mean" in t.columns:
            comp["share of the gap to the bound"] = [_cell(a, b) for a, b in zip(
                t["gap_closed_mean"], t["gap_closed_ci95"], strict=True)]
        frame = pd.DataFrame(comp)
        frame.index = t["policy"]
        frame = frame[frame.index != ev.best_baseline]
        with pd.option_context("display.width", 250, "display.max_columns", 50):
            lines.append(frame.to_string())
    if ev.bounds is not None and "slo_upper_bound_mean" in t.columns:
        bound = _cell(t["slo_upper_bound_mean"].iloc[0], t["slo_upper_bound_ci95"].iloc[0])
        lines.append(
            f"\nupper bound on SLO attainment (slo_upper_bound: no scheduler can exceed it on "
            f"these seeds): {bound}; share of the gap = (policy - {ev.best_baseline}) / "
            f"(bound - {ev.best_baseline}) in SLO attainment, seed by seed")
    elif ev.bound_note:
        lines.append(f"\nno upper bound: {ev.bound_note}")
    return "\n".join(lines)


def write_csv(ev: Evaluation, path: str | Path) -> Path:
    """The table, one row per policy, as CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ev.table.to_csv(path, index=False)
    return path
