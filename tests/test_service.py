"""Batch service-time models: hand-computed values, noise moments, and draw order.

Statistical checks use fixed seeds and a tolerance of 4 standard errors estimated from the
sample itself.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from llm_serving_env.hardware.service import NOISE_BLOCK, ServiceModel
from llm_serving_env.hardware.service_config import ServiceConfig

N = 200_000
Z = 4.0


def model(noise: str = "deterministic", seed: int | None = 0, **kw) -> ServiceModel:
    params = {"c_ms": 45.5, "a_ms": 0.30, "b0_tokens": 64, "noise": noise, **kw}
    rng = None if seed is None else np.random.default_rng(seed)
    return ServiceModel.from_config(ServiceConfig(**params), rng)


def draws(m: ServiceModel, b: int, n: int = N) -> np.ndarray:
    return np.array([m.sample_s(b) for _ in range(n)])


def assert_mean_close(x: np.ndarray, expected: float) -> None:
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert abs(x.mean() - expected) <= Z * se, (x.mean(), expected, se)


def assert_var_close(x: np.ndarray, expected: float) -> None:
    sq = (x - x.mean()) ** 2
    se = sq.std(ddof=1) / math.sqrt(x.size)
    assert abs(x.var(ddof=1) - expected) <= Z * se, (x.var(ddof=1), expected, se)


# ------------------------------------------------------------------------------ deterministic


@pytest.mark.parametrize(
    ("b", "expected_s"),
    [(1, 0.0455), (64, 0.0455), (65, 0.0458), (164, 0.0755), (2048, 0.0455 + 0.0003 * 1984)],
)
def test_piecewise_linear_by_hand(b: int, expected_s: float) -> None:
    m = model(seed=None)
    assert m.mean_s(b) == pytest.approx(expected_s, rel=1e-12)
    assert m.sample_s(b) == pytest.approx(expected_s, rel=1e-12)
    assert isinstance(m.mean_s(b), float) and isinstance(m.sample_s(b), float)


@pytest.mark.parametrize(
    ("b", "expected_s"),
    [(1, 0.04675), (128, 0.04675), (129, 0.08222), (256, 0.08222), (257, 0.11769)],
)
def test_staircase_by_hand(b: int, expected_s: float) -> None:
    cfg = ServiceConfig(model="staircase", c_ms=11.28, a_ms=35.47, b0_tokens=128)
    m = ServiceModel.from_config(cfg)
    assert m.mean_s(b) == pytest.approx(expected_s, rel=1e-12)
    assert m.sample_s(b) == pytest.approx(expected_s, rel=1e-12)


def test_mean_is_vectorized() -> None:
    m = model(seed=None)
    b = np.array([[1, 64], [65, 164]])
    out = m.mean_s(b)
    assert isinstance(out, np.ndarray) and out.shape == (2, 2)
    np.testing.assert_allclose(out, [[0.0455, 0.0455], [0.0458, 0.0755]], rtol=1e-12)
    stair = ServiceModel.from_config(
        ServiceConfig(model="staircase", c_ms=0.0, a_ms=1.0, b0_tokens=10)
    )
    np.testing.assert_allclose(
        stair.mean_s(np.array([1, 10, 11, 20, 21])), [1e-3, 1e-3, 2e-3, 2e-3, 3e-3]
    )
    np.testing.assert_allclose(stair.mean_s(np.array([10.0, 11.0])), [1e-3, 2e-3])


def test_b0_zero_is_linear() -> None:
    m = ServiceModel.from_config(ServiceConfig(c_ms=0.0, a_ms=4.0, b0_tokens=0))
    assert m.mean_s(1) == pytest.approx(0.004) and m.mean_s(10) == pytest.approx(0.04)


def test_deterministic_never_touches_the_generator() -> None:
    rng = np.random.default_rng(3)
    before = rng.bit_generator.state
    m = ServiceModel.from_config(ServiceConfig(c_ms=45.5, a_ms=0.3, b0_tokens=64), rng)
    for b in (1, 100, 1000):
        m.sample_s(b)
    assert rng.bit_generator.state == before


def test_noisy_model_requires_a_generator() -> None:
    with pytest.raises(ValueError, match="Generator"):
        model("exponential", seed=None)


# ------------------------------------------------------------------------------ noise


@pytest.mark.parametrize("b", [10, 164, 1000])
def test_exponential_noise_mean_and_variance(b: int) -> None:
    m = model("exponential", seed=11)
    c, a = 0.0455, 0.0003
    g = max(0, b - 64)
    x = draws(m, b)
    assert_mean_close(x, c + a * g)
    assert_var_close(x, c**2 + (a * g) ** 2)


@pytest.mark.parametrize("cv", [0.3, 2.0])
def test_gamma_noise_mean_and_cv(cv: float) -> None:
    m = model("gamma", seed=5, cv=cv)
    c, a = 0.0455, 0.0003
    x = draws(m, 64)  # only the setup time C: S = C, so CV(S) = cv
    assert_mean_close(x, c)
    assert_var_close(x, (cv * c) ** 2)
    g = 1000 - 64
    x = draws(m, 1000)
    assert_mean_close(x, c + a * g)
    assert_var_close(x, cv**2 * (c**2 + (a * g) ** 2))


def test_zero_means_draw_zero() -> None:
    m = model("exponential", seed=1, c_ms=0.0, a_ms=2.0, b0_tokens=0)
    assert all(m.sample_s(0) == 0.0 for _ in range(100))  # g(0) = 0 and C = 0
    x = draws(m, 3, 50_000)
    assert x.min() > 0
    assert_mean_close(x, 0.006)
    no_a = model("gamma", seed=1, a_ms=0.0, cv=0.5)
    x = draws(no_a, 5000, 50_000)  # S = C only, whatever b
    assert_mean_close(x, 0.0455)


def test_staircase_exponential_noise() -> None:
    cfg = ServiceConfig(
        model="staircase", c_ms=11.28, a_ms=35.47, b0_tokens=128, noise="exponential"
    )
    m = ServiceModel.from_config(cfg, np.random.default_rng(2))
    x = draws(m, 129)
    assert_mean_close(x, 0.08222)
    assert_var_close(x, 0.01128**2 + (2 * 0.03547) ** 2)


def test_draws_consumed_in_call_order_across_blocks() -> None:
    """Call k uses unit noise pair (2k, 2k+1) of the generator's standard exponentials."""
    m = model("exponential", seed=99)
    loads = [10, 164, 1000, 64] * ((NOISE_BLOCK + 100) // 4)  # crosses one block refill
    assert len(loads) > NOISE_BLOCK
    got = [m.sample_s(b) for b in loads]
    rng = np.random.default_rng(99)
    unit = np.concatenate([rng.standard_exponential(2 * NOISE_BLOCK) for _ in range(2)])
    for k, b in enumerate(loads):
        expected = 0.0455 * unit[2 * k] + 0.0003 * unit[2 * k + 1] * max(0, b - 64)
        assert got[k] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_same_seed_same_sequence_and_pickle_keeps_position() -> None:
    a, b = model("gamma", seed=4, cv=0.7), model("gamma", seed=4, cv=0.7)
    seq_a = [a.sample_s(100 + k) for k in range(5000)]
    seq_b = [b.sample_s(100 + k) for k in range(5000)]
    assert seq_a == seq_b
    clone = pickle.loads(pickle.dumps(a))
    assert [clone.sample_s(7) for _ in range(10)] == [a.sample_s(7) for _ in range(10)]


def test_describe_is_one_line_with_numbers() -> None:
    text = model(seed=None).describe()
    assert "\n" not in text
    for part in ("45.5", "0.3", "max(0, b - 64)"):
        assert part in text
    stair = ServiceModel.from_config(
        ServiceConfig(
            model="staircase", c_ms=11.28, a_ms=35.47, b0_tokens=128, noise="gamma", cv=0.5
        ),
        np.random.default_rng(0),
    ).describe()
    for part in ("11.28", "35.47", "ceil(b / 128)", "0.5", "Gamma"):
        assert part in stair
    assert "Exp" in model("exponential").describe()
