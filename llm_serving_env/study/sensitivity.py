"""Analysis 10: sensitivity to the service-time model's parameters and its noise.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from llm_serving_env.study.common import RATE, Study, default_config, summarize, token_capacity

C_VALUES = (20.0, 35.0, 50.0)



A_VALUES = (0.1, 0.3, 0.5)



NOISES: dict[str, dict[str, Any]] = {
    "deterministic": {"service.noise": "deterministic"},
    "gamma cv 0.1": {"service.noise": "gamma", "service.cv": 0.1},
    "gamma cv 0.25": {"service.noise": "gamma", "service.cv": 0.25},
    "gamma cv 0.5": {"service.noise": "gamma", "service.cv": 0.5},
    "exponential": {"service.noise": "exponential"},
}



def sensitivity(study: Study) -> dict[str, pd.DataFrame]:
    """How robust are the conclusions to the service-time model S(b) = c + a max(0, b - b0)?

    (a) c in {20, 35, 50} ms x a in {0.1, 0.3, 0.5} ms/token (and the baseline 45.5, 0.30),
    each at 70% of hybrid's capacity under that (c, a), for hybrid (fixed 512-token budget) and
    slo_aware (budget sized to the TBT objective) [``sensitivity_service.csv``: c_ms, a_ms,
    capacity_rps, rate_per_s, policy, metric, ...]. (b) The distribution of S around its mean:
    deterministic, gamma with cv 0.1 / 0.25 / 0.5, exponential (``C ~ Exp(c)``, ``A ~ Exp(a)``),
    at 70% and 90% of capacity [``sensitivity_noise.csv``: noise, load, rate_per_s, ...].
    """
    sz = study.sizes
    base = default_config(sz)
    cs = C_VALUES if sz.dense else (20.0, 50.0)
    as_ = A_VALUES if sz.dense else (0.1, 0.5)
    pairs = [(c, a) for c in cs for a in as_] + [(45.5, 0.30)]
    variants = {f"{c}|{a}": {"service.c_ms": c, "service.a_ms": a} for c, a in pairs}
    raw = study.variants(base, variants,
                         lambda cfg: {RATE: [round(0.7 * token_capacity(cfg), 6)]},
                         ["hybrid", "slo_aware"], sz.reps)
    out = summarize(raw, {RATE: "rate_per_s"})
    split = out["variant"].str.split("|", n=1, expand=True)
    out.insert(0, "c_ms", split[0].astype(float))
    out.insert(1, "a_ms", split[1].astype(float))
    out.insert(2, "capacity_rps", [token_capacity(base.replace(
        {"service.c_ms": c, "service.a_ms": a})) for c, a in zip(out["c_ms"], out["a_ms"],
                                                                  strict=True)])
    out = out.drop(columns=["variant"])

    cap = token_capacity(base)
    loads = (0.7, 0.9)
    noise_raw = study.variants(base, NOISES, {RATE: [round(x * cap, 6) for x in loads]},
                               ["hybrid", "slo_aware"], sz.reps, label="noise")
    noise = summarize(noise_raw, {RATE: "rate_per_s"})
    noise.insert(1, "load", (noise["rate_per_s"] / cap).round(3))
    return {"sensitivity_service": study.write("sensitivity_service", out),
            "sensitivity_noise": study.write("sensitivity_noise", noise)}

