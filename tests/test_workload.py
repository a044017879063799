"""Workload generation: seeded streams, array contracts, and sampler statistics.

Statistical checks use fixed seeds and a tolerance of 4 standard errors estimated from the
sample itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from llm_serving_env.workload.arrivals import DeterministicArrival, GammaArrival, PoissonArrival
from llm_serving_env.workload.config import WorkloadConfig
from llm_serving_env.workload.generate import Workload, generate_workload
from llm_serving_env.workload.lengths import (
    EmpiricalLength,
    FixedLength,
    GeometricLength,
    LengthDistribution,
    MixtureComponent,
    MixtureLength,
    UniformLength,
)

N = 200_000
Z = 4.0  # tolerance in standard errors


def assert_mean_close(x: np.ndarray, expected: float) -> None:
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert abs(x.mean() - expected) <= Z * se + 1e-12, (x.mean(), expected, se)


def assert_var_close(x: np.ndarray, expected: float) -> None:
    """Sample variance vs ``expected``; the SE of the variance is the SE of the mean of
    the squared deviations."""
    sq = (x - x.mean()) ** 2
    se = sq.std(ddof=1) / np.sqrt(x.size)
    assert abs(x.var(ddof=1) - expected) <= Z * se, (x.var(ddof=1), expected, se)


def cfg(arrival=None, prompt: LengthDistribution | None = None, output=None) -> WorkloadConfig:
    return WorkloadConfig(
        arrival or PoissonArrival(2.0),
        prompt or UniformLength(16, 512),
        output or GeometricLength(16, 32),
    )


# ------------------------------------------------------------------------------ contract


def test_arrays_have_documented_dtypes_shapes_and_are_read_only() -> None:
    w = generate_workload(cfg(), 1000, seed=3)
    assert len(w) == 1000
    assert w.arrival_s.dtype == np.float64 and w.arrival_s.shape == (1000,)
    assert w.prompt_tokens.dtype == np.int64 and w.prompt_tokens.shape == (1000,)
    assert w.output_tokens.dtype == np.int64 and w.output_tokens.shape == (1000,)
    assert np.all(np.diff(w.arrival_s) >= 0) and w.arrival_s[0] > 0
    assert w.prompt_tokens.min() >= 1 and w.output_tokens.min() >= 1
    for arr in (w.arrival_s, w.prompt_tokens, w.output_tokens):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1


def test_same_seed_identical_different_seed_different() -> None:
    c = cfg(arrival=GammaArrival(5.0, 1.5))
    a, b, other = (generate_workload(c, 5000, s) for s in (11, 11, 12))
    for name in ("arrival_s", "prompt_tokens", "output_tokens"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(other, name))
    # a fresh SeedSequence(s) is the same as the int s
    d = generate_workload(c, 5000, np.random.SeedSequence(11))
    np.testing.assert_array_equal(a.arrival_s, d.arrival_s)


def test_streams_are_spawned_in_documented_order() -> None:
    """Children 0, 1, 2 of SeedSequence(seed) drive arrivals, prompts, outputs."""
    c = cfg()
    w = generate_workload(c, 2000, seed=42)
    kids = np.random.SeedSequence(42).spawn(3)
    gaps = np.random.default_rng(kids[0]).exponential(0.5, 2000)
    np.testing.assert_array_equal(w.arrival_s, np.cumsum(gaps))  # times = cumsum(gaps)
    np.testing.assert_array_equal(
        w.prompt_tokens, c.prompt_tokens.sample(np.random.default_rng(kids[1]), 2000)
    )
    np.testing.assert_array_equal(
        w.output_tokens, c.output_tokens.sample(np.random.default_rng(kids[2]), 2000)
    )


def test_streams_are_independent_of_other_blocks() -> None:
    """Changing the prompt distribution leaves arrivals and outputs unchanged (CRN)."""
    a = generate_workload(cfg(prompt=FixedLength(5)), 3000, seed=1)
    b = generate_workload(cfg(prompt=UniformLength(1, 9)), 3000, seed=1)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)


def test_workload_validation() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Workload(np.array([1.0, 2.0]), np.array([1]), np.array([1, 1]))
    with pytest.raises(ValueError, match="nondecreasing"):
        Workload(np.array([2.0, 1.0]), np.array([1, 1]), np.array([1, 1]))
    with pytest.raises(ValueError, match=">= 1"):
        Workload(np.array([1.0]), np.array([0]), np.array([1]))
    source = np.array([0.5, 1.0])
    w = Workload(source, np.array([3, 4]), np.array([1, 2]))
    source[0] = 9.0  # the workload holds its own copy
    assert w.arrival_s[0] == 0.5 and len(w) == 2
    assert len(generate_workload(cfg(), 0, seed=0)) == 0


# ------------------------------------------------------------------------------ arrivals


def test_poisson_gaps_mean_and_cv() -> None:
    rate = 4.0
    t = PoissonArrival(rate).sample_times(np.random.default_rng(5), N)
    gaps = np.diff(np.concatenate(([0.0], t)))
    assert_mean_close(gaps, 1 / rate)
    assert_var_close(gaps, (1 / rate) ** 2)  # CV = 1
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.02)


def test_deterministic_gaps_exact() -> None:
    rate = 3.0
    t = DeterministicArrival(rate).sample_times(np.random.default_rng(0), 1000)
    np.testing.assert_allclose(t, np.arange(1, 1001) / rate, rtol=1e-15)
    np.testing.assert_allclose(np.diff(t), 1 / rate, rtol=1e-9)
    assert t[0] == pytest.approx(1 / rate)


def test_deterministic_arrivals_do_not_use_the_generator() -> None:
    rng = np.random.default_rng(9)
    before = rng.bit_generator.state
    DeterministicArrival(2.0).sample_times(rng, 100)
    assert rng.bit_generator.state == before


@pytest.mark.parametrize("cv", [0.25, 1.0, 3.0])
def test_gamma_gaps_mean_and_cv(cv: float) -> None:
    rate = 2.0
    t = GammaArrival(rate, cv).sample_times(np.random.default_rng(7), N)
    gaps = np.diff(np.concatenate(([0.0], t)))
    assert_mean_close(gaps, 1 / rate)
    assert_var_close(gaps, (cv / rate) ** 2)


# ------------------------------------------------------------------------------ lengths


DISTS = [
    FixedLength(128),
    UniformLength(16, 128),
    GeometricLength(16, 32),
    GeometricLength(4.5, 1000),
    GeometricLength(1.0, 5),
    MixtureLength(
        (
            MixtureComponent(0.7, UniformLength(16, 128)),
            MixtureComponent(0.2, FixedLength(512)),
            MixtureComponent(0.1, GeometricLength(100, 2000)),
        )
    ),
    EmpiricalLength((3, 30, 300), (0.5, 0.3, 0.2)),
    EmpiricalLength((5, 5, 6, 9)),
]


@pytest.mark.parametrize("dist", DISTS, ids=lambda d: type(d).__name__)
def test_sample_contract_and_mean(dist: LengthDistribution) -> None:
    x = dist.sample(np.random.default_rng(2024), N)
    assert x.dtype == np.int64 and x.shape == (N,)
    assert x.min() >= 1 and x.max() <= dist.max_value()
    assert_mean_close(x.astype(np.float64), dist.mean())
    assert dist.sample(np.random.default_rng(0), 0).shape == (0,)


def test_geometric_capped_mean_formula() -> None:
    g = GeometricLength(16, 32)
    p = 1 / 16
    by_hand = sum(k * p * (1 - p) ** (k - 1) for k in range(1, 32)) + 32 * (1 - p) ** 31
    assert g.mean() == pytest.approx(by_hand, rel=1e-12)
    assert g.mean() == pytest.approx((1 - (1 - p) ** 32) / p, rel=1e-12)
    assert g.mean() < 16
    x = g.sample(np.random.default_rng(1), N)
    assert x.max() == 32
    # mass at the cap is P(G >= 32) = (1-p)^31
    frac = np.mean(x == 32)
    assert abs(frac - (1 - p) ** 31) <= Z * np.sqrt(frac * (1 - frac) / N)


def test_uniform_bounds_inclusive() -> None:
    x = UniformLength(5, 9).sample(np.random.default_rng(3), 50_000)
    assert set(np.unique(x).tolist()) == {5, 6, 7, 8, 9}
    assert np.array_equal(UniformLength(4, 4).sample(np.random.default_rng(0), 10), [4] * 10)


def test_mixture_weights_need_not_sum_to_one() -> None:
    mix = MixtureLength(
        (MixtureComponent(1.0, FixedLength(10)), MixtureComponent(3.0, FixedLength(20)))
    )
    np.testing.assert_allclose(mix.probabilities, [0.25, 0.75])
    x = mix.sample(np.random.default_rng(8), N)
    assert set(np.unique(x).tolist()) == {10, 20}
    frac = np.mean(x == 10)
    assert abs(frac - 0.25) <= Z * np.sqrt(frac * (1 - frac) / N)


def test_empirical_frequencies() -> None:
    emp = EmpiricalLength((3, 30, 300), (5.0, 3.0, 2.0))
    x = emp.sample(np.random.default_rng(4), N)
    for value, p in zip((3, 30, 300), (0.5, 0.3, 0.2), strict=True):
        frac = np.mean(x == value)
        assert abs(frac - p) <= Z * np.sqrt(frac * (1 - frac) / N)
    zero = EmpiricalLength((1, 2), (1.0, 0.0)).sample(np.random.default_rng(0), 1000)
    assert np.all(zero == 1)
