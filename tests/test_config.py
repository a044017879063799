"""Config loading, validation messages, round trips, replace() and overrides."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
import yaml

import llm_serving_env.config.files as config_module
from llm_serving_env.config.files import available_presets, load_config, parse_override, save_config
from llm_serving_env.config.sections import GpuConfig, SchedulerConfig, SloConfig
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.hardware.service_config import ServiceConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.workload.arrivals import DeterministicArrival, GammaArrival, PoissonArrival
from llm_serving_env.workload.config import WorkloadConfig
from llm_serving_env.workload.lengths import (
    EmpiricalLength,
    FixedLength,
    GeometricLength,
    MixtureComponent,
    MixtureLength,
    UniformLength,
)

SPEC_YAML = """
num_requests: 20000          # arrivals to simulate (int >= 1)
warmup_requests: 2000        # first arrivals excluded from statistics (0 <= w < num_requests)
workload:
  arrival: {process: poisson, rate_per_s: 2.0}
  prompt_tokens: {dist: fixed, value: 128}
  output_tokens: {dist: geometric, mean: 16, max: 32}
service:
  model: piecewise_linear
  c_ms: 45.5
  a_ms: 0.30
  b0_tokens: 64
  noise: deterministic
  cv: null
gpus:
  count: 1
  router: central
  max_batch_tokens: 2048
  max_batch_requests: 128
  kv_capacity_tokens: null
  kv_block_tokens: 16
