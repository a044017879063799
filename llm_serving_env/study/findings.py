"""The numbers the notebook's executive summary quotes, computed from the study's CSVs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from llm_serving_env.config.files import load_config
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.study.cluster import DISAGG_WORKLOAD
from llm_serving_env.study.runner import value


def _ci(row: pd.Series, digits: int = 3, scale: float = 1.0) -> str:
    """``"mean ± half_width"`` of a result row (just the mean when there is no interval)."""
    m, h = float(row["mean"]) * scale, float(row["half_width"]) * scale
    if not np.isfinite(h):
        return f"{m:.{digits}f}"
    if h > 0:  # at least one significant digit of the half-width
        digits = max(digits, -math.floor(math.log10(h)))
    return f"{m:.{digits}f} ± {h:.{digits}f}"



def _learned_summary(df: pd.DataFrame) -> dict[str, str]:
    """Sentences on the learned scheduler's evaluation table (``llm-serving evaluate``)."""
    cols = set(df.columns)
    kind = df["kind"] if "kind" in cols else pd.Series([""] * len(df))
    learned_rows = df[kind.astype(str).str.contains("learned")]
    if learned_rows.empty or "slo_attainment_mean" not in cols:
        return {"learned_text": "was evaluated; see Section 4.11.",
                "learned_result": "The evaluation table is shown below."}
    lr = learned_rows.iloc[0]
    best = str(lr["best_baseline"]) if "best_baseline" in cols else "the best baseline"
    br = df[df["policy"] == best]
    att_l = f"{lr['slo_attainment_mean']:.3f} ± {lr.get('slo_attainment_ci95', np.nan):.3f}"
    att_b = (f"{br['slo_attainment_mean'].iloc[0]:.3f} ± "
             f"{br['slo_attainment_ci95'].iloc[0]:.3f}") if len(br) else "n/a"
    ratio, verdict = "", "short of the +10% we aimed for."
    if "goodput_ratio_mean" in cols:
        mean, half = lr["goodput_ratio_mean"], lr.get("goodput_ratio_ci95", np.nan)
        ratio = f"; goodput ratio {mean:.3f} ± {half:.3f}"
        if mean - half > 1.0:
            verdict = "a small but real gain, short of the +10% we aimed for."
        elif mean + half < 1.0:
            verdict = "below the best rule, and far from the +10% we aimed for."
        else:
            verdict = ("no better than the best rule (the policy reduces to it), short of the "
                       "+10% we aimed for.")
    if "slo_upper_bound_mean" in cols:
        ratio += (f" (upper bound on SLO attainment: {lr['slo_upper_bound_mean']:.3f}; share "
                  f"of the gap to it closed: {lr['gap_closed_mean']:.2f})")
    n = int(lr["n"]) if "n" in cols else 0
    text = (f"reached SLO attainment {att_l} against {att_b} for the best hand-written "
            f"scheduler ({best}) on {n} held-out runs of its bursty benchmark{ratio}: "
            f"{verdict}")
    result = (f"Learned policy `{lr['policy']}`: SLO attainment {att_l}; best hand-written "
              f"scheduler `{best}`: {att_b}{ratio} (paired over {n} held-out seeds).")
    return {"learned_text": text, "learned_result": result}



