"""An upper bound on SLO attainment: no scheduler can do better on a given seed's requests.

:func:`slo_upper_bound` returns a number that the ``slo_attainment`` of EVERY policy run on the
same config and seed is at most; :func:`slo_bound_details` returns it with its ingredients. It
is a relaxation, not a schedule: it need not be reached, but it cannot be beaten.

Notation. Requests i = 0..n-1 in arrival order (the seed's workload, drawn exactly as
``Simulator(config, seed).reset()`` draws it): arrival a_i, prompt L_i, output B_i. SLO: TTFT
objective T, TBT objective D (seconds). K = ``gpus.max_batch_tokens``; S(b) the deterministic
service time of an iteration of token load b (nondecreasing in b); m GPUs. A request is *met*
when TTFT_i <= T and every gap between consecutive output tokens is <= D.

Derivation (every step only drops constraints of the real system or adds nothing it
does not imply; so any real schedule's set of met measured requests is feasible for the
relaxed problem and its size is at most the relaxed optimum):

1. *Warm-up requests are dropped.* Only measured requests (index >= ``warmup_requests``)
   count; the work of warm-up requests (and of unmet requests) is simply not charged below,
   which can only loosen capacity constraints.

2. *A met request, alone.* Its first token ends the iteration that completes its prefill of
   L_i tokens. Its chunks lie in distinct iterations (one chunk per request per batch) of one
   GPU (a request stays on its first GPU), which never overlap and start at or after a_i (only
   arrived requests). An iteration holding a chunk of x tokens has load >= x, so it lasts
   >= S(x). Hence TTFT_i >= P(L_i) := min over ways to cut L_i into chunks of at most K
   tokens of the sum of S(chunk). P is computed exactly (:func:`min_prefill_time`):
   ``piecewise_linear``: with k chunks the sum is >= k c + a max(0, L - k b0) (the max of a
   sum is at most the sum of maxes) and balanced chunks attain it; this is convex
   piecewise-linear in k, so its minimum over k in [ceil(L/K), L] lies at an end or next to
   the kink L/b0. ``staircase``: an iteration of j steps holds at most min(K, j b0) tokens; the
   step marginals are b0 (first ceil(K/b0)-1 steps) then K - (ceil(K/b0)-1) b0, decreasing,
   so the fewest steps J(k) that k iterations need is found greedily, and cost(k) =
   k c + a max(k, J(k)) is minimised over k (it is nondecreasing once J(k) = ceil(L/b0)).
   So a met request needs P(L_i) <= T. If B_i >= 2, its second token comes from a decode
   iteration that starts after its first token; every gap is at least the duration of the
   iteration that emits the later token (the earlier token was emitted at the end of an
   earlier iteration on that GPU, or before a KV transfer to a decode GPU). That iteration has
   load >= 1, so a met request with B_i >= 2 needs S(1) <= D. Requests failing either test
   are never met; the others are *candidates*.

3. *Where a met request's work lies.* All L_i prefill tokens of a met request are processed
   in iterations inside [a_i, a_i + T]. Its output token k (k = 2..B_i) is emitted at most
   (k-1) D after the first, so its emitting iteration lies inside [a_i, a_i + T + (k-1) D]
   and holds >= 1 token of load for it (a decode; or a recompute prefill after a preemption,
   which holds more). These units of load are distinct. Each emitting iteration lasts <= D
   (step 2), so its load is <= b_D := max{b <= K : S(b) <= D}. For speed, token k is charged
   to the deadline a_i + T + lam(k-1) D where lam rounds k-1 UP to a level in
   {1, 2, 3, 4, 6, 9, 14, 21, ...}: a later deadline is weaker, so still valid.

4. *Capacity of a window.* Any interval [t1, t2] of length Delta: the iterations of one GPU
   lying inside it do not overlap, so their durations sum to <= Delta. Let P and Q be the
   prefill and decode (step 3) tokens of met requests that must be processed inside
   [t1, t2]. (a) Tokens: P + Q <= m W(Delta), W(Delta) := max sum b_j s.t. sum S(b_j) <=
   Delta, 1 <= b_j <= K. We use an upper bound on W (:func:`max_tokens`): with k iterations
   (k <= Delta / c), the load is <= k K and <= k min(b0, K) + (Delta - k c) / a
   (piecewise_linear) or <= b0 (Delta - k c) / a (staircase, since b <= b0 ceil(b / b0));
   the minimum of the two is concave in k, maximised over integers at a floor/ceil of the
   crossing or at an end. (b) Time: with e_K := max_{b <= K} b / S(b) and e_D := max_{b <=
   b_D} b / S(b) <= e_K, each iteration lasts >= b / e_K, and >= b / e_D if it holds a
   decode of a met request (load <= b_D); summing, Q / e_D + P / e_K <= m Delta (the decode
   tokens' iterations carry >= Q tokens at efficiency <= e_D; the rest at <= e_K).

5. *Windows.* Over the candidates sorted by arrival, for s <= e take t1 = a_s and
   t2 = a_e + T: it contains the prefills of candidates s..e and their output tokens whose
   (rounded) deadline is <= t2. Only windows with e - s <= ``max_window_requests`` and
   a_e - a_s <= ``max_window_s`` are used: leaving windows out only relaxes.

6. *Selection.* Maximise sum x_i over candidates, x_i in [0, 1] (an LP relaxation of x_i in
   {0, 1}), subject to (4a) and (4b) for the windows of step 5. A window whose constraint holds
   even with every x_i = 1 is redundant (coefficients are >= 0). The candidates are split into
   *blocks*: maximal index ranges joined by non-redundant windows; windows crossing a block
   boundary are redundant, so blocks are independent. Blocks larger than ``max_block`` are cut
   at the boundary crossed by the fewest non-redundant windows (those windows are dropped:
   valid). Each block's LP is solved by cutting planes with HiGHS (``scipy.optimize.linprog``):
   start with none of the windows, add the most violated ones at the current LP solution,
   repeat. Every intermediate LP has a subset of the constraints, so each is itself a valid
   relaxation; the loop stops when no window of the family is violated (the family's LP
   optimum) or after ``max_rounds``.

7. *Certificate.* The LP's value is not taken from the solver: from its dual values y >= 0
   (clipped at 0), weak duality gives, for every x with A x <= b and 0 <= x <= 1,
   sum x_i <= y.b + sum_i max(0, 1 - (A^T y)_i), for ANY y >= 0, whatever the solver's
   tolerances. A block's met count is an integer, so it is <= floor of its best certificate.
   The bound is the sum over blocks (plus one per candidate in no window) divided by the
   number of measured requests, the denominator of ``slo_attainment``.

Relaxed (ignored) rules, each only enlarging what is possible: ``max_batch_requests``, KV
memory and preemption costs, the router (per-GPU queues), the assignment of requests to GPUs
(the m GPUs are pooled), the work of warm-up and unmet requests, KV-transfer delays, and the
fact that a big iteration also delays the running decodes of other requests (only the
iterations that emit a met request's token are limited to b_D tokens). Disaggregation: the
prefill work of a window is charged to the prefill pool (its count and service), decodes are
not charged; the single-request tests use the prefill pool's S for P(L) and the decode
pool's S(1) for the TBT.

SLO classes (``slo.classes``): step 2 tests each request against its own class's objectives
T_i and D_i; steps 3-5 use T = max T_i and D = max D_i over the candidates, which only
postpones deadlines and raises b_D (weaker constraints, still valid). The bound is then looser
for the tighter classes than a per-class relaxation would be.

Float comparisons: the engine compares TTFT and gaps in floating point, so every time
comparison here is loosened by ``TOL_S`` (1e-7 s) in the direction that enlarges the bound.

Service noise: with ``exponential`` or ``gamma`` noise an iteration can be arbitrarily short,
so no positive lower bound on S holds and there is nothing to bound with; that is a
ValueError (override ``service.noise`` to ``deterministic`` to bound the deterministic
system).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.simulate import as_config
from llm_serving_env.workload.generate import Workload

__all__ = ["SloBound", "decode_levels", "max_tokens", "min_prefill_time", "slo_bound_details",
           "slo_upper_bound"]

#: Slack (seconds) given to every time comparison, in the direction that enlarges the bound.
TOL_S = 1e-7


@dataclass(frozen=True)
class SloBound:
    """The bound and its ingredients (see the module docstring).

    Attributes:
        bound: upper bound on ``slo_attainment`` (= max_met / num_measured).
        num_measured: requests after the warm-up (the denominator).
        num_candidates: measured requests that pass the single-request tests (step 2).
        max_met: upper bound on the number of measured requests that meet the SLO.
        lp_value: sum of the blocks' certified LP bounds plus the unconstrained candidates.
        num_blocks: blocks with at least one non-redundant window.
        num_windows: window constraints in the final LPs.
        converged: every block's cutting planes ended with no violated window of the family.
    """

    bound: float
    num_measured: int
    num_candidates: int
    max_met: int
    lp_value: float
    num_blocks: int
    num_windows: int
    converged: bool


# ---------------------------------------------------------------------------- service algebra
def _service(cfg: SimConfig, role: str) -> ServiceModel:
    sc = cfg.service_for(role)
    if sc.noise != "deterministic":
        where = "service.noise" if role == "mixed" else f"disaggregation.{role}.service.noise"
        raise ValueError(
            f"{where} = {sc.noise!r}: slo_upper_bound needs deterministic service times "
            "(noise: deterministic); with random iteration times no positive lower bound on "
            "S(b) holds. Bound the deterministic system instead, e.g. "
            "config.replace({'service.noise': 'deterministic'})")
    return ServiceModel.from_config(sc)


def min_prefill_time(service: ServiceModel, prompt_tokens: Any, max_batch_tokens: int) -> Any:
    """P(L): the least total time of iterations that together prefill L tokens, each chunk at
    most ``max_batch_tokens`` (exact minimum over all chunkings; vectorized over L, seconds).
    """
    L = np.asarray(prompt_tokens, dtype=np.int64)
    scalar = L.ndim == 0
    L = np.atleast_1d(L)
    K = int(max_batch_tokens)
    c, a, b0 = service.c_s, service.a_s, service.b0_tokens
    k_min = -(-L // K)
    if service.model == "piecewise_linear":
        def cost(k: np.ndarray) -> np.ndarray:
            return k * c + a * np.maximum(0, L - k * b0)

        best = cost(k_min)
        if b0 > 0:
            for k in (L // b0, -(-L // b0)):
                best = np.minimum(best, cost(np.clip(k, k_min, L)))
        best = np.minimum(best, cost(L))
    else:
        steps = -(-K // b0)  # steps of a full iteration
        r = K - (steps - 1) * b0  # tokens the last step of a full iteration adds (1..b0)
        full = (steps - 1) * b0  # tokens per iteration at b0 tokens per step
        blocks = -(-L // b0)
        k_hi = np.maximum(k_min, -(-L // full)) if full > 0 else k_min
        best = np.full(L.shape, np.inf)
        for j in range(int((k_hi - k_min).max()) + 1 if L.size else 0):
            k = k_min + j
            live = k <= k_hi
            F = k * (steps - 1)
            need = np.where(F * b0 >= L, blocks, F + -(-(L - F * b0) // r))
            J = np.maximum(k, need)
            best = np.where(live, np.minimum(best, k * c + a * J), best)
    return float(best[0]) if scalar else best


def max_tokens(service: ServiceModel, delta_s: Any, max_batch_tokens: int) -> Any:
    """An upper bound on W(Delta): the most tokens one GPU can process in iterations (load
    <= ``max_batch_tokens``) whose durations sum to <= Delta seconds (vectorized)."""
    d = np.asarray(delta_s, dtype=np.float64)
    scalar = d.ndim == 0
    d = np.atleast_1d(d)
    K = float(max_batch_tokens)
    c, a, b0 = service.c_s, service.a_s, float(service.b0_tokens)
    if service.model == "piecewise_linear":
        base = min(b0, K)  # tokens an iteration holds for its setup time c alone
        scale = 1.0  # tokens per step bought with a
    else:
        base = 0.0
        scale = b0
    if c <= 0.0:
        if a <= 0.0 or (service.model == "piecewise_linear" and base > 0):
            out = np.full(d.shape, np.inf)
        else:
            out = scale * np.maximum(d, 0.0) / a
        return float(out[0]) if scalar else out
    kmax = np.floor(np.maximum(d, 0.0) / c * (1 + 1e-12) + 1e-9)  # float-safe: never too few
    if a <= 0.0:
        out = kmax * K
        return float(out[0]) if scalar else out

    def u(k: np.ndarray) -> np.ndarray:
        return np.minimum(k * K, k * base + scale * (d - k * c) / a)

    slope = K - (base - scale * c / a)  # > 0: the crossing of the two lines
    out = np.maximum(u(np.zeros_like(d)), u(kmax))
    if slope > 0:
        cross = (scale * d / a) / slope
        for k in (np.floor(cross), np.ceil(cross)):
            out = np.maximum(out, u(np.clip(k, 0.0, kmax)))
    out = np.maximum(out, 0.0)
    return float(out[0]) if scalar else out


def _efficiency(service: ServiceModel, b_max: int) -> float:
    """max_{1 <= b <= b_max} b / S(b) (tokens per second; inf if some S(b) = 0)."""
    if b_max < 1:
        return math.inf
    b = np.arange(1, b_max + 1)
    s = np.asarray(service.mean_s(b), dtype=np.float64)
    if (s <= 0).any():
        return math.inf
    return float((b / s).max())


def decode_levels(max_decodes: int) -> np.ndarray:
    """Deadline levels (in units of D after the TTFT deadline) to which output tokens are
    charged: token k is charged at the smallest level >= k - 1 (1, 2, 3, 4, then x1.5)."""
    levels = [1, 2, 3, 4]
    while levels[-1] < max_decodes:
        levels.append(math.ceil(levels[-1] * 1.5))
    return np.asarray([lv for lv in levels if lv < max_decodes] + [max(max_decodes, 1)],
                      dtype=np.int64) if max_decodes > 0 else np.zeros(0, dtype=np.int64)


# ---------------------------------------------------------------------------- windows
class _Windows:
    """The window family over a range of candidates and its two constraints per window."""

    def __init__(self, a: np.ndarray, L: np.ndarray, cnt: np.ndarray, lag_s: np.ndarray,
                 ttft_s: float, cap_tokens: Any, m: int, e_k: float, e_d: float,
                 max_offset: int, max_span_s: float) -> None:
        self.a, self.L, self.cnt = a, L.astype(np.float64), cnt.astype(np.float64)
        self.n = a.size
        self.ttft_s, self.cap_tokens, self.m = ttft_s, cap_tokens, m
        self.inv_k = 0.0 if math.isinf(e_k) else 1.0 / e_k
        self.inv_d = 0.0 if math.isinf(e_d) else 1.0 / e_d
        self.max_offset, self.max_span_s = max_offset, max_span_s
        # idx[l, e]: candidates whose level-l tokens are due by a_e + T (a prefix, <= e + 1)
        self.idx = np.empty((lag_s.size, self.n), dtype=np.int64)
        for lv, lag in enumerate(lag_s):
            self.idx[lv] = np.minimum(
                np.searchsorted(a, a - lag + TOL_S, side="right"), np.arange(1, self.n + 1))

    def delta(self, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        return self.a[e] - self.a[s] + self.ttft_s + 2 * TOL_S

    def _offsets(self, chunk: int = 1 << 17):
        """The windows in chunks of about ``chunk`` (s, e) pairs, by increasing offset e - s:
        (s, e, delta, token capacity, level prefix ends). Cached when the arrays are small (a
        block), recomputed for the one pass over all candidates."""
        if getattr(self, "_cache", None) is not None:
            yield from self._cache
            return
        keep = self.n <= 4000
        cache = []
        n = self.n
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        size = 0
        for d in range(min(self.max_offset, n - 1) + 1):
            s = np.arange(n - d)
            e = s + d
            ok = self.a[e] - self.a[s] <= self.max_span_s
            last = not ok.any() or d == min(self.max_offset, n - 1)
            if ok.any():
                parts.append((s[ok], e[ok]))
                size += int(ok.sum())
            if parts and (size >= chunk or last):
                s = np.concatenate([p[0] for p in parts])
                e = np.concatenate([p[1] for p in parts])
                parts, size = [], 0
                delta = self.delta(s, e)
                item = (s, e, delta, self.m * self.cap_tokens(delta), self.idx[:, e])
                if keep:
                    cache.append(item)
                yield item
            if last:
                break
        if keep:
            self._cache = cache

    def scan(self, x: np.ndarray, rel_tol: float = 1e-9):
        """Yield (s, e, token_excess, time_excess) per offset for the windows violated at x
        (excesses relative to the capacities)."""
        cp = np.concatenate(([0.0], np.cumsum(x * self.L)))
        levels = self.cnt.shape[1]
        cd = np.vstack([np.zeros((1, levels)), np.cumsum(x[:, None] * self.cnt, 0)])
        for s, e, delta, cap_tok, ends in self._offsets():
            pre = cp[e + 1] - cp[s]
            dec = np.zeros(s.size)
            for lv in range(levels):
                dec += np.maximum(0.0, cd[ends[lv], lv] - cd[s, lv])
            tok = (pre + dec) - cap_tok * (1 + rel_tol) - 1e-9
            tim = (pre * self.inv_k + dec * self.inv_d) - self.m * delta * (1 + rel_tol)
            bad = (tok > 0) | (tim > 0)
            if bad.any():
                yield (s[bad], e[bad], tok[bad] / np.maximum(cap_tok[bad], 1.0),
                       tim[bad] / delta[bad])

    def rows(self, windows: list[tuple[int, int]]):
        """Sparse rows (token rows then time rows) and right-hand sides for ``windows``."""
        ri, ci, vt, vs = [], [], [], []
        for r, (s, e) in enumerate(windows):
            i = np.arange(s, e + 1)
            due = i[None, :] < self.idx[:, e][:, None]  # (levels, len)
            dec = (self.cnt[i].T * due).sum(0) if self.cnt.shape[1] else np.zeros(i.size)
            ri.append(np.full(i.size, r))
            ci.append(i)
            vt.append(self.L[i] + dec)
            vs.append(self.L[i] * self.inv_k + dec * self.inv_d)
        k = len(windows)
        rr, cc = np.concatenate(ri), np.concatenate(ci)
        s = np.array([w[0] for w in windows])
        e = np.array([w[1] for w in windows])
        delta = self.delta(s, e)
        tok = sp.csr_matrix((np.concatenate(vt), (rr, cc)), shape=(k, self.n))
        tim = sp.csr_matrix((np.concatenate(vs), (rr, cc)), shape=(k, self.n))
        rows = [tok, tim] if self.inv_k > 0 else [tok]
        rhs = [self.m * self.cap_tokens(delta), self.m * delta]
        A = sp.vstack(rows, format="csr")
        b = np.concatenate(rhs[: len(rows)])
        return A, b


def _certificate(A: sp.csr_matrix, b: np.ndarray, marginals: np.ndarray) -> float:
    """Weak duality: for y >= 0, max{1.x : A x <= b, 0 <= x <= 1} <= y.b + sum (1 - A^T y)^+."""
    y = np.maximum(0.0, -np.asarray(marginals, dtype=np.float64))
    finite = np.isfinite(b)
    y = np.where(finite, y, 0.0)
    reduced = 1.0 - A.T @ y
    return float(y[finite] @ b[finite] + np.maximum(0.0, reduced).sum())


def _solve_block(win: _Windows, max_rounds: int, per_round: int) -> tuple[float, int, bool]:
    """Cutting planes on one block; returns (certified bound, windows used, converged)."""
    n = win.n
    x = np.ones(n)
    chosen: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    best = float(n)
    for _ in range(max_rounds):
        found = []
        for s, e, tok, tim in win.scan(x):
            score = np.maximum(tok, tim)
            found.append((score, s, e))
        if not found:
            return best, len(chosen), True
        score = np.concatenate([f[0] for f in found])
        s = np.concatenate([f[1] for f in found])
        e = np.concatenate([f[2] for f in found])
        order = np.argsort(-score, kind="stable")
        added = 0
        for j in order.tolist():
            key = (int(s[j]), int(e[j]))
            if key in seen:
                continue
            seen.add(key)
            chosen.append(key)
            added += 1
            if added >= per_round:
                break
        if not added:  # violated only within tolerance of rows already present
            return best, len(chosen), True
        A, b = win.rows(chosen)
        res = linprog(-np.ones(n), A_ub=A, b_ub=b, bounds=(0.0, 1.0), method="highs")
        if res.status != 0 or res.x is None:
            return best, len(chosen), False
        best = min(best, _certificate(A, b, res.ineqlin.marginals))
        x = np.clip(res.x, 0.0, 1.0)
    return best, len(chosen), False


# ---------------------------------------------------------------------------- the bound
def slo_bound_details(
    config: SimConfig | str | os.PathLike | Mapping[str, Any],
    seed: int = 0,
    workload: Workload | None = None,
    *,
    max_window_requests: int = 1500,
    max_window_s: float = 600.0,
    max_block: int = 1500,
    max_rounds: int = 40,
    per_round: int = 300,
) -> SloBound:
    """The SLO-attainment upper bound of :func:`slo_upper_bound` with its ingredients.

    Args:
        config: a SimConfig, a YAML path, a preset name or a dict (as for ``simulate``).
        seed: the run's root seed (the bound is for the requests that seed draws).
        workload: an explicit workload instead (as for ``simulate``).
        max_window_requests, max_window_s: the longest windows used (step 5).
        max_block: the largest block solved as one LP (step 6).
        max_rounds, per_round: cutting-plane rounds per block and windows added per round.

    Raises:
        ValueError: no ``slo`` in the config, random service noise, or no measured request.
    """
    cfg = as_config(config)
    if cfg.slo is None:
        raise ValueError("slo_upper_bound needs an SLO: set slo: {ttft_ms, tbt_ms} in the config")
    if cfg.gpus.prefix_caching:
        # cached prefixes skip prefill work that the relaxation charges in full, so its value
        # would not bound what a cache-using scheduler attains
        raise ValueError("slo_upper_bound does not model prefix caching: set "
                         "gpus.prefix_caching: false (the bound then holds for runs without it)")
    dis = cfg.disaggregation
    if dis is None:
        pre_svc = dec_svc = _service(cfg, "mixed")
        m = int(cfg.gpus.count)
    else:
        pre_svc, dec_svc = _service(cfg, "prefill"), _service(cfg, "decode")
        m = int(dis.prefill.count)
    sim = Simulator(cfg, seed=seed, workload=workload)
    sim.reset()
    w = sim.workload
    n, warm = len(w), int(sim.warmup)
    measured = n - warm
    if measured <= 0:
        raise ValueError(f"no measured requests: warmup_requests = {warm} of {n}")
    K = int(cfg.gpus.max_batch_tokens)
    a = np.asarray(w.arrival_s, dtype=np.float64)[warm:]
    L = np.asarray(w.prompt_tokens, dtype=np.int64)[warm:]
    B = np.asarray(w.output_tokens, dtype=np.int64)[warm:]
    Ti, Di = cfg.slo.objectives_s(np.asarray(w.slo_class)[warm:])

    # step 2: single-request tests, each request with its own objectives
    ok = min_prefill_time(pre_svc, L, K) <= Ti + TOL_S
    ok &= (float(dec_svc.mean_s(1)) <= Di + TOL_S) | (B <= 1)
    nc = int(ok.sum())
    if nc == 0:
        return SloBound(0.0, measured, 0, 0, 0.0, 0, 0, True)
    cls = np.asarray(w.slo_class)[warm:][ok]
    solve = _RelaxationSolver(pre_svc, dec_svc, K, m, dis is not None, max_window_requests,
                              max_window_s, max_block, max_rounds, per_round)
    # steps 3-7 over every candidate, with the loosest objectives among them (slo.classes):
    # request i's work is due by a_i + T_i + (k-1) D_i <= a_i + T + (k-1) D, so every window
    # constraint still holds, only weaker for the tighter classes
    a, L, B, Ti, Di = a[ok], L[ok], B[ok], Ti[ok], Di[ok]
    total, lp_value, blocks, used, converged = solve(a, L, B, float(Ti.max()), float(Di.max()))
    if len(cfg.slo.classes) > 1:
        # each class alone, with its own objectives: dropping the other classes' work only
        # relaxes, so each bounds its class's met count and their sum bounds the total
        parts = [solve(a[cls == k], L[cls == k], B[cls == k], float(Ti[cls == k].max()),
                       float(Di[cls == k].max()))
                 for k in range(len(cfg.slo.classes)) if (cls == k).any()]
        by_class = sum(p[0] for p in parts)
        if by_class < total:
            total, lp_value = by_class, sum(p[1] for p in parts)
            blocks, used = sum(p[2] for p in parts), sum(p[3] for p in parts)
            converged = all(p[4] for p in parts)
    return SloBound(total / measured, measured, nc, int(total), lp_value, blocks, used,
                    converged)


class _RelaxationSolver:
    """Steps 3-7 for one set of candidates (arrival order) and one pair of objectives:
    ``(max_met, lp_value, blocks, windows_used, converged)``."""

    def __init__(self, pre_svc: ServiceModel, dec_svc: ServiceModel, K: int, m: int,
                 disaggregated: bool, max_window_requests: int, max_window_s: float,
                 max_block: int, max_rounds: int, per_round: int) -> None:
        self.pre_svc, self.dec_svc, self.K, self.m = pre_svc, dec_svc, K, m
        self.disaggregated = disaggregated
        self.max_window_requests, self.max_window_s = max_window_requests, max_window_s
        self.max_block, self.max_rounds, self.per_round = max_block, max_rounds, per_round

    def __call__(self, a: np.ndarray, L: np.ndarray, B: np.ndarray, T: float, D: float
                 ) -> tuple[int, float, int, int, bool]:
        pre_svc, dec_svc, K, m = self.pre_svc, self.dec_svc, self.K, self.m
        max_window_requests, max_window_s = self.max_window_requests, self.max_window_s
        max_block, max_rounds, per_round = self.max_block, self.max_rounds, self.per_round
        nc = int(a.size)
        # step 3-4: efficiencies, decode levels
        loads = np.arange(1, K + 1)
        small = loads[np.asarray(dec_svc.mean_s(loads)) <= D + TOL_S]
        b_d = int(small.max()) if small.size else 0
        e_k = _efficiency(pre_svc, K)
        if not self.disaggregated:
            levels = decode_levels(int(B.max()) - 1)
            e_d = _efficiency(dec_svc, b_d) if b_d else e_k
        else:  # decodes run on the decode pool: not charged
            levels = np.zeros(0, dtype=np.int64)
            e_d = e_k
        prev = np.concatenate(([0], levels[:-1]))
        cnt = np.clip((B - 1)[:, None] - prev[None, :], 0, (levels - prev)[None, :])
        lag = levels * D

        def cap_tokens(delta: np.ndarray) -> np.ndarray:
            return max_tokens(pre_svc, delta, K)

        if math.isinf(float(cap_tokens(np.array([1.0]))[0])) and math.isinf(e_k):
            return nc, float(nc), 0, 0, True

        # step 6: redundant windows (all x = 1) and blocks
        full = _Windows(a, L, cnt, lag, T, cap_tokens, m, e_k, e_d, max_window_requests,
                        max_window_s)
        cover = np.zeros(nc + 1, dtype=np.int64)  # cover[j]: windows crossing boundary j | j+1
        involved = np.zeros(nc + 1, dtype=np.int64)
        for s, e, _, _ in full.scan(np.ones(nc)):
            np.add.at(cover, s, 1)
            np.add.at(cover, e, -1)
            np.add.at(involved, s, 1)
            np.add.at(involved, e + 1, -1)
        crossing = np.cumsum(cover)[:-1]  # boundary j (between j and j+1), j = 0..nc-1
        in_window = np.cumsum(involved)[:-1] > 0
        blocks = []
        start = None
        for j in range(nc):
            if in_window[j] and start is None:
                start = j
            if start is not None and not (j < nc - 1 and crossing[j] > 0):
                blocks.append((start, j + 1))
                start = None
        split = []
        for lo, hi in blocks:
            while hi - lo > max_block:
                mid_lo, mid_hi = lo + max_block // 2, lo + max_block
                # the boundary (after index j) crossed by the fewest non-redundant windows
                cut = mid_lo + int(np.argmin(crossing[mid_lo - 1: mid_hi - 1]))
                split.append((lo, cut))
                lo = cut
            split.append((lo, hi))

        total, used, converged = 0, 0, True
        lp_value = float(nc - sum(hi - lo for lo, hi in split))
        total = nc - sum(hi - lo for lo, hi in split)
        for lo, hi in split:
            sub = _Windows(a[lo:hi], L[lo:hi], cnt[lo:hi], lag, T, cap_tokens, m, e_k, e_d,
                           max_window_requests, max_window_s)
            ub, k, conv = _solve_block(sub, max_rounds, per_round)
            ub = min(ub, float(hi - lo))
            lp_value += ub
            total += min(hi - lo, math.floor(ub + 1e-9))
            used += k
            converged &= conv
        return total, lp_value, len(split), used, converged


def slo_upper_bound(
    config: SimConfig | str | os.PathLike | Mapping[str, Any],
    seed: int = 0,
    workload: Workload | None = None,
) -> float:
    """An upper bound on the SLO attainment ANY scheduler can reach on this config and seed.

    The fraction of measured requests (after ``warmup_requests``; the denominator of
    ``RunResult.summary()["slo_attainment"]``) that could meet the SLO in a relaxation of the
    system (derived in this module's docstring): single-request necessary conditions plus
    capacity constraints on time windows, solved as an LP with a dual certificate.

    Args:
        config: a SimConfig, a YAML path, a preset name or a dict (as for ``simulate``).
        seed: root seed of the run whose requests are bounded.
        workload: an explicit workload (e.g. a replayed trace) instead of the generated one.

    Raises:
        ValueError: the config has no ``slo``, its service has random noise, or it caches
            prefixes (``gpus.prefix_caching``).
    """
    return slo_bound_details(config, seed, workload).bound