scheduler: {name: hybrid, token_budget: 512}
slo: {ttft_ms: 2000, tbt_ms: 200}
"""

RICH: dict[str, Any] = {
    "num_requests": 500,
    "warmup_requests": 50,
    "workload": {
        "arrival": {"process": "gamma", "rate_per_s": 3.5, "cv": 2.0},
        "prompt_tokens": {
            "dist": "mixture",
            "components": [
                {"weight": 0.6, "dist": "uniform", "low": 16, "high": 128},
                {"weight": 0.3, "dist": "fixed", "value": 512},
                {"weight": 0.1, "dist": "empirical", "values": [900, 1000], "weights": [1, 3]},
            ],
        },
        "output_tokens": {"dist": "empirical", "values": [1, 8, 32], "weights": None},
    },
    "service": {
        "model": "staircase",
        "c_ms": 11.28,
        "a_ms": 35.47,
        "b0_tokens": 128,
        "noise": "gamma",
        "cv": 0.5,
    },
    "gpus": {"count": 4, "router": "jsq", "kv_capacity_tokens": 65536, "kv_block_tokens": 32},
    "scheduler": {"name": "my_policy", "alpha": 0.5, "levels": [1, 2]},
}


@pytest.fixture
def spec_cfg() -> SimConfig:
    return SimConfig.from_dict(yaml.safe_load(SPEC_YAML))


def error_message(fn, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------ loading


def test_spec_yaml_loads_with_every_field(spec_cfg: SimConfig) -> None:
    c = spec_cfg
    assert c.num_requests == 20000 and c.warmup_requests == 2000
    assert c.workload.arrival == PoissonArrival(rate_per_s=2.0)
    assert c.workload.prompt_tokens == FixedLength(128)
    assert c.workload.output_tokens == GeometricLength(16, 32)
    assert c.service == ServiceConfig(c_ms=45.5, a_ms=0.30, b0_tokens=64)
    assert c.gpus == GpuConfig()
    assert c.scheduler.name == "hybrid" and dict(c.scheduler.params) == {"token_budget": 512}
    assert c.slo == SloConfig(ttft_ms=2000.0, tbt_ms=200.0)


def test_minimal_config_gets_documented_defaults() -> None:
    d = yaml.safe_load(SPEC_YAML)
    for key in ("warmup_requests", "gpus", "scheduler", "slo"):
        del d[key]
    del d["service"]["model"], d["service"]["noise"], d["service"]["cv"]
    c = SimConfig.from_dict(d)
    assert c.warmup_requests == 0
    assert c.gpus == GpuConfig(1, "central", 2048, 128, None, 16)
    assert c.scheduler == SchedulerConfig("hybrid", {"token_budget": 512})
    assert c.slo is None
    assert c.service.model == "piecewise_linear" and c.service.noise == "deterministic"


def test_types_are_normalised() -> None:
    d = yaml.safe_load(SPEC_YAML)
    d["num_requests"] = 20000.0  # integral float accepted for an int field
    d["workload"]["arrival"]["rate_per_s"] = 2  # int accepted for a float field
    c = SimConfig.from_dict(d)
    assert type(c.num_requests) is int and c.num_requests == 20000
    assert type(c.workload.arrival.rate_per_s) is float


@pytest.mark.parametrize("data", [yaml.safe_load(SPEC_YAML), RICH])
def test_round_trip_dict_and_yaml(data: dict[str, Any], tmp_path) -> None:
    c = SimConfig.from_dict(data)
    d = c.to_dict()
    assert SimConfig.from_dict(d) == c
    # to_dict is plain YAML: safe_dump accepts it and loading the text gives the same config
    assert SimConfig.from_dict(yaml.safe_load(yaml.safe_dump(d))) == c
    path = save_config(c, tmp_path / "sub" / "cfg.yaml")
    assert load_config(path) == c
    assert load_config(str(path)) == c
    assert pickle.loads(pickle.dumps(c)) == c


def test_to_dict_gives_flat_yaml_forms() -> None:
    c = SimConfig.from_dict(RICH)
    d = c.to_dict()
    assert d["scheduler"] == {"name": "my_policy", "alpha": 0.5, "levels": [1, 2]}
    assert d["workload"]["prompt_tokens"]["components"][0] == {
        "weight": 0.6,
        "dist": "uniform",
        "low": 16,
        "high": 128,
    }
    assert SimConfig.from_dict(yaml.safe_load(SPEC_YAML)).to_dict()["workload"][
        "output_tokens"
    ] == {"dist": "geometric", "mean": 16.0, "max": 32}
    d["scheduler"]["levels"].append(3)  # mutating the output must not touch the config
    assert list(c.scheduler.params["levels"]) == [1, 2]


def test_configs_are_immutable(spec_cfg: SimConfig) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec_cfg.num_requests = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec_cfg.scheduler.params["token_budget"] = 1  # type: ignore[index]
    params = {"token_budget": 1}
    s = SchedulerConfig("hybrid", params)
    params["token_budget"] = 2
    assert s.params["token_budget"] == 1


def test_scheduler_name_and_params_are_not_validated_here() -> None:
    s = SchedulerConfig.from_dict({"name": "anything_goes", "weird": {"x": 1}})
    assert s.name == "anything_goes" and s.params == {"weird": {"x": 1}}


# ------------------------------------------------------------------------------ errors


ERROR_CASES: list[tuple[dict[str, Any], list[str]]] = [
    (
        {"workload.arrival.rate_per_s": -1.0},
        ["workload.arrival.rate_per_s = -1.0: must be a number > 0"],
    ),
    ({"workload.arrival.rate_per_s": "fast"}, ["rate_per_s = 'fast'", "must be a number > 0"]),
    ({"num_requests": 0}, ["num_requests = 0", "must be an integer >= 1"]),
    ({"num_requests": True}, ["num_requests = True", "must be an integer"]),
    ({"num_requests": 10.5}, ["num_requests = 10.5", "must be an integer >= 1"]),
    ({"warmup_requests": -1}, ["warmup_requests = -1", ">= 0", "< num_requests (= 20000)"]),
    ({"warmup_requests": 20000}, ["warmup_requests = 20000", "< num_requests (= 20000)"]),
    (
        {"workload.prompt_tokens": {"dist": "fixed", "value": 0}},
        ["workload.prompt_tokens.value = 0", "must be an integer >= 1"],
    ),
    (
        {"workload.prompt_tokens": {"dist": "uniform", "low": 10, "high": 5}},
        ["workload.prompt_tokens.high = 5", ">= low (= 10)"],
    ),
    (
        {"workload.prompt_tokens": {"dist": "uniform", "low": 0, "high": 5}},
        ["workload.prompt_tokens.low = 0", "must be an integer >= 1"],
    ),
    ({"workload.output_tokens.mean": 0.5}, ["workload.output_tokens.mean = 0.5", ">= 1"]),
    ({"workload.output_tokens.max": 0}, ["workload.output_tokens.max = 0", ">= 1"]),
    (
        {"workload.output_tokens": {"dist": "geometrik", "mean": 3, "max": 4}},
        ["workload.output_tokens.dist = 'geometrik'", "'geometric'", "'fixed'", "did you mean"],
    ),
    (
        {"workload.output_tokens": {"mean": 3, "max": 4}},
        ["workload.output_tokens", "missing required key 'dist'", "geometric"],
    ),
    ({"workload.output_tokens": 7}, ["workload.output_tokens = 7", "must be a mapping"]),
    (
        {
            "workload.prompt_tokens": {
                "dist": "mixture",
                "components": [
                    {"weight": 1, "dist": "fixed", "value": 4},
                    {"weight": -2, "dist": "fixed", "value": 8},
                ],
            }
        },
        ["workload.prompt_tokens.components[1].weight = -2", "must be a number > 0"],
    ),
    (
        {"workload.prompt_tokens": {"dist": "mixture", "components": []}},
        ["workload.prompt_tokens.components = []", "non-empty list"],
    ),
    (
        {"workload.prompt_tokens": {"dist": "empirical", "values": [1, 2], "weights": [1.0]}},
        ["workload.prompt_tokens.weights = [1.0]", "same length as values (2)"],
    ),
    (
        {"workload.prompt_tokens": {"dist": "empirical", "values": [4, 0]}},
        ["workload.prompt_tokens.values[1] = 0", "must be an integer >= 1"],
    ),
    (
        {"workload.prompt_tokens": {"dist": "empirical", "values": [4], "weights": [0.0]}},
        ["workload.prompt_tokens.weights = [0.0]", "positive sum"],
    ),
    (
        {"workload.arrival": {"process": "gamma", "rate_per_s": 1.0, "cv": 0}},
        ["workload.arrival.cv = 0", "must be a number > 0"],
    ),
    (
        {"workload.arrival": {"process": "gamma", "rate_per_s": 1.0}},
        ["workload.arrival", "missing required key 'cv'"],
    ),
    (
        {"workload.arrival.process": "poison"},
        ["workload.arrival.process = 'poison'", "'poisson'", "'deterministic'", "'gamma'"],
    ),
    ({"service.c_ms": -0.1}, ["service.c_ms = -0.1", "must be a number >= 0"]),
    ({"service.a_ms": None}, ["service.a_ms = None", "must be a number >= 0"]),
    ({"service.c_ms": float("nan")}, ["service.c_ms = nan", "must be a number >= 0"]),
    ({"service.c_ms": "1e-3"}, ["service.c_ms = '1e-3'", "must be a number", "1.0e-3"]),
    ({"service.b0_tokens": -1}, ["service.b0_tokens = -1", "must be an integer >= 0"]),
    (
        {"service.model": "staircase", "service.b0_tokens": 0},
        ["service.b0_tokens = 0", "must be an integer >= 1", "staircase"],
    ),
    (
        {"service.model": "linear"},
        ["service.model = 'linear'", "'piecewise_linear'", "'staircase'"],
    ),
    ({"service.noise": "gamma"}, ["service.cv = None", "required", "> 0", "gamma"]),
    ({"service.noise": "gamma", "service.cv": -1}, ["service.cv = -1", "must be a number > 0"]),
    (
        {"service.noise": "exponential", "service.cv": 0.5},
        ["service.cv = 0.5", "must be null unless noise is 'gamma'", "'exponential'"],
    ),
    (
        {"service.noise": "poisson"},
        ["service.noise = 'poisson'", "'deterministic'", "'exponential'", "'gamma'"],
    ),
    ({"gpus.count": 0}, ["gpus.count = 0", "must be an integer >= 1"]),
    (
        {"gpus.router": "random"},
        ["gpus.router = 'random'", "'central'", "'round_robin'", "'jsq'"],
    ),
    ({"gpus.max_batch_tokens": 0}, ["gpus.max_batch_tokens = 0", "integer >= 1"]),
    ({"gpus.max_batch_requests": 2.5}, ["gpus.max_batch_requests = 2.5", "integer >= 1"]),
    ({"gpus.kv_capacity_tokens": 0}, ["gpus.kv_capacity_tokens = 0", "null or an integer >= 1"]),
    ({"gpus.kv_block_tokens": 0}, ["gpus.kv_block_tokens = 0", "integer >= 1"]),
    ({"gpus": [1, 2]}, ["gpus = [1, 2]", "must be a mapping"]),
    ({"scheduler.name": ""}, ["scheduler.name = ''", "non-empty string"]),
    ({"scheduler.name": 3}, ["scheduler.name = 3", "non-empty string"]),
    ({"scheduler": {"token_budget": 4}}, ["scheduler", "missing required key 'name'"]),
    ({"slo.ttft_ms": 0}, ["slo.ttft_ms = 0", "must be a number > 0"]),
    ({"slo.tbt_ms": -5}, ["slo.tbt_ms = -5", "must be a number > 0"]),
]


@pytest.mark.parametrize(("changes", "expected"), ERROR_CASES)
def test_every_error_names_field_value_and_allowed(
    spec_cfg: SimConfig, changes: dict[str, Any], expected: list[str]
) -> None:
    message = error_message(spec_cfg.replace, changes)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_config_error_is_a_value_error_with_fields(spec_cfg: SimConfig) -> None:
    with pytest.raises(ValueError) as info:
        spec_cfg.replace({"gpus.count": -3})
    err = info.value
    assert isinstance(err, ConfigError)
    assert (err.path, err.value, err.reason) == ("gpus.count", -3, "must be an integer >= 1")


@pytest.mark.parametrize(
    ("data_change", "expected"),
    [
        (
            ("", "num_request", 5),
            ["num_request", "did you mean 'num_requests'?", "warmup_requests"],
        ),
        (
            ("workload", "prompt_token", {"dist": "fixed", "value": 1}),
            ["workload.prompt_token", "did you mean 'prompt_tokens'?", "output_tokens"],
        ),
        (
            ("service", "c", 1.0),
            ["service.c: unknown key", "allowed keys: model, c_ms, a_ms, b0_tokens, noise, cv"],
        ),
        (("gpus", "max_batch_token", 64), ["gpus.max_batch_token", "'max_batch_tokens'"]),
        (("slo", "ttft_s", 1.0), ["slo.ttft_s", "did you mean 'ttft_ms'?", "tbt_ms"]),
    ],
)
def test_unknown_keys_are_errors_with_hint(
    data_change: tuple[str, str, Any], expected: list[str]
) -> None:
    d = yaml.safe_load(SPEC_YAML)
    block, key, value = data_change
    (d[block] if block else d)[key] = value
    message = error_message(SimConfig.from_dict, d)
    assert "unknown key" in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_unknown_key_inside_mixture_component() -> None:
    d = copy.deepcopy(RICH)
    d["workload"]["prompt_tokens"]["components"][1] = {"weight": 1, "dist": "fixed", "valu": 3}
    message = error_message(SimConfig.from_dict, d)
    assert "workload.prompt_tokens.components[1].valu" in message
    assert "did you mean 'value'?" in message and "allowed keys: dist, value" in message


def test_missing_required_blocks_and_keys() -> None:
    d = yaml.safe_load(SPEC_YAML)
    del d["service"]
    assert "missing required key 'service'" in error_message(SimConfig.from_dict, d)
    d = yaml.safe_load(SPEC_YAML)
    del d["service"]["c_ms"]
    message = error_message(SimConfig.from_dict, d)
    assert "service" in message and "missing required key 'c_ms'" in message
    assert "must be a mapping" in error_message(SimConfig.from_dict, [1, 2])


def test_direct_construction_validates_too() -> None:
    assert "rate_per_s = 0: must be a number > 0" in error_message(PoissonArrival, 0)
    assert "value = True" in error_message(FixedLength, True)
    assert "must be an integer >= 1" in error_message(UniformLength, 0, 3)
    assert "cv = None" in error_message(
        ServiceConfig, c_ms=1.0, a_ms=1.0, b0_tokens=1, noise="gamma"
    )
    assert "components[0]" in error_message(MixtureLength, (FixedLength(3),))
    with pytest.raises(ConfigError, match="must be a WorkloadConfig"):
        SimConfig(num_requests=3, workload=None, service=ServiceConfig(c_ms=1, a_ms=1, b0_tokens=0))


# ------------------------------------------------------------------------------ replace


def test_replace_dotted_paths(spec_cfg: SimConfig) -> None:
    c = spec_cfg.replace({"workload.arrival.rate_per_s": 3.0, "scheduler.token_budget": 256})
    assert c.workload.arrival.rate_per_s == 3.0
    assert c.scheduler.params["token_budget"] == 256
    assert spec_cfg.workload.arrival.rate_per_s == 2.0  # original untouched
    assert c.replace(num_requests=100, warmup_requests=10).num_requests == 100
    assert spec_cfg.replace(slo=None).slo is None


def test_replace_whole_blocks(spec_cfg: SimConfig) -> None:
    c = spec_cfg.replace({"workload.prompt_tokens": {"dist": "fixed", "value": 64}})
    assert c.workload.prompt_tokens == FixedLength(64)
    c = spec_cfg.replace({"workload.arrival": {"process": "deterministic", "rate_per_s": 4}})
    assert c.workload.arrival == DeterministicArrival(4.0)
    c = spec_cfg.replace({"scheduler": {"name": "request_level"}})
    assert c.scheduler == SchedulerConfig("request_level", {})


def test_replace_adds_scheduler_params_and_optional_blocks(spec_cfg: SimConfig) -> None:
    c = spec_cfg.replace({"scheduler.chunk_tokens": 64})
    assert dict(c.scheduler.params) == {"token_budget": 512, "chunk_tokens": 64}
    no_slo = spec_cfg.replace(slo=None)
    c = no_slo.replace({"slo.ttft_ms": 500, "slo.tbt_ms": 50})
    assert c.slo == SloConfig(500.0, 50.0)
    message = error_message(no_slo.replace, {"slo.ttft_ms": 500})
    assert "slo" in message and "missing required key 'tbt_ms'" in message


def test_replace_list_index_paths() -> None:
    c = SimConfig.from_dict(RICH)
    c2 = c.replace({"workload.prompt_tokens.components.1.value": 256})
    comp = c2.workload.prompt_tokens.components[1]
    assert comp == MixtureComponent(0.3, FixedLength(256))
    message = error_message(c.replace, {"workload.prompt_tokens.components.5.value": 1})
    assert "components.5" in message and "valid: 0..2" in message


def test_replace_revalidates(spec_cfg: SimConfig) -> None:
    message = error_message(spec_cfg.replace, {"workload.arrival.rate_per_s": 0})
    assert "workload.arrival.rate_per_s = 0: must be a number > 0" in message
    message = error_message(spec_cfg.replace, {"num_requests": 100})  # warm-up now too large
    assert "warmup_requests = 2000" in message and "< num_requests (= 100)" in message


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("workload.arrivl.rate_per_s", ["workload.arrivl", "did you mean 'arrival'?"]),
        ("workload.arrival.rate", ["workload.arrival.rate", "did you mean 'rate_per_s'?"]),
        ("gpu.count", ["gpu", "did you mean 'gpus'?", "allowed keys"]),
        ("service.c_ms.x", ["service.c_ms = 45.5", "not a mapping"]),
        ("service..c_ms", ["service..c_ms", "malformed"]),
    ],
)
def test_replace_bad_path_is_error_with_hint(
    spec_cfg: SimConfig, path: str, expected: list[str]
) -> None:
    message = error_message(spec_cfg.replace, {path: 1})
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


# ------------------------------------------------------------------------------ overrides


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("num_requests=3", ("num_requests", 3)),
        ("workload.arrival.rate_per_s=0.5", ("workload.arrival.rate_per_s", 0.5)),
        ("slo=null", ("slo", None)),
        ("gpus.router=jsq", ("gpus.router", "jsq")),
        (
            "workload.prompt_tokens={dist: fixed, value: 3}",
            ("workload.prompt_tokens", {"dist": "fixed", "value": 3}),
        ),
        ("scheduler.name=a=b", ("scheduler.name", "a=b")),
        (" service.c_ms = 20", ("service.c_ms", 20)),
    ],
)
def test_parse_override(text: str, expected: tuple[str, Any]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["num_requests", "=3", "a..b=3", "a=", "a=[1, 2"])
def test_parse_override_malformed(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert repr(text) in str(info.value)


def test_override_then_replace(spec_cfg: SimConfig) -> None:
    key, value = parse_override("workload.output_tokens={dist: uniform, low: 2, high: 9}")
    assert spec_cfg.replace({key: value}).workload.output_tokens == UniformLength(2, 9)


# ------------------------------------------------------------------------------ presets


def test_presets_and_files(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = tmp_path / "configs"
    (configs / "benchmarks").mkdir(parents=True)
    (configs / "alpha.yaml").write_text(SPEC_YAML)
    d = yaml.safe_load(SPEC_YAML)
    d["num_requests"] = 12345
    (configs / "benchmarks" / "beta.yaml").write_text(yaml.safe_dump(d))
    monkeypatch.setattr(config_module, "CONFIGS_DIR", configs)

    assert available_presets() == ["alpha", "beta"]
    assert load_config("alpha").num_requests == 20000
    assert load_config("beta").num_requests == 12345
    assert load_config(configs / "alpha.yaml") == load_config("alpha")
    assert load_config(d).num_requests == 12345

    message = error_message(load_config, "gamma_preset")
    assert "'gamma_preset'" in message and "available presets: alpha, beta" in message
    message = error_message(load_config, str(tmp_path / "missing.yaml"))
    assert "no such config file" in message

    d["gpus"]["count"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(d))
    message = error_message(load_config, bad)
    assert str(bad) in message and "gpus.count = 0" in message
    (tmp_path / "broken.yaml").write_text("num_requests: [1,\n")
    assert "cannot read YAML" in error_message(load_config, tmp_path / "broken.yaml")


def test_repository_presets_load() -> None:
    for name in available_presets():
        cfg = load_config(name)
        assert SimConfig.from_dict(cfg.to_dict()) == cfg


# ------------------------------------------------------------------------------ distributions


def test_length_distribution_moments_by_hand() -> None:
    assert FixedLength(7).mean() == 7.0 and FixedLength(7).max_value() == 7
    assert UniformLength(3, 9).mean() == 6.0 and UniformLength(3, 9).max_value() == 9
    # p = 1/2, max 3: P(1) = 1/2, P(2) = 1/4, P(3) = P(G >= 3) = 1/4 -> 1.75
    g = GeometricLength(2.0, 3)
    assert g.mean() == pytest.approx(1.75) and g.max_value() == 3
    assert GeometricLength(1.0, 10).mean() == 1.0
    # capped mean is below the uncapped mean: (1 - (15/16)^32) * 16
    assert GeometricLength(16, 32).mean() == pytest.approx((1 - (15 / 16) ** 32) * 16)
    mix = MixtureLength(
        (MixtureComponent(1.0, FixedLength(10)), MixtureComponent(3.0, UniformLength(1, 3)))
    )
    assert mix.mean() == pytest.approx(0.25 * 10 + 0.75 * 2)
    assert mix.max_value() == 10
    emp = EmpiricalLength((2, 4, 100), (1.0, 3.0, 0.0))
    assert emp.mean() == pytest.approx(3.5) and emp.max_value() == 4
    assert EmpiricalLength((1, 1, 4)).mean() == pytest.approx(2.0)
    arrival = GammaArrival(2.0, 0.5)
    assert arrival.rate_per_s == 2.0 and arrival.cv == 0.5


def test_workload_config_rejects_wrong_types() -> None:
    with pytest.raises(ConfigError, match="arrival"):
        WorkloadConfig(FixedLength(1), FixedLength(1), FixedLength(1))  # type: ignore[arg-type]
