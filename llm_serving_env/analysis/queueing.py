"""Closed-form queueing results used to validate the simulator.

Every function is pure. Times are in seconds, rates are per second, and ``offered_load`` is
dimensionless (Erlangs). A parameter outside its domain, or a queue that would be unstable
(utilisation ``rho >= 1``), raises :class:`ValueError` naming the argument, its value and what
is allowed.

Notation: ``lambda`` arrival rate (1/s), ``mu`` service rate of one server (1/s), ``c`` number of
servers, ``rho = lambda / (c mu)`` utilisation, ``S`` service time (s), ``scv = Var(S) / E[S]^2``
squared coefficient of variation of ``S``. All queues are FCFS with Poisson arrivals and are
considered in steady state.

References
----------
- L. Kleinrock, *Queueing Systems, Vol. 1: Theory*, Wiley, 1975 (M/M/1 Sec. 3.2, M/M/c Sec. 3.5,
  M/G/1 Ch. 5, Jackson networks Sec. 4.8).
- D. Gross, J. F. Shortle, J. M. Thompson, C. M. Harris, *Fundamentals of Queueing Theory*,
  4th ed., Wiley, 2008 (M/M/1 Sec. 2.2, M/M/c Sec. 2.3, M/G/1 Sec. 5.1, series queues Sec. 4.1).
- N. Blomqvist, "The covariance function of the M/G/1 queueing system", Skand. Aktuarietidskr.
  50 (1967) 157-174; D. J. Daley, "The serial correlation coefficients of waiting times in a
  stationary single server queue", J. Austral. Math. Soc. 8 (1968) 683-699.
- W. Feller, *An Introduction to Probability Theory and Its Applications*, Vol. 1, 3rd ed.,
  Wiley, 1968 (Sec. XIII.7: waiting time for a run of successes).
- W. Whitt, "Planning queueing simulations", Management Science 35 (1989) 1341-1366.
- S. Asmussen, *Applied Probability and Queues*, 2nd ed., Springer, 2003 (regenerative CLT,
  Ch. VI).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "erlang_b",
    "erlang_c",
    "flat_batch_busy_fraction",
    "flat_batch_busy_iterations_mean",
    "flat_batch_sojourn_mean",
    "flat_batch_waiting_mean",
    "iteration_empty_probability",
    "little_mean_number",
    "md1_sojourn_mean",
    "mg1_sojourn_mean",
    "mg1_waiting_mean",
    "mm1_asymptotic_variance_of_mean_sojourn",
    "mm1_asymptotic_variance_of_mean_waiting",
    "mm1_mean_queue_length",
    "mm1_sojourn_cdf",
    "mm1_sojourn_mean",
    "mm1_sojourn_quantile",
    "mm1_waiting_mean",
    "mmc_sojourn_mean",
    "mmc_waiting_mean",
    "mmc_waiting_quantile",
    "tandem_mm1_sojourn_mean",
]


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------


def _as_real(name: str, value: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return x


def _positive(name: str, value: float) -> float:
    x = _as_real(name, value)
    if x <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return x


def _non_negative(name: str, value: float) -> float:
    x = _as_real(name, value)
    if x < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return x


def _probability(name: str, value: float) -> float:
    x = _as_real(name, value)
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return x


def _num_servers(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"num_servers must be an integer >= 1, got {value!r}")
    return int(value)


def _stable(rho: float, what: str) -> None:
    if rho >= 1.0:
        raise ValueError(
            f"unstable queue: utilisation rho = {what} = {rho:.6g} must be < 1"
        )


def _mm1(arrival_rate: float, service_rate: float) -> tuple[float, float]:
    lam = _non_negative("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    _stable(lam / mu, f"arrival_rate / service_rate = {lam:g} / {mu:g}")
    return lam, mu


# --------------------------------------------------------------------------------------------
# M/M/1
# --------------------------------------------------------------------------------------------


def mm1_sojourn_mean(arrival_rate: float, service_rate: float) -> float:
    """Mean sojourn (response) time of the M/M/1 queue, in seconds.

    ``E[T] = 1 / (mu - lambda)`` (Kleinrock vol. 1, Eq. 3.26; Gross & Harris Sec. 2.2).
    """
    lam, mu = _mm1(arrival_rate, service_rate)
    return 1.0 / (mu - lam)


def mm1_waiting_mean(arrival_rate: float, service_rate: float) -> float:
    """Mean waiting time in queue (before service) of the M/M/1 queue, in seconds.

    ``E[W_q] = rho / (mu - lambda)`` with ``rho = lambda / mu`` (Gross & Harris Sec. 2.2).
    """
    lam, mu = _mm1(arrival_rate, service_rate)
    return (lam / mu) / (mu - lam)


def mm1_sojourn_cdf(arrival_rate: float, service_rate: float, t: ArrayLike) -> float | np.ndarray:
    """CDF of the M/M/1 sojourn time at ``t`` seconds (scalar or array).

    The FCFS sojourn time is exponential with rate ``mu - lambda``:
    ``P(T <= t) = 1 - exp(-(mu - lambda) t)`` for ``t >= 0`` and 0 for ``t < 0``
    (Kleinrock vol. 1, Eq. 3.33; Gross & Harris Sec. 2.2.4).
    """
    lam, mu = _mm1(arrival_rate, service_rate)
    tt = np.asarray(t, dtype=float)
    if np.isnan(tt).any():
        raise ValueError(f"t must not be NaN, got {t!r}")
    cdf = np.where(tt > 0.0, -np.expm1(-(mu - lam) * np.maximum(tt, 0.0)), 0.0)
    return float(cdf) if cdf.ndim == 0 else cdf


def mm1_sojourn_quantile(arrival_rate: float, service_rate: float, q: float) -> float:
    """``q``-quantile of the M/M/1 sojourn time, in seconds (``0 <= q < 1``).

    Inverting the exponential CDF: ``t_q = -ln(1 - q) / (mu - lambda)``
    (e.g. the 95th percentile is ``ln(20) / (mu - lambda)``).
    """
    lam, mu = _mm1(arrival_rate, service_rate)
    qq = _probability("q", q)
    return -math.log1p(-qq) / (mu - lam)


def mm1_mean_queue_length(arrival_rate: float, service_rate: float) -> float:
    """Mean number of customers in the M/M/1 system (waiting plus in service), dimensionless.

    ``L = rho / (1 - rho)`` (Kleinrock vol. 1, Eq. 3.24); equals ``lambda * E[T]`` by Little's law.
    """
    lam, mu = _mm1(arrival_rate, service_rate)
    rho = lam / mu
    return rho / (1.0 - rho)


def little_mean_number(arrival_rate: float, mean_time_s: float) -> float:
    """Little's law ``L = lambda * W``: mean number present given the throughput (1/s) and the
    mean time each customer spends there (s) (J. D. C. Little, Oper. Res. 9 (1961) 383-387)."""
    lam = _non_negative("arrival_rate", arrival_rate)
    w = _non_negative("mean_time_s", mean_time_s)
    return lam * w


def mm1_asymptotic_variance_of_mean_sojourn(arrival_rate: float, service_rate: float) -> float:
    """Asymptotic variance constant ``sigma^2`` (s^2) of the mean sojourn time of a stationary
    M/M/1 FCFS queue: ``Var(mean of n consecutive sojourn times) ~ sigma^2 / n``.

    ``sigma^2 = sum_{k in Z} Cov(T_0, T_k) = (1 + rho)^2 / (mu^2 (1 - rho)^4)
    = (mu + lambda)^2 / (mu - lambda)^4``.

    Derivation: the regenerative CLT over customer-indexed busy cycles (Asmussen 2003, Ch. VI,
    Thm. 1.2; Crane & Iglehart 1975): ``sigma^2 = E[(Y - m N)^2] / E[N]`` with ``N`` the number
    served in a busy period, ``Y`` the sum of their sojourn times (= the area under the
    number-in-system during the busy period) and ``m = E[T]``. The joint moments of ``(N, Y)``
    follow from first-step analysis of the M/M/1 busy period. The same computation applied to
    waiting times reproduces the classical result of Blomqvist (1967) and Daley (1968) (see
    :func:`mm1_asymptotic_variance_of_mean_waiting`, also tabulated by Whitt 1989), which
    cross-checks the method; both are verified by simulation in ``tests/test_queueing.py``.

    Example: ``rho = 0.5``, ``mu = 1/s`` gives ``sigma^2 = 36 s^2`` (nine times ``Var(T) = 4``),
    so ``n`` customers give a standard error of ``6 / sqrt(n)`` seconds for ``E[T] = 2 s``.
    """
    lam, mu = _mm1(arrival_rate, service_rate)
    return (mu + lam) ** 2 / (mu - lam) ** 4


def mm1_asymptotic_variance_of_mean_waiting(arrival_rate: float, service_rate: float) -> float:
    """Asymptotic variance constant ``sigma^2`` (s^2) of the mean waiting time in queue of a
    stationary M/M/1 FCFS queue: ``Var(mean of n consecutive waits) ~ sigma^2 / n``.

    ``sigma^2 = rho (2 + 5 rho - 4 rho^2 + rho^3) / (mu^2 (1 - rho)^4)``
    (Blomqvist 1967; Daley 1968; Whitt 1989).
    """
    lam, mu = _mm1(arrival_rate, service_rate)
    rho = lam / mu
    return rho * (2.0 + 5.0 * rho - 4.0 * rho**2 + rho**3) / (mu**2 * (1.0 - rho) ** 4)


# --------------------------------------------------------------------------------------------
# M/G/1
# --------------------------------------------------------------------------------------------


def mg1_waiting_mean(arrival_rate: float, service_mean: float, service_scv: float) -> float:
    """Mean waiting time in queue of the M/G/1 queue, in seconds (Pollaczek-Khinchine).

    ``W_q = lambda E[S^2] / (2 (1 - rho))`` with ``E[S^2] = E[S]^2 (1 + scv)`` and
    ``rho = lambda E[S]`` (Kleinrock vol. 1, Eq. 5.72; Gross & Harris Sec. 5.1.1).
    ``service_mean`` is ``E[S]`` in seconds; ``service_scv`` is ``Var(S) / E[S]^2 >= 0``.
    """
    lam = _non_negative("arrival_rate", arrival_rate)
    es = _positive("service_mean", service_mean)
    scv = _non_negative("service_scv", service_scv)
    rho = lam * es
    _stable(rho, f"arrival_rate * service_mean = {lam:g} * {es:g}")
    es2 = es * es * (1.0 + scv)
    return lam * es2 / (2.0 * (1.0 - rho))


def mg1_sojourn_mean(arrival_rate: float, service_mean: float, service_scv: float) -> float:
    """Mean sojourn time of the M/G/1 queue, in seconds: ``E[T] = W_q + E[S]`` with ``W_q``
    from Pollaczek-Khinchine (:func:`mg1_waiting_mean`; Kleinrock vol. 1, Eq. 5.73)."""
    return mg1_waiting_mean(arrival_rate, service_mean, service_scv) + float(service_mean)


def md1_sojourn_mean(arrival_rate: float, service_time: float) -> float:
    """Mean sojourn time of the M/D/1 queue (deterministic service of ``service_time`` s).

    Pollaczek-Khinchine with ``scv = 0``: ``E[T] = S + lambda S^2 / (2 (1 - lambda S))``
    (Gross & Harris Sec. 5.1.4).
    """
    return mg1_sojourn_mean(arrival_rate, service_time, 0.0)


# --------------------------------------------------------------------------------------------
# M/M/c
# --------------------------------------------------------------------------------------------


def erlang_b(num_servers: int, offered_load: float) -> float:
    """Erlang B blocking probability of the M/M/c/c loss system (dimensionless).

    ``B(c, a) = (a^c / c!) / sum_{k=0}^{c} a^k / k!``, computed with the numerically stable
    recursion ``B(0, a) = 1``, ``B(k, a) = a B(k-1, a) / (k + a B(k-1, a))``
    (Gross & Harris Sec. 2.6; Kleinrock vol. 1, Eq. 3.46). Any ``a >= 0`` is allowed.
    """
    c = _num_servers(num_servers)
    a = _non_negative("offered_load", offered_load)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(num_servers: int, offered_load: float) -> float:
    """Erlang C probability that an arrival waits in the M/M/c queue (dimensionless).

    ``offered_load = a = lambda / mu`` (Erlangs), stability needs ``a < c``. Textbook form:
    ``C(c, a) = [a^c / c! * c / (c - a)] / [sum_{k<c} a^k / k! + a^c / c! * c / (c - a)]``
    (Kleinrock vol. 1, Eq. 3.40; Gross & Harris Eq. 2.32). Computed stably from Erlang B:
    ``C = c B / (c - a (1 - B))`` (Gross & Harris Sec. 2.6), so large ``c`` does not overflow.
    """
    c = _num_servers(num_servers)
    a = _non_negative("offered_load", offered_load)
    _stable(a / c, f"offered_load / num_servers = {a:g} / {c}")
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def _mmc(arrival_rate: float, service_rate: float, num_servers: int) -> tuple[float, float, int]:
    lam = _non_negative("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    c = _num_servers(num_servers)
    _stable(
        lam / (c * mu),
        f"arrival_rate / (num_servers * service_rate) = {lam:g} / ({c} * {mu:g})",
    )
    return lam, mu, c


def mmc_waiting_mean(arrival_rate: float, service_rate: float, num_servers: int) -> float:
    """Mean waiting time in queue of the M/M/c queue, in seconds.

    ``W_q = C(c, lambda/mu) / (c mu - lambda)`` (Kleinrock vol. 1, Eq. 3.43;
    Gross & Harris Sec. 2.3).
    """
    lam, mu, c = _mmc(arrival_rate, service_rate, num_servers)
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_sojourn_mean(arrival_rate: float, service_rate: float, num_servers: int) -> float:
    """Mean sojourn time of the M/M/c queue, in seconds.

    ``E[T] = C(c, lambda/mu) / (c mu - lambda) + 1 / mu`` (Gross & Harris Sec. 2.3).
    """
    lam, mu, c = _mmc(arrival_rate, service_rate, num_servers)
    return erlang_c(c, lam / mu) / (c * mu - lam) + 1.0 / mu


def mmc_waiting_quantile(
    arrival_rate: float, service_rate: float, num_servers: int, q: float
) -> float:
    """``q``-quantile of the M/M/c FCFS waiting time in queue, in seconds (``0 <= q < 1``).

    ``P(W_q > t) = C e^{-(c mu - lambda) t}`` for ``t >= 0`` (Gross & Harris Sec. 2.3.2), with an
    atom ``P(W_q = 0) = 1 - C``. Hence ``t_q = 0`` when ``q <= 1 - C`` and otherwise
    ``t_q = ln(C / (1 - q)) / (c mu - lambda)``.
    """
    lam, mu, c = _mmc(arrival_rate, service_rate, num_servers)
    qq = _probability("q", q)
    p_wait = erlang_c(c, lam / mu)
    if 1.0 - qq >= p_wait:
        return 0.0
    return math.log(p_wait / (1.0 - qq)) / (c * mu - lam)


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------


def tandem_mm1_sojourn_mean(arrival_rate: float, service_rates: Sequence[float]) -> float:
    """Mean end-to-end sojourn time through M/M/1 stations in series, in seconds.

    By Burke's theorem and Jackson's theorem each station behaves as an independent M/M/1
    queue with arrival rate ``lambda``: ``E[T] = sum_i 1 / (mu_i - lambda)``
    (Kleinrock vol. 1, Sec. 4.8; Gross & Harris Sec. 4.1). Every ``mu_i`` must exceed
    ``lambda``.
    """
    lam = _non_negative("arrival_rate", arrival_rate)
    rates = list(service_rates)
    if not rates:
        raise ValueError(f"service_rates must hold at least one rate, got {service_rates!r}")
    total = 0.0
    for i, r in enumerate(rates):
        mu = _positive(f"service_rates[{i}]", r)
        _stable(lam / mu, f"arrival_rate / service_rates[{i}] = {lam:g} / {mu:g}")
        total += 1.0 / (mu - lam)
    return total


# --------------------------------------------------------------------------------------------
# iteration-level batching with a flat iteration cost (every request joins the next iteration)
# --------------------------------------------------------------------------------------------
#
# Model (derived for LLM serving with iteration-level batching; see
# tests/test_validation_batching.py): one GPU runs iterations back to back while any request
# is present. Every iteration has a service time S drawn iid (mean ``m``, squared coefficient
# of variation ``scv``) whatever its content -- the flat part of the piecewise-linear model,
# S(b) = c for b <= b0. A Poisson(lambda) arrival that finds the GPU idle starts an iteration
# at once; one that finds it busy joins the next iteration (no limit on the batch). Each
# request occupies exactly ``B`` consecutive iterations (its prefill iteration, which emits
# its first token, then ``B - 1`` decodes) and leaves at the end of the last one.
#
# Busy period: call an iteration "empty" if no request arrives during it; P(empty) =
# p = E[exp(-lambda S)]. Label the iteration in which the initiating arrival occurs 0 (it is
# not empty). Iteration n + 1 runs iff some request arrived during iterations n+1-B .. n, so the
# busy period ends with the first run of B consecutive empty iterations among iterations
# 1, 2, ...; by Feller (Sec. XIII.7) its mean length in iterations is
# E[N] = (1 - p^B) / ((1 - p) p^B) = sum_{j=1..B} p^{-j}. N is a stopping time of the iid
# (S_i, arrivals during i) sequence, so by Wald the mean busy time is E[N] m; the idle time is
# Exp(lambda). Renewal-reward: P(busy) = E[N] m / (E[N] m + 1 / lambda).
#
# Waiting: by PASTA an arrival sees the time-stationary state; when busy it waits for the
# residual of the current iteration, whose time average over the (iid) sequence of iterations
# is E[S^2] / (2 E[S]) = m (1 + scv) / 2. So E[W] = P(busy) m (1 + scv) / 2, and the sojourn
# adds B fresh (not length-biased) iterations: E[T] = E[W] + B m.


def iteration_empty_probability(
    arrival_rate: float, iteration_mean: float, noise: str = "deterministic",
    cv: float | None = None,
) -> float:
    """P(no Poisson arrival during one iteration) = E[exp(-lambda S)], the Laplace-Stieltjes
    transform of the iteration time S at ``lambda`` (dimensionless).

    ``noise`` names the law of S with mean ``m = iteration_mean`` (seconds), as in
    ``llm_serving_env.hardware.service``: ``deterministic`` gives ``exp(-lambda m)``,
    ``exponential`` gives ``1 / (1 + lambda m)``, ``gamma`` with coefficient of variation
    ``cv`` (shape ``k = 1 / cv^2``, scale ``m cv^2``) gives ``(1 + lambda m cv^2)^(-1/cv^2)``.
    """
    lam = _non_negative("arrival_rate", arrival_rate)
    m = _positive("iteration_mean", iteration_mean)
    if noise == "deterministic":
        return math.exp(-lam * m)
    if noise == "exponential":
        return 1.0 / (1.0 + lam * m)
    if noise == "gamma":
        v = _positive("cv", cv) ** 2  # type: ignore[arg-type]
        return (1.0 + lam * m * v) ** (-1.0 / v)
    raise ValueError(f"noise must be deterministic, exponential or gamma, got {noise!r}")


def _output_tokens(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"output_tokens must be an integer >= 1, got {value!r}")
    return int(value)


def flat_batch_busy_iterations_mean(empty_probability: float, output_tokens: int) -> float:
    """Mean number of iterations in a busy period of the flat-cost batching queue.

    The busy period ends with the first run of ``B = output_tokens`` consecutive empty
    iterations, each empty with probability ``p = empty_probability`` independently:
    ``E[N] = (1 - p^B) / ((1 - p) p^B) = sum_{j=1..B} p^{-j}`` (Feller vol. 1, Sec. XIII.7,
    the mean waiting time for a run of B successes). ``B = 1`` gives ``1 / p``, the geometric
    number of iterations of the M/D^[inf]/1 bulk-service queue.
    """
    p = _as_real("empty_probability", empty_probability)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"empty_probability must be in (0, 1], got {empty_probability!r}")
    b = _output_tokens(output_tokens)
    return sum(p ** -j for j in range(1, b + 1))


def flat_batch_busy_fraction(
    arrival_rate: float, iteration_mean: float, output_tokens: int, empty_probability: float
) -> float:
    """Long-run fraction of time the GPU is busy in the flat-cost batching queue.

    Renewal-reward over busy/idle cycles: ``E[N] m / (E[N] m + 1 / lambda)`` with ``E[N]``
    from :func:`flat_batch_busy_iterations_mean` and ``m = iteration_mean`` (Wald's identity
    gives the mean busy time ``E[N] m``). By PASTA it is also the probability that an arrival
    waits. No stability condition: the batch is unlimited, so the queue is always stable.
    """
    lam = _positive("arrival_rate", arrival_rate)
    m = _positive("iteration_mean", iteration_mean)
    busy = flat_batch_busy_iterations_mean(empty_probability, output_tokens) * m
    return busy / (busy + 1.0 / lam)


def flat_batch_waiting_mean(
    arrival_rate: float, iteration_mean: float, iteration_scv: float, output_tokens: int,
    empty_probability: float,
) -> float:
    """Mean wait (arrival to the start of its first iteration) in the flat-cost batching
    queue, seconds: ``P(busy) E[S^2] / (2 E[S]) = P(busy) m (1 + scv) / 2`` (PASTA and the
    renewal residual life of the iteration times; Kleinrock vol. 1, Sec. 5.2)."""
    m = _positive("iteration_mean", iteration_mean)
    scv = _non_negative("iteration_scv", iteration_scv)
    busy = flat_batch_busy_fraction(arrival_rate, m, output_tokens, empty_probability)
    return busy * m * (1.0 + scv) / 2.0


def flat_batch_sojourn_mean(
    arrival_rate: float, iteration_mean: float, iteration_scv: float, output_tokens: int,
    empty_probability: float,
) -> float:
    """Mean sojourn (end-to-end) time in the flat-cost batching queue, seconds:
    ``E[T] = E[W] + B m`` (:func:`flat_batch_waiting_mean` plus the request's own ``B``
    iterations, which start after its arrival and so are not length-biased)."""
    b = _output_tokens(output_tokens)
    wait = flat_batch_waiting_mean(arrival_rate, iteration_mean, iteration_scv, b,
                                   empty_probability)
    return wait + b * float(iteration_mean)
