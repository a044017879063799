"""Context-aware iteration time: S(b) plus attention, against hand computation and the GPU's
physical limits."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_config

import llm_serving_env as lse
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.workload.generate import Workload

# Llama-3-70B: 80 layers, 8 KV heads of 128, hidden 8192, fp16; A100-80GB: 312 TFLOP/s dense
# fp16, 2,039 GB/s; tensor parallel 2. Written out here, not read from the package.
KV_BYTES_PER_TOKEN = 2 * 80 * 8 * 128 * 2  # 327,680
FLOPS_PER_PAIR = 4 * 80 * 8192
TP, PEAK_FLOPS, PEAK_BYTES_PER_S = 2, 312e12, 2039e9

HARDWARE = {"model": "llama3_70b", "gpus.gpu": "a100_80gb", "service.tensor_parallel": TP,
            "gpus.kv_capacity_tokens": 10**6}  # explicit: no KV limit in these cases


def one_request(prompt: int, output: int) -> Workload:
    return Workload(arrival_s=np.zeros(1), prompt_tokens=np.array([prompt], dtype=np.int64),
                    output_tokens=np.array([output], dtype=np.int64))


def durations(cfg, wl) -> np.ndarray:
    batches = lse.simulate(cfg, "hybrid", workload=wl).batches
    return (batches["end_s"] - batches["start_s"]).to_numpy()


def linear_s(load: np.ndarray) -> np.ndarray:
    return (10.0 + 1.0 * load) / 1000.0  # the helpers' S(b) = 10 ms + 1 ms * b


def test_off_is_the_token_count_model_and_on_adds_the_hand_computed_attention():
    wl = one_request(1000, 3)
    base = make_config(num_requests=1, **HARDWARE)
    loads = np.array([512, 488, 1, 1])  # chunks of 512 and 488 tokens, then two decodes
    np.testing.assert_allclose(durations(base, wl), linear_s(loads), rtol=1e-12)
    on = base.replace({"service.attention": True, "service.attention_bandwidth_efficiency": 0.5,
                       "service.attention_flops_efficiency": 0.8})
    # causal pairs: chunk 1 at offset 0: 512 * 513 / 2; chunk 2 at offset 512: 488 * 512 +
    # 488 * 489 / 2; the decodes read the KV of 1,001 and 1,002 tokens (prompt + generated)
    pairs = np.array([512 * 513 / 2, 488 * 512 + 488 * 489 / 2])
    prefill_s = pairs * FLOPS_PER_PAIR / (TP * PEAK_FLOPS * 0.8)
    decode_s = np.array([1001, 1002]) * KV_BYTES_PER_TOKEN / (TP * PEAK_BYTES_PER_S * 0.5)
    expected = linear_s(loads) + np.concatenate((prefill_s, decode_s))
    np.testing.assert_allclose(durations(on, wl), expected, rtol=1e-12)


@pytest.mark.parametrize("efficiency", [None, 1.0])
def test_a_long_context_decode_takes_at_least_its_kv_bytes_over_peak_bandwidth(efficiency):
    context = 100_000
    changes = {**HARDWARE, "service.attention": True, "scheduler.token_budget": 2048}
    if efficiency is not None:
        changes["service.attention_bandwidth_efficiency"] = efficiency
    cfg = make_config(num_requests=1, **changes)
    decode = durations(cfg, one_request(context, 2))[-1]
    floor = (context + 1) * KV_BYTES_PER_TOKEN / (TP * PEAK_BYTES_PER_S)  # 8.0 ms
    assert decode >= floor + 0.011 * (1 - 1e-12)  # and S(1) = 11 ms on top
    if efficiency == 1.0:
        assert decode == pytest.approx(floor + 0.011, rel=1e-12)


def test_every_preset_gpu_and_parallelism_respects_the_physical_floor():
    from llm_serving_env.hardware.specs import GPU_PRESETS

    for gpu, spec in GPU_PRESETS.items():
        for tp in (1, 2, 4, 8):
            cfg = make_config(num_requests=1, **{**HARDWARE, "gpus.gpu": gpu,
                                                 "service.tensor_parallel": tp,
                                                 "service.attention": True})
            cost = lse.config.sim_config.attention_cost(cfg)
            assert cost.decode_s_per_token >= KV_BYTES_PER_TOKEN / (
                tp * spec.hbm_gb_per_s * 1e9) * (1 - 1e-12)
            assert cost.prefill_s_per_pair >= FLOPS_PER_PAIR / (
                tp * spec.peak_tflops * 1e12) * (1 - 1e-12)


@pytest.mark.parametrize(("changes", "field"), [
    ({"service.attention": True}, "service.attention"),  # no model, no GPU
    ({"service.attention": True, "model": "llama3_70b"}, "service.attention"),  # no GPU
    ({"service.attention": True, **HARDWARE, "service.attention_flops_efficiency": 1.5},
     "attention_flops_efficiency"),
    ({**HARDWARE, "service.attention_bandwidth_efficiency": 0.5},
     "attention_bandwidth_efficiency"),  # without attention: true
    ({"service.attention": "yes"}, "attention"),
])
def test_bad_attention_settings_are_named(changes, field):
    with pytest.raises(ConfigError) as err:
        make_config(num_requests=1, **changes)
    assert field in str(err.value)


def test_a_preset_supplies_the_model_gpu_and_parallelism():
    cfg = lse.SimConfig.from_dict({
        **make_config(num_requests=1).to_dict(),
        "service": {"preset": "llama3_70b_a100_tp2", "attention": True}})
    cost = lse.config.sim_config.attention_cost(cfg)
    bandwidth_efficiency = 0.3018  # the A100 fit (hardware.specs.ATTENTION_EFFICIENCY_FITS)
    assert cost.decode_s_per_token == pytest.approx(
        KV_BYTES_PER_TOKEN / (TP * PEAK_BYTES_PER_S * bandwidth_efficiency), rel=1e-12)


def test_attention_presets_round_trip_and_can_be_switched_off():
    base = make_config(num_requests=1).to_dict()
    on = lse.SimConfig.from_dict({**base, "service": {"preset": "llama2_70b_a100_tp2_attention"}})
    assert on.service.attention and lse.SimConfig.from_dict(on.to_dict()) == on
    off = on.replace({"service.attention": False})
    assert not off.service.attention
    assert not lse.SimConfig.from_dict(off.to_dict()).service.attention
    plain = make_config(num_requests=1)
    assert "attention" not in plain.to_dict()["service"]
