"""Fit the service-time presets S(b) from the profiles in ``data/profiles/``.

Usage::

    .venv/bin/python scripts/fit_service_presets.py            # print, write the CSVs
    .venv/bin/python scripts/fit_service_presets.py --no-write # print only

For every profile (model / GPU / tensor parallelism) two forms are fitted to the iteration time
y(b) in ms against the token load b of the iteration:

* piecewise linear ``S(b) = c + a * max(0, b - b0)``: for every integer ``b0`` on the grid
  ``0 .. min(2048, max b)`` the pair (c, a) is the least-squares solution, and the ``b0`` with
  the smallest squared error is kept;
* staircase ``S(b) = c + a * ceil(b / b0)``: the same with ``b0`` in ``1 .. 2048``.

The squared error is the squared *relative* error ``sum(((S(b) - y) / y) ** 2)`` (weights
``1 / y``): the profiles span 45 ms to 3 s, and an unweighted fit would trade a few percent at
the large b for tens of percent at the small b where most decode-heavy iterations live. The
unweighted (ordinary least squares) fit is printed and written too (``weighting = abs``).
Only fits with ``c >= 0`` and ``a >= 0`` are admissible. Errors are over the points of the fit:
RMSE in ms, the largest and the median relative error ``|S(b) - y| / y``.

Profiles (provenance and licenses: ``data/profiles/README.md``):

* ``llama3-70b_a100_tp2_iteration_time_derived.csv`` (Vidur, MIT): Llama-3-70B on 2 x A100,
  ``total_ms`` = linear ops of 80 layers + 2 TP all-reduces per layer; b = 1 .. 8192 (the
  profile goes to 32,768; larger iterations are beyond any batch the simulator forms by
  default). Its ``linear_ops_ms`` equals the TP2 linear ops below (whose fit, 47.5 ms +
  0.311 ms/token above b0 = 63, is close to the brief's 45.5 / 0.30 / 64).
* ``vidur_a100_Meta-Llama-3-70B_mlp.csv``: the linear ops of Llama-3-70B at TP 1, 2, 4, 8
  (b <= 8192), to check that they scale as 1 / TP (the preset transformation's assumption).
* ``vidur_a100_pairwise_nvlink_all_reduce.csv``: all-reduce time between 2 A100s over NVLink
  against message size (1 .. 8192 tokens * 8192 * 2 bytes), fitted as ``latency + size / bw``
  by ordinary least squares.
* ``splitwise_sim_perf_model.csv`` (splitwise-sim, MIT): Llama-2-70B end to end on A100-80GB
  and H100-80GB at TP 2, 4, 8. Points: each prefill (``prompt_time`` against
  b = prompt_size * batch_size) and each decode step (``token_time`` against b = batch_size,
  one token per request), averaged over repeats at equal b. Rows with batch_size 64 are
  dropped (the TP2 prefill at 64 x 512 tokens is faster than at 32 x 512: a failed run).

Outputs: ``data/profiles/service_fits.csv`` (one row per profile, form and weighting),
``data/profiles/allreduce_fits.csv`` and ``data/profiles/tp_transform_check.csv`` (the
tensor-parallel transformation of ``llm_serving_env.hardware.presets``
against the profiles at other TP).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "data" / "profiles"
B0_MAX = 2048
VIDUR_B_MAX = 8192
#: Llama-3-70B and Llama-2-70B: 80 layers, hidden size 8192, fp16 (2 bytes per value)
LAYERS, HIDDEN, BYTES = 80, 8192, 2


@dataclass
class Profile:
    """Measured iteration times ``y_ms`` (ms) against token loads ``b`` (tokens)."""

    name: str
    source: str
    model: str
    hardware: str
    tensor_parallel: int
    b: np.ndarray
    y_ms: np.ndarray
    note: str = ""


@dataclass
class Fit:
    """One fitted form on one profile, with its error over the profile's points."""

    profile: str
    source: str
    model: str
    hardware: str
    tensor_parallel: int
    form: str
    weighting: str
    c_ms: float
    a_ms: float
    b0_tokens: int
    n_points: int
    b_min: int
    b_max: int
    rmse_ms: float
    max_rel_err: float
    median_rel_err: float
    better_form: str = ""
    note: str = ""


# --------------------------------------------------------------------------------- fitting


def piecewise(b: np.ndarray, c: float, a: float, b0: int) -> np.ndarray:
    """S(b) = c + a * max(0, b - b0), ms."""
    return c + a * np.maximum(0.0, b - b0)


