"""Where the compiled engine keeps its state: row indices of its int64 and float64 tables.

The compiled loop takes a handful of 2-D arrays instead of dozens of arguments; these
constants name their rows (numba folds module-level integers into the compiled code).

Tables (n requests, G GPUs, Q queues, L = Q + 2G lists):

* ``req_i`` int64 (REQ_I_ROWS, n) and ``req_f`` float64 (REQ_F_ROWS, n): per request;
* ``gpu_i`` int64 (GPU_I_ROWS, G) and ``gpu_f`` float64 (GPU_F_ROWS, G): per GPU;
* ``lists`` int64 (3, L): head, tail and size of each linked list (:mod:`.lists`): queue
  ``q`` is list ``q``, GPU ``g``'s partial prefills list ``Q + g``, its decoding set
  ``Q + G + g``;
* ``sc_i`` int64 (SCALARS_I,) and ``sc_f`` float64 (SCALARS_F,): run-wide scalars;
* ``plan`` float64 (2, K + 1): a planning rule's iteration times T(b), s, for b = 0..K
  (row 0), and row 1 for this decision's copy with the attention term.
"""

from __future__ import annotations

# req_i rows
TARGET, PREFILLED, GENERATED, KV_TOKENS, KV_BLOCKS, GPU_OF, FIRST_GPU, QUEUE_OF = range(8)
PROMPT, OUTPUT, NEXT, PREV, CHARGED, ROUTE_OUTPUT, PREEMPTIONS, MARK = range(8, 16)
REQ_I_ROWS = 16
# req_f rows (seconds): times NaN until they happen, the largest gap so far (0 before one),
# the request's TTFT and TBT objectives
ARRIVAL, FIRST_SCHEDULED, FIRST_TOKEN, FINISH, LAST_TOKEN, MAX_TBT = range(6)
TTFT_OBJECTIVE, TBT_OBJECTIVE = range(6, 8)
REQ_F_ROWS = 8

# gpu_i rows
PARKED, OUTSTANDING, OUTSTANDING_TOKENS, KV_USED, FLIGHT_NP, FLIGHT_ND, FLIGHT_ROW = range(7)
NOISE_POS = 7
GPU_I_ROWS = 8
# gpu_f rows
BUSY_UNTIL, WAIT_UNTIL = range(2)
GPU_F_ROWS = 2

# sc_i entries; a rule's integer parameters are sc_i[RULE_INT + j], j < RULE_PARAMS
(N, NUM_GPUS, NUM_QUEUES, NEXT_ARRIVAL, NUM_FINISHED, NUM_MEASURED, WARMUP, RR_NEXT,
 MAX_TOKENS, MAX_REQUESTS, KV_ENABLED, KV_CAPACITY, BLOCK_TOKENS, TRACK_TOKENS, ROUTER,
 RULE, NOISE, STAIRCASE, B0, NUM_BATCHES, NUM_GAPS, STATUS_ARG, STATUS_GPU,
 ATTENTION) = range(24)
RULE_INT = 24
RULE_PARAMS = 8
SCALARS_I = RULE_INT + RULE_PARAMS
# sc_f entries (seconds); a rule's real parameters are sc_f[RULE_FLOAT + j]
NOW, C_S, A_S, WAIT_S, DECODE_S_PER_TOKEN, PREFILL_S_PER_PAIR = range(6)
RULE_FLOAT = 6
SCALARS_F = RULE_FLOAT + RULE_PARAMS

# scratch rows, int64 (SCRATCH_ROWS, max_batch_requests + 1)
PIDS, PTOKS, DIDS, DEC_NEED, PRE_NEED, RUNNING, VICTIMS, OWN_P = range(8)
SCRATCH_ROWS = 8

# routers (per-GPU queues; "central" has one queue and never routes)
ROUTER_CENTRAL, ROUTER_ROUND_ROBIN, ROUTER_JSQ, ROUTER_LEAST_TOKENS = range(4)
ROUTER_CODES = {"central": ROUTER_CENTRAL, "round_robin": ROUTER_ROUND_ROBIN,
                "jsq": ROUTER_JSQ, "least_tokens": ROUTER_LEAST_TOKENS}

# service noise
NOISE_DETERMINISTIC, NOISE_RANDOM = range(2)

# what the compiled loop returns
DONE, NEED_NOISE, NEED_LOG, PAUSED, DEADLOCK, KV_MEMORY = range(6)

# compiled rules (:mod:`.rules`): the names a scheduler's ``compiled_rule`` may return
(HYBRID, ORCA, REQUEST_LEVEL, PREFILL_FIRST, FIXED_BATCH, DYNAMIC_BATCH,
 SLO_AWARE) = range(7)
RULE_CODES = {"hybrid": HYBRID, "orca": ORCA, "request_level": REQUEST_LEVEL,
              "prefill_first": PREFILL_FIRST, "fixed_batch": FIXED_BATCH,
              "dynamic_batch": DYNAMIC_BATCH, "slo_aware": SLO_AWARE}
# slo_aware's prefill orders (its family: slo_aware, slo_triage, slo_classes)
ORDER_SRPT, ORDER_FCFS, ORDER_TRIAGE, ORDER_URGENCY = range(4)
# slo_aware's parameters: sc_i[RULE_INT + SLO_...] and sc_f[RULE_FLOAT + SLO_...]
(SLO_MIN_BUDGET, SLO_MAX_BUDGET, SLO_ORDER, SLO_HEADROOM, SLO_ATTENTION_AWARE,
 SLO_PER_REQUEST_TBT) = range(6)
SLO_MARGIN_S, SLO_TTFT_S, SLO_MAX_WAIT_S, SLO_HORIZON_S, SLO_TBT_S = range(5)


def slo_rule_params(*, min_budget: int, max_budget: int, order: int, headroom_blocks: int,
                    attention_aware: bool, per_request_tbt: bool, margin_s: float,
                    ttft_s: float, max_wait_s: float, horizon_s: float, tbt_s: float
                    ) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The ``(ints, floats)`` of a ``CompiledRule("slo_aware", ...)``, in the order above."""
    ints = (min_budget, max_budget, order, headroom_blocks, int(attention_aware),
            int(per_request_tbt))
    return ints, (margin_s, ttft_s, max_wait_s, horizon_s, tbt_s)
