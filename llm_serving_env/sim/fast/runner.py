"""The Python side of the compiled engine: packing a reset
:class:`~llm_serving_env.sim.engine.Simulator`'s state into its tables, driving the compiled
loop, and turning the outcome into the same :class:`~llm_serving_env.sim.result.RunResult`
(which runs it takes: :mod:`.support`).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from llm_serving_env.hardware.service import NOISE_BLOCK
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import SchedulingError
from llm_serving_env.sim.fast import layout as L
from llm_serving_env.sim.fast.cache import kernel_module
from llm_serving_env.sim.fast.layout import RULE_CODES
from llm_serving_env.sim.fast.support import fast_path_gap

if TYPE_CHECKING:
    from llm_serving_env.sim.engine import Simulator
    from llm_serving_env.sim.result import RunResult
    from llm_serving_env.sim.scheduler import Scheduler

__all__ = ["run_compiled"]

#: The tables :func:`kernel.run` takes, in its order (then the decisions per call).
KERNEL_ARGS = ("req_i", "req_f", "gpu_i", "gpu_f", "lists", "sc_i", "sc_f", "plan", "scratch",
               "noise", "flight", "log_i", "log_f", "gap_s", "gap_row", "gap_len")

#: Decisions per call of the compiled loop: between two calls a progress bar updates and
#: Python handles signals (Ctrl-C), about every 50 ms of wall time.
PROGRESS_EVERY = 65536


def _tables(sim: Simulator, scheduler: Scheduler) -> dict[str, np.ndarray]:
    """The compiled engine's state for ``sim`` just after ``reset()``."""
    n, g = sim.n, sim.num_gpus
    q = 1 if sim.router == "central" else g
    req_i = np.zeros((L.REQ_I_ROWS, n), np.int64)
    req_i[L.PROMPT] = sim.prompt
    req_i[L.OUTPUT] = sim.output
    req_i[[L.GPU_OF, L.FIRST_GPU, L.QUEUE_OF, L.NEXT, L.PREV]] = -1
    if sim._track_tokens:
        req_i[L.ROUTE_OUTPUT] = sim._route_output
    req_f = np.full((L.REQ_F_ROWS, n), np.nan)
    req_f[L.ARRIVAL] = sim.arrival_s
    req_f[L.MAX_TBT] = 0.0
    req_f[L.TTFT_OBJECTIVE] = sim._ttft_objective_s
    req_f[L.TBT_OBJECTIVE] = sim._tbt_objective_s
    gpu_i = np.zeros((L.GPU_I_ROWS, g), np.int64)
    gpu_f = np.full((L.GPU_F_ROWS, g), math.inf)
    lists = np.zeros((3, q + 2 * g), np.int64)
    lists[:2] = -1
    service = sim.services[0]
    rule = scheduler.compiled_rule()
    assert rule is not None
    sc_i = np.zeros(L.SCALARS_I, np.int64)
    sc_i[L.N], sc_i[L.NUM_GPUS], sc_i[L.NUM_QUEUES] = n, g, q
    sc_i[L.WARMUP] = sim.warmup
    sc_i[L.MAX_TOKENS], sc_i[L.MAX_REQUESTS] = sim.max_batch_tokens, sim.max_batch_requests
    sc_i[L.KV_ENABLED] = sim.kv_enabled
    sc_i[L.KV_CAPACITY] = sim.kv_capacity_blocks or 0
    sc_i[L.BLOCK_TOKENS] = sim.kv_block_tokens
    sc_i[L.TRACK_TOKENS] = sim._track_tokens
    sc_i[L.ROUTER] = L.ROUTER_CODES[sim.router] if q > 1 else L.ROUTER_CENTRAL
    sc_i[L.RULE] = RULE_CODES[rule.name]
    sc_i[L.RULE_INT:L.RULE_INT + len(rule.ints)] = rule.ints
    sc_i[L.NOISE] = (L.NOISE_DETERMINISTIC if service.noise == "deterministic"
                     else L.NOISE_RANDOM)
    sc_i[L.STAIRCASE] = service.model == "staircase"
    sc_i[L.B0] = service.b0_tokens
    sc_f = np.zeros(L.SCALARS_F, np.float64)
    sc_f[L.C_S], sc_f[L.A_S] = service.c_s, service.a_s
    sc_f[L.RULE_FLOAT:L.RULE_FLOAT + len(rule.floats)] = rule.floats
    attention = sim._attention[0]
    if attention is not None:
        sc_i[L.ATTENTION] = 1
        sc_f[L.DECODE_S_PER_TOKEN] = attention.decode_s_per_token
        sc_f[L.PREFILL_S_PER_PAIR] = attention.prefill_s_per_pair
    table = np.zeros(1) if rule.table is None else np.asarray(rule.table, np.float64)
    plan = np.stack((table, table))
    noisy = service.noise != "deterministic"
    noise = np.zeros((g, 2 * NOISE_BLOCK if noisy else 2), np.float64)
    gpu_i[L.NOISE_POS] = noise.shape[1]  # empty: the first decision draws a block
    width = min(sim.max_batch_requests, n) + 1  # no batch holds more (and n may be 0)
    capacity = max(256, n)
    # one gap per output token after a request's first, kept for measured requests
    measured = sim.output[sim.warmup:]
    gaps = int(measured.sum()) - measured.size
    return {
        "req_i": req_i, "req_f": req_f, "gpu_i": gpu_i, "gpu_f": gpu_f, "lists": lists,
        "sc_i": sc_i, "sc_f": sc_f, "plan": plan,
        "scratch": np.zeros((L.SCRATCH_ROWS, width), np.int64),
        "noise": noise, "flight": np.zeros((3, g, width), np.int64),
        "log_i": np.zeros((5, capacity), np.int64), "log_f": np.zeros((2, capacity)),
        # room for one run per gap; np.zeros maps pages lazily, so only the runs written
        # (about one per batch) take memory
        "gap_s": np.zeros(gaps, np.float64), "gap_row": np.zeros(gaps, np.int64),
        "gap_len": np.zeros(gaps, np.int64),
    }


