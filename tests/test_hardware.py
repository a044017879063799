"""Hardware: model/KV sizing, GPU memory, service-preset fits, tensor parallelism, links."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import make_config

import llm_serving_env as lse
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.hardware.presets import (
    SERVICE_PRESET_HARDWARE,
    SERVICE_PRESETS,
    transform_tensor_parallel,
)
from llm_serving_env.hardware.specs import (
    ALLREDUCE_FITS,
    GPU_PRESETS,
    INTERCONNECT_PRESETS,
    MODEL_PRESETS,
    AllReduceSpec,
    ModelSpec,
    kv_capacity_tokens,
)
from llm_serving_env.schema.fields import ConfigError

PROFILES = Path(__file__).resolve().parents[1] / "data" / "profiles"

# Llama-3-70B (model card: 80 layers, 8 KV heads of dim 128, 70.55e9 parameters), fp16.
KV_70B = 2 * 80 * 8 * 128 * 2  # bytes per token: K and V, per layer, per KV head, 2 B each
WEIGHTS_70B_GB = 70.55e9 * 2 / 1e9  # 141.1 GB


def kv_tokens(gpus: int, memory_gb: float, weights_gb: float, kv_bytes: float,
              utilization: float = 0.9) -> int:
    """KV capacity by hand: what is left of the usable memory after the weights, in tokens."""
    return math.floor((gpus * memory_gb * utilization - weights_gb) * 1e9 / kv_bytes)


# Llama-3-70B fp16 on 2 x A100-80GB: weights 70.55e9 * 2 B = 141.1 GB.
LLAMA3_70B_TP2 = {"model": "llama3_70b", "gpus.gpu": "a100_80gb",
                  "service": {"preset": "llama3_70b_a100_tp2"}}


# ------------------------------------------------------------------------------ model / KV


def test_kv_bytes_per_token_are_the_published_shapes():
    # (layers, KV heads, head dim) from the model cards; fp16 = 2 bytes per value
    published = {"llama3_70b": (80, 8, 128), "llama3_8b": (32, 8, 128),
                 "llama2_70b": (80, 8, 128), "llama2_7b": (32, 32, 128)}
    for name, (layers, kv_heads, head_dim) in published.items():
        assert MODEL_PRESETS[name].kv_bytes_per_token == 2 * layers * kv_heads * head_dim * 2
    spec = ModelSpec(num_layers=80, num_kv_heads=8, head_dim=128, bytes_per_value=1)
    assert spec.kv_bytes_per_token == KV_70B // 2  # fp8 halves it
    assert MODEL_PRESETS["llama3_70b"].weights_gb == pytest.approx(WEIGHTS_70B_GB)


def test_kv_capacity_by_hand():
    # (2 GPUs * 80 GB * 0.9 - 141.1 GB) * 1e9 / 327,680 B = 2.9e9 / 327,680 = 8850.09
    assert kv_capacity_tokens("llama3_70b", "a100_80gb", tensor_parallel=2) == kv_tokens(
        2, 80, WEIGHTS_70B_GB, KV_70B) == 8850
    # doubling the memory: (2 * 160 * 0.9 - 141.1) e9 / 327,680 = 448,303.2
    assert kv_capacity_tokens("llama3_70b", 160.0, tensor_parallel=2) == kv_tokens(
        2, 160, WEIGHTS_70B_GB, KV_70B)
    # explicit weights and utilization: (1 * 40 * 0.5 - 10) e9 / 131,072 = 76,293.9
    assert kv_capacity_tokens(MODEL_PRESETS["llama3_8b"], GPU_PRESETS["a100_40gb"], 1,
                              weights_gb=10.0, memory_utilization=0.5) == kv_tokens(
        1, 40, 10.0, 2 * 32 * 8 * 128 * 2, utilization=0.5)
    with pytest.raises(ValueError, match=r"141\.1 GB\) do not fit"):
        kv_capacity_tokens("llama3_70b", "a100_80gb", tensor_parallel=1)


def test_model_and_gpu_derive_the_kv_capacity_and_memory_is_one_field(tmp_path):
    cfg = make_config(**LLAMA3_70B_TP2)
    tp2 = kv_tokens(2, 80, WEIGHTS_70B_GB, KV_70B)
    assert cfg.gpus.kv_capacity_tokens == tp2 and cfg.service.tensor_parallel == 2
    doubled = cfg.replace({"gpus.memory_gb": 160})
    assert doubled.gpus.kv_capacity_tokens == kv_tokens(2, 160, WEIGHTS_70B_GB, KV_70B)
    tp4 = cfg.replace({"service.tensor_parallel": 4})  # (4*80*0.9 - 141.1)e9 / 327,680
    assert tp4.gpus.kv_capacity_tokens == kv_tokens(4, 80, WEIGHTS_70B_GB, KV_70B)
    fp8 = cfg.replace({"model.bytes_per_value": 1})  # fp8 halves weights and KV bytes
    assert fp8.gpus.kv_capacity_tokens == kv_tokens(2, 80, WEIGHTS_70B_GB / 2, KV_70B / 2)
    # an explicit capacity overrides; the derived value is not frozen into the YAML form
    assert cfg.replace({"gpus.kv_capacity_tokens": 1000}).gpus.kv_capacity_tokens == 1000
    d = cfg.to_dict()
    assert d["gpus"]["kv_capacity_tokens"] is None and d["model"] == {"preset": "llama3_70b"}
    assert SimConfig.from_dict(d) == cfg
    assert lse.load_config(lse.save_config(doubled, tmp_path / "doubled.yaml")) == doubled
    # the engine uses the derived capacity
    sim = lse.Simulator(cfg)
    assert sim.kv_enabled and sim.kv_capacity_blocks == tp2 // 16


def test_model_block_forms():
    full = {"num_layers": 80, "num_kv_heads": 8, "head_dim": 128, "bytes_per_value": 2,
            "num_params": 70.55e9, "hidden_size": 8192}
    by_fields = make_config(model=full)
    by_name = make_config(model="llama3_70b")
    assert by_fields.model.kv_bytes_per_token == by_name.model.kv_bytes_per_token
    assert by_fields.to_dict()["model"] == full  # no preset: every field
    over = make_config(model={"preset": "llama3_70b", "bytes_per_value": 1})
    assert over.to_dict()["model"] == {"preset": "llama3_70b", "bytes_per_value": 1.0}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"gpus.memory_gb": 80}, ["gpus.memory_gb = 80", "needs a top-level model block"]),
    ({"gpus.gpu": "a100_80gb"}, ["gpus.gpu = 'a100_80gb'", "needs a top-level model block"]),
    ({"gpus.gpu": "a100"}, ["gpus.gpu = 'a100'", "did you mean 'a100_80gb'"]),
    ({"gpus.memory_gb": -1}, ["gpus.memory_gb = -1", "must be a number > 0"]),
    ({"gpus.memory_utilization": 1.5}, ["gpus.memory_utilization = 1.5", "<= 1"]),
    ({"model": "llama3"}, ["model.preset = 'llama3'", "unknown model preset", "llama3_70b"]),
    ({"model": {"num_layers": 80}}, ["model", "missing required key 'num_kv_heads'"]),
    ({"model": {"preset": "llama3_70b", "layers": 2}}, ["model.layers", "unknown key"]),
    ({"model": {"preset": "llama3_70b", "num_layers": 0}},
     ["model.num_layers = 0", "integer >= 1"]),
    ({"model": "llama3_70b", "gpus.gpu": "a100_80gb", "service.tensor_parallel": 1},
     ["gpus.gpu = 'a100_80gb'", "141.1 GB) do not fit", "1 * 80 * 0.9"]),
    ({"model": {"num_layers": 1, "num_kv_heads": 1, "head_dim": 1}, "gpus.memory_gb": 80},
     ["model.num_params", "needed to derive"]),
    ({"disaggregation": {"prefill": {"count": 1}, "decode": {"count": 1},
                         "interconnect": "nvlink"}, "gpus.count": 2},
     ["disaggregation.interconnect = 'nvlink'", "kv_bytes_per_token or a top-level model"]),
    ({"disaggregation": {"prefill": {"count": 1}, "decode": {"count": 1},
                         "interconnect": "ethernet"}, "gpus.count": 2},
     ["disaggregation.interconnect = 'ethernet'", "'nvlink'", "'pcie4'", "'infiniband'"]),
    ({"disaggregation": {"prefill": {"count": 1}, "decode": {"count": 1},
                         "links": "mesh"}, "gpus.count": 2},
     ["disaggregation.links = 'mesh'", "'per_source'", "'shared'"]),
])
def test_hardware_fields_are_validated_with_clear_errors(changes, expected):
    with pytest.raises(ConfigError) as info:
        make_config(**changes)
    for text in expected:
        assert text in str(info.value)


# ------------------------------------------------------------------------------ presets


def _read_profile(name: str, b_col: str, y_col: str) -> tuple[np.ndarray, np.ndarray]:
    with open(PROFILES / name, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return (np.array([float(r[b_col]) for r in rows]), np.array([float(r[y_col]) for r in rows]))


def test_llama3_fit_preset_is_rederived_from_the_copied_profile():
    """Independent re-derivation of ``llama3_70b_a100_tp2_fit``: minimize the squared relative
    error of c + a*max(0, b - b0) over b <= 8192, by the 2x2 normal equations, for every
    integer b0 in 0..2048."""
    b, y = _read_profile("llama3-70b_a100_tp2_iteration_time_derived.csv", "num_tokens",
                         "total_ms")
    keep = b <= 8192
    b, y = b[keep], y[keep]
    w2 = 1.0 / y**2
    best = (np.inf, 0.0, 0.0, -1)
    for b0 in range(0, 2049):
        x = np.maximum(0.0, b - b0)
        m = np.array([[w2.sum(), (w2 * x).sum()], [(w2 * x).sum(), (w2 * x * x).sum()]])
        c, a = np.linalg.solve(m, np.array([(w2 * y).sum(), (w2 * x * y).sum()]))
        sse = float((w2 * (c + a * x - y) ** 2).sum())
        if c >= 0 and a >= 0 and sse < best[0]:
            best = (sse, c, a, b0)
    best_sse, c, a, b0 = best
    preset = SERVICE_PRESETS["llama3_70b_a100_tp2_fit"]
    assert preset["b0_tokens"] == b0
    assert preset["c_ms"] == pytest.approx(c, abs=0.005)
    assert preset["a_ms"] == pytest.approx(a, abs=5e-5)
    # the preset's rounded coefficients lose almost nothing against the exact optimum
    fit = preset["c_ms"] + preset["a_ms"] * np.maximum(0.0, b - preset["b0_tokens"])
    assert best_sse <= float((w2 * (fit - y) ** 2).sum()) <= best_sse * (1 + 1e-3)


def test_every_fitted_preset_matches_the_fits_csv():
    with open(PROFILES / "service_fits.csv", newline="", encoding="utf-8") as f:
        fits = {(r["profile"], r["form"], r["weighting"]): r for r in csv.DictReader(f)}
    shipped = {
        "llama3_70b_a100_tp2_fit": ("llama3_70b_a100_tp2_vidur_total", "piecewise_linear"),
        "llama3_70b_a100_tp2_staircase_fit": ("llama3_70b_a100_tp2_vidur_total", "staircase"),
        "llama2_70b_a100_tp2": ("llama2_70b_a100_tp2_splitwise", "piecewise_linear"),
        "llama2_70b_h100_tp2": ("llama2_70b_h100_tp2_splitwise", "piecewise_linear"),
        "llama2_70b_h100_tp2_staircase": ("llama2_70b_h100_tp2_splitwise", "staircase"),
    }
    for name, (profile, form) in shipped.items():
        row, preset = fits[(profile, form, "rel")], SERVICE_PRESETS[name]
        assert preset["model"] == form, name
        assert preset["b0_tokens"] == int(row["b0_tokens"]), name
        assert preset["c_ms"] == pytest.approx(float(row["c_ms"]), rel=2e-3), name
        assert preset["a_ms"] == pytest.approx(float(row["a_ms"]), rel=2e-3), name
        if form == "staircase":
            assert row["better_form"] == "staircase", name  # shipped only where it fits better
    assert set(SERVICE_PRESET_HARDWARE) == set(SERVICE_PRESETS)


def test_every_preset_loads():
    for name in SERVICE_PRESETS:
        cfg = make_config(service={"preset": name})
        assert cfg.service.preset == name
        assert SimConfig.from_dict(cfg.to_dict()) == cfg


# ------------------------------------------------------------------------------ tensor parallel


def test_tensor_parallel_transformation_by_hand():
    # the all-reduce fit of Vidur's A100 NVLink profile: 0.0381 ms + bytes / 192.9 GB/s
    ar = ALLREDUCE_FITS["a100_nvlink"]
    assert (ar.latency_ms, ar.bus_bandwidth_gb_per_s) == (0.0381, 192.9)
    lam = 2 * 80 * 0.0381  # 160 all-reduces (2 per layer) of latency: 6.096 ms
    per_token = 8192 * 2 / 192.9e6  # one token's hidden state (8192 fp16 values), ms
    k2 = 160 * 1.0 * per_token  # ring factor 2 (t-1)/t = 1 at t = 2: 0.013590 ms/token
    k4 = 160 * 1.5 * per_token  # ... 1.5 at t = 4: 0.020385 ms/token
    c4 = (45.5 - lam) / 2 + lam  # compute halves, communication is paid at TP 4: 25.798 ms
    a4 = (0.30 - k2) / 2 + k4  # 0.16359 ms/token
    cfg = make_config(service={"preset": "llama3_70b_a100_tp2", "tensor_parallel": 4})
    s = cfg.service
    assert s.c_ms == pytest.approx(c4, abs=1e-6)
    assert s.a_ms == pytest.approx(a4, abs=1e-6)
    assert s.b0_tokens == 64 and s.tensor_parallel == 4
    # without communication the transformation is plain 1/TP scaling
    assert transform_tensor_parallel(47.5, 0.311, 63, from_tp=2, to_tp=1, num_layers=80,
                                     hidden_size=8192, bytes_per_value=2,
                                     allreduce=None) == (95.0, 0.622, 63)
    # the preset's own TP is the identity; explicit fields beside the preset are kept as given
    assert make_config(service={"preset": "llama3_70b_a100_tp2", "tensor_parallel": 2}
                       ).service.c_ms == 45.5
    kept = make_config(service={"preset": "llama3_70b_a100_tp2", "tensor_parallel": 4,
                                "c_ms": 30.0})
    assert kept.service.c_ms == 30.0 and kept.service.a_ms == pytest.approx(a4, abs=1e-6)
    # replace re-resolves the preset at the new TP, and the YAML form round-trips
    again = make_config(service={"preset": "llama3_70b_a100_tp2"}).replace(
        {"service.tensor_parallel": 4})
    assert again.service == cfg.service
    assert SimConfig.from_dict(cfg.to_dict()) == cfg


def test_compute_scaling_assumption_holds_on_vidur_linear_ops():
    """The transformation's compute part (1/TP) predicts Vidur's TP4 linear-op times from the
    TP2 fit with a median relative error of a few percent."""
    with open(PROFILES / "vidur_a100_Meta-Llama-3-70B_mlp.csv", newline="",
              encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["num_tensor_parallel_workers"] == "4"
                and int(r["num_tokens"]) <= 8192]
    ops = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
           "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
    b = np.array([float(r["num_tokens"]) for r in rows])
    y = np.array([80 * sum(float(r[f"time_stats.{op}.median"]) for op in ops)
                  + float(r["time_stats.emb.median"]) for r in rows])
    c, a, b0 = transform_tensor_parallel(47.5, 0.3112, 63, from_tp=2, to_tp=4, num_layers=80,
                                         hidden_size=8192, bytes_per_value=2, allreduce=None)
    rel = np.abs(c + a * np.maximum(0.0, b - b0) - y) / y
    assert np.median(rel) < 0.05


def test_fixed_time_stays_when_the_rest_splits():
    # c = 62, f = 20, all-reduce 0.1 ms + size / 100 GB/s, 80 layers, hidden 8192, fp16:
    # lam = 160 * 0.1 = 16 ms at any t >= 2; per-token all-reduce k_t = 160 * 2 (t-1)/t *
    # 16,384 B / 1e8 B/ms: k_2 = 0.0262144, k_4 = 0.0393216 ms/token.
    spec = AllReduceSpec(0.1, 100.0)
    c, a, b0 = transform_tensor_parallel(62.0, 0.3, 90, from_tp=2, to_tp=4, num_layers=80,
                                         hidden_size=8192, bytes_per_value=2, allreduce=spec,
                                         fixed_ms=20.0)
    assert c == pytest.approx(20 + 0.5 * (62 - 20 - 16) + 16, abs=1e-6)  # 49 ms (6 decimals)
    assert a == pytest.approx(0.5 * (0.3 - 0.0262144) + 0.0393216, abs=1e-6)
    assert b0 == 90


def _splitwise_points(hardware: str, tp: int) -> tuple[np.ndarray, np.ndarray]:
    """Llama-2-70B prefills (b = prompt x batch) and decode steps (b = batch), batch < 64,
    averaged over repeats at equal b: read here from the raw CSV."""
    with open(PROFILES / "splitwise_sim_perf_model.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == "llama2-70b"
                and r["hardware"] == hardware and int(r["tensor_parallel"]) == tp
                and int(r["batch_size"]) < 64]
    by_b: dict[float, list[float]] = {}
    for r in rows:
        by_b.setdefault(float(r["prompt_size"]) * float(r["batch_size"]), []).append(
            float(r["prompt_time"]))
        by_b.setdefault(float(r["batch_size"]), []).append(float(r["token_time"]))
    b = np.array(sorted(by_b))
    return b, np.array([np.mean(by_b[k]) for k in b])


@pytest.mark.parametrize(("preset", "hardware", "limit"), [
    ("llama2_70b_a100_tp2", "a100-80gb", 0.15), ("llama2_70b_h100_tp2", "h100-80gb", 0.16)])
def test_rescaled_splitwise_presets_follow_the_measured_tp4_and_tp8_times(preset, hardware,
                                                                           limit):
    for tp in (4, 8):
        svc = make_config(service={"preset": preset, "tensor_parallel": tp}).service
        b, y = _splitwise_points(hardware, tp)
        rel = np.abs(svc.c_ms + svc.a_ms * np.maximum(0.0, b - svc.b0_tokens) - y) / y
        assert np.median(rel) < limit
        if hardware == "a100-80gb":  # the transformation without the fixed part was far off
            c, a, b0 = transform_tensor_parallel(
                62.15, 0.3655, 96, from_tp=2, to_tp=tp, num_layers=80, hidden_size=8192,
                bytes_per_value=2, allreduce="a100_nvlink")
            old = np.abs(c + a * np.maximum(0.0, b - b0) - y) / y
            assert np.median(old) > 0.2


@pytest.mark.parametrize(("service", "expected"), [
    ({"preset": "llama3_70b_a100_tp2", "tensor_parallel": 3}, ["must be one of 1, 2, 4, 8"]),
    ({"preset": "llama3_70b_a100_tp2", "tensor_parallel": 1},
     ["service.tensor_parallel = 1", "141.1 GB) do not fit in 1 x a100_80gb"]),
    ({"preset": "llama3_70b_a100_tp2_staircase_fit", "tensor_parallel": 4},
     ["staircase fit"]),
    ({"preset": "codellama34b_a100_staircase", "tensor_parallel": 2},
     ["model's shape is not recorded"]),
    ({"c_ms": 1.0, "a_ms": 1.0, "b0_tokens": 0, "tensor_parallel": 0},
     ["service.tensor_parallel = 0", "integer >= 1"]),
])
def test_tensor_parallel_errors(service, expected):
    with pytest.raises(ConfigError) as info:
        make_config(service=service)
    for text in expected:
        assert text in str(info.value)


# ------------------------------------------------------------------------------ interconnect


def test_interconnect_presets_and_overrides():
    dis = {"prefill": {"count": 1}, "decode": {"count": 1}, "interconnect": "pcie4"}
    cfg = make_config(**{"gpus.count": 2, "disaggregation": dis, "model": "llama3_70b"})
    d = cfg.disaggregation
    # PCIe 4.0 x16: 16 GT/s * 16 lanes * 128/130 encoding / 8 bits = 31.5 GB/s
    pcie4 = 16 * 16 * 128 / 130 / 8
    assert d.link_bandwidth_gb_per_s == INTERCONNECT_PRESETS["pcie4"].bandwidth_gb_per_s
    assert d.link_bandwidth_gb_per_s == pytest.approx(pcie4, rel=1e-3)
    assert INTERCONNECT_PRESETS["nvlink"].bandwidth_gb_per_s == 600 / 2  # A100: 600 GB/s both ways
    assert INTERCONNECT_PRESETS["infiniband"].bandwidth_gb_per_s == 200 / 8  # HDR 200 Gb/s
    assert d.link_latency_ms == 0.01
    # transfer = bytes / bandwidth + latency: 1000 tokens of Llama-3-70B KV over PCIe 4
    want = 1000 * KV_70B / (d.link_bandwidth_gb_per_s * 1e9) + 0.01e-3
    assert d.transfer_s(1000, float(KV_70B)) == pytest.approx(want, rel=1e-12)
    over = cfg.replace({"disaggregation.bandwidth_gb_per_s": 10.0,
                        "disaggregation.latency_ms": 1.0})
    assert over.disaggregation.link_bandwidth_gb_per_s == 10.0
    assert over.disaggregation.link_latency_ms == 1.0
    assert SimConfig.from_dict(over.to_dict()) == over
