"""slo_upper_bound: a true upper bound on the SLO attainment of any scheduler.

The decisive check is exhaustive: on tiny instances every schedule the engine accepts is
enumerated (every batch composition and chunking at every decision point, or waiting for the
next event), its attainment read from the engine's own RunResult, and the best one must not
exceed the bound. Then: every registered scheduler on shipped configs stays below it; a light
load gives exactly 1; an impossible TTFT gives 0; errors are clear.
"""

from __future__ import annotations

import copy
import functools
import itertools

import numpy as np
import pytest

import llm_serving_env as lse
from llm_serving_env.analysis.bounds import (
    max_tokens,
    min_prefill_time,
    slo_bound_details,
    slo_upper_bound,
)
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.sim.scheduler import canonical_schedulers
from llm_serving_env.workload.generate import Workload

#: (instance name, bound - optimum) of the exhaustive search, printed at the end (pytest -s).
GAPS: list[tuple[str, float, float]] = []


# ---------------------------------------------------------------------------- service algebra
def _services():
    rng = np.random.default_rng(7)
    out = []
    for _ in range(60):
        model = str(rng.choice(["piecewise_linear", "staircase"]))
        c = float(rng.choice([0.0, 0.01, 0.05, 0.1]))
        a = float(rng.choice([0.0, 0.003, 0.02]))
        b0 = int(rng.integers(1 if model == "staircase" else 0, 9))
        svc = ServiceModel(model=model, c_s=c, a_s=a, b0_tokens=b0)
        out.append((svc, int(rng.integers(1, 12))))
    return out


def test_min_prefill_time_is_the_exact_minimum_over_chunkings():
    for svc, K in _services():
        @functools.lru_cache(None)
        def best(L, svc=svc, K=K):
            if L == 0:
                return 0.0
            return min(svc.mean_s(x) + best(L - x) for x in range(1, min(K, L) + 1))

        Ls = np.arange(1, 40)
        np.testing.assert_allclose(min_prefill_time(svc, Ls, K), [best(int(v)) for v in Ls],
                                   atol=1e-12, err_msg=svc.describe())


def test_max_tokens_is_at_least_what_any_sequence_of_iterations_processes():
    for svc, K in _services():
        if svc.c_s == 0:
            continue
        us = [round(float(svc.mean_s(b)) * 1e6) for b in range(1, K + 1)]

        @functools.lru_cache(None)
        def most(t_us, us=tuple(us)):
            return max([b + 1 + most(t_us - u) for b, u in enumerate(us) if u <= t_us] + [0])

        for delta in (0.0, 0.03, 0.1, 0.17, 0.35, 0.5):
            assert max_tokens(svc, delta, K) >= most(round(delta * 1e6)) - 1e-9, svc.describe()


# ---------------------------------------------------------------------------- exhaustive search
def _tiny_config(model: str, c_ms: float, a_ms: float, b0: int, K: int, ttft_ms: float,
                 tbt_ms: float, n: int, gpus: int = 1) -> lse.SimConfig:
    return lse.SimConfig.from_dict({
        "num_requests": n, "warmup_requests": 0,
        "workload": {"arrival": {"process": "deterministic", "rate_per_s": 1.0},
                     "prompt_tokens": {"dist": "fixed", "value": 1},
                     "output_tokens": {"dist": "fixed", "value": 1}},
        "service": {"model": model, "c_ms": c_ms, "a_ms": a_ms, "b0_tokens": b0},
        "gpus": {"count": gpus, "max_batch_tokens": K, "max_batch_requests": 8},
        "slo": {"ttft_ms": ttft_ms, "tbt_ms": tbt_ms},
    })


def _actions(sim: lse.Simulator, view: lse.DecisionView):
    """Every batch the GPU could run now (any chunk of any waiting request, any subset of the
    decode-ready ones, within the token limit), and Wait() when some event is pending."""
    waiting = [int(r) for r in view.waiting]
    remaining = [int(r) for r in view.remaining_prompt(view.waiting)]
    decoding = [int(r) for r in view.decoding]
    K = view.max_batch_tokens
    for chunks in itertools.product(*[range(r + 1) for r in remaining]):
        tokens = sum(chunks)
        if tokens > K:
            continue
        prefill = {r: c for r, c in zip(waiting, chunks, strict=True) if c}
        for k in range(len(decoding) + 1):
            if tokens + k > K:
                break
            for dec in itertools.combinations(decoding, k):
                if prefill or dec:
                    yield lse.Batch.of(prefill, dec)
    if sim.event_pending():
        yield lse.Wait()


