"""Capacity search: the largest arrival rate at which a policy still meets its SLO target.

Following DistServe, the *goodput capacity* of a policy is the largest arrival rate
``workload.arrival.rate_per_s`` at which its SLO attainment (fraction of requests meeting both
the TTFT and the TBT objective, the ``slo_attainment`` summary key) is at least a target such as
0.9. :func:`capacity` finds it by bisection over the rate:

1. *Probe* a rate ``r``: run ``R`` independent replications with seeds ``seed .. seed + R - 1``
   (the same seeds at every rate: common random numbers, so the attainment changes smoothly with
   ``r`` instead of jumping with fresh noise). The rate *meets* the target when the mean
   attainment over the replications is ``>= target`` **and** the backlog is not growing
   (:mod:`llm_serving_env.analysis.stability`, pooled over the replications). The second condition
   matters because an overloaded queue starts empty and its first requests are served fast:
   over a finite run its attainment can look fine although it would fall to 0 in steady state.
2. *Bracket*: start from the bounds given, else from the config's own rate; halve until a rate
   meets, double until a rate fails (a capped number of probes; an error when nothing meets even
   at a rate 1000 times below the start).
3. *Bisect* the bracket ``[low, high]`` (low meets, high fails) at its midpoint until
   ``(high - low) / low < rel_tol``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llm_serving_env.analysis.stability import STABLE_REL_TOL, judge_stable, segment_slopes
from llm_serving_env.analysis.stats import Estimate, t_interval
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.scheduler import Scheduler, scheduler_class
from llm_serving_env.sim.simulate import as_config, simulate

__all__ = ["CapacityError", "CapacityResult", "capacity"]

RATE_KEY = "workload.arrival.rate_per_s"

#: Bracketing gives up when no rate meets the target down to ``start / MAX_SHRINK``.
MAX_SHRINK = 1000.0

PROBE_COLUMNS = ("rate_per_s", "attainment", "half_width", "growth_per_s",
                 "growth_half_width", "stable", "meets")


class CapacityError(RuntimeError):
    """The capacity search could not bracket the capacity (no rate meets the target even at a
    tiny rate, or the probe budget ran out)."""


@dataclass(frozen=True, eq=False)
class CapacityResult:
    """Outcome of :func:`capacity`.

    **The bracket.** ``low_per_s`` is the largest probed rate that met the target and
    ``high_per_s`` the smallest probed rate above it that failed; ``rate_per_s`` equals
    ``low_per_s`` (the last meeting rate, a conservative capacity). Up to the noise of the
    attainment estimates, the true capacity lies in ``[low_per_s, high_per_s]``; the bracket's
    relative width is below the search's ``rel_tol``.

    **Why the attainment CIs at the two boundary rates are reported.** Each probe decides
    "meets" from a *mean over R replications*, not from the true attainment. Near the capacity
    the true attainment is close to the target, so the decision at the boundary rates can be
    wrong: the rate's uncertainty is the bisection width *plus* the attainment noise translated
    into rate, ``half_width / |d attainment / d rate|``. ``low_attainment`` and
    ``high_attainment`` (mean ± t-CI half width over the replications) let you judge the second
    part: when both intervals exclude the target, the decisions at the boundaries are
    statistically sound; when one contains it, the capacity is only known to within about
    ``half_width / slope`` of the bracket (more replications or longer runs shrink it).

    Attributes:
        rate_per_s: capacity estimate = ``low_per_s`` (requests per second).
        low_per_s: largest meeting rate (requests per second).
        high_per_s: smallest failing rate above ``low_per_s`` (requests per second).
        target: the SLO attainment target (fraction in (0, 1)).
        policy: the scheduler's name.
        replications: replications per probed rate.
        low_attainment: attainment at ``low_per_s``, mean ± t-CI (fraction).
        high_attainment: attainment at ``high_per_s``, mean ± t-CI (fraction).
        probes: one row per probed rate in probe order, columns ``rate_per_s`` (1/s),
            ``attainment`` (mean fraction), ``half_width`` (its t-CI half width),
            ``growth_per_s`` and ``growth_half_width`` (backlog slope, requests/s, pooled
            over replications), ``stable`` and ``meets`` (bools).
    """

    rate_per_s: float
    low_per_s: float
    high_per_s: float
    target: float
    policy: str
    replications: int
    low_attainment: Estimate
    high_attainment: Estimate
    probes: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (floats, strings, lists of probe records)."""
        return {
            "policy": self.policy,
            "target": self.target,
            "replications": self.replications,
            "rate_per_s": self.rate_per_s,
            "low_per_s": self.low_per_s,
            "high_per_s": self.high_per_s,
            "low_attainment": {"mean": self.low_attainment.mean,
                               "half_width": self.low_attainment.half_width},
            "high_attainment": {"mean": self.high_attainment.mean,
                                "half_width": self.high_attainment.half_width},
            "probes": [{k: (v.item() if isinstance(v, np.generic) else v)
                        for k, v in row.items()}
                       for row in self.probes.to_dict("records")],
        }

    def __str__(self) -> str:
        width = (self.high_per_s - self.low_per_s) / self.low_per_s
        return (
            f"capacity of {self.policy} at SLO attainment >= {self.target:g}: "
            f"{self.rate_per_s:.4g} req/s\n"
            f"  bracket [{self.low_per_s:.4g}, {self.high_per_s:.4g}] req/s "
            f"(relative width {width:.2%})\n"
            f"  attainment at low  {self.low_attainment} (95% CI, {self.replications} "
            f"replications)\n"
            f"  attainment at high {self.high_attainment}\n"
            f"  {len(self.probes)} probes"
        )


