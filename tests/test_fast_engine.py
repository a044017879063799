"""The compiled engine against the reference engine: the same RunResult, bit for bit.

The reference (``llm_serving_env.sim.engine``) is the independent truth here: the compiled
engine is a second implementation of the same rules, so any difference in any field (every
per-request array, every batch, every TBT gap, dtypes included) is a bug in one of them.
Cases: every shipped config with its own scheduler at full size (the issue's Done-when), every
shipped config's workload under each compiled scheduler, and random small systems drawn by
hypothesis (schedulers, budgets, 1-3 GPUs and every router, KV pressure with preemption,
block sizes, service models and noise, warm-up).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_serving_env import simulate
from llm_serving_env.config.files import load_config
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import SchedulingError
from llm_serving_env.sim.fast import fast_path_gap
from llm_serving_env.sim.scheduler import make_scheduler
from llm_serving_env.sim.simulate import (
    CompiledEngineUnavailable,
    ThrashingWarning,
    choose_engine,
)

CONFIGS = Path(__file__).resolve().parents[1] / "llm_serving_env" / "resources" / "configs"
SHIPPED = sorted(CONFIGS.rglob("*.yaml"))
COMPILED = ("hybrid", "orca", "request_level", "prefill_first", "fixed_batch",
            "dynamic_batch", "slo_aware", "slo_triage", "slo_classes")


def assert_identical(a, b) -> None:
    """Every field of two RunResults equal, arrays bit for bit with the same dtype."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name, strict=True)
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), f.name
            for key in x:
                assert x[key].dtype == y[key].dtype, (f.name, key)
                np.testing.assert_array_equal(x[key], y[key], err_msg=f"{f.name}.{key}")
        elif f.name != "config":
            assert x == y, f.name
    sa, sb = a.summary(), b.summary()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key] == sb[key] or (np.isnan(sa[key]) and np.isnan(sb[key])), key


def both(config, policy=None, seed=0):
    """The reference and the compiled run (or the same error from both)."""
    out = []
    for engine in ("reference", "compiled"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ThrashingWarning)
            try:
                out.append(simulate(config, policy, seed=seed, engine=engine))
            except (SchedulingError, ConfigError) as err:
                out.append(str(err))
    return out


def compiled_here(config, policy=None) -> bool:
    try:
        return fast_path_gap(config, make_scheduler(config, policy)) is None
    except ConfigError:
        return False


OWN = [p for p in SHIPPED if compiled_here(load_config(p))]


def test_the_compiled_engine_covers_every_shipped_config():
    # (a scheduler losing its compiled rule, or a config gaining an uncompiled feature, would
    # silently drop it from the full-size comparison below)
    assert OWN == SHIPPED
    assert len(SHIPPED) >= 23


