"""Fit the context-aware service model (S(b) + attention) to splitwise-sim's measurements.

Usage::

    .venv/bin/python scripts/fit_attention.py            # print, write the CSV
    .venv/bin/python scripts/fit_attention.py --no-write # print only

Data: ``data/profiles/splitwise_sim_perf_model.csv`` (Mutinifni/splitwise-sim, MIT; provenance
in ``data/profiles/README.md``), Llama-2-70B end to end on A100-80GB and H100-80GB at tensor
parallelism 2, 4 and 8, averaged over repeats at each (prompt_size P, batch_size B); batch 64
is dropped as in ``fit_service_presets.py``. Each (P, B) gives two points:

* a prefill of B prompts of P tokens: ``prompt_time`` against token load b = B * P and
  B * P (P + 1) / 2 causal attention pairs;
* a decode step of B requests: ``token_time`` (the mean step over 128 generated tokens)
  against b = B and B * (P + 64) context tokens (the mean context over those steps).

Model (``llm_serving_env.hardware.attention``), in ms::

    y = c + a * max(0, b - b0) + pairs * u_flops / eta_flops + context * u_bw / eta_bw

with ``u_flops = 4 * layers * hidden / (tp * peak FLOP/s)`` and ``u_bw = kv_bytes_per_token /
(tp * HBM bandwidth)`` the physical minima (GPU datasheet peaks in
``llm_serving_env.hardware.specs.GPU_PRESETS``).

1. ``eta_bw`` from the single-request decode steps (B = 1, P = 128 .. 8192): the ordinary
   least-squares slope of ``token_time`` against the context, ``eta_bw = u_bw / slope``
   (capped at 1). Only these points vary the context at a fixed batch: across batch sizes
   the step time also grows by a per-request cost (sampling, per-sequence kernel work, about
   0.4 ms per request on A100 TP2) that the token-count model S(b) does not have below b0, and
   fitting ``eta_bw`` there would charge it to the KV reads.
2. For every b0 in 0..2048, (c, a, 1/eta_flops) minimise the squared relative error over all
   points with ``eta_bw`` fixed, subject to c, a >= 0 and 1/eta_flops >= 1 (scipy's bounded
   linear least squares); the b0 of least error wins.

The same points are also fitted with the token-count model alone (no attention terms).

Output: ``data/profiles/attention_fits.csv``, one row per (GPU, TP, model form) with the
parameters and the errors over the points (RMSE in ms, largest and median relative error).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import lsq_linear

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_serving_env.hardware.specs import GPU_PRESETS, MODEL_PRESETS  # noqa: E402

PROFILES = ROOT / "data" / "profiles"
B0_MAX = 2048
GENERATED = 128  # splitwise-sim's token_size: tokens generated per request
MODEL = MODEL_PRESETS["llama2_70b"]


def points(hardware: str, tp: int) -> dict[str, np.ndarray]:
    """Per (P, B), averaged over repeats: rows of (b, pairs, context, y_ms), prefills first."""
    with open(PROFILES / "splitwise_sim_perf_model.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == "llama2-70b"
                and r["hardware"] == hardware and int(r["tensor_parallel"]) == tp
                and int(r["batch_size"]) < 64]
    groups: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for r in rows:
        key = (int(r["prompt_size"]), int(r["batch_size"]))
        groups.setdefault(key, []).append((float(r["prompt_time"]), float(r["token_time"])))
    keys = sorted(groups)
    prompt = np.array([k[0] for k in keys], dtype=np.float64)
    batch = np.array([k[1] for k in keys], dtype=np.float64)
    prefill_ms = np.array([np.mean([v[0] for v in groups[k]]) for k in keys])
    decode_ms = np.array([np.mean([v[1] for v in groups[k]]) for k in keys])
    zero = np.zeros_like(prompt)
    return {
        "b": np.concatenate((batch * prompt, batch)),
        "pairs": np.concatenate((batch * prompt * (prompt + 1) / 2, zero)),
        "context": np.concatenate((zero, batch * (prompt + GENERATED / 2))),
        "y_ms": np.concatenate((prefill_ms, decode_ms)),
        "is_prefill": np.concatenate((np.ones_like(prompt), zero)).astype(bool),
    }


def physical_minima_ms(gpu: str, tp: int) -> tuple[float, float]:
    """(ms per attention pair at peak FLOP/s, ms per context token at peak bandwidth)."""
    spec = GPU_PRESETS[gpu]
    per_pair = 4.0 * MODEL.num_layers * MODEL.hidden_size / (tp * spec.peak_tflops * 1e12)
    per_token = MODEL.kv_bytes_per_token / (tp * spec.hbm_gb_per_s * 1e9)
    return per_pair * 1e3, per_token * 1e3


def bandwidth_efficiency(p: dict[str, np.ndarray], u_token: float) -> float:
    """``eta_bw`` from the context slope of the single-request decode steps (step 1)."""
    single = ~p["is_prefill"] & (p["b"] == 1)
    slope = np.polyfit(p["context"][single], p["y_ms"][single], 1)[0]
    return 1.0 if slope <= u_token else u_token / slope


def fit(p: dict[str, np.ndarray], u_pair: float, u_token: float, eta_bw: float | None
        ) -> tuple[np.ndarray, int, np.ndarray]:
    """Best (c, a[, 1/eta_flops]) and b0 with ``eta_bw`` fixed (None: no attention terms);
    returns (params, b0, predictions)."""
    y = p["y_ms"]
    fixed = 0.0 if eta_bw is None else p["context"] * u_token / eta_bw
    best: tuple[float, np.ndarray, int] | None = None
    for b0 in range(0, B0_MAX + 1):
        cols = [np.ones_like(y), np.maximum(0.0, p["b"] - b0)]
        lower, upper = [0.0, 0.0], [np.inf, np.inf]
        if eta_bw is not None:
            cols.append(p["pairs"] * u_pair)
            lower.append(1.0)
            upper.append(np.inf)
        x = np.column_stack(cols) / y[:, None]
        res = lsq_linear(x, 1.0 - fixed / y, bounds=(lower, upper), method="bvls")
        if best is None or res.cost < best[0]:
            best = (res.cost, res.x, b0)
    assert best is not None
    params, b0 = best[1], best[2]
    cols = [np.ones_like(y), np.maximum(0.0, p["b"] - b0)]
    if eta_bw is not None:
        cols.append(p["pairs"] * u_pair)
    return params, b0, np.column_stack(cols) @ params + fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    out = []
    for hardware, gpu in (("a100-80gb", "a100_80gb"), ("h100-80gb", "h100_80gb")):
        for tp in (2, 4, 8):
            p = points(hardware, tp)
            u_pair, u_token = physical_minima_ms(gpu, tp)
            eta_bw = bandwidth_efficiency(p, u_token)
            for attention in (False, True):
                params, b0, pred = fit(p, u_pair, u_token, eta_bw if attention else None)
                rel = np.abs(pred - p["y_ms"]) / p["y_ms"]
                row = {
                    "gpu": gpu, "tensor_parallel": tp,
                    "form": "piecewise_linear+attention" if attention else "piecewise_linear",
                    "c_ms": round(float(params[0]), 4), "a_ms": round(float(params[1]), 6),
                    "b0_tokens": b0,
                    "flops_efficiency": round(float(1.0 / params[2]), 4) if attention else "",
                    "bandwidth_efficiency": round(float(eta_bw), 4) if attention else "",
                    "n_points": int(p["y_ms"].size),
                    "rmse_ms": round(float(np.sqrt(np.mean((pred - p["y_ms"]) ** 2))), 3),
                    "max_rel_err": round(float(rel.max()), 4),
                    "median_rel_err": round(float(np.median(rel)), 4),
                    "max_rel_err_prefill": round(float(rel[p["is_prefill"]].max()), 4),
                    "max_rel_err_decode": round(float(rel[~p["is_prefill"]].max()), 4),
                }
                out.append(row)
                print(row)
    if not args.no_write:
        path = PROFILES / "attention_fits.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(out[0]))
            writer.writeheader()
            writer.writerows(out)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