def _state(node: lse.Simulator, view: lse.DecisionView, failed: np.ndarray) -> tuple:
    """Everything the rest of a run depends on, at a decision point: time, the deciding GPU,
    each request's progress, last token time and whether it already missed the SLO, the
    GPUs' batches in flight and waits, the next arrival."""
    flights = tuple(None if b is None else (tuple(b.prefill_ids.tolist()),
                                            tuple(b.prefill_tokens.tolist()),
                                            tuple(b.decode_ids.tolist()))
                    for b in node.in_flight)
    return (node.now_s, view.gpu, node.next_arrival, tuple(node.prefilled.tolist()),
            tuple(node.target.tolist()), tuple(node.generated.tolist()),
            tuple(node.last_token_s.tolist()), tuple(node.gpu_of.tolist()),
            tuple(failed.tolist()), tuple(node.busy_until), flights, tuple(node.parked),
            tuple(node.wait_until))


def _optimum(cfg: lse.SimConfig, workload: Workload) -> tuple[float, int]:
    """The best SLO attainment over every schedule: depth-first over decision points, copying
    the engine for each action (the engine's SchedulingError prunes invalid batches).

    Exact speed-ups: decision points in the same state are solved once; a branch is cut when
    even meeting the SLO for every request that has not yet missed it would not beat the best
    complete schedule found (a request has missed it once its TTFT or a gap exceeds the
    objective, or it has waited longer than that for its next token). Between two decision
    points a GPU finishes at most one batch, so a request emits at most one token: its gap is
    the change of its last token time.
    """
    sim = lse.Simulator(cfg, seed=0, workload=workload)
    sim.reset()
    ttft, tbt = cfg.slo.objectives_s(sim.slo_class)  # per request (slo.classes)
    arrival = sim.arrival_s
    memo: dict[tuple, float] = {}
    best = [-1.0]
    leaves = [0]

    def value(node: lse.Simulator, before: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
        try:
            view = node.next_decision()
        except lse.SchedulingError:  # deadlock: nothing can happen any more
            return -1.0
        if view is None:
            leaves[0] += 1
            got = node.result().summary()["slo_attainment"]
            best[0] = max(best[0], got)
            return got
        failed, last, generated = before
        new_token = (node.generated > generated) & (generated >= 1)
        gaps = np.where(new_token, node.last_token_s - last, 0.0)
        failed = (failed | (gaps > tbt)
                  | (node.first_token_s - arrival > ttft)
                  | (np.isnan(node.first_token_s) & (node.now_s - arrival > ttft))
                  | ((node.generated >= 1) & (node.generated < node.output)
                     & (node.now_s - node.last_token_s > tbt)))
        if (~failed).mean() <= best[0]:
            return -1.0
        key = _state(node, view, failed)
        if key not in memo:
            here = -1.0
            snapshot = (failed, node.last_token_s.copy(), node.generated.copy())
            for action in _actions(node, view):
                child = copy.deepcopy(node)
                try:
                    child.execute(action)
                except lse.SchedulingError:
                    continue
                here = max(here, value(child, snapshot))
                if here >= 1.0:
                    break
            memo[key] = here
        return memo[key]

    n = sim.n
    value(sim, (np.zeros(n, dtype=bool), np.full(n, np.nan), np.zeros(n, dtype=np.int64)))
    return best[0], leaves[0]


TINY = [
    # name, (model, c_ms, a_ms, b0, K, ttft_ms, tbt_ms, gpus), arrivals, prompts, outputs
    ("pl_contention", ("piecewise_linear", 1000, 500, 2, 4, 2500, 1500, 1),
     [0.0, 0.0, 0.5], [4, 3, 2], [1, 2, 1]),
    ("pl_ttft_tight", ("piecewise_linear", 1000, 500, 2, 3, 2000, 1000, 1),
     [0.0, 0.0, 0.0, 1.0], [2, 2, 3, 1], [1, 1, 1, 2]),
    ("pl_decodes", ("piecewise_linear", 1000, 250, 1, 4, 3000, 1250, 1),
     [0.0, 0.25, 0.5], [3, 2, 4], [3, 2, 2]),
    ("stair_mix", ("staircase", 500, 500, 2, 4, 2500, 1500, 1),
     [0.0, 0.0, 1.0, 1.0], [3, 1, 2, 4], [2, 1, 2, 1]),
    ("stair_burst", ("staircase", 1000, 250, 2, 3, 2500, 2000, 1),
     [0.0, 0.0, 0.0, 0.0, 0.0], [2, 1, 3, 1, 2], [1, 1, 1, 1, 1]),
    ("two_gpus", ("piecewise_linear", 1000, 500, 2, 3, 2000, 1500, 2),
     [0.0, 0.0, 0.5], [3, 2, 3], [1, 2, 2]),
]


@pytest.mark.parametrize("name,params,arrivals,prompts,outputs", TINY,
                         ids=[t[0] for t in TINY])
def test_no_schedule_beats_the_bound_on_tiny_instances(name, params, arrivals, prompts,
                                                        outputs):
    model, c, a, b0, K, ttft, tbt, gpus = params
    cfg = _tiny_config(model, c, a, b0, K, ttft, tbt, len(arrivals), gpus)
    _check_against_search(name, cfg, Workload(
        arrival_s=np.array(arrivals), prompt_tokens=np.array(prompts),
        output_tokens=np.array(outputs)))


def _check_against_search(name: str, cfg: lse.SimConfig, workload: Workload) -> None:
    """The bound is at least the exhaustive search's optimum (the gap is printed)."""
    bound = slo_upper_bound(cfg, workload=workload)
    optimum, leaves = _optimum(cfg, workload)
    GAPS.append((name, bound, optimum))
    print(f"\n{name}: bound {bound:.4f} optimum {optimum:.4f} gap {bound - optimum:.4f} "
          f"({leaves} complete schedules evaluated)")
    assert leaves > 0
    assert optimum <= bound + 1e-12


TINY_CLASSES = [
    # name, (model, c_ms, a_ms, b0, K, gpus), classes (ttft_ms, tbt_ms), arrivals, prompts,
    # outputs, class of each request
    ("classes_pl", ("piecewise_linear", 1000, 500, 2, 4, 1), [(1500, 1200), (4000, 2500)],
     [0.0, 0.0, 0.5, 0.5], [3, 2, 2, 1], [1, 2, 2, 1], [1, 0, 1, 0]),
    ("classes_decodes", ("piecewise_linear", 1000, 250, 1, 3, 1), [(2000, 1250), (3500, 3000)],
     [0.0, 0.25, 0.5], [2, 3, 1], [2, 2, 3], [0, 1, 1]),
    # the two tight prompts cannot both start within 1.5 s: only the per-class relaxation
    # sees it (with the loose class's 5 s they fit), and the bound is 3/4, the optimum
    ("classes_tight_pair", ("piecewise_linear", 1000, 500, 2, 4, 1),
     [(1500, 1000), (5000, 3000)], [0.0, 0.0, 0.0, 0.0], [3, 3, 1, 1], [1, 1, 1, 1],
     [0, 0, 1, 1]),
    ("classes_stair", ("staircase", 500, 500, 2, 4, 1), [(1500, 1000), (3000, 2000)],
     [0.0, 0.0, 0.0, 1.0, 1.0], [2, 1, 3, 1, 2], [1, 2, 1, 1, 1], [1, 0, 1, 0, 0]),
]


@pytest.mark.parametrize("name,params,classes,arrivals,prompts,outputs,slo_class",
                         TINY_CLASSES, ids=[t[0] for t in TINY_CLASSES])
def test_no_schedule_beats_the_bound_with_slo_classes(name, params, classes, arrivals, prompts,
                                                       outputs, slo_class):
    """As above, with two SLO classes: each request is judged by its own class's objectives,
    in the engine, in the bound and in the search."""
    model, c, a, b0, K, gpus = params
    cfg = _tiny_config(model, c, a, b0, K, 1000, 1000, len(arrivals), gpus).replace({"slo": {
        "classes": [{"name": f"c{i}", "share": 0.5, "ttft_ms": t, "tbt_ms": d}
                    for i, (t, d) in enumerate(classes)]}})
    _check_against_search(name, cfg, Workload(
        arrival_s=np.array(arrivals), prompt_tokens=np.array(prompts),
        output_tokens=np.array(outputs), slo_class=np.array(slo_class)))


# ---------------------------------------------------------------------------- every scheduler
def _det(cfg: lse.SimConfig, n: int, **changes) -> lse.SimConfig:
    return cfg.replace({"num_requests": n, "warmup_requests": n // 10,
                        "service.noise": "deterministic", **changes})


SCHEDULER_CONFIGS = [
    ("default", lambda: _det(lse.load_config("configs/default.yaml"), 800)),
    ("default_overload", lambda: _det(lse.load_config("configs/default.yaml"), 500,
                                      **{"workload.arrival.rate_per_s": 12.0})),
    ("bursty_chat", lambda: _det(lse.load_config("configs/benchmarks/bursty_chat.yaml"), 800)),
    ("bursty_interactive",
     lambda: _det(lse.load_config("configs/benchmarks/bursty_interactive.yaml"), 800)),
    ("heavy_tail", lambda: _det(lse.load_config("configs/benchmarks/heavy_tail.yaml"), 600)),
    ("two_gpus", lambda: _det(lse.load_config("configs/default.yaml"), 800,
                              **{"gpus.count": 2, "workload.arrival.rate_per_s": 14.0})),
    ("disaggregated", lambda: _det(lse.load_config("configs/default.yaml"), 600, **{
        "gpus.count": 3, "workload.arrival.rate_per_s": 19.0,
        "disaggregation": {"prefill": {"count": 2}, "decode": {"count": 1}}})),
    ("kv_limited", lambda: _det(lse.load_config("configs/default.yaml"), 600,
                                **{"gpus.kv_capacity_tokens": 4096})),
]


@pytest.mark.parametrize("name,make", SCHEDULER_CONFIGS, ids=[c[0] for c in SCHEDULER_CONFIGS])
def test_every_registered_scheduler_stays_below_the_bound(name, make):
    cfg = make()
    bound = slo_upper_bound(cfg, seed=3)
    ran = {}
    for policy in canonical_schedulers():
        try:
            result = lse.simulate(cfg, policy=policy, seed=3)
        except lse.ConfigError:  # the policy rejects this config
            continue
        ran[policy] = result.summary()["slo_attainment"]
    assert len(ran) >= 3, f"only {sorted(ran)} could run on {name}"
    print(f"\n{name}: bound {bound:.4f} best {max(ran.values()):.4f} {ran}")
    for policy, attainment in ran.items():
        assert attainment <= bound + 1e-12, (policy, attainment, bound)


# ---------------------------------------------------------------------------- edge values
def _light(**slo) -> lse.SimConfig:
    return lse.load_config("configs/default.yaml").replace({
        "num_requests": 60, "warmup_requests": 5,
        "workload.arrival": {"process": "deterministic", "rate_per_s": 0.1},
        "slo": slo or {"ttft_ms": 2000, "tbt_ms": 200}})


def test_light_load_bound_is_exactly_one_and_reached():
    cfg = _light()
    assert slo_upper_bound(cfg) == 1.0
    assert lse.simulate(cfg, policy="hybrid").summary()["slo_attainment"] == 1.0


def test_impossible_ttft_gives_zero():
    cfg = _light(ttft_ms=40.0, tbt_ms=200)  # < S(1) = 45.5 ms: no prefill is that fast
    details = slo_bound_details(cfg)
    assert details.bound == 0.0 and details.num_candidates == 0
    cfg = _light(ttft_ms=2000, tbt_ms=40.0)  # no decode that fast: only one-token outputs
    sim = lse.Simulator(cfg)
    sim.reset()
    measured = sim.workload.output_tokens[cfg.warmup_requests:]
    assert slo_upper_bound(cfg) == pytest.approx(float((measured == 1).mean()))


def test_needs_an_slo_and_deterministic_service():
    cfg = lse.load_config("configs/default.yaml").replace({"num_requests": 20,
                                                           "warmup_requests": 0})
    no_slo = lse.SimConfig.from_dict({**cfg.to_dict(), "slo": None})
    with pytest.raises(ValueError, match="needs an SLO"):
        slo_upper_bound(no_slo)
    noisy = cfg.replace({"service.noise": "exponential"})
    with pytest.raises(ValueError, match=r"service\.noise = 'exponential'.*deterministic"):
        slo_upper_bound(noisy)


def test_accepts_paths_and_preset_names_like_simulate():
    cfg = lse.load_config("configs/default.yaml")
    small = cfg.replace({"num_requests": 300, "warmup_requests": 30})
    d = small.to_dict()
    assert slo_upper_bound(d, seed=1) == slo_upper_bound(small, seed=1)
    with pytest.raises(ValueError, match="needs an SLO"):
        slo_upper_bound("mm1")  # a preset name; mm1 has no SLO