def staircase(b: np.ndarray, c: float, a: float, b0: int) -> np.ndarray:
    """S(b) = c + a * ceil(b / b0), ms."""
    return c + a * np.ceil(b / b0)


FORMS: dict[str, tuple[Callable[[np.ndarray, int], np.ndarray], int]] = {
    # form -> (load term g(b; b0), smallest b0 on the grid)
    "piecewise_linear": (lambda b, b0: np.maximum(0.0, b - b0), 0),
    "staircase": (lambda b, b0: np.ceil(b / b0), 1),
}


def fit_form(b: np.ndarray, y: np.ndarray, form: str, weighting: str
             ) -> tuple[float, float, int]:
    """Least-squares (c, a) for every b0 on the grid; the b0 of least squared error wins.

    ``weighting``: ``"rel"`` minimizes sum(((S - y) / y)^2), ``"abs"`` sum((S - y)^2).
    Returns (c_ms, a_ms, b0_tokens) with c, a >= 0, or (nan, nan, -1) if no b0 admits one.
    """
    term, b0_min = FORMS[form]
    w = 1.0 / y if weighting == "rel" else np.ones_like(y)
    best: tuple[float, float, float, int] | None = None
    for b0 in range(b0_min, int(min(B0_MAX, b.max())) + 1):
        x = term(b, b0)
        design = np.column_stack((np.ones_like(b), x)) * w[:, None]
        coef, *_ = np.linalg.lstsq(design, y * w, rcond=None)
        c, a = float(coef[0]), float(coef[1])
        if c < 0 or a < 0:
            continue
        sse = float((((c + a * x) - y) * w) @ (((c + a * x) - y) * w))
        if best is None or sse < best[0]:
            best = (sse, c, a, b0)
    if best is None:  # no admissible fit on the grid
        return math.nan, math.nan, -1
    return best[1], best[2], best[3]


