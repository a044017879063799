"""Burstiness statistics of arrival times, closed forms for the MMPP-2, and simple fits.

Statistics (:func:`fit_arrivals`), for sorted arrival times ``t_1 <= ... <= t_n`` (seconds):

* mean rate ``(n - 1) / (t_n - t_1)`` requests per second;
* IAT SCV: squared coefficient of variation ``var / mean^2`` of the gaps ``t_{i+1} - t_i``
  (population variance); 1 for a Poisson process;
* IDC(w), the index of dispersion of counts: ``var / mean`` (sample variance, ``ddof = 1``) of
  the numbers of arrivals in consecutive *full* windows of ``w`` seconds starting at ``t_1``
  (a partial last window is dropped). 1 for Poisson at every ``w``; growing with ``w`` means
  bursts or a drifting rate. (``../shared/data/traces/README.md`` keeps the partial last
  window and uses ``ddof = 0``, hence small differences, e.g. Azure conv IDC(60 s) 16.4 here
  vs 20.6 there.)

Fits return config dicts usable directly as ``workload.arrival`` blocks:

* :func:`fit_gamma_renewal`: ``{process: gamma, rate_per_s, cv}`` with ``cv = sqrt(IAT SCV)``.
  A renewal process matches the rate and the IAT SCV but has no memory between gaps, so
  its IDC(w) rises from about 1 at small ``w`` to the IAT SCV as ``w -> inf``.
* :func:`fit_mmpp2`: ``{process: mmpp, rates_per_s, mean_sojourn_s}`` by moment matching;
  see its docstring for the method and its limits.

MMPP-2 closed forms (:func:`mmpp2_moments`, :func:`mmpp2_idc`). State ``i`` in {0 (ON), 1
(OFF)} has arrival rate ``l_i`` and is left at rate ``s_i = 1 / mean_sojourn_i``. Let
``theta = s_0 + s_1``, ``pi = (s_1, s_0) / theta`` the stationary law and
``lbar = pi . l`` the mean rate. Given the state path, arrivals are Poisson with intensity
``l(t)``, so ``Var N(t) = E N(t) + Var int_0^t l(u) du``. The rate is a two-state Markov
chain with ``Cov(l(0), l(u)) = pi_0 pi_1 (l_0 - l_1)^2 exp(-theta u)``, and
``Var int_0^t l = 2 int_0^t (t - u) Cov(u) du
= 2 pi_0 pi_1 (l_0 - l_1)^2 (t / theta - (1 - exp(-theta t)) / theta^2)``. Dividing by
``E N(t) = lbar t``::

    IDC(t) = 1 + 2 s_0 s_1 (l_0 - l_1)^2 / (theta^2 (l_0 s_1 + l_1 s_0))
                 * (1 - (1 - exp(-theta t)) / (theta t)),

which is the formula of Fischer & Meier-Hellstern, "The Markov-modulated Poisson process
(MMPP) cookbook", Performance Evaluation 18 (1993), Sec. 3 (also Heffes & Lucantoni, IEEE
JSAC 1986). It rises from 1 at t = 0 to ``IDC(inf) = 1 + 2 pi_0 pi_1 (l_0 - l_1)^2 /
(theta lbar)``. The gaps are the stationary intervals of the Markovian arrival process with
``D0 = Q - diag(l)``, ``D1 = diag(l)``: with ``phi = pi diag(l) / lbar`` (the state seen by an
arrival) and ``M = (-D0)^{-1}``, ``E[X^k] = k! phi M^k 1``, so
``IAT SCV = 2 phi M^2 1 / (phi M 1)^2 - 1`` (same cookbook, Sec. 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import brentq

__all__ = [
    "fit_arrivals",
    "fit_gamma_renewal",
    "fit_mmpp2",
    "index_of_dispersion",
    "interarrival_scv",
    "mmpp2_idc",
    "mmpp2_moments",
]


def _times(times_s: Any, minimum: int = 2) -> np.ndarray:
    """Arrival times as a sorted float64 ``(n,)`` array; at least ``minimum`` of them."""
    t = np.sort(np.asarray(times_s, dtype=np.float64).ravel())
    if t.size < minimum or not np.all(np.isfinite(t)):
        raise ValueError(f"need >= {minimum} finite arrival times, got {t.size}")
    return t


def interarrival_scv(times_s: Any) -> float:
    """Squared coefficient of variation (var / mean^2, ``ddof = 0``) of the gaps between
    consecutive sorted arrival times ``times_s`` (seconds, shape ``(n,)``, n >= 3)."""
    gaps = np.diff(_times(times_s, 3))
    mean = gaps.mean()
    if not mean > 0:
        raise ValueError("all arrival times are equal: the IAT SCV is undefined")
    return float(gaps.var() / mean**2)


def index_of_dispersion(times_s: Any, window_s: float, start_s: float | None = None,
                        end_s: float | None = None) -> float:
    """IDC(w) = var / mean (``ddof = 1``) of the counts in consecutive full windows.

    Args:
        times_s: arrival times, seconds, shape ``(n,)`` (sorted here).
        window_s: window length w > 0, seconds.
        start_s: where the first window starts (default: the first arrival).
        end_s: windows must end by this time (default: the last arrival); a partial last
            window is dropped.

    Returns:
        The IDC, or NaN if fewer than 2 full windows fit or no window has an arrival.
    """
    t = _times(times_s, 1)
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s!r}")
    start = float(t[0]) if start_s is None else float(start_s)
    end = float(t[-1]) if end_s is None else float(end_s)
    m = int(math.floor((end - start) / window_s))
    if m < 2:
        return math.nan
    idx = np.floor((t - start) / window_s)
    idx = idx[(idx >= 0) & (idx < m)].astype(np.int64)
    counts = np.bincount(idx, minlength=m)
    mean = counts.mean()
    return float(counts.var(ddof=1) / mean) if mean > 0 else math.nan


def fit_arrivals(times_s: Any, windows_s: Sequence[float] = (1.0, 10.0, 60.0)) -> dict[str, Any]:
    """Summary statistics of an arrival stream (definitions in the module docstring).

    Args:
        times_s: arrival times, seconds, shape ``(n,)``, n >= 3 (sorted here).
        windows_s: windows (seconds) at which to compute the IDC.

    Returns:
        ``{"num_arrivals": n, "span_s": t_n - t_1, "rate_per_s": (n - 1) / span,
        "iat_mean_s": span / (n - 1), "iat_scv": ..., "idc": {w: IDC(w), ...}}``.
    """
    t = _times(times_s, 3)
    span = float(t[-1] - t[0])
    if not span > 0:
        raise ValueError("all arrival times are equal: the rate is undefined")
    return {
        "num_arrivals": int(t.size),
        "span_s": span,
        "rate_per_s": (t.size - 1) / span,
        "iat_mean_s": span / (t.size - 1),
        "iat_scv": interarrival_scv(t),
        "idc": {float(w): index_of_dispersion(t, w) for w in windows_s},
    }


def fit_gamma_renewal(times_s: Any) -> dict[str, Any]:
    """Gamma renewal process with the stream's mean rate and IAT SCV.

    Returns:
        ``{"process": "gamma", "rate_per_s": (n - 1) / span, "cv": sqrt(IAT SCV)}``.
    """
    stats = fit_arrivals(times_s, windows_s=())
    return {"process": "gamma", "rate_per_s": stats["rate_per_s"],
            "cv": math.sqrt(stats["iat_scv"])}


# --------------------------------------------------------------------------------------------
# MMPP-2 closed forms
# --------------------------------------------------------------------------------------------


def _mmpp2_parts(rates_per_s: Sequence[float], mean_sojourn_s: Sequence[float]
                 ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, float]:
    rates = np.asarray(rates_per_s, dtype=np.float64)
    leave = 1.0 / np.asarray(mean_sojourn_s, dtype=np.float64)
    if rates.shape != (2,) or leave.shape != (2,) or np.any(rates < 0) or not rates.max() > 0 \
            or not np.all(np.isfinite(leave)) or np.any(leave <= 0):
        raise ValueError(f"need rates [r_on, r_off] >= 0 (one > 0) and sojourns [t_on, t_off] "
                         f"> 0, got {list(rates_per_s)!r}, {list(mean_sojourn_s)!r}")
    theta = float(leave.sum())
    pi = leave[::-1] / theta
    return rates, leave, theta, pi, float(pi @ rates)


def mmpp2_idc(rates_per_s: Sequence[float], mean_sojourn_s: Sequence[float],
              window_s: Any) -> np.ndarray:
    """Closed-form IDC(t) of a stationary MMPP-2 (module docstring) at windows ``window_s``
    (seconds, scalar or array); float64 array of the same shape."""
    rates, leave, theta, pi, lbar = _mmpp2_parts(rates_per_s, mean_sojourn_s)
    t = np.asarray(window_s, dtype=np.float64)
    x = theta * t
    # 1 - (1 - e^-x)/x, written with expm1 for accuracy at small x
    shape = 1.0 + np.expm1(-x) / np.where(x > 0, x, 1.0)
    shape = np.where(x > 0, shape, 0.0)
    excess = 2.0 * pi[0] * pi[1] * (rates[0] - rates[1]) ** 2 / (theta * lbar)
    return 1.0 + excess * shape


def mmpp2_moments(rates_per_s: Sequence[float], mean_sojourn_s: Sequence[float],
                  windows_s: Sequence[float] = ()) -> dict[str, Any]:
    """Closed-form statistics of a stationary MMPP-2 (derivations in the module docstring).

    Args:
        rates_per_s: ``[r_on, r_off]`` arrivals per second in each state.
        mean_sojourn_s: ``[t_on, t_off]`` mean time per visit to each state, seconds.
        windows_s: windows (seconds) at which to report IDC(w).

    Returns:
        ``{"rate_per_s": lbar, "iat_scv": ..., "idc": {w: IDC(w)}, "idc_limit": IDC(inf),
        "switch_rate_per_s": theta}`` (``1 / theta`` is the correlation time of the rate).
    """
    rates, leave, theta, pi, lbar = _mmpp2_parts(rates_per_s, mean_sojourn_s)
    generator = np.array([[-leave[0], leave[0]], [leave[1], -leave[1]]])
    m = np.linalg.inv(np.diag(rates) - generator)  # (-D0)^{-1}
    phi = pi * rates / lbar
    ones = np.ones(2)
    first = float(phi @ m @ ones)
    second = float(2.0 * phi @ m @ m @ ones)
    idc = mmpp2_idc(rates, 1.0 / leave, np.asarray(list(windows_s), dtype=np.float64))
    return {
        "rate_per_s": lbar,
        "iat_scv": second / first**2 - 1.0,
        "idc": {float(w): float(v) for w, v in zip(windows_s, idc, strict=True)},
        "idc_limit": 1.0 + 2.0 * pi[0] * pi[1] * (rates[0] - rates[1]) ** 2 / (theta * lbar),
        "switch_rate_per_s": theta,
    }


# --------------------------------------------------------------------------------------------
# MMPP-2 fit
# --------------------------------------------------------------------------------------------


def _idc_shape(x: float) -> float:
    """g(x) = 1 - (1 - e^-x) / x, increasing from 0 (x -> 0, ~x/2) to 1 (x -> inf)."""
    return 1.0 + math.expm1(-x) / x


def _mmpp2_from(lbar: float, theta: float, excess: float, p_on: float
                ) -> tuple[list[float], list[float]]:
    """MMPP-2 with mean rate lbar, switching rate theta, IDC(inf) - 1 = excess, P(ON) = p_on."""
    p_off = 1.0 - p_on
    delta = math.sqrt(excess * theta * lbar / (2.0 * p_on * p_off))
    r_on = lbar + p_off * delta
    r_off = max(0.0, lbar - p_on * delta)
    # P(ON) = s_off / theta: leave ON at theta * p_off, leave OFF at theta * p_on
    return [r_on, r_off], [1.0 / (theta * p_off), 1.0 / (theta * p_on)]


def fit_mmpp2(times_s: Any, window_s: float = 10.0,
              long_window_s: float | None = None) -> dict[str, Any]:
    """Fit a two-state MMPP by matching mean rate, IDC at two windows and the IAT SCV.

    Method (moment matching, four equations for four parameters). Measure ``lbar`` (mean
    rate), ``I1 = IDC(window_s)``, ``I2 = IDC(long_window_s)`` (default ``6 * window_s``) and
    ``c2`` (IAT SCV). The closed form ``IDC(t) = 1 + E g(theta t)`` (module docstring) has two
    parameters besides ``lbar``: the excess ``E = IDC(inf) - 1`` and the switching rate
    ``theta``. The ratio ``(I2 - 1) / (I1 - 1) = g(theta w2) / g(theta w1)`` decreases in
    ``theta`` from ``w2 / w1`` to 1, so it fixes ``theta`` (root by Brent's method), and then
    ``E = (I1 - 1) / g(theta w1)``. One degree of freedom is left, ``P(ON) = p``: for each
    ``p``, ``l_on - l_off = sqrt(E theta lbar / (2 p (1 - p)))`` and the rates follow from
    ``lbar``; ``p`` is limited to ``(0, 2 lbar / (E theta + 2 lbar)]`` so that ``l_off >= 0``
    (the upper end is the ON/OFF process). ``p`` is then chosen so that the closed-form IAT
    SCV equals ``c2`` (a log-spaced grid of 400 values, refined by Brent's method where the
    error changes sign; otherwise the grid point with the smallest ``|log SCV - log c2|``).

    Limits: an MMPP-2 has one time scale ``1 / theta``, so the fitted IDC matches the data at
    ``window_s`` and ``long_window_s`` only; a trace whose IDC keeps growing (drift, several
    time scales) is under-dispersed by the fit beyond ``long_window_s``. Sojourns are
    exponential, so heavy-tailed silences (e.g. Azure code's OFF gaps up to 217 s) are not
    reproduced in shape, only in their first moments. If the ratio is outside
    ``(1, w2 / w1)`` (IDC flat or growing at least linearly, i.e. non-stationary) it is
    clamped into that range and ``theta`` is a boundary value. If the SCV is not reachable
    the closest one is used. The IDC estimates themselves are noisy: with ``m`` windows their
    relative standard error is at least ``sqrt(2 / m)``. If ``I1 <= 1`` (no over-dispersion)
    a Poisson block ``{process: poisson, rate_per_s: lbar}`` is returned.

    Args:
        times_s: arrival times, seconds, shape ``(n,)``.
        window_s: the short window w1 > 0, seconds.
        long_window_s: the long window w2 > w1 (default ``6 * window_s``).

    Returns:
        ``{"process": "mmpp", "rates_per_s": [r_on, r_off], "mean_sojourn_s": [t_on, t_off]}``
        (or the Poisson block above).
    """
    w1 = float(window_s)
    w2 = 6.0 * w1 if long_window_s is None else float(long_window_s)
    if not (w1 > 0 and w2 > w1):
        raise ValueError(f"need 0 < window_s < long_window_s, got {w1!r}, {w2!r}")
    stats = fit_arrivals(times_s, windows_s=(w1, w2))
    lbar, c2 = stats["rate_per_s"], stats["iat_scv"]
    i1, i2 = stats["idc"][w1], stats["idc"][w2]
    if not (math.isfinite(i1) and math.isfinite(i2)):
        raise ValueError(f"need >= 2 full windows of {w2:g} s to estimate the IDC")
    if i1 <= 1.0:
        return {"process": "poisson", "rate_per_s": lbar}
    top = w2 / w1
    ratio = min(max((i2 - 1.0) / (i1 - 1.0), 1.0 + 1e-3 * (top - 1.0)),
                1.0 + 0.999 * (top - 1.0))

    def ratio_error(log_theta: float) -> float:
        x = math.exp(log_theta)
        return _idc_shape(x * w2) / _idc_shape(x * w1) - ratio

    # bracket theta in log space: x * w1 from 1e-6 (ratio ~ top) to 1e4 (ratio ~ 1)
    theta = math.exp(brentq(ratio_error, math.log(1e-6 / w1), math.log(1e4 / w1),
                            xtol=1e-12))
    excess = (i1 - 1.0) / _idc_shape(theta * w1)
    p_max = 2.0 * lbar / (excess * theta + 2.0 * lbar)

    def scv_error(log_p: float) -> float:
        rates, soj = _mmpp2_from(lbar, theta, excess, min(math.exp(log_p), p_max))
        return math.log(mmpp2_moments(rates, soj)["iat_scv"]) - math.log(c2)

    grid = np.log(p_max) + np.linspace(math.log(1e-6), 0.0, 400)
    errors = np.array([scv_error(g) for g in grid])
    best = int(np.argmin(np.abs(errors)))
    log_p = float(grid[best])
    for j in (best - 1, best):  # refine in a neighbouring interval with a sign change
        if 0 <= j < grid.size - 1 and errors[j] * errors[j + 1] < 0:
            log_p = brentq(scv_error, grid[j], grid[j + 1], xtol=1e-12)
            break
    rates, soj = _mmpp2_from(lbar, theta, excess, min(math.exp(log_p), p_max))
    return {"process": "mmpp", "rates_per_s": rates, "mean_sojourn_s": soj}
