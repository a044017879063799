"""Output-length predictors, and the guarantee that no policy and no observation reads true
output lengths unless the config's predictor is ``oracle``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import llm_serving_env as lse
from llm_serving_env.env import LLMServingEnv
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import DecisionView, RequestTable, Scheduler
from llm_serving_env.workload.generate import generate_workload
from llm_serving_env.workload.predictors import BucketPredictor, LognormalPredictor

BASE = {"num_requests": 400, "warmup_requests": 0}


def config(predictor=None, output=None, **changes):
    cfg = lse.load_config("default").replace({**BASE, **changes})
    if output is not None:
        cfg = cfg.replace({"workload.output_tokens": output})
    if predictor is not None:
        cfg = cfg.replace({"workload.length_predictor": predictor})
    return cfg


# ---------------------------------------------------------------------- config
def test_default_is_none_and_yaml_round_trips():
    cfg = lse.load_config("default")
    assert cfg.workload.length_predictor.kind == "none"
    for form in ("oracle", {"kind": "lognormal", "sigma": 0.5},
                 {"kind": "buckets", "edges_tokens": [8, 32], "accuracy": 0.7}):
        again = config(form)
        assert lse.SimConfig.from_dict(again.to_dict()) == again


@pytest.mark.parametrize(("form", "message"), [
    ({"kind": "crystal_ball"}, "workload.length_predictor.kind = 'crystal_ball'"),
    ({"kind": "lognormal", "sigma": -1}, "workload.length_predictor.sigma = -1"),
    ({"kind": "lognormal"}, "missing required key 'sigma'"),
    ({"kind": "buckets", "edges_tokens": [32, 8]}, "must be strictly ascending"),
    ({"kind": "buckets", "edges_tokens": [8], "accuracy": 1.5}, "must be a probability"),
])
def test_bad_predictors_are_config_errors_naming_the_field(form, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(form)


# ---------------------------------------------------------------------- predictions
def workload(cfg, seed=0):
    return generate_workload(cfg.workload, cfg.num_requests, seed)


def test_turning_a_predictor_on_changes_no_other_draw():
    plain, told = workload(config()), workload(config("oracle"))
    for name in ("arrival_s", "prompt_tokens", "output_tokens"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(told, name))
    assert np.isnan(plain.predicted_output_tokens).all()
    np.testing.assert_array_equal(told.predicted_output_tokens, told.output_tokens)


def test_lognormal_error_has_the_configured_scale():
    n = 20000
    cfg = config({"kind": "lognormal", "sigma": 0.5}, num_requests=n)
    w = workload(cfg, seed=3)
    z = np.log(w.predicted_output_tokens / w.output_tokens) / 0.5  # should be N(0, 1)
    # the sample mean of n standard normals has sd 1/sqrt(n); its variance sd sqrt(2/n)
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.var() - 1.0) < 4 * math.sqrt(2 / n)


def test_buckets_by_hand_and_their_error_rate():
    exact = BucketPredictor(edges_tokens=(8, 32))
    rng = np.random.default_rng(0)
    true = np.array([1, 8, 9, 32, 33, 500])
    # buckets (right-closed): <= 8 -> 8, (8, 32] -> 32, > 32 -> 32 (the open bucket's edge)
    np.testing.assert_array_equal(exact.predict(rng, true), [8, 8, 32, 32, 32, 32])
    noisy = BucketPredictor(edges_tokens=(8, 32, 128), accuracy=0.7)
    n = 40000
    true = np.full(n, 20)  # bucket 1, predicted 32 when right
    pred = noisy.predict(np.random.default_rng(1), true)
    right = np.mean(pred == 32)
    assert abs(right - 0.7) < 4 * math.sqrt(0.7 * 0.3 / n)
    # a wrong bucket is uniform over the 3 others (8, 128, and the open one predicted 128)
    wrong = pred[pred != 32]
    share_8 = np.mean(wrong == 8)
    assert abs(share_8 - 1 / 3) < 4 * math.sqrt(2 / 9 / wrong.size)


def test_lognormal_with_zero_sigma_is_the_oracle():
    w = generate_workload(config({"kind": "lognormal", "sigma": 0.0}).workload, 100, 0)
    np.testing.assert_array_equal(w.predicted_output_tokens, w.output_tokens)
    assert isinstance(config({"kind": "lognormal", "sigma": 0.0}).workload.length_predictor,
                      LognormalPredictor)


# ---------------------------------------------------------------------- no oracle knowledge
class Snoop(Scheduler):
    """hybrid's batches, recording every array a policy can reach through its inputs."""

    name = "snoop"

    def __init__(self, cfg):
        super().__init__(None, cfg)
        self.inner = lse.make_scheduler(cfg, "hybrid")
        self.seen: dict[str, np.ndarray] = {}

    def check_feasible(self, limits) -> None:
        self.limits = limits

    def collect(self, where: str, obj) -> None:
        for name in dir(obj):
            if name.startswith("__"):
                continue
            value = getattr(obj, name, None)
            if isinstance(value, np.ndarray):
                self.seen[f"{where}.{name}"] = value.copy()

    def schedule(self, view: DecisionView) -> Batch | Wait:
        self.collect("view", view)
        self.collect("view.requests", view.requests)
        return self.inner.schedule(view)