def key_findings(data: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The numbers quoted in the executive summary and conclusions, computed from the CSVs.

    A flat dict: floats, ints and preformatted ``"mean ± half-width"`` strings (``att.*``,
    ``*_att``). Keys are documented by their use in ``main_report.ipynb``.
    """
    f: dict[str, Any] = {}
    info = data["run_info"]
    f["mode"] = str(info["mode"].iloc[0])
    f["requests"] = int(info["requests"].iloc[0])
    f["warmup"] = int(info["warmup"].iloc[0])
    f["wall_min"] = float(info["wall_s"].sum()) / 60.0
    f["num_analyses"] = len(info)
    f["level"] = 0.95  # every interval of the study is a 95% Student-t interval
    base = load_config(CONFIGS_DIR / "default.yaml")
    assert base.slo is not None
    f["slo_ttft_s"] = base.slo.ttft_ms / 1000.0
    f["slo_tbt_ms"] = base.slo.tbt_ms
    f["rate"] = base.workload.arrival.rate_per_s
    svc = base.service
    f["budget_rule"] = svc.b0_tokens + (base.slo.tbt_ms - svc.c_ms) / svc.a_ms

    val = data["validation"]
    f["val_cases"] = len(val)
    f["val_covered"] = int(val["covered"].sum())
    f["val_max_err_pct"] = 100 * float(val["rel_error"].abs().max())

    cmp_ = data["comparison"]
    for p in dict.fromkeys(cmp_["policy"]):
        f[f"att.{p}"] = _ci(value(cmp_, "slo_attainment", policy=p))
    f["rl_capacity"] = float(value(cmp_, "throughput_rps", policy="request_level")["mean"])
    f["cap_target"] = float(data["capacity_slo"]["target"].iloc[0])
    cap = data["capacity_slo"].set_index("policy")["rate_per_s"]
    for p, r in cap.items():
        f[f"cap.{p}"] = float(r)
    f["cap_gain_pct"] = 100 * (f["cap.slo_aware"] / f["cap.hybrid"] - 1)
    f["cap_vs_rl"] = f["cap.slo_aware"] / f["cap.request_level"]

    ch = data["chunk_size"]
    at = ch[(ch["metric"] == "slo_attainment") & np.isclose(ch["rate_per_s"], f["rate"])]
    at = at.sort_values("token_budget")
    top = at.loc[at["mean"].idxmax()]
    f["budget_best"] = int(top["token_budget"])
    f["budget_best_att"] = _ci(top)
    big = at[at["token_budget"] > f["budget_best"]]
    big_row = big.iloc[min(1, len(big) - 1)] if len(big) else top
    f["budget_big"] = int(big_row["token_budget"])
    f["budget_big_att"] = _ci(big_row)
    caps_b = ch[["token_budget", "capacity_rps"]].drop_duplicates().sort_values("token_budget")
    short = caps_b[caps_b["capacity_rps"] < f["rate"]]
    small_row = short.iloc[-1] if len(short) else caps_b.iloc[0]
    f["budget_small"] = int(small_row["token_budget"])
    f["budget_small_cap"] = float(small_row["capacity_rps"])

    ls = data["load_sweep"]
    wc = float(data["capacities"]["rate_per_s"].iloc[0])
    hy = ls[(ls["policy"] == "hybrid") & (ls["metric"] == "ttft_p95_s")].set_index(
        "rate_per_s")["mean"]
    for key, target in (("6", 6.0), ("8", 8.0), ("9", 9.0)):
        rate = float(hy.index[np.argmin(np.abs(hy.index.to_numpy(float) - target))])
        f[f"ls.{key}"] = float(hy.loc[rate])
        f[f"ls.{key}.load"] = rate / wc
    att_h = ls[(ls["policy"] == "hybrid") & (ls["metric"] == "slo_attainment")]
    good_rates = att_h[att_h["mean"] >= 0.95]["rate_per_s"]
    f["plan_att"] = 0.95
    f["plan_load"] = float(good_rates.max()) / wc if len(good_rates) else math.nan

    wl = data["workload"]
    def wrow(factor: str, level: str, policy: str, metric: str) -> pd.Series:
        sel = wl[(wl["factor"] == factor) & (wl["level"] == level) & (wl["policy"] == policy)
                 & (wl["metric"] == metric)]
        return sel.iloc[0]
    f["wl.base_share"] = "15%"
    f["wl.long_share"] = "30%"
    b_row = wrow("baseline", "default.yaml", "hybrid", "ttft_p95_s")
    l_row = wrow("long-prompt share", "30%", "hybrid", "ttft_p95_s")
    f["wl.base_load"], f["wl.base_ttft"] = float(b_row["load"]), float(b_row["mean"])
    f["wl.long_load"], f["wl.long_ttft"] = float(l_row["load"]), float(l_row["mean"])
    f["wl.cv"] = 4.0
    for p in ("hybrid", "slo_aware"):
        f[f"wl.burst_att.{p}"] = _ci(wrow("arrival burstiness", "gamma cv 4", p,
                                          "slo_attainment"))

    sc = data["scaling"]
    top_load = float(sc["load"].max())
    f["sc.load"] = top_load
    e = sc[(sc["metric"] == "ttft_p95_s") & np.isclose(sc["load"], top_load)].set_index(
        ["gpus", "router"])["mean"]
    f["sc.1"] = float(e.loc[(1, "central")])
    f["sc.4.central"] = float(e.loc[(4, "central")])
    f["sc.4.jsq"] = float(e.loc[(4, "jsq")])
    f["sc.4.rr"] = float(e.loc[(4, "round_robin")])

    dg = data["disaggregation"]
    f["dg.tbt_ms"] = float(DISAGG_WORKLOAD["slo"]["tbt_ms"])
    low = float(dg["rate_per_s"].min())
    f["dg.tbt.3P"] = 1000 * float(value(dg, "tbt_p95_s", variant="disaggregated 3P+1D",
                                        rate_per_s=low)["mean"])
    f["dg.tbt.h512"] = 1000 * float(value(dg, "tbt_p95_s", variant="colocated, hybrid 512",
                                          rate_per_s=low)["mean"])
    f["dg.att.h512"] = _ci(value(dg, "slo_attainment", variant="colocated, hybrid 512",
                                 rate_per_s=low))
    good = dg[dg["metric"] == "goodput_rps"].groupby("variant")["mean"].max()
    f["dg.good.3P"] = float(good["disaggregated 3P+1D"])
    f["dg.good.slo"] = float(good["colocated, slo_aware"])

    kv = data["kv_memory"]
    f["kv_gb_small"], f["kv_gb_big"] = float(kv["memory_gb"].min()), float(kv["memory_gb"].max())
    f["kv80"] = int(kv[kv["memory_gb"] == f["kv_gb_small"]]["kv_capacity_tokens"].iloc[0])
    f["kv160"] = int(kv[kv["memory_gb"] == f["kv_gb_big"]]["kv_capacity_tokens"].iloc[0])
    kv_rate = float(kv["rate_per_s"].max())
    f["kv.rate"] = kv_rate
    f["kv.pre.pf80"] = float(value(kv, "num_preemptions", policy="prefill_first",
                                   memory_gb=80.0, rate_per_s=kv_rate)["mean"])
    f["kv.ttft.pf80"] = float(value(kv, "ttft_p95_s", policy="prefill_first", memory_gb=80.0,
                                    rate_per_s=kv_rate)["mean"])
    f["kv.ttft.pf160"] = float(value(kv, "ttft_p95_s", policy="prefill_first",
                                     memory_gb=160.0, rate_per_s=kv_rate)["mean"])
    kl = data["kv_memory_long"]
    f["kvl.rate"] = float(kl["rate_per_s"].iloc[0])
    f["kvl.80"] = float(kl[(kl["metric"] == "throughput_rps")
                           & (kl["memory_gb"] == 80.0)]["mean"].iloc[0])
    att_l = kl[kl["metric"] == "slo_attainment"].set_index("memory_gb")["mean"].sort_index()
    ok = att_l[att_l >= att_l.iloc[-1] - 0.01]  # within a point of the largest memory's
    f["kvl.enough"] = float(ok.index.min()) if len(ok) else math.nan

    tr = data["traces"]
    for t in dict.fromkeys(tr["trace"]):
        for p in dict.fromkeys(tr["policy"]):
            f[f"tr.{t}.{p}"] = _ci(value(tr, "slo_attainment", trace=t, policy=p))

    ss = data["sensitivity_service"]
    hyb = ss[(ss["policy"] == "hybrid") & (ss["metric"] == "tbt_p95_s")]
    f["sens_tbt_violations"] = int((hyb["mean"] > base.slo.tbt_ms / 1000.0).sum())
    f["sens_settings"] = int(len(hyb))
    att_s = ss[ss["metric"] == "slo_attainment"].groupby("policy")["mean"].min()
    f["sens_min_att_hybrid"] = float(att_s.get("hybrid", math.nan))
    f["sens_min_att_slo"] = float(att_s.get("slo_aware", math.nan))

    ms = data["warmup_mser"]
    f["mser_max_cut"] = int(ms[ms["series"] == "mean over replications"]["cut_requests"].max())
    rp = data["replication_precision"]
    f["prec_reps"] = int(rp["replications"].max())
    f["prec_max_rel_pct"] = 100 * float(
        rp[rp["replications"] == f["prec_reps"]]["relative_half_width"].max())

    f["learned_present"] = "learned" in data
    if "learned" in data:
        f.update(_learned_summary(data["learned"]))
    else:
        f["learned_text"] = ("was not evaluated in this run: no evaluation table was found "
                             "(see Section 4.11).")
        f["learned_result"] = ""
    return f