@pytest.mark.parametrize("path", OWN, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_shipped_config_gives_the_same_result_on_both_engines(path):
    reference, compiled = both(load_config(path))
    assert not isinstance(reference, str), reference
    assert_identical(reference, compiled)


@pytest.mark.parametrize("policy", COMPILED)
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_each_compiled_scheduler_on_each_shipped_workload(path, policy):
    config = load_config(path)
    config = config.replace({"num_requests": min(config.num_requests, 1500),
                             "warmup_requests": min(config.warmup_requests, 150)})
    if not compiled_here(config, policy):
        pytest.skip("not compiled (yet) for this system")
    reference, compiled = both(config, policy, seed=3)
    if isinstance(reference, str):
        assert compiled == reference
    else:
        assert_identical(reference, compiled)


SLO_PLANNING = st.fixed_dictionaries({
    "min_token_budget": st.integers(8, 64),
    "max_token_budget": st.one_of(st.none(), st.integers(64, 2048)),
    "safety_margin_ms": st.sampled_from([0.0, 5.0, 20.0]),
    "deadline_sigmas": st.sampled_from([0.0, 2.0]),
    "kv_headroom_blocks": st.integers(0, 2),
})
SCHEDULERS = st.one_of(
    st.builds(lambda b: {"name": "hybrid", "token_budget": b}, st.integers(16, 2048)),
    st.builds(lambda w: {"name": "prefill_first", "watermark": w},
              st.sampled_from([0.0, 0.01, 0.3])),
    st.builds(lambda k, t: {"name": "fixed_batch", "min_batch_tokens": k, "timeout_ms": t},
              st.integers(1, 3000), st.floats(1.0, 500.0)),
    st.builds(lambda f: {"name": "dynamic_batch", "safety_factor": f}, st.floats(0.05, 1.0)),
    st.sampled_from([{"name": "orca"}, {"name": "request_level"}]),
    st.builds(lambda p, o, w, a: {"name": "slo_aware", **p, "prefill_order": o,
                                  "max_prefill_wait_ms": w, "attention_aware": a},
              SLO_PLANNING, st.sampled_from(["srpt", "fcfs", "triage"]),
              st.one_of(st.none(), st.floats(10.0, 3000.0)), st.booleans()),
    st.builds(lambda p: {"name": "slo_triage", **p}, SLO_PLANNING),
    st.builds(lambda p, h: {"name": "slo_classes", **p, "urgency_horizon_ms": h},
              SLO_PLANNING, st.one_of(st.none(), st.floats(0.0, 5000.0))),
)
#: the scenarios the random systems vary: one SLO (default), two SLO classes (two_class),
#: the attention term with prompts to 64k tokens (long_context); the scales of each one's
#: arrival rate and KV capacity, and its largest run (requests)
BASES = {"default.yaml": (1.0, 1, 300), "benchmarks/two_class.yaml": (1.0, 1, 300),
         "benchmarks/long_context.yaml": (0.05, 30, 40)}
SYSTEMS = st.fixed_dictionaries({
    "base": st.sampled_from(sorted(BASES)),
    "num_requests": st.integers(1, 300),
    "warmup_requests": st.integers(0, 40),
    "rate": st.floats(0.5, 40.0),
    "gpus.count": st.integers(1, 3),
    "gpus.router": st.sampled_from(["central", "round_robin", "jsq", "least_tokens"]),
    "gpus.max_batch_requests": st.integers(1, 64),
    "service": st.tuples(st.sampled_from(["piecewise_linear", "staircase"]),
                         st.sampled_from(["deterministic", "exponential", "gamma"])),
    "kv": st.one_of(st.none(), st.tuples(st.integers(2600, 9000),
                                         st.sampled_from([1, 16, 32]))),
    "scheduler": SCHEDULERS,
    "seed": st.integers(0, 10_000),
})


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(SYSTEMS)
def test_random_systems_give_the_same_result_on_both_engines(system):
    changes = dict(system)
    seed, base, rate = changes.pop("seed"), changes.pop("base"), changes.pop("rate")
    rate_scale, kv_scale, most = BASES[base]
    changes["num_requests"] = min(changes["num_requests"], most)
    changes["warmup_requests"] = min(changes["warmup_requests"], changes["num_requests"] - 1)
    if base.endswith("two_class.yaml"):
        changes["workload.arrival.rates_per_s"] = [rate, rate / 3]
    else:
        changes["workload.arrival.rate_per_s"] = rate * rate_scale
    kv = changes.pop("kv")
    if kv is not None:
        changes["gpus.kv_capacity_tokens"] = kv[0] * kv_scale
        changes["gpus.kv_block_tokens"] = kv[1]
    model, noise = changes.pop("service")
    if not base.endswith("long_context.yaml"):  # (its preset prices attention)
        changes["service.model"], changes["service.noise"] = model, noise
        if noise == "gamma":
            changes["service.cv"] = 0.5
    try:
        config = load_config(CONFIGS / base).replace(changes)
    except ConfigError:
        return
    reference, compiled = both(config, seed=seed)
    if isinstance(reference, str):
        assert compiled == reference
    else:
        assert_identical(reference, compiled)


def test_noise_blocks_are_drawn_as_the_reference_draws_them():
    # 3 GPUs of noisy service, more than 4,096 batches each: every GPU refills its block
    config = load_config(CONFIGS / "mm1.yaml").replace(
        {"num_requests": 30000, "warmup_requests": 0, "gpus.count": 3,
         "gpus.router": "round_robin", "scheduler": {"name": "hybrid", "token_budget": 100}})
    reference, compiled = both(config)
    assert (np.bincount(reference.batch_columns["gpu"]) > 2 * 4096).all()
    assert_identical(reference, compiled)


def test_kv_pressure_preempts_and_still_agrees():
    config = load_config(CONFIGS / "default.yaml").replace(
        {"num_requests": 3000, "gpus.kv_capacity_tokens": 6000, "gpus.kv_block_tokens": 16,
         "workload.arrival.rate_per_s": 9.0})
    for policy in ("hybrid", "orca", "prefill_first"):
        reference, compiled = both(config, policy)
        assert int(reference.preemptions.sum()) > 0, policy
        assert_identical(reference, compiled)


def test_progress_bar_runs_in_slices_and_changes_nothing(capsys):
    config = load_config(CONFIGS / "default.yaml").replace({"num_requests": 2000,
                                                            "warmup_requests": 200})
    import llm_serving_env.sim.fast.runner as runner

    old = runner.PROGRESS_EVERY
    runner.PROGRESS_EVERY = 97  # many pauses and resumptions
    try:
        sliced = simulate(config, engine="compiled", progress=True)
    finally:
        runner.PROGRESS_EVERY = old
    assert_identical(simulate(config, engine="reference"), sliced)
    assert "2000/2000" in capsys.readouterr().err


def test_engine_choice_is_validated_and_explained():
    config = load_config(CONFIGS / "default.yaml").replace({"num_requests": 20,
                                                            "warmup_requests": 0})
    with pytest.raises(ConfigError, match="engine = 'fast'.*auto, compiled, reference"):
        simulate(config, engine="fast")
    caching = config.replace({"gpus.prefix_caching": True})
    with pytest.raises(ConfigError, match="prefix_caching is not compiled"):
        simulate(caching, engine="compiled")
    split = load_config(CONFIGS / "distserve.yaml").replace(
        {"num_requests": 20, "warmup_requests": 0,
         "disaggregation": {"prefill": {"count": 2}, "decode": {"count": 2}}})
    with pytest.raises(ConfigError, match="disaggregation is not compiled"):
        simulate(split, engine="compiled")
    # auto falls back to the reference engine for what is not compiled
    assert simulate(split).summary()["num_completed"] == 20
    hybrid = make_scheduler(config)
    assert [choose_engine(config, hybrid, e) for e in ("auto", "compiled", "reference")] == [
        "compiled", "compiled", "reference"]
    assert choose_engine(caching, make_scheduler(caching)) == "reference"
    with pytest.raises(CompiledEngineUnavailable) as err:
        choose_engine(caching, make_scheduler(caching), "compiled")
    assert err.value.gap.startswith("gpus.prefix_caching is not compiled")


def test_a_subclass_of_a_builtin_scheduler_is_not_compiled():
    from baselines.hybrid import HybridScheduler

    class Tweaked(HybridScheduler):
        def schedule(self, view):
            return super().schedule(view)

    config = load_config(CONFIGS / "default.yaml")
    assert fast_path_gap(config, make_scheduler(config)) is None
    tweaked = Tweaked(make_scheduler(config).config, config)
    assert "no compiled rule" in fast_path_gap(config, tweaked)


def test_command_line_engine_choice(capsys):
    from llm_serving_env.cli import main

    small = ["--set", "num_requests=300", "--set", "warmup_requests=0"]
    assert main(["simulate", "--config", "default", *small, "--engine", "compiled"]) == 0
    compiled = capsys.readouterr().out
    assert main(["simulate", "--config", "default", *small, "--engine", "reference"]) == 0
    reference = capsys.readouterr().out
    assert "engine=compiled" in compiled and "engine=reference" in reference
    # the same summary, line for line (the header differs in the engine and the wall time)
    assert compiled.splitlines()[1:] == reference.splitlines()[1:]
    assert main(["simulate", "--config", "default", *small, "--set",
                 "gpus.prefix_caching=true", "--engine", "compiled"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("llm-serving: error: --engine compiled: gpus.prefix_caching is not compiled "
                   "yet; use --engine auto or reference")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.045, 0.1, 0.2, 1 / 3, 0.5, 2.0]),
                          st.integers(1, 6)), min_size=1, max_size=40),
       st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0, 0.123]))