def _grow_log(t: dict[str, np.ndarray]) -> None:
    for key in ("log_i", "log_f"):
        old = t[key]
        new = np.zeros((old.shape[0], 2 * old.shape[1]), old.dtype)
        new[:, : old.shape[1]] = old
        t[key] = new


def run_compiled(sim: Simulator, scheduler: Scheduler, progress: bool = False) -> RunResult:
    """Run ``sim`` (just reset) to the end with ``scheduler``'s compiled rule; the same
    RunResult as the reference engine's ``run_policy``. ``progress``: a tqdm bar (stderr).

    Raises:
        SchedulingError: rule ``deadlock`` or ``kv_memory``, as the reference engine would.
    """
    gap = fast_path_gap(sim.config, scheduler)
    if gap is not None:
        raise ConfigError(f"the compiled engine cannot run this: {gap}")
    scheduler.check_feasible(sim.limits)
    scheduler.reset(sim.policy_rng)
    kernel = kernel_module()
    t = _tables(sim, scheduler)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sim.n, desc="simulating", unit="req", mininterval=0.5)
    step = PROGRESS_EVERY
    try:
        while True:
            status = kernel.run(*(t[name] for name in KERNEL_ARGS), step)
            if status == L.DONE:
                break
            if status == L.NEED_NOISE:
                g = int(t["sc_i"][L.STATUS_ARG])
                t["noise"][g] = sim.services[g].next_noise_block()
                t["gpu_i"][L.NOISE_POS, g] = 0
            elif status == L.NEED_LOG:
                _grow_log(t)
            elif status == L.PAUSED:
                if bar is not None:
                    bar.update(int(t["sc_i"][L.NUM_FINISHED]) - bar.n)
            elif status == L.DEADLOCK:
                now = float(t["sc_f"][L.NOW])
                left = sim.n - int(t["sc_i"][L.NUM_FINISHED])
                raise SchedulingError(
                    "deadlock",
                    f"at t={now:.6f}s {left} requests are unfinished but every GPU is idle or "
                    "waiting and no arrival or Wait expiry is left: the policy would never "
                    "serve them")
            else:
                free, g = int(t["sc_i"][L.STATUS_ARG]), int(t["sc_i"][L.STATUS_GPU])
                raise SchedulingError(
                    "kv_memory", f"no chunk of the batch fits in the {free} free KV blocks of "
                    f"GPU {g} and nothing runs on it to preempt (admit prefills only while "
                    "they fit in view.kv_free_blocks)")
    finally:
        if bar is not None:
            bar.update(int(t["sc_i"][L.NUM_FINISHED]) - bar.n)
            bar.close()
    return _result(sim, scheduler, t, kernel)


def _result(sim: Simulator, scheduler: Scheduler, t: dict[str, np.ndarray],
            kernel: ModuleType) -> RunResult:
    req_i, req_f = t["req_i"], t["req_f"]
    sim.first_scheduled_s[:] = req_f[L.FIRST_SCHEDULED]
    sim.first_token_s[:] = req_f[L.FIRST_TOKEN]
    sim.finish_s[:] = req_f[L.FINISH]
    sim.last_token_s[:] = req_f[L.LAST_TOKEN]
    sim.gpu_of[:] = req_i[L.GPU_OF]
    sim.first_gpu[:] = req_i[L.FIRST_GPU]
    sim.preemptions[:] = req_i[L.PREEMPTIONS]
    sim.generated[:] = req_i[L.GENERATED]
    sim.num_finished = int(t["sc_i"][L.NUM_FINISHED])
    sim.num_finished_measured = int(t["sc_i"][L.NUM_MEASURED])
    sim.now_s = float(t["sc_f"][L.NOW])
    rows = int(t["sc_i"][L.NUM_BATCHES])
    log_i, log_f = t["log_i"], t["log_f"]
    columns = {
        "gpu": log_i[kernel.LOG_GPU, :rows].astype(np.int32),
        "start_s": log_f[kernel.LOG_START, :rows].copy(),
        "end_s": log_f[kernel.LOG_END, :rows].copy(),
        "prefill_tokens": log_i[kernel.LOG_PREFILL_TOKENS, :rows].copy(),
        "num_prefills": log_i[kernel.LOG_NUM_PREFILLS, :rows].astype(np.int32),
        "num_decodes": log_i[kernel.LOG_NUM_DECODES, :rows].astype(np.int32),
        "token_load": log_i[kernel.LOG_TOKEN_LOAD, :rows].copy(),
    }
    k = int(t["sc_i"][L.NUM_GAPS])
    runs = t["gap_s"][:k].copy(), t["gap_len"][:k].copy(), t["gap_row"][:k].copy()
    return sim.assemble_result(runs, req_f[L.MAX_TBT].copy(), columns, scheduler.label)