@dataclass(frozen=True)
class _Probe:
    rate_per_s: float
    attainment: Estimate
    growth: Estimate
    stable: bool
    meets: bool

    def row(self) -> dict[str, Any]:
        return {"rate_per_s": self.rate_per_s, "attainment": self.attainment.mean,
                "half_width": self.attainment.half_width, "growth_per_s": self.growth.mean,
                "growth_half_width": self.growth.half_width, "stable": self.stable,
                "meets": self.meets}


def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    v = float(value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return v


def _check_rate(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number > 0 (requests per second), got {value!r}")
    return float(value)


def capacity(
    cfg: SimConfig | str | os.PathLike | Mapping[str, Any],
    policy: str | Scheduler | None = None,
    slo_attainment: float = 0.9,
    *,
    replications: int = 5,
    rel_tol: float = 0.02,
    low_rate_per_s: float | None = None,
    high_rate_per_s: float | None = None,
    seed: int = 0,
    progress: bool = True,
    max_probes: int = 40,
    stable_rel_tol: float = STABLE_REL_TOL,
    level: float = 0.95,
) -> CapacityResult:
    """Largest arrival rate (requests per second) whose SLO attainment is still >= the target.

    See the module docstring for the procedure and :class:`CapacityResult` for the meaning of
    the bracket and of the attainment intervals reported at its ends.

    Args:
        cfg: the scenario (SimConfig, YAML path, preset name or dict); must set ``slo``. Only
            ``workload.arrival.rate_per_s`` is changed between probes, so run sizes
            (``num_requests``, ``warmup_requests``) are those of the config: keep them short
            enough for ``R`` runs per probe, long enough for a useful attainment estimate.
        policy: scheduler name or instance; None uses the config's scheduler.
        slo_attainment: the target fraction of requests meeting the SLO, in (0, 1).
        replications: ``R >= 2`` replications per probed rate (seeds ``seed .. seed + R - 1``,
            common random numbers across rates).
        rel_tol: stop when ``(high - low) / low < rel_tol``.
        low_rate_per_s: optional starting lower bound (requests per second); it is probed, and
            if it fails the search moves down from it.
        high_rate_per_s: optional starting upper bound; probed, and if it meets the search moves
            up from it.
        seed: first replication seed.
        progress: show a tqdm bar over probes.
        max_probes: cap on the number of probed rates (bracketing plus bisection).
        stable_rel_tol: growth tolerance of the stability rule, as a fraction of the rate.
        level: confidence level of the attainment and backlog-growth intervals.

    Raises:
        ConfigError: the config has no ``slo`` block.
        ValueError: an argument is out of range.
        CapacityError: no rate meets the target even 1000 times below the starting rate, no
            failing rate is found, or ``max_probes`` is exhausted before the bracket is
            narrower than ``rel_tol``.
    """
    base = as_config(cfg)
    if base.slo is None:
        raise ConfigError(
            "capacity needs an SLO to define attainment; set slo: {ttft_ms: ..., tbt_ms: ...} "
            "(e.g. --set slo.ttft_ms=2000 --set slo.tbt_ms=200)", "slo", None)
    target = _check_fraction("slo_attainment", slo_attainment)
    if isinstance(replications, bool) or not isinstance(replications, (int, np.integer)) \
            or replications < 2:
        raise ValueError(f"replications must be an integer >= 2 (for a t-CI), "
                         f"got {replications!r}")
    if not (isinstance(rel_tol, (int, float)) and 0.0 < rel_tol < 1.0):
        raise ValueError(f"rel_tol must be a number in (0, 1), got {rel_tol!r}")
    if isinstance(max_probes, bool) or not isinstance(max_probes, int) or max_probes < 2:
        raise ValueError(f"max_probes must be an integer >= 2, got {max_probes!r}")
    low = _check_rate("low_rate_per_s", low_rate_per_s)
    high = _check_rate("high_rate_per_s", high_rate_per_s)
    if low is not None and high is not None and not low < high:
        raise ValueError(f"low_rate_per_s ({low}) must be < high_rate_per_s ({high})")
    if isinstance(policy, str):
        scheduler_class(policy)  # fail fast on an unknown name
    name = (policy.name or type(policy).__name__) if isinstance(policy, Scheduler) \
        else (policy or base.scheduler.name)
    seeds = list(range(seed, seed + int(replications)))

    probes: list[_Probe] = []
    bar = tqdm(desc=f"capacity ({name})", unit="probe", disable=not progress)

    def probe(rate: float) -> _Probe:
        if len(probes) >= max_probes:
            raise CapacityError(_budget_message(max_probes, probes))
        run_cfg = base.replace({RATE_KEY: rate})
        attain, slopes = [], []
        for s in seeds:
            result = simulate(run_cfg, policy=policy, seed=s)
            attain.append(result.summary()["slo_attainment"])
            slopes.append(segment_slopes(result))
        att = t_interval(attain, level)
        growth = t_interval(np.concatenate(slopes), level)
        stable = judge_stable(growth, rate, stable_rel_tol)
        p = _Probe(rate, att, growth, stable, stable and att.mean >= target)
        probes.append(p)
        bar.update(1)
        bar.set_postfix(rate=f"{rate:.4g}", attainment=f"{att.mean:.3f}",
                        meets=p.meets)
        return p

    def bracket() -> tuple[_Probe | None, _Probe | None]:
        """(largest meeting probe, smallest failing probe above it) over all probes so far."""
        meeting = [p for p in probes if p.meets]
        good = max(meeting, key=lambda p: p.rate_per_s) if meeting else None
        failing = [p for p in probes if not p.meets
                   and (good is None or p.rate_per_s > good.rate_per_s)]
        bad = min(failing, key=lambda p: p.rate_per_s) if failing else None
        return good, bad

    start = next((r for r in (low, high) if r is not None),
                 float(base.workload.arrival.rate_per_s))
    try:
        for rate in sorted({start, low, high} - {None}):
            probe(rate)
        good, bad = bracket()
        while good is None:  # halve until a rate meets
            assert bad is not None
            rate = bad.rate_per_s / 2.0
            if rate < start / MAX_SHRINK:
                raise CapacityError(
                    f"no arrival rate meets SLO attainment >= {target:g} for {name}: every "
                    f"rate from {start:.4g} down to {bad.rate_per_s:.4g} req/s fails (the "
                    f"search stops below start / {MAX_SHRINK:g}); at {bad.rate_per_s:.4g} "
                    f"req/s the attainment is {bad.attainment} (stable={bad.stable}). The "
                    f"SLO (ttft_ms={base.slo.ttft_ms:g}, tbt_ms={base.slo.tbt_ms:g}) looks "
                    f"unreachable even without queueing")
            probe(rate)
            good, bad = bracket()
        while bad is None:  # double until a rate fails
            probe(good.rate_per_s * 2.0)
            good, bad = bracket()
        while (bad.rate_per_s - good.rate_per_s) / good.rate_per_s >= rel_tol:
            probe(0.5 * (good.rate_per_s + bad.rate_per_s))
            good, bad = bracket()
    finally:
        bar.close()

    table = pd.DataFrame([p.row() for p in probes], columns=list(PROBE_COLUMNS))
    table.index.name = "probe"
    return CapacityResult(
        rate_per_s=good.rate_per_s, low_per_s=good.rate_per_s, high_per_s=bad.rate_per_s,
        target=target, policy=name, replications=int(replications),
        low_attainment=good.attainment, high_attainment=bad.attainment, probes=table)


def _budget_message(max_probes: int, probes: list[_Probe]) -> str:
    rates = ", ".join(f"{p.rate_per_s:.4g}{'+' if p.meets else '-'}" for p in probes)
    return (f"capacity search used its {max_probes} probes without a bracket narrower than "
            f"rel_tol (probed rates, + meets / - fails: {rates}); raise max_probes or rel_tol")