def test_tbt_metrics_from_runs_equal_numpy_on_the_expanded_gaps(runs, q):
    from llm_serving_env.sim.result import _run_mean, _run_quantile, gap_runs

    values = np.array([v for v, _ in runs])
    lengths = np.array([c for _, c in runs], dtype=np.int64)
    gaps = np.repeat(values, lengths)
    assert _run_quantile(values, lengths, q) == float(np.quantile(gaps, q))  # bit for bit
    assert _run_mean(values, lengths) == pytest.approx(float(gaps.mean()), rel=1e-14)
    rows = np.repeat(np.arange(values.size), lengths)  # one run per batch
    v, n, r = gap_runs(gaps, rows)
    np.testing.assert_array_equal(np.repeat(v, n), gaps)
    np.testing.assert_array_equal(np.repeat(r, n), rows)


def test_a_scheduler_built_for_another_config_runs_on_the_reference_engine():
    # found by review: the compiled rule plans with the run's service, the Python scheduler
    # with the config it was built for
    a = load_config(CONFIGS / "default.yaml").replace(
        {"num_requests": 200, "warmup_requests": 0, "scheduler": {"name": "dynamic_batch"}})
    other = a.replace({"service.c_ms": 5.0, "service.a_ms": 0.05})
    scheduler = make_scheduler(a)
    assert "built for another config" in fast_path_gap(other, scheduler)
    assert_identical(simulate(other, scheduler, engine="reference"),
                     simulate(other, scheduler))


@pytest.mark.parametrize("changes", [{"gpus.max_batch_requests": 10**9},
                                     {"gpus.max_batch_tokens": 10**20},
                                     {"gpus.kv_capacity_tokens": 10**20,
                                      "gpus.kv_block_tokens": 1}])
def test_huge_limits_run_on_either_engine_alike(changes):
    # found by review: tables sized by max_batch_requests, limits beyond int64
    config = load_config(CONFIGS / "default.yaml").replace(
        {"num_requests": 50, "warmup_requests": 0, **changes})
    reference = simulate(config, "hybrid", engine="reference")
    assert_identical(reference, simulate(config, "hybrid"))


def test_the_numba_cache_is_keyed_by_the_whole_engine_source():
    # numba checks a cached function against its own file only; an edit to a callee in
    # another file (or a package upgrade) must not load stale code
    from llm_serving_env.sim.fast import rules
    from llm_serving_env.sim.fast.cache import kernel_module, source_digest

    kernel = kernel_module()
    for function in (kernel.run, rules.hybrid):
        assert source_digest() in function._cache._cache_path
