"""The discrete-event engine: one request table, per-GPU state, decision points, batch execution.

Drive it with::

    sim = Simulator(config, seed)
    sim.reset()
    while (view := sim.next_decision()) is not None:
        sim.execute(policy.schedule(view))
    result = sim.result()

Time advances from event to event. Events are, in this order when simultaneous: the end of a
batch (GPUs in index order), arrivals, the expiry of a Wait. After each event every free GPU
that has work and is not waiting is offered a decision, in GPU index order.

Token conventions: the iteration that finishes a request's prefill emits its first output token
(TTFT ends there); each of the remaining ``output_tokens - 1`` tokens takes one decode
iteration. The token load of a batch is its prefill tokens plus its number of decodes.

Requests live in numpy arrays indexed by request id (arrival order); a batch updates all its
requests with vector operations.

An iteration lasts S(b) (``hardware.service``), plus attention's time when the service prices
it (``service.attention``, ``hardware.attention``). With ``gpus.prefix_caching`` each GPU that
prefills has a :class:`~llm_serving_env.sim.prefix_cache.PrefixCache`: a request's first
chunk on a GPU skips the prompt prefix cached there, whose KV blocks the cache owns.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

import numpy as np

from llm_serving_env.config.sim_config import attention_cost, transfer_bytes_per_token
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.batch import Batch, SchedulingError, Wait
from llm_serving_env.sim.id_line import IdLine
from llm_serving_env.sim.prefix_cache import PrefixCache, leading_matches
from llm_serving_env.sim.result import RunResult, gap_runs
from llm_serving_env.sim.scheduler import DecisionView, RequestTable, WorkloadLimits
from llm_serving_env.workload.generate import Workload, generate_workload

if TYPE_CHECKING:
    from llm_serving_env.config.sim_config import SimConfig

_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False
_INF = math.inf




def _frozen(arr: np.ndarray) -> np.ndarray:
    """Mark an engine-owned array read-only before a policy can see it."""
    arr.flags.writeable = False
    return arr


def _grow(arr: np.ndarray, min_size: int) -> np.ndarray:
    out = np.empty(max(min_size, 2 * arr.size), dtype=arr.dtype)
    out[: arr.size] = arr
    return out


class _Link:
    """One network link shared by KV transfers as a fluid processor-sharing queue.

    Each of the n transfers on the link drains at ``bytes_per_s / n``. ``remaining`` maps a
    transfer's sequence number to its bytes not yet sent, as of time ``t`` (seconds).
    :meth:`advance` and :meth:`drain_times` step through the same drain events with the same
    float operations, so a drain time predicted at one event is exactly when :meth:`advance`
    later retires that transfer.
    """

    __slots__ = ("bytes_per_s", "remaining", "t")

    def __init__(self, bytes_per_s: float) -> None:
        self.bytes_per_s = bytes_per_s
        self.t = 0.0
        self.remaining: dict[int, float] = {}

    def advance(self, t: float) -> None:
        """Drain to time ``t`` (s): retire the transfers whose last byte left by then."""
        rem = self.remaining
        while rem and self.t < t:
            rate = self.bytes_per_s / len(rem)
            low = min(rem.values())
            t_drain = self.t + low / rate
            if t_drain <= t:
                for k in list(rem):
                    left = rem[k] - low
                    if left <= 0.0:
                        del rem[k]
                    else:
                        rem[k] = left
                self.t = t_drain
            else:
                sent = (t - self.t) * rate
                for k in rem:
                    rem[k] -= sent
                self.t = t
        self.t = max(self.t, t)

    def drain_times(self) -> dict[int, float]:
        """When (s) each transfer on the link sends its last byte, if none joins meanwhile."""
        rem = dict(self.remaining)
        now = self.t
        out: dict[int, float] = {}
        while rem:
            rate = self.bytes_per_s / len(rem)
            low = min(rem.values())
            now = now + low / rate
            for k in list(rem):
                left = rem[k] - low
                if left <= 0.0:
                    del rem[k]
                    out[k] = now
                else:
                    rem[k] = left
        return out


class _BatchLog:
    """Append-only per-batch columns, grown geometrically (numpy, not Python objects)."""

    COLUMNS = (("gpu", np.int32), ("start_s", np.float64), ("end_s", np.float64),
               ("prefill_tokens", np.int64), ("num_prefills", np.int32),
               ("num_decodes", np.int32), ("token_load", np.int64))

    def __init__(self, capacity: int = 4096) -> None:
        self.size = 0
        self.cols = {name: np.empty(capacity, dtype=dt) for name, dt in self.COLUMNS}

    def append(self, gpu: int, start_s: float, end_s: float, prefill_tokens: int,
               num_prefills: int, num_decodes: int) -> int:
        i = self.size
        cols = self.cols
        if i == cols["gpu"].size:
            for name in cols:
                cols[name] = _grow(cols[name], i + 1)
        cols["gpu"][i] = gpu
        cols["start_s"][i] = start_s
        cols["end_s"][i] = end_s
        cols["prefill_tokens"][i] = prefill_tokens
        cols["num_prefills"][i] = num_prefills
        cols["num_decodes"][i] = num_decodes
        cols["token_load"][i] = prefill_tokens + num_decodes
        self.size = i + 1
        return i

    def trimmed(self) -> dict[str, np.ndarray]:
        return {name: col[: self.size].copy() for name, col in self.cols.items()}


def config_limits(config: SimConfig) -> WorkloadLimits:
    """The longest prompt and output ``config``'s workload allows: its length distributions'
    maxima (what an operator configures as ``max_model_len`` and ``max_tokens``)."""
    w = config.workload
    return WorkloadLimits(int(w.prompt_tokens.max_value()), int(w.output_tokens.max_value()))


class Simulator:
    """One serving system (``config``) driven decision by decision.

    Args:
        config: the validated simulation config.
        seed: root seed; ``SeedSequence(seed)`` is spawned into (workload, service noise,
            policy) streams, so every policy sees the same workload for one seed.
        workload: optional pre-built workload (e.g. a trace); by default it is generated from
            ``config.workload`` with the workload stream.
    """

    def __init__(self, config: SimConfig, seed: int = 0, workload: Workload | None = None) -> None:
        self.config = config
        self.seed = seed
        self._given_workload = workload
        gpus = config.gpus
        self.num_gpus = int(gpus.count)
        self.max_batch_tokens = int(gpus.max_batch_tokens)
        self.max_batch_requests = int(gpus.max_batch_requests)
        self.router = gpus.router
        self._num_queues = 1 if self.router == "central" else self.num_gpus
        dis = config.disaggregation
        self.disaggregation = dis
        if dis is None:
            self.roles = ["mixed"] * self.num_gpus
        else:
            self.roles = ["prefill"] * dis.prefill.count + ["decode"] * dis.decode.count
        self._prefill_gpus = [g for g, r in enumerate(self.roles) if r != "decode"]
        self._decode_pool = [g for g, r in enumerate(self.roles) if r == "decode"]
        self.kv_block_tokens = int(gpus.kv_block_tokens)
        self.kv_enabled = gpus.kv_capacity_tokens is not None
        # whole blocks only: a partial block at the end of the cache cannot be used
        self.kv_capacity_blocks = (int(gpus.kv_capacity_tokens) // self.kv_block_tokens
                                   if self.kv_enabled else None)
        self._ready = False

    # ------------------------------------------------------------------ set-up
    def reset(self, seed: int | None = None) -> None:
        """Draw the workload and clear all state. ``seed`` replaces the constructor's."""
        if seed is not None:
            self.seed = seed
        workload_ss, service_ss, policy_ss = np.random.SeedSequence(self.seed).spawn(3)
        if self._given_workload is not None:
            self.workload = self._given_workload
        else:
            slo = self.config.slo
            self.workload = generate_workload(
                self.config.workload, self.config.num_requests, workload_ss,
                class_shares=tuple(c.share for c in slo.classes) if slo is not None else ())
        self.policy_rng = np.random.default_rng(policy_ss)
        # one noise stream per GPU, so a GPU's service times do not depend on the others'
        self.services = [
            ServiceModel.from_config(self.config.service_for(self.roles[g]),
                                     np.random.default_rng(ss))
            for g, ss in enumerate(service_ss.spawn(self.num_gpus))]
        self._attention = [attention_cost(self.config, role) for role in self.roles]
        w = self.workload
        n = len(w)
        self.n = n
        self.warmup = min(int(self.config.warmup_requests), n)
        self.arrival_s = np.asarray(w.arrival_s, dtype=np.float64)
        self.prompt = np.asarray(w.prompt_tokens, dtype=np.int64)
        self.output = np.asarray(w.output_tokens, dtype=np.int64)
        self.prefilled = np.zeros(n, dtype=np.int64)
        # tokens the current prefill must cover: the prompt, or prompt + generated tokens when
        # a preempted request recomputes its KV cache; 0 until the request arrives (schedulers
        # read this array, and must not learn a prompt before its arrival)
        self.target = np.zeros(n, dtype=np.int64)
        self.kv_tokens = np.zeros(n, dtype=np.int64)  # tokens whose KV is held (reserved)
        self.kv_blocks = np.zeros(n, dtype=np.int64)  # paged blocks held (its own)
        # of kv_tokens, those in cached prefix blocks the GPU's prefix cache owns
        self.kv_shared_tokens = np.zeros(n, dtype=np.int64)
        self.generated = np.zeros(n, dtype=np.int64)
        self.gpu_of = np.full(n, -1, dtype=np.int64)  # -1 queued, -2 moving to a decode GPU
        self.first_gpu = np.full(n, -1, dtype=np.int64)
        self.queue_of = np.full(n, -1, dtype=np.int64)
        self.first_scheduled_s = np.full(n, np.nan)
        self.first_token_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.last_token_s = np.full(n, np.nan)
        self.preemptions = np.zeros(n, dtype=np.int32)
        # what schedulers see of each request is revealed when it arrives (NaN / 0 before):
        # no policy can read future arrival times, prompts or predictions
        self._predicted = np.asarray(w.predicted_output_tokens, dtype=np.float64)
        self._public_arrival_s = np.full(n, np.nan)
        self._public_prompt = np.zeros(n, dtype=np.int64)
        self._public_predicted = np.full(n, np.nan)
        self.slo_class = np.asarray(w.slo_class, dtype=np.int64)
        slo = self.config.slo
        if slo is None:
            self._ttft_objective_s = self._tbt_objective_s = np.full(n, _INF)
        else:
            self._ttft_objective_s, self._tbt_objective_s = slo.objectives_s(self.slo_class)
        self._public_slo_class = np.full(n, -1, dtype=np.int64)
        self._public_ttft_objective_s = np.full(n, np.nan)
        self._public_tbt_objective_s = np.full(n, np.nan)
        self.table = RequestTable(
            arrival_s=self._public_arrival_s, prompt_tokens=self._public_prompt,
            predicted_output_tokens=self._public_predicted, slo_class=self._public_slo_class,
            ttft_objective_s=self._public_ttft_objective_s,
            tbt_objective_s=self._public_tbt_objective_s,
            prefilled_tokens=self.prefilled, prefill_target_tokens=self.target,
            generated_tokens=self.generated, last_token_s=self.last_token_s, gpu=self.gpu_of,
            kv_tokens=self.kv_tokens, kv_blocks=self.kv_blocks,
            kv_shared_tokens=self.kv_shared_tokens)

        g = self.num_gpus
        self.now_s = 0.0
        self.next_arrival = 0  # index of the next request to arrive
        self.next_arrival_s = float(self.arrival_s[0]) if n else _INF
        # Waiting requests live in IdLines (O(1) arrivals and departures from the front).
        # With one queue per GPU (per-GPU routers, or one GPU) GPU g's line holds its partial
        # prefills followed by its queue, so its waiting list is one view, never a copy; with
        # a central queue for several GPUs the line is the queue and partials are separate.
        self._joint = self._num_queues == g
        positions = np.zeros(n, dtype=np.int64)
        self._lines = [IdLine(positions) for _ in range(self._num_queues)]
        self._num_partial = [0] * g  # (joint lines) partial prefills at the line's front
        self._joint_waiting: list[np.ndarray] = [_EMPTY] * g
        self._view_line: IdLine | None = None  # the line whose view is the last waiting list
        self.queues: list[np.ndarray] = [_EMPTY] * self._num_queues  # unbound, FCFS (views)
        self.partial: list[np.ndarray] = [_EMPTY] * g  # bound, prefill not finished
        self.decoding: list[np.ndarray] = [_EMPTY] * g  # bound, prefill done, not finished
        self.busy_until = [_INF] * g  # end time of the batch in flight (inf: idle)
        self.in_flight: list[Batch | None] = [None] * g
        self.in_flight_row = [-1] * g
        self.parked = [False] * g  # waiting for an event or wait_until
        self.wait_until = [_INF] * g
        self.outstanding = np.zeros(g, dtype=np.int64)  # routed/bound and unfinished, per GPU
        # least_tokens router: estimated token work (prefill tokens + decodes) still to run on
        # each GPU for the requests routed to it. A router does not know B_i, so a request's
        # work is charged as L + B' - 1 with B' the configured predictor's value, else the
        # output distribution's mean (a population statistic an operator has); ``_charged``
        # holds what each request currently adds to its GPU's total, so the totals stay exact
        # sums of the estimates however far the truth departs from them.
        # (one queue means central routing, whatever the router's name)
        self._track_tokens = (self.router in ("least_tokens", "prefix_affinity")
                              and self._num_queues > 1)
        self.outstanding_tokens = np.zeros(g, dtype=np.int64)
        if self._track_tokens:
            guess = np.asarray(w.predicted_output_tokens, dtype=np.float64)
            guess = np.where(np.isnan(guess), self.config.workload.output_tokens.mean(), guess)
            self._route_output = np.maximum(1, np.rint(guess)).astype(np.int64)
            self._charged = np.zeros(n, dtype=np.int64)
        self.kv_used_blocks = [0] * g
        self.handoff: list[list[int]] = [[] for _ in range(g)]  # arrived at a decode GPU, FIFO
        # the prefill GPU whose blocks hold a request's KV from its transfer until a decode
        # GPU admits it (-1 otherwise): KV that moves stays counted where it is
        self._kv_source = np.full(n, -1, dtype=np.int64)
        self._reset_prefix_caches()
        self._reset_transfers()
        self.num_finished = 0
        self.num_finished_measured = 0  # of them, requests after the warm-up
        self._rr_next = 0
        self._route_cached = 0  # prompt tokens the last prefix_affinity choice expects cached
        self._batches = _BatchLog()
        # per decode batch, in completion order: its decode ids, their gaps, its batch row
        self._gap_ids: list[np.ndarray] = []
        self._gaps: list[np.ndarray] = []
        self._gap_rows: list[int] = []
        self._ready = True
        self._check_kv_feasible()

    def _check_kv_feasible(self) -> None:
        if not self.kv_enabled or self.n == 0:
            return
        # the KV of a request peaks at L + B - 1 tokens (the last output token is never fed back)
        peak = self.prompt + self.output - 1
        worst = int(peak.max())
        blocks = -(-worst // self.kv_block_tokens)
        if blocks > self.kv_capacity_blocks:
            raise ConfigError(
                f"gpus.kv_capacity_tokens = {self.config.gpus.kv_capacity_tokens}: a request "
                f"needs the KV of {worst} tokens ({blocks} blocks of "
                f"{self.kv_block_tokens}) at its last decode, more than one GPU holds "
                f"({self.kv_capacity_blocks} blocks); raise the capacity or shorten requests")

    def event_pending(self) -> bool:
        """True if an arrival, a batch end, a KV transfer landing or a timed Wait is pending
        (if not, a GPU that waits would wait forever)."""
        return (self.next_arrival_s != _INF or min(self.busy_until) != _INF
                or min(self.wait_until) != _INF or bool(self._transfers))

    @property
    def done(self) -> bool:
        """True once every request has finished."""
        return self.num_finished == self.n

    # ------------------------------------------------------------------ decisions
    def _has_work(self, g: int) -> bool:
        if self.decoding[g].size or self.partial[g].size:
            return True
        return self.roles[g] != "decode" and self.queues[0 if self._num_queues == 1 else g].size > 0

    def _view(self, g: int) -> DecisionView:
        q = 0 if self._num_queues == 1 else g
        partial = self.partial[g]
        if self._joint:
            waiting = self._joint_waiting[g]
            self._view_line = self._lines[g]
        elif partial.size:
            waiting = _frozen(np.concatenate((partial, self.queues[q]))
                              if self.roles[g] != "decode" else partial)
            self._view_line = None
        else:
            waiting = self.queues[q] if self.roles[g] != "decode" else _EMPTY
            self._view_line = self._lines[q] if self.roles[g] != "decode" else None
        self._view_waiting = waiting
        kv_free = (self.kv_capacity_blocks - self.kv_used_blocks[g]) if self.kv_enabled else _INF
        if self.kv_enabled and self._caches is not None and self._caches[g] is not None:
            kv_free += self._caches[g].evictable_kv_blocks  # free on demand, as in vLLM
        return DecisionView(
            self.now_s, g, waiting, partial.size, self.decoding[g],
            partial.size + self.decoding[g].size, self.max_batch_tokens,
            self.max_batch_requests, self.table, kv_free, self.kv_block_tokens, self.roles[g],
            num_arrived=self.next_arrival, num_finished=self.num_finished,
            kv_capacity_blocks=(self.kv_capacity_blocks if self.kv_enabled else math.inf),
            other_gpus_busy=(0 if self.num_gpus == 1 else
                             sum(1 for h in range(self.num_gpus)
                                 if h != g and self.busy_until[h] != _INF)),
            event_pending=self.event_pending())

    def next_decision(self) -> DecisionView | None:
        """Advance simulated time to the next decision point and return its view.

        Returns None when every request has finished. Raises SchedulingError (rule
        ``deadlock``) if work remains but no event can ever occur.
        """
        if not self._ready:
            raise RuntimeError("call reset() before next_decision()")
        parked = self.parked
        busy = self.busy_until
        wait_until = self.wait_until
        gpus = range(self.num_gpus)
        while True:
            for g in gpus:
                if busy[g] == _INF and not parked[g] and self._has_work(g):
                    self._decision_gpu = g
                    return self._view(g)
            if self.num_finished == self.n:
                return None
            t_arrival = self.next_arrival_s
            t_batch = min(busy)
            t_wait = min(wait_until)
            t_transfer = self._transfers[0][0] if self._transfers else _INF
            t = min(t_arrival, t_batch, t_wait, t_transfer)
            if t == _INF:
                raise SchedulingError(
                    "deadlock",
                    f"at t={self.now_s:.6f}s {self.n - self.num_finished} requests are unfinished "
                    "but every GPU is idle or waiting and no arrival or Wait expiry is left: the "
                    "policy would never serve them")
            self.now_s = t
            event = False
            if t_batch == t:
                for g in gpus:
                    if busy[g] == t:
                        self._complete(g)
                event = True
            if t_transfer == t:
                self._land_transfers(t)
                event = True
            if t_arrival == t:
                self._admit_arrivals(t)
                event = True
            if event:
                for g in gpus:
                    parked[g] = False
                    wait_until[g] = _INF
            elif t_wait == t:
                for g in gpus:
                    if wait_until[g] == t:
                        parked[g] = False
                        wait_until[g] = _INF

    @property
    def limits(self) -> WorkloadLimits:
        """The longest prompt and output the run allows (for ``check_feasible``): the config's
        length distributions' maxima (what an operator configures as ``max_model_len`` and
        ``max_tokens``), or, for a workload given explicitly, its own maxima (the caller
        states them by handing it over). Never the realised lengths of a generated run."""
        if self._given_workload is None:
            return config_limits(self.config)
        return WorkloadLimits(int(self.prompt.max(initial=0)), int(self.output.max(initial=0)))

    def _admit_arrivals(self, t: float) -> None:
        start = self.next_arrival
        stop = int(np.searchsorted(self.arrival_s, t, side="right"))
        self.next_arrival = stop
        self.next_arrival_s = float(self.arrival_s[stop]) if stop < self.n else _INF
        self.target[start:stop] = self.prompt[start:stop]
        self._public_arrival_s[start:stop] = self.arrival_s[start:stop]
        self._public_prompt[start:stop] = self.prompt[start:stop]
        self._public_predicted[start:stop] = self._predicted[start:stop]
        self._public_slo_class[start:stop] = self.slo_class[start:stop]
        self._public_ttft_objective_s[start:stop] = self._ttft_objective_s[start:stop]
        self._public_tbt_objective_s[start:stop] = self._tbt_objective_s[start:stop]
        if self._num_queues == 1:
            self.queue_of[start:stop] = 0
            self._lines[0].extend(np.arange(start, stop, dtype=np.int64))
            self._sync(0)
            return
        touched = set()
        for i in range(start, stop):
            g = self._route(i)
            self.queue_of[i] = g
            self.outstanding[g] += 1
            if self._track_tokens:  # (prefix_affinity: less what it expects cached there)
                work = int(self.prompt[i] + self._route_output[i] - 1) - self._route_cached
                self._charged[i] = work
                self.outstanding_tokens[g] += work
            self._lines[g].append(i)
            touched.add(g)
        for g in touched:
            self._sync(g)

    def _sync(self, q: int) -> None:
        """Refresh the views of line ``q`` (its queue, and in joint lines its GPU's partial
        prefills and waiting list) after the line changed."""
        ids = self._lines[q].ids()
        if self._joint:
            k = self._num_partial[q]
            self._joint_waiting[q] = ids
            self.partial[q] = ids[:k]
            self.queues[q] = ids[k:]
        else:
            self.queues[q] = ids

    def _bind(self, g: int, new: np.ndarray) -> None:
        """Move the queued requests ``new`` (just bound to GPU ``g``, in batch order) from
        their queue to the end of ``g``'s partial prefills."""
        q = 0 if self._num_queues == 1 else g
        line = self._lines[q]
        k = new.size
        if self._joint:
            npart = self._num_partial[g]
            front = line.head + npart
            if not (line.buf[front:front + k] == new).all():  # taken out of order
                waiting = line.ids()
                queue = waiting[npart:]
                line.reset(np.concatenate((waiting[:npart], new, queue[self.gpu_of[queue] < 0])))
            self._num_partial[g] = npart + k
        else:
            self.partial[g] = _frozen(np.concatenate((self.partial[g], new)))
            queue = line.ids()
            if (self.gpu_of[queue[:k]] >= 0).all():  # the k bound ones are the queue's front
                line.drop_front(k)
            else:
                line.reset(queue[self.gpu_of[queue] < 0])
        self._sync(q)

    def _keep_partial(self, g: int, keep: np.ndarray) -> None:
        """Keep the partial prefills of GPU ``g`` where ``keep`` (bool, one per partial)."""
        removed = keep.size - int(np.count_nonzero(keep))
        if not removed:
            return
        if not self._joint:
            self.partial[g] = _frozen(self.partial[g][keep])
            return
        line = self._lines[g]
        if not keep[:removed].any():  # the first ones left
            line.drop_front(removed)
        else:
            waiting = line.ids()
            npart = self._num_partial[g]
            line.reset(np.concatenate((waiting[:npart][keep], waiting[npart:])))
        self._num_partial[g] -= removed
        self._sync(g)

    def _requeue(self, ids: np.ndarray, q: int) -> None:
        """Put ``ids`` back at the front of queue ``q`` (behind its GPU's partial prefills)."""
        line = self._lines[q]
        waiting = line.ids()
        npart = self._num_partial[q] if self._joint else 0
        line.reset(np.concatenate((waiting[:npart], ids, waiting[npart:])))
        self._sync(q)

    def _route(self, i: int) -> int:
        """GPU (of those that prefill) for new arrival ``i`` under a per-GPU router."""
        gpus = self._prefill_gpus
        if self.router == "prefix_affinity":
            return self._route_by_prefix(i, gpus)
        if self.router == "round_robin":
            g = gpus[self._rr_next]
            self._rr_next = (self._rr_next + 1) % len(gpus)
            return g
        if self.router == "jsq":
            return gpus[int(np.argmin(self.outstanding[gpus]))]
        if self.router == "least_tokens":
            return gpus[int(np.argmin(self.outstanding_tokens[gpus]))]
        raise ValueError(f"gpus.router = {self.router!r}: not supported by the engine")

    # ------------------------------------------------------------------ execution
    def execute(self, action: Batch | Wait) -> None:
        """Carry out the policy's answer for the GPU of the last decision point."""
        g = self._decision_gpu
        if isinstance(action, Wait):
            until = float(action.until_s)
            if not until > self.now_s:
                raise SchedulingError("wait", f"Wait(until_s={until}) at t={self.now_s}: "
                                      "until_s must be in the future")
            self.parked[g] = True
            self.wait_until[g] = until
            return
        if not isinstance(action, Batch):
            raise TypeError(f"a policy must return a Batch or a Wait, got {type(action).__name__}")
        num_new = self._check(action, g)
        dids = action.decode_ids
        dec = self.decoding[g]
        if dids.size > 1 and not (dids is dec or dids.base is dec):
            # a batch's decodes run in the GPU's decode order, whatever order the Batch lists
            # them in: the results depend on the set only (so an env action that chooses a set
            # reproduces any scheduler's batch exactly)
            in_order = dec[np.isin(dec, dids)]
            if not np.array_equal(in_order, dids):
                action = Batch(prefill_ids=action.prefill_ids,
                               prefill_tokens=action.prefill_tokens, decode_ids=in_order)
        if num_new and self._caches is not None and not self.kv_enabled:
            action = self._apply_prefix_hits(action, g)  # (with KV memory: in _reserve_kv)
        if self.kv_enabled:
            self._hits: list[int] = []
            self._kv_wait = False
            action = self._reserve_kv(action, g)
            if self._hits:  # new requests the KV check left queued give their hits back
                self._undo_prefix_hits(self._hits, action, g)
            if action is None:
                if self._kv_wait:  # nothing fits until an event frees memory
                    self.parked[g] = True
                return  # else every request of the batch was preempted: decide again
            if num_new:
                num_new = int((self.gpu_of[action.prefill_ids] < 0).sum())
        pids, ptoks, dids = action.prefill_ids, action.prefill_tokens, action.decode_ids
        prefill_tokens = int(ptoks.sum())
        load = prefill_tokens + int(dids.size)
        duration = self.services[g].sample_s(load)
        attention = self._attention[g]
        if attention is not None:
            duration += attention.time_s(self.prompt[dids] + self.generated[dids],
                                         self.prefilled[pids], ptoks)
        end = self.now_s + duration
        if num_new:
            new = pids[self.gpu_of[pids] < 0]
            self.gpu_of[new] = g
            fresh = new[np.isnan(self.first_scheduled_s[new])]  # not a preempted one coming back
            self.first_scheduled_s[fresh] = self.now_s
            self.first_gpu[fresh] = g
            self._bind(g, new)
            if self._num_queues == 1:
                self.outstanding[g] += new.size
        self.in_flight[g] = action
        self.busy_until[g] = end
        self.in_flight_row[g] = self._batches.append(
            g, self.now_s, end, prefill_tokens, int(pids.size), int(dids.size))

    def _check(self, batch: Batch, g: int) -> int:
        """Raise SchedulingError if ``batch`` breaks a rule; return its number of new requests."""
        pids, ptoks, dids = batch.prefill_ids, batch.prefill_tokens, batch.decode_ids
        if pids.size == 0 and dids.size == 0:
            raise SchedulingError("empty", "a Batch must contain a prefill chunk or a decode; "
                                           "return Wait() to idle")
        if pids.size and self.roles[g] == "decode":
            raise SchedulingError("role", f"GPU {g} is in the decode pool and cannot prefill")
        n = self.n
        waiting = self._view_waiting
        line = self._view_line
        if pids.size and (pids is waiting or (pids.base is waiting and pids.strides[0] > 0)
                          or (line is not None and line.holds_slice(pids))):
            # a slice of the view's read-only waiting list: eligible and unique by construction
            remaining = self.target[pids] - self.prefilled[pids]
            if not ((ptoks >= 1) & (ptoks <= remaining)).all():
                bad = pids[(ptoks < 1) | (ptoks > remaining)].tolist()[:10]
                raise SchedulingError("chunk_size", f"chunks of requests {bad} must be between 1 "
                                      "and the remaining prompt tokens")
            num_new = int((self.gpu_of[pids] < 0).sum())
        elif pids.size:
            if pids.min() < 0 or pids.max() >= self.next_arrival:
                raise SchedulingError("unknown_request", f"prefill ids must be arrived requests "
                                      f"0..{self.next_arrival - 1}, got {pids.tolist()[:10]}")
            owner = self.gpu_of[pids]
            q = 0 if self._num_queues == 1 else g
            eligible = (owner == g) | ((owner < 0) & (self.queue_of[pids] == q))
            remaining = self.target[pids] - self.prefilled[pids]
            if not (eligible & (remaining > 0)).all():
                bad = pids[~(eligible & (remaining > 0))].tolist()[:10]
                raise SchedulingError("not_waiting", f"requests {bad} are not waiting for "
                                      f"prefill on GPU {g}")
            if (ptoks < 1).any() or (ptoks > remaining).any():
                bad = pids[(ptoks < 1) | (ptoks > remaining)].tolist()[:10]
                raise SchedulingError("chunk_size", f"chunks of requests {bad} must be between 1 "
                                      "and the remaining prompt tokens")
            if pids.size > 1:
                s = np.sort(pids)
                if (s[1:] == s[:-1]).any():
                    raise SchedulingError("duplicate_prefill",
                                          "a request appears twice among the prefill chunks")
            num_new = int((owner < 0).sum())
        else:
            num_new = 0
        dec = self.decoding[g]
        if dids.size and not (dids is dec or (dids.base is dec and dids.strides[0] > 0)):
            # (a slice of the engine's read-only decode set is valid and unique by construction)
            if dids.min() < 0 or dids.max() >= n:
                raise SchedulingError("unknown_request", "decode ids out of range")
            ok = ((self.gpu_of[dids] == g) & (self.prefilled[dids] == self.target[dids])
                  & (self.generated[dids] < self.output[dids]))
            if not ok.all():
                bad = dids[~ok].tolist()[:10]
                raise SchedulingError("not_decodable", f"requests {bad} are not in their decode "
                                      f"phase on GPU {g} (prefill must finish before decode)")
            if dids.size > 1:
                s = np.sort(dids)
                if (s[1:] == s[:-1]).any():
                    raise SchedulingError("duplicate_decode",
                                          "at most one decode per request in a batch")
        load = int(ptoks.sum()) + int(dids.size)
        if load > self.max_batch_tokens:
            raise SchedulingError("token_budget", f"token load {load} exceeds "
                                  f"gpus.max_batch_tokens = {self.max_batch_tokens}")
        resident = self.partial[g].size + dec.size + num_new
        if resident > self.max_batch_requests:
            raise SchedulingError("max_requests", f"{resident} requests would be resident on GPU "
                                  f"{g}, above gpus.max_batch_requests = {self.max_batch_requests}")
        return num_new

    def _complete(self, g: int) -> None:
        batch = self.in_flight[g]
        assert batch is not None
        end = self.busy_until[g]
        self.in_flight[g] = None
        self.busy_until[g] = _INF
        finished_any = False
        pids, dids = batch.prefill_ids, batch.decode_ids
        if dids.size:
            last = self.last_token_s
            self._gaps.append(end - last[dids])
            self._gap_ids.append(dids)
            self._gap_rows.append(self.in_flight_row[g])
            last[dids] = end
            generated = self.generated[dids] + 1
            self.generated[dids] = generated
            finished = generated == self.output[dids]
            if finished.any():
                self._finish(dids[finished], g, end)
                finished_any = True
        if pids.size:
            prefilled = self.prefilled[pids] + batch.prefill_tokens
            self.prefilled[pids] = prefilled
            now_complete = prefilled == self.target[pids]
            if now_complete.any():
                completed = pids[now_complete]
                if self._caches is not None and self.roles[g] != "decode":
                    self._cache_prefixes(completed, g)
                before = self.generated[completed]
                resumed = before > 0  # recomputed after a preemption: emits its next token
                if resumed.any():
                    back = completed[resumed]
                    self._gaps.append(end - self.last_token_s[back])
                    self._gap_ids.append(back)
                    self._gap_rows.append(self.in_flight_row[g])
                    self.first_token_s[completed[~resumed]] = end
                else:
                    self.first_token_s[completed] = end
                after = before + 1
                self.generated[completed] = after
                self.last_token_s[completed] = end
                partial = self.partial[g]
                self._keep_partial(g, self.prefilled[partial] < self.target[partial])
                single = after == self.output[completed]
                if single.any():
                    self._finish(completed[single], g, end)
                    completed = completed[~single]
                if completed.size and self.roles[g] == "prefill":
                    self._start_transfers(completed, g, end)
                elif completed.size:
                    dec = self.decoding[g]
                    if finished_any:
                        dec = dec[self.generated[dec] < self.output[dec]]
                        finished_any = False
                    self.decoding[g] = _frozen(np.concatenate((dec, completed)))
        if finished_any:
            dec = self.decoding[g]
            self.decoding[g] = _frozen(dec[self.generated[dec] < self.output[dec]])
        if self._track_tokens and self.roles[g] != "decode":
            self._recharge(np.concatenate((pids, dids)), g)
        if self.handoff[g]:  # slots or KV may have been freed
            self._admit_handoffs(g)

    def _estimated_work(self, ids: np.ndarray, role: str) -> np.ndarray:
        """The least_tokens router's estimate of the token work ``ids`` still need on their
        queue's GPU of ``role``: remaining prefill tokens plus estimated remaining decodes
        (0 once finished; on a prefill GPU, 0 once the prefill is done: decodes run
        elsewhere)."""
        incomplete = self.target[ids] > self.prefilled[ids]
        decodes = np.maximum(self._route_output[ids] - self.generated[ids] - incomplete, 0)
        if role == "prefill":
            decodes = np.where(incomplete, decodes, 0)
        work = self.target[ids] - self.prefilled[ids] + decodes
        return np.where(np.isnan(self.finish_s[ids]), work, 0)

    def _recharge(self, ids: np.ndarray, g: int) -> None:
        """Bring ``ids``' charge to GPU ``g``'s outstanding tokens up to date."""
        work = self._estimated_work(ids, self.roles[g])
        self.outstanding_tokens[g] += int((work - self._charged[ids]).sum())
        self._charged[ids] = work

    def _finish(self, done: np.ndarray, g: int, end: float) -> None:
        self.finish_s[done] = end
        self.num_finished += done.size
        self.num_finished_measured += (done.size if not self.warmup
                                       else int(np.count_nonzero(done >= self.warmup)))
        self.outstanding[g] -= done.size
        if self._caches is not None:
            self._release_prefixes(done, g)
        if self.kv_enabled:
            self.kv_used_blocks[g] -= int(self.kv_blocks[done].sum())
            self.kv_blocks[done] = 0
            self.kv_tokens[done] = 0

    # ------------------------------------------------------------------ disaggregation
    def _reset_transfers(self) -> None:
        """Clear the KV-transfer state and resolve the network of ``config.disaggregation``.

        ``_transfers`` is a heap of ``(land_s, seq, request, src, dst)``, one entry per
        transfer in flight (its KV is still held by ``src``); the event loop reads the next
        landing time from ``_transfers[0][0]``. Transfers with bytes to send sit on a
        :class:`_Link` (one per prefill GPU, or one shared), and their landing times are
        recomputed whenever a transfer joins the link; a transfer leaving needs no event,
        because the prediction already accounts for the bandwidth it frees.
        """

        self._transfers: list[tuple[float, int, int, int, int]] = []
        self._transfer_seq = 0
        self._transfer_entry: dict[int, tuple[float, int, int, int, int]] = {}  # by seq
        self._transfer_info: dict[int, tuple[float, float]] = {}  # seq -> (start_s, bytes)
        self._links: dict[int, _Link] = {}
        self._transfer_log: dict[str, list[float]] = {
            k: [] for k in ("request", "src", "dst", "start_s", "end_s", "bytes")}
        dis = self.disaggregation
        bandwidth = None if dis is None else dis.link_bandwidth_gb_per_s
        self._link_bytes_per_s = None if bandwidth is None else bandwidth * 1e9
        self._link_latency_s = 0.0 if dis is None else dis.link_latency_ms / 1000.0
        self._link_shared = dis is not None and dis.links == "shared"
        self._kv_bytes_per_token = transfer_bytes_per_token(self.config)

    def _start_transfers(self, ids: np.ndarray, src: int, t: float) -> None:
        """Send finished prefills from prefill GPU ``src`` to the decode GPU with the fewest
        outstanding requests. Each moves ``kv_tokens * kv_bytes_per_token`` bytes over the
        link of ``src`` (shared with the transfers already on it, processor sharing) and lands
        ``latency`` after its last byte leaves."""
        pool = self._decode_pool
        tokens = self.kv_tokens[ids] if self.kv_enabled else self.target[ids]
        sizes = (tokens * self._kv_bytes_per_token).tolist()
        self.outstanding[src] -= ids.size
        if self._track_tokens:  # their decodes run elsewhere
            self.outstanding_tokens[src] -= int(self._charged[ids].sum())
            self._charged[ids] = 0
        link = None
        if self._link_bytes_per_s is not None and any(b > 0 for b in sizes):
            key = 0 if self._link_shared else src
            link = self._links.get(key)
            if link is None:
                link = self._links[key] = _Link(self._link_bytes_per_s)
            link.advance(t)
        latency = self._link_latency_s
        self._kv_source[ids] = src
        for r, nbytes in zip(ids.tolist(), sizes, strict=True):
            dst = pool[int(np.argmin(self.outstanding[pool]))]
            self.outstanding[dst] += 1
            self.gpu_of[r] = -2
            self._transfer_seq += 1
            seq = self._transfer_seq
            self._transfer_info[seq] = (t, nbytes)
            self._transfer_entry[seq] = (t + latency, seq, r, src, dst)
            if link is not None and nbytes > 0:
                link.remaining[seq] = nbytes
        if link is not None:
            for seq, drained in link.drain_times().items():
                entry = self._transfer_entry.get(seq)
                if entry is None:  # landed already (cannot happen: advance retired it)
                    del link.remaining[seq]
                    continue
                self._transfer_entry[seq] = (drained + latency, *entry[1:])
        self._transfers = sorted(self._transfer_entry.values())  # a sorted list is a heap

    def _land_transfers(self, t: float) -> None:
        """KV transfers that end at ``t``: queue at the destination (the source keeps the KV
        blocks until the destination admits the request), record the transfer."""
        landed = set()
        log = self._transfer_log
        while self._transfers and self._transfers[0][0] == t:
            _, seq, r, src, dst = heapq.heappop(self._transfers)
            del self._transfer_entry[seq]
            start, nbytes = self._transfer_info.pop(seq)
            for key, value in (("request", r), ("src", src), ("dst", dst), ("start_s", start),
                               ("end_s", t), ("bytes", nbytes)):
                log[key].append(value)
            self.handoff[dst].append(r)
            landed.add(dst)
        for dst in sorted(landed):
            self._admit_handoffs(dst)

    def _admit_handoffs(self, g: int) -> None:
        """Move requests waiting at decode GPU ``g`` into its decode set, FIFO, while slots and
        KV blocks allow; each one's blocks move from its prefill GPU to ``g`` as it is
        admitted (until then they count against the prefill GPU: backpressure, as a decode
        instance pulling KV only when it has room)."""
        queue = self.handoff[g]
        admitted = []
        resident = self.decoding[g].size
        bs = self.kv_block_tokens
        while queue and resident < self.max_batch_requests:
            r = queue[0]
            if self.kv_enabled:
                need = -(-int(self.kv_tokens[r]) // bs)
                if need > self.kv_capacity_blocks - self.kv_used_blocks[g]:
                    break
                self.kv_used_blocks[int(self._kv_source[r])] -= int(self.kv_blocks[r])
                self.kv_blocks[r] = need
                self.kv_used_blocks[g] += need
            if self._caches is not None:  # its prefix blocks stay cached at the source
                self._release_prefixes(np.array([r]), int(self._kv_source[r]))
            self._kv_source[r] = -1
            admitted.append(queue.pop(0))
            resident += 1
        if admitted:
            ids = np.asarray(admitted, dtype=np.int64)
            self.gpu_of[ids] = g
            self.decoding[g] = _frozen(np.concatenate((self.decoding[g], ids)))

    # ------------------------------------------------------------------ prefix caching
    def _reset_prefix_caches(self) -> None:
        """One :class:`PrefixCache` per GPU that prefills when ``gpus.prefix_caching`` is on
        and the workload names prefix blocks; ``_caches`` is None otherwise."""
        w = self.workload
        n = self.n
        self.cached_tokens = np.zeros(n, dtype=np.int64)
        self._caches: list[PrefixCache | None] | None = None
        self._prefix_block_tokens = 0
        self._routed: list[set[int]] = [set() for _ in range(self.num_gpus)]
        if not (self.config.gpus.prefix_caching and w.prefix_block_tokens):
            return
        bt = int(w.prefix_block_tokens)
        if self.kv_enabled and bt % self.kv_block_tokens:
            raise ConfigError(
                f"prefix blocks of {bt} tokens must be whole KV blocks of "
                f"{self.kv_block_tokens} tokens for prefix caching", "gpus.kv_block_tokens",
                self.kv_block_tokens)
        self._prefix_block_tokens = bt
        per_block = bt // self.kv_block_tokens if self.kv_enabled else 0
        self._caches = [PrefixCache(per_block) if role != "decode" else None
                        for role in self.roles]
        offsets = np.asarray(w.prefix_offsets)
        self._chain_start = offsets[:-1]
        # only full blocks are cached
        self._full_blocks = np.minimum(self.prompt // bt, np.diff(offsets))
        self._chain_ids = np.asarray(w.prefix_ids)

    def _shared_blocks(self, r: int) -> int:
        """Leading prefix blocks of request ``r`` it references in its GPU's cache."""
        return int(self.kv_shared_tokens[r]) // self._prefix_block_tokens

    def _chain(self, r: int, blocks: int) -> list[int]:
        start = int(self._chain_start[r])
        return self._chain_ids[start:start + blocks].tolist()

    def _take_prefix_hit(self, r: int, g: int) -> int:
        """Admit new request ``r`` to GPU ``g``'s prefix cache: it references the longest run
        of its leading blocks cached there and its prefill starts after them (at most
        ``target - 1`` tokens: the last is always computed, as in vLLM). Returns the tokens
        it skips (0: no hit)."""
        full = int(self._full_blocks[r])
        if not full:
            return 0
        cache = self._caches[g]
        chain = self._chain(r, full)
        k = cache.match(chain)
        if not k:
            return 0
        cache.acquire(chain[:k])
        self.kv_shared_tokens[r] = k * self._prefix_block_tokens
        cached = min(k * self._prefix_block_tokens, int(self.target[r]) - 1)
        self.prefilled[r] = cached
        self.kv_tokens[r] = cached
        if math.isnan(self.first_scheduled_s[r]):  # its first admission
            self.cached_tokens[r] = cached
        return cached

    def _apply_prefix_hits(self, batch: Batch, g: int) -> Batch:
        """Take the cache hits of the batch's new requests (GPUs without a KV limit; with one,
        :meth:`_reserve_kv` takes each hit just before it allocates that request's blocks).
        Each chunk keeps its size, capped at what is left after the hit."""
        pids, ptoks = batch.prefill_ids, batch.prefill_tokens
        tokens = None
        for j in np.flatnonzero(self.gpu_of[pids] < 0).tolist():
            r = int(pids[j])
            cached = self._take_prefix_hit(r, g)
            if cached:
                if tokens is None:
                    tokens = ptoks.copy()
                tokens[j] = min(int(tokens[j]), int(self.target[r]) - cached)
        if tokens is None:
            return batch
        return Batch(prefill_ids=pids, prefill_tokens=tokens, decode_ids=batch.decode_ids)

    def _undo_prefix_hits(self, hits: list[int], batch: Batch | None, g: int) -> None:
        """Give back the hits of requests that stay queued after all (KV admission)."""
        kept = set() if batch is None else set(batch.prefill_ids.tolist())
        for r in hits:
            if r in kept:
                continue
            self._caches[g].release(self._chain(r, self._shared_blocks(r)))
            self.kv_shared_tokens[r] = 0
            self.prefilled[r] = 0
            self.kv_tokens[r] = 0
            if math.isnan(self.first_scheduled_s[r]):
                self.cached_tokens[r] = 0

    def _cache_prefixes(self, completed: np.ndarray, g: int) -> None:
        """Prefills just completed on ``g``: their full prompt blocks join the cache (KV
        already counted moves from the request to the cache; a block cached meanwhile by
        another request is shared and this request's copy freed)."""
        cache = self._caches[g]
        per_block = cache.kv_blocks_per_block
        for r in completed.tolist():
            k, full = self._shared_blocks(r), int(self._full_blocks[r])
            if full <= k:
                continue
            new = cache.insert(self._chain(r, full)[k:])
            self.kv_shared_tokens[r] = full * self._prefix_block_tokens
            if self.kv_enabled:
                self.kv_blocks[r] -= (full - k) * per_block
                self.kv_used_blocks[g] -= (full - k - new) * per_block

    def _release_prefixes(self, ids: np.ndarray, g: int) -> None:
        """``ids`` no longer use GPU ``g``'s cached blocks (finished, preempted, moved)."""
        cache = self._caches[g]
        for r in ids.tolist():
            k = self._shared_blocks(r)
            if k:
                cache.release(self._chain(r, k))
                self.kv_shared_tokens[r] = 0

    def _evict_for(self, blocks: int, g: int) -> int:
        """Evict unreferenced cached blocks of GPU ``g`` to free up to ``blocks`` KV blocks;
        returns the blocks freed."""
        freed = self._caches[g].evict(blocks)
        self.kv_used_blocks[g] -= freed
        return freed

    def _admit_with_hits(self, pids: np.ndarray, ptoks: np.ndarray, pre_need: np.ndarray,
                         new: np.ndarray, room: int, g: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Admit the batch's new requests (positions ``new`` of ``pids``) one at a time, as
        vLLM does: take the request's cache hit, then allocate its chunk's blocks from
        ``room`` free blocks, evicting unreferenced cached blocks when short; a chunk that does
        not fit is cut to what does, or the request stays queued. Returns the kept
        ``(pids, ptoks, pre_need)``; hits taken are listed in ``self._hits``."""
        bs = self.kv_block_tokens
        ptoks, pre_need = ptoks.copy(), pre_need.copy()
        keep = np.ones(pids.size, dtype=bool)
        cache = self._caches[g]
        for i in new.tolist():
            r = int(pids[i])
            asked = int(ptoks[i])
            cached = self._take_prefix_hit(r, g)
            if cached:
                ptoks[i] = min(asked, int(self.target[r]) - cached)
            own = int(self.kv_tokens[r]) - int(self.kv_shared_tokens[r])
            held = int(self.kv_blocks[r])
            need = -(-(own + int(ptoks[i])) // bs) - held
            if cached and need > room + cache.evictable_kv_blocks:
                # the blocks its hit holds were counted free by the view; without the hit they
                # are free again, so the request gets at least what the view promised
                self._undo_prefix_hits([r], None, g)
                ptoks[i], cached, own = asked, 0, 0
                need = -(-asked // bs) - held
            if cached:
                self._hits.append(r)
            if need > room:
                room += self._evict_for(need - room, g)
            if need <= room:
                pre_need[i] = need
                room -= need
                continue
            fit = (held + max(room, 0)) * bs - own
            if fit > 0:
                ptoks[i] = min(int(ptoks[i]), fit)
                pre_need[i] = -(-(own + int(ptoks[i])) // bs) - held
                room -= int(pre_need[i])
            else:
                keep[i] = False
                pre_need[i] = 0
        return pids[keep], ptoks[keep], pre_need[keep]

    def _route_by_prefix(self, i: int, gpus: list[int]) -> int:
        """``prefix_affinity``: the GPU where request ``i`` adds the least work, counting the
        outstanding token work of each GPU (as ``least_tokens``) plus this request's prompt
        tokens that GPU has not cached. The cached part is the longest run of the prompt's
        leading blocks among the prompts the router has sent to that GPU (its approximate
        view of the caches, as SGLang's router keeps, never evicted). Ties go to the lowest
        GPU index."""
        full = int(self._full_blocks[i]) if self._caches is not None else 0
        chain = self._chain(i, full) if full else []
        prompt = int(self.prompt[i])
        best, choice, cached = None, gpus[0], 0
        for g in gpus:
            hit = min(leading_matches(chain, self._routed[g]) * self._prefix_block_tokens,
                      prompt - 1)
            cost = int(self.outstanding_tokens[g]) + prompt - hit
            if best is None or cost < best:
                best, choice, cached = cost, g, hit
        if chain:
            self._routed[choice].update(chain)
        self._route_cached = cached
        return choice

    # ------------------------------------------------------------------ KV cache
    def _reserve_kv(self, batch: Batch, g: int) -> Batch | None:
        """Reserve the KV blocks ``batch`` needs on GPU ``g``; preempt or shrink if they do not
        fit. Returns the batch to run (None if nothing of it is left).

        The rule is vLLM's (v1 scheduler): requests already running on the GPU (decodes, and
        chunks of partially prefilled requests) grow into free blocks, and when those are too
        few the latest-arrived resident requests are preempted by recompute until the rest
        fit (a victim leaves the batch; it may be one of the growing requests itself). New
        requests are admitted only into what is then left: their chunks, in batch order, are
        cut to the free blocks (the first that does not fit whole is shortened, the rest are
        dropped and stay queued). If nothing of the batch is left and nothing was preempted,
        nothing could run: rule ``kv_memory``. With prefix caching, unreferenced cached blocks
        are evicted (least recently used first) before anything is preempted or cut.
        """
        bs = self.kv_block_tokens
        pids, ptoks, dids = batch.prefill_ids, batch.prefill_tokens, batch.decode_ids
        free = self.kv_capacity_blocks - self.kv_used_blocks[g]
        own_d, own_p = self.kv_tokens[dids], self.kv_tokens[pids]  # tokens in own blocks
        caching = self._caches is not None and self._caches[g] is not None
        if caching:  # the blocks of a cached prefix are the cache's
            own_d = own_d - self.kv_shared_tokens[dids]
            own_p = own_p - self.kv_shared_tokens[pids]
        dec_need = -(-(own_d + 1) // bs) - self.kv_blocks[dids]
        pre_need = -(-(own_p + ptoks) // bs) - self.kv_blocks[pids]
        running = self.gpu_of[pids] == g  # partially prefilled here: growing, as decodes
        if caching and int(dec_need.sum()) + int(pre_need[running].sum()) > free:
            free += self._evict_for(int(dec_need.sum()) + int(pre_need[running].sum()) - free,
                                    g)
        if int(dec_need.sum()) + int(pre_need[running].sum()) > free:
            residents = np.concatenate((self.partial[g], self.decoding[g]))
            order = np.sort(residents)[::-1]  # latest arrival first (ids are arrival order)
            victims = []
            for r in order.tolist():
                victims.append(r)
                free += int(self.kv_blocks[r])
                keep_d = ~np.isin(dids, victims)
                keep_r = running & ~np.isin(pids, victims)
                if int(dec_need[keep_d].sum()) + int(pre_need[keep_r].sum()) <= free:
                    break
            victims_arr = np.asarray(sorted(victims), dtype=np.int64)
            self._preempt(victims_arr, g)
            keep_d = ~np.isin(dids, victims_arr)
            keep_p = ~np.isin(pids, victims_arr)
            dids, dec_need = dids[keep_d], dec_need[keep_d]
            pids, ptoks, pre_need = pids[keep_p], ptoks[keep_p], pre_need[keep_p]
            own_p, running = own_p[keep_p], running[keep_p]
            free = self.kv_capacity_blocks - self.kv_used_blocks[g]
            growing = int(dec_need.sum()) + int(pre_need[running].sum())
            if caching and growing > free:  # the victims' cached prefixes may be evictable
                free += self._evict_for(growing - free, g)
            if dids.size == 0 and pids.size == 0:
                return None
            preempted = True
        else:
            preempted = False
        room = free - int(dec_need.sum()) - int(pre_need[running].sum())
        new = np.flatnonzero(~running)
        cut = caching and new.size > 0
        if cut:
            pids, ptoks, pre_need = self._admit_with_hits(pids, ptoks, pre_need, new, room, g)
        elif new.size and int(pre_need[new].sum()) > room:  # admit new requests into the room
            cut = True
            ptoks = ptoks.copy()
            keep = np.ones(pids.size, dtype=bool)
            for i in new.tolist():
                if pre_need[i] <= room:
                    room -= int(pre_need[i])
                    continue
                r = int(pids[i])
                fit = (int(self.kv_blocks[r]) + max(room, 0)) * bs - int(own_p[i])
                if fit > 0:
                    ptoks[i] = min(int(ptoks[i]), fit)
                    pre_need[i] = -(-(int(own_p[i]) + int(ptoks[i])) // bs) \
                        - int(self.kv_blocks[r])
                    room -= int(pre_need[i])
                else:
                    keep[i] = False
                    pre_need[i] = 0
            pids, ptoks, pre_need = pids[keep], ptoks[keep], pre_need[keep]
        if cut:
            if dids.size == 0 and pids.size == 0:
                if preempted:
                    return None
                if self._hits and self.event_pending():
                    # the blocks the view counted as free were cached prefixes these requests
                    # now hold: nothing fits until memory frees (a transfer lands, a request
                    # finishes); the GPU waits for the next event
                    self._kv_wait = True
                    return None
                raise SchedulingError(
                    "kv_memory", f"no chunk of the batch fits in the {free} free KV blocks of "
                    f"GPU {g} and nothing runs on it to preempt (admit prefills only while "
                    "they fit in view.kv_free_blocks)")
            batch = Batch(prefill_ids=pids, prefill_tokens=ptoks, decode_ids=dids)
        elif preempted:
            batch = Batch(prefill_ids=pids, prefill_tokens=ptoks, decode_ids=dids)
        total = int(dec_need.sum()) + int(pre_need.sum())
        self.kv_blocks[dids] += dec_need
        self.kv_tokens[dids] += 1
        self.kv_blocks[pids] += pre_need
        self.kv_tokens[pids] += ptoks
        self.kv_used_blocks[g] += total
        return batch

    def _preempt(self, victims: np.ndarray, g: int) -> None:
        """Preempt ``victims`` (resident on ``g``) by recompute: free their KV and put them back
        at the front of their queue, in arrival order; their next prefill covers the prompt
        and every token generated so far."""
        self.kv_used_blocks[g] -= int(self.kv_blocks[victims].sum())
        if self._caches is not None:
            self._release_prefixes(victims, g)
        self.kv_blocks[victims] = 0
        self.kv_tokens[victims] = 0
        self.prefilled[victims] = 0
        self.target[victims] = self.prompt[victims] + self.generated[victims]
        if self._track_tokens:  # their work grows by the recompute, charged at their queue
            work = self._estimated_work(victims, "prefill" if self._decode_pool else "mixed")
            np.add.at(self.outstanding_tokens, self.queue_of[victims],
                      work - self._charged[victims])
            self._charged[victims] = work
        self.preemptions[victims] += 1
        self._keep_partial(g, ~np.isin(self.partial[g], victims))
        self.decoding[g] = _frozen(self.decoding[g][~np.isin(self.decoding[g], victims)])
        self.gpu_of[victims] = -1
        if self._num_queues == 1:
            self._requeue(victims, 0)
            self.outstanding[g] -= victims.size
        else:  # back to the queue of the GPU they were routed to
            for q in np.unique(self.queue_of[victims]).tolist():
                mine = victims[self.queue_of[victims] == q]
                self._requeue(mine, q)
                if q != g:
                    self.outstanding[g] -= mine.size
                    self.outstanding[q] += mine.size

    # ------------------------------------------------------------------ results
    def result(self, policy: str = "") -> RunResult:
        """The run's :class:`RunResult` (call when ``next_decision()`` returned None);
        ``policy`` names the scheduler that drove it (default: the config's)."""

        if self._gaps:
            gaps = np.concatenate(self._gaps)
            ids = np.concatenate(self._gap_ids)
            rows = np.repeat(np.asarray(self._gap_rows, dtype=np.int64),
                             [a.size for a in self._gap_ids])
        else:
            gaps, ids, rows = np.zeros(0), _EMPTY, _EMPTY
        max_tbt = np.zeros(self.n)
        np.maximum.at(max_tbt, ids, gaps)
        measured = ids >= self.warmup
        return self.assemble_result(gap_runs(gaps[measured], rows[measured]), max_tbt,
                                    self._batches.trimmed(), policy)

    def assemble_result(self, runs: tuple[np.ndarray, np.ndarray, np.ndarray],
                        max_tbt: np.ndarray, batch_columns: dict[str, np.ndarray],
                        policy: str) -> RunResult:
        """The RunResult of the run whose per-request state this engine holds, given the token
        gaps of the measured requests run-length encoded in emission order (``(values s,
        lengths, batch rows)``, :func:`~llm_serving_env.sim.result.gap_runs`), every
        request's largest gap (s, 0 without one; shape (n,)) and the batch log's columns
        (the compiled engine hands in its own)."""
        return RunResult(
            config=self.config, seed=self.seed, warmup=self.warmup,
            arrival_s=self.arrival_s.copy(), prompt_tokens=self.prompt.copy(),
            output_tokens=self.output.copy(), first_scheduled_s=self.first_scheduled_s.copy(),
            first_token_s=self.first_token_s.copy(), finish_s=self.finish_s.copy(),
            max_tbt_s=max_tbt, gpu=self.gpu_of.copy(), first_gpu=self.first_gpu.copy(),
            preemptions=self.preemptions.copy(), batch_columns=batch_columns,
            tbt_gap_run_s=runs[0], tbt_gap_run_length=runs[1], tbt_gap_run_batch=runs[2],
            num_gpus=self.num_gpus,
            transfer_columns=self._transfer_columns(), policy=policy,
            slo_class=self.slo_class.copy(), cached_tokens=self.cached_tokens.copy())

    def _transfer_columns(self) -> dict[str, np.ndarray]:
        """The landed KV transfers in landing order: request, src, dst (GPU ids), start_s,
        end_s (landing, s), bytes."""
        log = self._transfer_log
        ints = ("request", "src", "dst")
        return {k: np.asarray(v, dtype=np.int64 if k in ints else np.float64)
                for k, v in log.items()}