def errors(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(RMSE in ms, max relative error, median relative error)."""
    rel = np.abs(pred - y) / y
    return (float(np.sqrt(np.mean((pred - y) ** 2))), float(rel.max()), float(np.median(rel)))


def fit_profile(p: Profile, form: str, weighting: str) -> Fit:
    """Fit ``form`` to profile ``p`` and measure its error."""
    c, a, b0 = fit_form(p.b, p.y_ms, form, weighting)
    if b0 < 0:
        nan = math.nan
        return Fit(p.name, p.source, p.model, p.hardware, p.tensor_parallel, form, weighting,
                   nan, nan, b0, int(p.b.size), int(p.b.min()), int(p.b.max()), nan, nan, nan,
                   note="no admissible fit (c >= 0, a >= 0)")
    fn = piecewise if form == "piecewise_linear" else staircase
    rmse, max_rel, med_rel = errors(fn(p.b, c, a, b0), p.y_ms)
    return Fit(p.name, p.source, p.model, p.hardware, p.tensor_parallel, form, weighting,
               c, a, b0, int(p.b.size), int(p.b.min()), int(p.b.max()), rmse, max_rel,
               med_rel, note=p.note)


def better_form(pw: Fit, st: Fit) -> str:
    """The form that wins at least two of (RMSE, max relative error, median relative error)."""
    if st.b0_tokens < 0:
        return pw.form
    wins = sum(getattr(st, m) < getattr(pw, m) for m in ("rmse_ms", "max_rel_err",
                                                          "median_rel_err"))
    return st.form if wins >= 2 else pw.form


# --------------------------------------------------------------------------------- profiles


def _read(name: str) -> list[dict[str, str]]:
    with open(PROFILES / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _grouped_mean(b: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys, inv = np.unique(b, return_inverse=True)
    return keys.astype(np.float64), np.bincount(inv, weights=y) / np.bincount(inv)


def vidur_derived_profiles() -> list[Profile]:
    """Llama-3-70B, 2 x A100 TP2: linear ops + all-reduce (``total_ms``). (Its
    ``linear_ops_ms`` is the TP2 profile of :func:`vidur_linear_by_tp`.)"""
    rows = _read("llama3-70b_a100_tp2_iteration_time_derived.csv")
    b = np.array([float(r["num_tokens"]) for r in rows])
    keep = b <= VIDUR_B_MAX
    out = []
    for col, name, note in (
            ("total_ms", "llama3_70b_a100_tp2_vidur_total",
             "Vidur linear ops + 2 TP all-reduces per layer; no attention kernel"),):
        y = np.array([float(r[col]) for r in rows])
        out.append(Profile(name, f"llama3-70b_a100_tp2_iteration_time_derived.csv:{col}",
                           "llama3_70b", "a100_80gb", 2, b[keep], y[keep], note))
    return out


def vidur_linear_by_tp() -> list[Profile]:
    """Llama-3-70B linear ops (80 layers x per-layer medians + embedding) at TP 1, 2, 4, 8."""
    rows = _read("vidur_a100_Meta-Llama-3-70B_mlp.csv")
    ops = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
           "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
    out = []
    for tp in (1, 2, 4, 8):
        sel = [r for r in rows if int(r["num_tensor_parallel_workers"]) == tp
               and int(r["num_tokens"]) <= VIDUR_B_MAX]
        b = np.array([float(r["num_tokens"]) for r in sel])
        y = np.array([LAYERS * sum(float(r[f"time_stats.{op}.median"]) for op in ops)
                      + float(r["time_stats.emb.median"]) for r in sel])
        b, y = _grouped_mean(b, y)
        out.append(Profile(f"llama3_70b_a100_tp{tp}_vidur_linear",
                           "vidur_a100_Meta-Llama-3-70B_mlp.csv", "llama3_70b", "a100_80gb",
                           tp, b, y, "Vidur linear ops only (TP scaling check)"))
    return out


def splitwise_profiles() -> list[Profile]:
    """Llama-2-70B end to end (splitwise-sim): prefills and decode steps, per GPU and TP."""
    rows = [r for r in _read("splitwise_sim_perf_model.csv")
            if r["model"] == "llama2-70b" and int(r["batch_size"]) < 64]
    out = []
    for hw, gpu in (("a100-80gb", "a100_80gb"), ("h100-80gb", "h100_80gb")):
        for tp in (2, 4, 8):
            sel = [r for r in rows if r["hardware"] == hw and int(r["tensor_parallel"]) == tp]
            pre_b = np.array([float(r["prompt_size"]) * float(r["batch_size"]) for r in sel])
            pre_y = np.array([float(r["prompt_time"]) for r in sel])
            dec_b = np.array([float(r["batch_size"]) for r in sel])
            dec_y = np.array([float(r["token_time"]) for r in sel])
            pb, py = _grouped_mean(pre_b, pre_y)
            db, dy = _grouped_mean(dec_b, dec_y)
            b = np.concatenate((db, pb))
            y = np.concatenate((dy, py))
            out.append(Profile(f"llama2_70b_{gpu.split('_')[0]}_tp{tp}_splitwise",
                               "splitwise_sim_perf_model.csv", "llama2_70b", gpu, tp, b, y,
                               "end to end: prefills (b = prompt x batch) + decode steps "
                               "(b = batch)"))
    return out


# --------------------------------------------------------------------------------- all-reduce


@dataclass
class AllReduceFit:
    """time_ms = latency_ms + size_bytes / (bandwidth_gb_per_s * 1e6) for one all-reduce."""

    source: str
    num_workers: int
    latency_ms: float
    bandwidth_gb_per_s: float
    n_points: int
    size_max_bytes: int
    rmse_ms: float
    max_rel_err: float
    median_rel_err: float


def fit_allreduce() -> AllReduceFit:
    """Fit the 2-worker A100 NVLink all-reduce profile on the sizes of 1 .. 8192 tokens of a
    70B model's activations (16 KiB .. 128 MiB), ordinary least squares (below ~1 MB the
    medians scatter between 0.01 and 0.065 ms, which a relative-error fit would chase)."""
    rows = [r for r in _read("vidur_a100_pairwise_nvlink_all_reduce.csv")
            if int(r["num_workers"]) == 2]
    size = np.array([float(r["size"]) for r in rows])
    t = np.array([float(r["time_stats.all_reduce.median"]) for r in rows])
    keep = (size >= HIDDEN * BYTES) & (size <= VIDUR_B_MAX * HIDDEN * BYTES)
    size, t = _grouped_mean(size[keep], t[keep])
    coef, *_ = np.linalg.lstsq(np.column_stack((np.ones_like(size), size)), t, rcond=None)
    lat, per_byte = float(coef[0]), float(coef[1])
    rmse, max_rel, med_rel = errors(lat + per_byte * size, t)
    return AllReduceFit("vidur_a100_pairwise_nvlink_all_reduce.csv", 2, lat,
                        1.0 / per_byte / 1e6, int(size.size), int(size.max()), rmse, max_rel,
                        med_rel)


# --------------------------------------------------------------------------------- TP fit


@dataclass
class TpScalingFit:
    """The tensor-parallel transformation's parameters for one GPU, fitted so the TP2 fit's
    transformation matches splitwise-sim's TP4 and TP8 profiles: per-iteration time that does
    not shrink with TP (``fixed_ms``) and an effective all-reduce (latency, bus bandwidth)."""

    gpu: str
    fixed_ms: float
    latency_ms: float
    bandwidth_gb_per_s: float
    n_points: int


def fit_tp_scaling(fits: list[Fit], profiles: dict[str, Profile]) -> list[TpScalingFit]:
    """For each GPU of splitwise-sim's Llama-2-70B profiles, (fixed_ms, latency, bandwidth)
    minimising the squared relative error of the transformed TP2 fit over the TP4 and TP8
    points (scipy least squares; fixed_ms and the TP2 all-reduce latencies each between 0 and
    half the TP2 fit's c, bandwidth >= 1 GB/s)."""
    from scipy.optimize import least_squares

    sys.path.insert(0, str(ROOT))
    from llm_serving_env.hardware.presets import transform_tensor_parallel
    from llm_serving_env.hardware.specs import AllReduceSpec

    by_name = {(f.profile, f.form, f.weighting): f for f in fits}
    out = []
    for gpu in ("a100", "h100"):
        base = by_name[(f"llama2_70b_{gpu}_tp2_splitwise", "piecewise_linear", "rel")]
        targets = {tp: profiles[f"llama2_70b_{gpu}_tp{tp}_splitwise"] for tp in (4, 8)}

        def residuals(x: np.ndarray, base: Fit = base,
                      targets: dict[int, Profile] = targets) -> np.ndarray:
            spec = AllReduceSpec(float(x[1]), float(x[2]))
            res = []
            for tp, prof in targets.items():
                c, a, b0 = transform_tensor_parallel(
                    base.c_ms, base.a_ms, base.b0_tokens, from_tp=2, to_tp=tp,
                    num_layers=LAYERS, hidden_size=HIDDEN, bytes_per_value=BYTES,
                    allreduce=spec, fixed_ms=float(x[0]))
                res.append((piecewise(prof.b, c, a, b0) - prof.y_ms) / prof.y_ms)
            return np.concatenate(res)

        # fixed time and all-reduce latencies each at most half of c (so they fit in it)
        sol = least_squares(residuals, [base.c_ms / 4, base.c_ms / (8 * LAYERS), 100.0],
                            bounds=([0.0, 0.0, 1.0],
                                    [base.c_ms / 2, base.c_ms / (4 * LAYERS), 1e4]),
                            x_scale=[10.0, 0.1, 100.0], diff_step=1e-3)  # (its output is rounded)
        out.append(TpScalingFit(f"{gpu}_80gb", round(float(sol.x[0]), 4),
                                round(float(sol.x[1]), 6), round(float(sol.x[2]), 3),
                                int(sum(p.b.size for p in targets.values()))))
    return out


# --------------------------------------------------------------------------------- TP check


def tp_check(fits: list[Fit], profiles: dict[str, Profile], scaling: list[TpScalingFit]
             ) -> list[dict[str, object]]:
    """Apply the preset transformation to each TP2 fit and compare with the TP-t profiles:
    for splitwise-sim both the transformation with Vidur's A100 NVLink all-reduce and no fixed
    time (A100 only) and the one with the fitted ``scaling``."""
    sys.path.insert(0, str(ROOT))
    from llm_serving_env.hardware.presets import transform_tensor_parallel
    from llm_serving_env.hardware.specs import AllReduceSpec

    fitted = {f.gpu.split("_")[0]: f for f in scaling}

    by_name = {(f.profile, f.form, f.weighting): f for f in fits}
    rows: list[dict[str, object]] = []
    groups: list[tuple[str, tuple[int, ...], str | None, TpScalingFit | None]] = [
        ("llama3_70b_a100_tp{}_vidur_linear", (1, 4, 8), None, None),
        ("llama2_70b_a100_tp{}_splitwise", (4, 8), "a100_nvlink", None),
        ("llama2_70b_a100_tp{}_splitwise", (4, 8), "splitwise_a100", fitted["a100"]),
        ("llama2_70b_h100_tp{}_splitwise", (4, 8), "splitwise_h100", fitted["h100"])]
    for pattern, targets, allreduce, fit in groups:
        base = by_name[(pattern.format(2), "piecewise_linear", "rel")]
        spec = allreduce if fit is None else AllReduceSpec(fit.latency_ms,
                                                           fit.bandwidth_gb_per_s)
        fixed = 0.0 if fit is None else fit.fixed_ms
        for tp in targets:
            target = profiles[pattern.format(tp)]
            direct = by_name[(pattern.format(tp), "piecewise_linear", "rel")]
            c, a, b0 = transform_tensor_parallel(
                base.c_ms, base.a_ms, base.b0_tokens, from_tp=2, to_tp=tp, num_layers=LAYERS,
                hidden_size=HIDDEN, bytes_per_value=BYTES, allreduce=spec, fixed_ms=fixed)
            rmse, max_rel, med_rel = errors(piecewise(target.b, c, a, b0), target.y_ms)
            rows.append({"base": base.profile, "target": target.name, "tensor_parallel": tp,
                         "allreduce": allreduce or "none", "fixed_ms": fixed,
                         "c_pred_ms": c, "a_pred_ms": a,
                         "b0_pred": b0, "c_fit_ms": direct.c_ms, "a_fit_ms": direct.a_ms,
                         "b0_fit": direct.b0_tokens, "rmse_ms": rmse, "max_rel_err": max_rel,
                         "median_rel_err": med_rel})
    return rows


# --------------------------------------------------------------------------------- main


def _fmt_fit(f: Fit) -> str:
    mark = " <- better form" if f.better_form == f.form and f.weighting == "rel" else ""
    return (f"  {f.form:16s} {f.weighting:3s}  c = {f.c_ms:8.3f} ms  a = {f.a_ms:8.4f} ms  "
            f"b0 = {f.b0_tokens:4d}  RMSE {f.rmse_ms:7.2f} ms  max rel {f.max_rel_err:6.1%}  "
            f"median rel {f.median_rel_err:5.1%}{mark}")


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                             for k, v in row.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    profiles = vidur_derived_profiles() + vidur_linear_by_tp() + splitwise_profiles()
    fits: list[Fit] = []
    for p in profiles:
        print(f"{p.name}  ({p.source}; {p.b.size} points, b = {p.b.min():g} .. {p.b.max():g})")
        group = [fit_profile(p, form, weighting)
                 for form in ("piecewise_linear", "staircase") for weighting in ("rel", "abs")]
        better = better_form(*(next(f for f in group if f.form == form and f.weighting == "rel")
                               for form in ("piecewise_linear", "staircase")))
        for f in group:
            f.better_form = better
            print(_fmt_fit(f))
        fits.extend(group)

    ar = fit_allreduce()
    print(f"all-reduce, {ar.num_workers} x A100 NVLink ({ar.n_points} sizes <= "
          f"{ar.size_max_bytes / 1e6:.0f} MB): latency {ar.latency_ms:.4f} ms, bandwidth "
          f"{ar.bandwidth_gb_per_s:.1f} GB/s; RMSE {ar.rmse_ms:.4f} ms, max rel "
          f"{ar.max_rel_err:.1%}, median rel {ar.median_rel_err:.1%}")

    by_profile = {p.name: p for p in profiles}
    scaling = fit_tp_scaling(fits, by_profile)
    for sc in scaling:
        print(f"tensor-parallel scaling, {sc.gpu} (splitwise-sim TP4 + TP8, {sc.n_points} "
              f"points): fixed {sc.fixed_ms:.2f} ms, all-reduce latency {sc.latency_ms:.4f} "
              f"ms, bandwidth {sc.bandwidth_gb_per_s:.1f} GB/s")
    check = tp_check(fits, by_profile, scaling)
    print("tensor-parallel transformation from the TP2 fit (relative LS) vs the TP-t profile:")
    for r in check:
        print(f"  {r['target']:34s} [{r['allreduce']}] pred c = {r['c_pred_ms']:7.2f} "
              f"a = {r['a_pred_ms']:.4f} "
              f"(fit c = {r['c_fit_ms']:7.2f} a = {r['a_fit_ms']:.4f}); error of the "
              f"prediction: max rel {r['max_rel_err']:.1%}, median rel "
              f"{r['median_rel_err']:.1%}")

    if not args.no_write:
        _write(PROFILES / "service_fits.csv", [asdict(f) for f in fits])
        _write(PROFILES / "allreduce_fits.csv", [asdict(ar)])
        _write(PROFILES / "tp_transform_check.csv", check)
        _write(PROFILES / "tp_scaling_fits.csv", [asdict(sc) for sc in scaling])
        print(f"wrote {PROFILES / 'service_fits.csv'}, allreduce_fits.csv, "
              "tp_transform_check.csv, tp_scaling_fits.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
