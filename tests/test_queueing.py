"""Tests for llm_serving_env.analysis.queueing against hand-computed textbook numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import gammaln, logsumexp

from llm_serving_env.analysis import queueing as q

# ----------------------------------------------------------------------------- M/M/1


def test_mm1_hand_numbers() -> None:
    # lambda = 2/s, mu = 2.5/s: rho = 0.8, mu - lambda = 0.5/s
    assert q.mm1_sojourn_mean(2.0, 2.5) == pytest.approx(2.0, rel=1e-12)
    assert q.mm1_waiting_mean(2.0, 2.5) == pytest.approx(1.6, rel=1e-12)  # rho / (mu - lambda)
    assert q.mm1_sojourn_quantile(2.0, 2.5, 0.95) == pytest.approx(5.9915, abs=1e-4)
    assert q.mm1_sojourn_quantile(2.0, 2.5, 0.95) == pytest.approx(math.log(20) / 0.5, rel=1e-12)
    assert q.mm1_sojourn_quantile(2.0, 2.5, 0.5) == pytest.approx(math.log(2) / 0.5, rel=1e-12)
    assert q.mm1_sojourn_quantile(2.0, 2.5, 0.0) == 0.0
    assert q.mm1_mean_queue_length(2.0, 2.5) == pytest.approx(4.0, rel=1e-12)  # 0.8 / 0.2


def test_mm1_cdf_inverts_quantile_and_little() -> None:
    for p in (0.1, 0.5, 0.9, 0.99):
        t = q.mm1_sojourn_quantile(2.0, 2.5, p)
        assert q.mm1_sojourn_cdf(2.0, 2.5, t) == pytest.approx(p, rel=1e-12)
    assert q.mm1_sojourn_cdf(2.0, 2.5, 0.0) == 0.0
    assert q.mm1_sojourn_cdf(2.0, 2.5, -1.0) == 0.0
    arr = q.mm1_sojourn_cdf(2.0, 2.5, [-1.0, 0.0, 2.0])
    assert isinstance(arr, np.ndarray)
    np.testing.assert_allclose(arr, [0.0, 0.0, 1.0 - math.exp(-1.0)], rtol=1e-12)
    # Little's law: L = lambda * E[T]
    assert q.little_mean_number(2.0, q.mm1_sojourn_mean(2.0, 2.5)) == pytest.approx(
        q.mm1_mean_queue_length(2.0, 2.5), rel=1e-12
    )


def test_mm1_empty_system() -> None:
    assert q.mm1_sojourn_mean(0.0, 4.0) == pytest.approx(0.25)
    assert q.mm1_waiting_mean(0.0, 4.0) == 0.0


# ----------------------------------------------------------------------------- M/G/1, M/D/1


def test_md1_hand_number() -> None:
    # lambda = 2/s, S = 0.4 s: rho = 0.8, W_q = 2 * 0.16 / (2 * 0.2) = 0.8 s, T = 1.2 s
    assert q.md1_sojourn_mean(2.0, 0.4) == pytest.approx(1.2, rel=1e-12)
    assert q.mg1_waiting_mean(2.0, 0.4, 0.0) == pytest.approx(0.8, rel=1e-12)


def test_mg1_with_scv_one_is_mm1() -> None:
    for lam, mu in [(2.0, 2.5), (0.3, 1.0), (9.0, 10.0)]:
        assert q.mg1_sojourn_mean(lam, 1.0 / mu, 1.0) == pytest.approx(
            q.mm1_sojourn_mean(lam, mu), rel=1e-12
        )
        assert q.mg1_waiting_mean(lam, 1.0 / mu, 1.0) == pytest.approx(
            q.mm1_waiting_mean(lam, mu), rel=1e-12
        )


def test_mg1_hand_number_gamma_service() -> None:
    # lambda = 1/s, E[S] = 0.5 s, scv = 4: E[S^2] = 0.25 * 5 = 1.25, W_q = 1.25 / (2 * 0.5)
    assert q.mg1_waiting_mean(1.0, 0.5, 4.0) == pytest.approx(1.25, rel=1e-12)
    assert q.mg1_sojourn_mean(1.0, 0.5, 4.0) == pytest.approx(1.75, rel=1e-12)


# ----------------------------------------------------------------------------- M/M/c


def _erlang_c_textbook(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_mm2_by_hand() -> None:
    # lambda = 4/s, mu = 2.5/s, c = 2: a = 1.6 Erlang, rho = 0.8
    a = 4.0 / 2.5
    c_hand = (a**2 / math.factorial(2) * 2 / (2 - a)) / (
        a**0 / math.factorial(0) + a**1 / math.factorial(1) + a**2 / math.factorial(2) * 2 / (2 - a)
    )
    assert c_hand == pytest.approx(32 / 45, rel=1e-12)  # 6.4 / 9
    assert q.erlang_c(2, a) == pytest.approx(c_hand, rel=1e-12)
    assert q.mmc_waiting_mean(4.0, 2.5, 2) == pytest.approx(c_hand / (5.0 - 4.0), rel=1e-12)
    assert q.mmc_sojourn_mean(4.0, 2.5, 2) == pytest.approx(c_hand + 0.4, rel=1e-12)
    # P(W > t) = C exp(-(c mu - lambda) t): the 95% quantile is ln(C / 0.05) / 1
    assert q.mmc_waiting_quantile(4.0, 2.5, 2, 0.95) == pytest.approx(
        math.log(c_hand / 0.05), rel=1e-12
    )
    # q below the atom at zero (1 - C = 13/45) gives zero wait
    assert q.mmc_waiting_quantile(4.0, 2.5, 2, 0.25) == 0.0


@pytest.mark.parametrize("c,a", [(1, 0.5), (3, 2.2), (5, 4.9), (10, 3.0), (20, 18.5)])
def test_erlang_c_matches_textbook_formula(c: int, a: float) -> None:
    assert q.erlang_c(c, a) == pytest.approx(_erlang_c_textbook(c, a), rel=1e-10)


def test_erlang_c_large_c_is_stable() -> None:
    # a^c / c! overflows a float for c = 1000; compare with the textbook formula in log space
    c, a = 1000, 950.0
    log_top = c * math.log(a) - gammaln(c + 1) + math.log(c / (c - a))
    log_terms = np.arange(c) * math.log(a) - gammaln(np.arange(c) + 1)
    expected = math.exp(log_top - logsumexp(np.append(log_terms, log_top)))
    got = q.erlang_c(c, a)
    assert 0.0 < got < 1.0
    assert got == pytest.approx(expected, rel=1e-9)


def test_erlang_c_edge_values() -> None:
    assert q.erlang_c(1, 0.7) == pytest.approx(0.7, rel=1e-12)  # M/M/1: P(wait) = rho
    assert q.erlang_c(4, 0.0) == 0.0
    assert q.erlang_b(1, 1.0) == pytest.approx(0.5)
    assert q.erlang_b(2, 1.0) == pytest.approx(0.2)  # (1/2) / (1 + 1 + 1/2)


def test_mmc_with_one_server_is_mm1() -> None:
    for lam, mu in [(2.0, 2.5), (0.3, 1.0)]:
        assert q.mmc_sojourn_mean(lam, mu, 1) == pytest.approx(q.mm1_sojourn_mean(lam, mu))
        assert q.mmc_waiting_mean(lam, mu, 1) == pytest.approx(q.mm1_waiting_mean(lam, mu))
    # M/M/1 wait: P(W > t) = rho exp(-(mu - lambda) t); rho = 0.8 -> t_95 = ln(16) / 0.5
    assert q.mmc_waiting_quantile(2.0, 2.5, 1, 0.95) == pytest.approx(math.log(16) / 0.5)


# ----------------------------------------------------------------------------- tandem


def test_tandem() -> None:
    assert q.tandem_mm1_sojourn_mean(2.0, [2.5]) == pytest.approx(q.mm1_sojourn_mean(2.0, 2.5))
    assert q.tandem_mm1_sojourn_mean(2.0, (3.0, 4.0)) == pytest.approx(1.0 + 0.5)


# ----------------------------------------------------------------------------- errors


UNSTABLE_CALLS = [
    lambda: q.mm1_sojourn_mean(2.5, 2.5),
    lambda: q.mm1_sojourn_mean(3.0, 2.5),
    lambda: q.mm1_waiting_mean(3.0, 2.5),
    lambda: q.mm1_sojourn_quantile(3.0, 2.5, 0.5),
    lambda: q.mm1_sojourn_cdf(3.0, 2.5, 1.0),
    lambda: q.mm1_mean_queue_length(3.0, 2.5),
    lambda: q.mm1_asymptotic_variance_of_mean_sojourn(1.0, 1.0),
    lambda: q.mm1_asymptotic_variance_of_mean_waiting(1.0, 1.0),
    lambda: q.mg1_sojourn_mean(2.0, 0.5, 1.0),
    lambda: q.mg1_waiting_mean(3.0, 0.5, 0.0),
    lambda: q.md1_sojourn_mean(2.5, 0.4),
    lambda: q.erlang_c(2, 2.0),
    lambda: q.mmc_sojourn_mean(5.0, 2.5, 2),
    lambda: q.mmc_waiting_mean(6.0, 2.5, 2),
    lambda: q.mmc_waiting_quantile(5.0, 2.5, 2, 0.9),
    lambda: q.tandem_mm1_sojourn_mean(2.0, [3.0, 2.0]),
]


@pytest.mark.parametrize("call", UNSTABLE_CALLS)
def test_unstable_raises(call) -> None:
    with pytest.raises(ValueError, match="rho"):
        call()


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: q.mm1_sojourn_mean(-1.0, 2.0), "arrival_rate"),
        (lambda: q.mm1_sojourn_mean(1.0, 0.0), "service_rate"),
        (lambda: q.mm1_sojourn_mean(1.0, float("nan")), "service_rate"),
        (lambda: q.mm1_sojourn_quantile(1.0, 2.0, 1.0), "q"),
        (lambda: q.mm1_sojourn_quantile(1.0, 2.0, -0.1), "q"),
        (lambda: q.mm1_sojourn_cdf(1.0, 2.0, float("nan")), "t"),
        (lambda: q.mg1_sojourn_mean(1.0, 0.5, -0.1), "service_scv"),
        (lambda: q.mg1_sojourn_mean(1.0, 0.0, 1.0), "service_mean"),
        (lambda: q.erlang_c(0, 0.5), "num_servers"),
        (lambda: q.erlang_c(2.0, 0.5), "num_servers"),
        (lambda: q.erlang_c(2, -0.5), "offered_load"),
        (lambda: q.mmc_sojourn_mean(1.0, 1.0, True), "num_servers"),
        (lambda: q.mmc_waiting_quantile(1.0, 1.0, 2, 1.5), "q"),
        (lambda: q.tandem_mm1_sojourn_mean(1.0, []), "service_rates"),
        (lambda: q.tandem_mm1_sojourn_mean(1.0, [2.0, -3.0]), r"service_rates\[1\]"),
    ],
)
def test_invalid_arguments_name_the_argument(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


# ----------------------------------------------------------------------------- asymptotic variance


def test_asymptotic_variance_hand_numbers() -> None:
    # rho = 0.5, mu = 1: (1 + 0.5)^2 / 0.5^4 = 36;  0.5 (2 + 2.5 - 1 + 0.125) / 0.5^4 = 29
    assert q.mm1_asymptotic_variance_of_mean_sojourn(0.5, 1.0) == pytest.approx(36.0)
    assert q.mm1_asymptotic_variance_of_mean_waiting(0.5, 1.0) == pytest.approx(29.0)
    # time scales as 1/mu, variance constant as 1/mu^2
    assert q.mm1_asymptotic_variance_of_mean_sojourn(5.0, 10.0) == pytest.approx(0.36)
    # light traffic: sojourn times become iid Exp(mu), sigma^2 -> Var(S) = 1/mu^2
    assert q.mm1_asymptotic_variance_of_mean_sojourn(0.0, 2.0) == pytest.approx(0.25)


def _var_of_sample_variance(x: np.ndarray) -> float:
    """Estimated variance of the unbiased sample variance of iid ``x`` (from its 4th moment)."""
    r = x.size
    d = x - x.mean()
    m2 = float(np.mean(d**2))
    m4 = float(np.mean(d**4))
    return (m4 - m2**2 * (r - 3) / (r - 1)) / r


def test_asymptotic_variance_by_lindley_simulation() -> None:
    """Independent check: R stationary M/M/1 runs of n customers by the Lindley recursion.

    ``n * Var(run mean)`` estimates sigma^2 (finite-n bias is O(1/n), about 0.5% here); the
    tolerance is 4 standard errors of that estimate, computed from the replications themselves.
    """
    lam, mu = 0.5, 1.0
    reps, n = 2000, 20_000
    rng = np.random.default_rng(20240501)
    # stationary start: W_0 = 0 w.p. 1 - rho, else Exp(mu - lambda)
    w = np.where(rng.random(reps) < lam / mu, rng.exponential(1.0 / (mu - lam), reps), 0.0)
    sum_w = np.zeros(reps)
    sum_t = np.zeros(reps)
    for _ in range(n):
        s = rng.exponential(1.0 / mu, reps)
        sum_w += w
        sum_t += w + s  # sojourn = wait + own service
        w = np.maximum(w + s - rng.exponential(1.0 / lam, reps), 0.0)
    mean_t = sum_t / n
    mean_w = sum_w / n

    # sanity: the runs reproduce the means
    assert abs(mean_t.mean() - 2.0) < 4 * math.sqrt(36.0 / n / reps)

    for means, expected, naive in [
        (mean_t, q.mm1_asymptotic_variance_of_mean_sojourn(lam, mu), 1.0 / (mu - lam) ** 2),
        (mean_w, q.mm1_asymptotic_variance_of_mean_waiting(lam, mu), None),
    ]:
        est = n * float(means.var(ddof=1))
        se = n * math.sqrt(_var_of_sample_variance(means))
        assert abs(est - expected) < 4 * se, (est, se, expected)
        if naive is not None:  # the test can tell the answer from the iid variance Var(T)
            assert abs(est - naive) > 4 * se
    # and the two constants are told apart (36 vs 29): se is about 1.1 here
    assert 4 * n * math.sqrt(_var_of_sample_variance(mean_t)) < 36.0 - 29.0
