"""Named service presets resolve to the published fits and can be overridden."""

from __future__ import annotations

import pytest

import llm_serving_env as lse
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.schema.fields import ConfigError


def with_service(block):
    return lse.load_config("default").replace({"service": block})


def test_staircase_preset_is_li_et_al_codellama_fit():
    model = ServiceModel.from_config(with_service({"preset": "codellama34b_a100_staircase"})
                                     .service)
    # 11.28 + 35.47 * ceil(b / 128) ms
    assert model.mean_s(1) == pytest.approx(0.04675)
    assert model.mean_s(128) == pytest.approx(0.04675)
    assert model.mean_s(129) == pytest.approx(0.08222)
    assert model.mean_s(512) == pytest.approx(0.15316)


def test_piecewise_preset_is_the_briefs_llama3_fit_and_fields_override_it():
    cfg = with_service({"preset": "llama3_70b_a100_tp2", "noise": "exponential"})
    assert (cfg.service.c_ms, cfg.service.a_ms, cfg.service.b0_tokens) == (45.5, 0.30, 64)
    assert cfg.service.noise == "exponential"
    assert with_service({"preset": "llama3_70b_a100_tp2", "c_ms": 20.0}).service.c_ms == 20.0


def test_unknown_preset_names_the_field_and_suggests():
    with pytest.raises(ConfigError, match=r"service\.preset.*did you mean 'llama3_70b_a100_tp2'"):
        with_service({"preset": "llama3_70b_a100"})
