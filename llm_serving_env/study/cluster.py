"""Analyses 6-7: GPU count and routing, disaggregated prefill/decode pools, KV-cache memory.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from llm_serving_env.config.files import load_config
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.study.common import RATE, Study, default_config, summarize, token_capacity

SCALING_LOADS = (0.5, 0.7, 0.8, 0.9, 0.95)



def scaling(study: Study) -> dict[str, pd.DataFrame]:
    """1, 2 and 4 GPUs (model replicas) running hybrid, behind one central queue (a free GPU
    takes the next request), join-the-shortest-queue routing, or round-robin routing, at the
    same load per GPU (fractions of the work-conserving capacity). Writes ``scaling.csv``
    (gpus, router, load, rate_per_s, policy, metric, ...)."""
    sz = study.sizes
    loads = SCALING_LOADS if sz.dense else (0.5, 0.8, 0.95)
    base = default_config(sz)
    cap1 = token_capacity(base)
    variants = {"1|central": {"gpus.count": 1}}
    for count in (2, 4):
        for router in ("central", "jsq", "round_robin"):
            variants[f"{count}|{router}"] = {"gpus.count": count, "gpus.router": router}
    raw = study.variants(base, variants,
                         lambda cfg: {RATE: [round(x * cfg.gpus.count * cap1, 6) for x in loads]},
                         ["hybrid"], sz.reps)
    out = summarize(raw, {RATE: "rate_per_s"}, rate_col=RATE)
    split = out["variant"].str.split("|", n=1, expand=True)
    out.insert(0, "gpus", split[0].astype(int))
    out.insert(1, "router", split[1])
    out.insert(2, "load", (out["rate_per_s"] / (out["gpus"] * cap1)).round(4))
    return {"scaling": study.write("scaling", out.drop(columns=["variant"]))}



#: The prefill-heavy workload of the disaggregation study: long prompts, medium outputs.
DISAGG_WORKLOAD = {
    "workload.prompt_tokens": {"dist": "uniform", "low": 512, "high": 2048},
    "workload.output_tokens": {"dist": "geometric", "mean": 64, "max": 256},
    "model": "llama3_70b",
    "gpus.count": 4,
    "slo": {"ttft_ms": 3000, "tbt_ms": 100},
}



def _split(prefill: int, decode: int) -> dict[str, Any]:
    return {"disaggregation": {
        "prefill": {"count": prefill, "scheduler": {"name": "hybrid", "token_budget": 2048}},
        "decode": {"count": decode}, "interconnect": "nvlink"}}



DISAGG_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "colocated, hybrid 512": ("hybrid", {"scheduler": {"name": "hybrid", "token_budget": 512}}),
    "colocated, hybrid 128": ("hybrid", {"scheduler": {"name": "hybrid", "token_budget": 128}}),
    "colocated, slo_aware": ("slo_aware", {"scheduler": {"name": "slo_aware"}}),
    "disaggregated 3P+1D": ("hybrid", _split(3, 1)),
    "disaggregated 2P+2D": ("hybrid", _split(2, 2)),
}



def disaggregation(study: Study) -> dict[str, pd.DataFrame]:
    """Colocated vs disaggregated prefill/decode on 4 replicas of Llama-3-70B (2xA100 each) and
    a prefill-heavy load (prompts uniform 512-2048 tokens, outputs geometric mean 64 capped at
    256), with an interactive SLO (TTFT 3 s, TBT 100 ms). Colocated: hybrid with a 512- or
    128-token budget, or slo_aware (budget sized to the TBT objective). Disaggregated: 3 or 2
    prefill replicas (hybrid, 2048-token prefill iterations) and 1 or 2 decode replicas, KV
    moved over NVLink (Llama-3-70B: 320 KiB per token). Writes ``disaggregation.csv``
    (variant, rate_per_s, policy, metric, ...)."""
    sz = study.sizes
    rates = [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] if sz.dense else [3.0, 6.0]
    base = default_config(sz, **DISAGG_WORKLOAD).replace(
        {"num_requests": sz.disagg_requests, "warmup_requests": sz.disagg_warmup})
    frames = []
    by_policy: dict[str, dict[str, dict[str, Any]]] = {}
    for name, (policy, changes) in DISAGG_VARIANTS.items():
        by_policy.setdefault(policy, {})[name] = changes
    for policy, variants in by_policy.items():
        frames.append(study.variants(base, variants, {RATE: rates}, [policy], sz.reps))
    raw = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(DISAGG_VARIANTS)}
    raw = raw.sort_values("variant", key=lambda s: s.map(order), kind="stable")
    out = summarize(raw, {RATE: "rate_per_s"})
    return {"disaggregation": study.write("disaggregation", out)}



#: Llama-3-70B (fp16) on one replica of two A100s (tensor parallel 2): the KV cache is what the
#: weights leave of 90% of 2 x memory_gb (llm_serving_env.hardware.specs).
KV_HARDWARE = {"model": "llama3_70b", "gpus.gpu": "a100_80gb",
               "service": {"preset": "llama3_70b_a100_tp2", "tensor_parallel": 2}}



def kv_memory(study: Study) -> dict[str, pd.DataFrame]:
    """Doubling GPU memory: Llama-3-70B on 2 x A100 with 80 GB (as built) vs 160 GB per GPU.

    (a) The default chat workload at 5.0-8.5 req/s under hybrid, prefill_first and slo_aware
    [``kv_memory.csv``: memory_gb, kv_capacity_tokens, rate_per_s, policy, metric, ...].
    (b) A long-context workload (ShareGPT prompt and output lengths, one replica, 0.3 req/s,
    about 30% of hybrid's capacity without memory limit) under hybrid, at 80, 88, 96, 120 and
    160 GB [``kv_memory_long.csv``]. When decodes need KV blocks that are not free, the engine
    preempts the latest arrival (recompute, as vLLM).
    """
    sz = study.sizes
    base = default_config(sz, **KV_HARDWARE)
    rates = [5.0, 6.3, 7.5, 8.5] if sz.dense else [5.0, 8.5]
    variants = {str(gb): {"gpus.memory_gb": gb} for gb in (80.0, 160.0)}
    raw = study.variants(base, variants, {RATE: rates}, ["hybrid", "prefill_first", "slo_aware"],
                         sz.reps, label="memory_gb")
    out = summarize(raw, {RATE: "rate_per_s"})
    out["memory_gb"] = out["memory_gb"].astype(float)
    kv = {gb: base.replace({"gpus.memory_gb": gb}).gpus.kv_capacity_tokens for gb in (80., 160.)}
    out.insert(1, "kv_capacity_tokens", out["memory_gb"].map(kv))

    share = load_config(CONFIGS_DIR / "sharegpt.yaml")
    long_base = share.replace({**KV_HARDWARE, "gpus.count": 1, RATE: 0.3,
                               "num_requests": sz.long_requests,
                               "warmup_requests": sz.long_warmup})
    mems = (80.0, 88.0, 96.0, 120.0, 160.0) if sz.dense else (80.0, 96.0, 160.0)
    long_raw = study.variants(long_base, {str(gb): {"gpus.memory_gb": gb} for gb in mems}, {},
                              ["hybrid"], sz.long_reps, label="memory_gb")
    long_raw.insert(1, "rate_per_s", 0.3)
    long_out = summarize(long_raw, rate_col="rate_per_s")
    long_out["memory_gb"] = long_out["memory_gb"].astype(float)
    kv_long = {gb: long_base.replace({"gpus.memory_gb": gb}).gpus.kv_capacity_tokens
               for gb in mems}
    long_out.insert(1, "kv_capacity_tokens", long_out["memory_gb"].map(kv_long))
    long_out.insert(2, "capacity_rps", token_capacity(long_base))
    return {"kv_memory": study.write("kv_memory", out),
            "kv_memory_long": study.write("kv_memory_long", long_out)}