@pytest.mark.parametrize("predictor", ["none", {"kind": "lognormal", "sigma": 0.3}, "oracle"])
def test_no_policy_input_holds_the_true_output_lengths_unless_oracle(predictor):
    cfg = config(predictor, output={"dist": "uniform", "low": 2, "high": 60})
    sim = lse.Simulator(cfg, seed=0)
    sim.reset()
    truth = np.asarray(sim.workload.output_tokens)
    snoop = Snoop(cfg)
    lse.simulate(cfg, policy=snoop, seed=0)
    assert snoop.seen, "the snoop saw nothing"
    leaks = [name for name, value in snoop.seen.items()
             if value.shape == truth.shape and np.array_equal(value, truth)]
    if predictor == "oracle":  # the truth arrives only as the configured prediction
        assert leaks and all(name.endswith(".predicted_output_tokens") for name in leaks)
    else:
        assert leaks == []
    with pytest.raises(AttributeError):
        _ = sim.table.output_tokens  # a scheduler's request table has no such field


def first_finish_step(env: LLMServingEnv, agent) -> tuple[list[np.ndarray], int]:
    obs, _ = env.reset(seed=5)
    seen = [obs]
    for _ in range(5000):
        obs, _, terminated, _, info = env.step(agent.act())
        if info["num_finished"] or terminated:
            break
        seen.append(obs)
    return seen, len(seen)


@pytest.mark.parametrize(("predictor", "same"), [("none", True), ("oracle", False)])
def test_observations_do_not_depend_on_true_output_lengths_unless_oracle(predictor, same):
    """Two runs whose requests differ only in their output lengths (30 tokens each, or
    uniform on 10..50: the same mean, which the observation may use as a scale) must look the
    same to the agent until a request finishes (a finish is observable in any real engine);
    with the oracle predictor they differ from the first decode on."""
    runs = []
    for output in ({"dist": "fixed", "value": 30}, {"dist": "uniform", "low": 10, "high": 50}):
        cfg = config(predictor, output=output)
        env = LLMServingEnv(cfg)
        runs.append(first_finish_step(env, lse.BaselineAgent("hybrid", env)))
    (a, na), (b, nb) = runs
    steps = min(na, nb)
    assert steps > 20  # enough decisions with decodes in flight to compare
    identical = all(np.array_equal(x, y) for x, y in zip(a[:steps], b[:steps], strict=True))
    assert identical == same


@pytest.mark.parametrize(("predictor", "expected"), [
    ("none", ([0, 1, 0], [0, 1, 0])), ("oracle", ([0, 1, 0], [0, 1, 1]))])
def test_least_tokens_routes_by_estimated_not_true_output(predictor, expected):
    """Two GPUs, per-GPU queues. r0 and r1 (100-token prompts) arrive at 0 and 1 ms and take
    GPU 0 and GPU 1; r2 (10 tokens) at 2 ms, before any iteration ends, goes where the
    estimated work L + B' - 1 is smaller. Outputs (1, 50) or (50, 1): without a predictor
    both estimates are equal (tie: GPU 0) whatever the truth; the oracle sends r2 to the GPU
    whose request finishes sooner."""
    from llm_serving_env.workload.generate import Workload

    cfg = config(predictor, **{"num_requests": 3, "gpus.count": 2,
                               "gpus.router": "least_tokens"})
    routes = []
    for outputs in ([1, 50, 5], [50, 1, 5]):
        told = np.asarray(outputs, dtype=np.float64) if predictor == "oracle" else None
        wl = Workload(arrival_s=[0.0, 0.001, 0.002], prompt_tokens=[100, 100, 10],
                      output_tokens=outputs, predicted_output_tokens=told)
        routes.append(lse.simulate(cfg, "hybrid", workload=wl).first_gpu.tolist())
    assert tuple(routes) == expected


class Future(Scheduler):
    """hybrid's batches; checks at every decision that nothing about requests that have not
    arrived yet is visible."""

    name = "future"

    def __init__(self, cfg):
        super().__init__(None, cfg)
        self.inner = lse.make_scheduler(cfg, "hybrid")
        self.checked = 0

    def schedule(self, view: DecisionView) -> Batch | Wait:
        t, k = view.requests, view.num_arrived
        assert np.isnan(t.arrival_s[k:]).all() and not t.prompt_tokens[k:].any()
        assert np.isnan(t.predicted_output_tokens[k:]).all()
        assert (t.arrival_s[:k] <= view.now_s).all() and t.prompt_tokens[:k].all()
        # every array of the table holds one constant (its "unknown") for future requests
        for name in RequestTable.__slots__:
            future = np.asarray(getattr(t, name))[k:]
            if future.size:
                assert (np.isnan(future).all() if future.dtype.kind == "f"
                        else (future == future[0]).all()), name
        self.checked += 1
        return self.inner.schedule(view)


def test_a_scheduler_sees_no_request_before_it_arrives():
    cfg = config("oracle")
    policy = Future(cfg)
    lse.simulate(cfg, policy=policy, seed=2)
    assert policy.checked > cfg.num_requests
