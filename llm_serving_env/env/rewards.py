"""The environment's rewards, one per decision step, from the batches that completed since the
previous decision point.

========  ====================================================================================
reward    per step
========  ====================================================================================
latency   minus the integral of the number of requests in system over the step; its episode
          sum is minus the total end-to-end latency (Little's law, path by path)
slo       +1 per output token emitted within its objective (TTFT for the first, TBT for the
          rest), -1 per token that misses it
goodput   +1 per request that finishes having met every objective
========  ====================================================================================

Each is divided by ``scale``, and each counts **measured requests only** (arrival index >=
``warmup_requests``), the ones ``RunResult.summary()`` reports: an agent is rewarded for what
it is judged on. The identities above (over measured requests) are checked in
``tests/test_env.py``.
"""

from __future__ import annotations

import math

import numpy as np

from llm_serving_env.sim.batch import Batch
from llm_serving_env.sim.engine import Simulator

__all__ = ["REWARDS", "RewardTracker"]

REWARDS = ("latency", "slo", "goodput")

_INF = math.inf


class RewardTracker:
    """Accumulates one reward kind over an episode of ``sim``.

    Args:
        sim: the simulator the environment drives.
        kind: one of :data:`REWARDS`.
        scale: every reward is divided by it (> 0).
        ttft_s, tbt_s: the SLO's objectives in seconds (inf without an SLO; ``slo`` and
            ``goodput`` need one).
    """

    def __init__(self, sim: Simulator, kind: str, scale: float, ttft_s: float,
                 tbt_s: float) -> None:
        self.sim = sim
        self.kind = kind
        self.scale = scale
        self.ttft_s = ttft_s
        self.tbt_s = tbt_s
        self.num_gpus = sim.num_gpus

    def reset(self) -> None:
        """Start an episode (call after ``sim.reset``)."""
        sim = self.sim
        g = self.num_gpus
        # batches in flight, per GPU: end time and what the reward needs of them
        self._rec_end = [_INF] * g
        self._rec_batch: list[Batch | None] = [None] * g
        self._rec_prev: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * g
        # prefix sums of arrival times (a list: Python floats index faster)
        self._arr_cum = np.concatenate(([0.0], np.cumsum(sim.arrival_s))).tolist()
        self._fin_time_sum = 0.0  # sum of finish times of finished requests
        self._area = 0.0  # integral of n(t) dt up to the last decision point
        self._fin_measured = 0  # finished measured requests
        self._w = int(sim.warmup)  # ids below it are warm-up requests: no reward
        self._bad = np.zeros(sim.n, dtype=bool)  # requests that missed a deadline (goodput)

    def record(self, g: int, end: float) -> None:
        """Remember the batch just started on GPU ``g`` (ends at ``end``)."""
        batch = self.sim.in_flight[g]
        self._rec_end[g] = end
        self._rec_batch[g] = batch
        if self.kind != "latency":
            last = self.sim.last_token_s
            pids = batch.prefill_ids
            self._rec_prev[g] = (last[batch.decode_ids], last[pids],
                                 self.sim.generated[pids])

    def collect(self) -> float:
        """Reward for the time from the previous decision point to the current one."""
        sim = self.sim
        now = sim.now_s
        rec_end = self._rec_end
        if self.num_gpus == 1:
            done = [0] if rec_end[0] <= now else []
        else:
            done = [g for g in range(self.num_gpus) if rec_end[g] <= now]
        if self.kind == "latency":
            # area(T) = integral of n(t) dt over [0, T], n(t) = measured requests in system
            #         = sum of finish times of the finished + (arrived - finished) * T
            #           - sum of arrival times of the arrived (all over measured requests)
            w = self._w
            if len(done) == 1:  # every finish since the last decision ended this batch
                k = sim.num_finished_measured - self._fin_measured
                self._fin_time_sum += rec_end[done[0]] * k
                self._fin_measured += k
            elif done:
                fin = sim.finish_s
                for g in done:
                    b = self._rec_batch[g]
                    e = rec_end[g]
                    d, p = b.decode_ids, b.prefill_ids
                    if w:
                        d, p = d[d >= w], p[p >= w]
                    k = int(np.count_nonzero(fin[d] == e)) + int(np.count_nonzero(fin[p] == e))
                    self._fin_time_sum += e * k
                    self._fin_measured += k
            n_arr = sim.next_arrival
            first = min(n_arr, w)
            area = (self._fin_time_sum + (n_arr - first - self._fin_measured) * now
                    - (self._arr_cum[n_arr] - self._arr_cum[first]))
            value = (self._area - area) / self.scale
            self._area = area
        else:
            value = 0.0
            for g in done:
                value += self._token_events(g, rec_end[g])
            value /= self.scale
        for g in done:
            rec_end[g] = _INF
            self._rec_batch[g] = None
            self._rec_prev[g] = None
        return value

    def _token_events(self, g: int, end: float) -> float:
        """slo / goodput reward of the completed batch of GPU ``g``."""
        sim = self.sim
        batch = self._rec_batch[g]
        prev_last_d, prev_last_p, prev_gen_p = self._rec_prev[g]
        dids, pids = batch.decode_ids, batch.prefill_ids
        w = self._w
        if w:  # warm-up requests earn nothing
            keep_d, keep_p = dids >= w, pids >= w
            dids, prev_last_d = dids[keep_d], prev_last_d[keep_d]
            pids, prev_last_p, prev_gen_p = pids[keep_p], prev_last_p[keep_p], prev_gen_p[keep_p]
        tbt, ttft = self.tbt_s, self.ttft_s
        late_d = (end - prev_last_d) > tbt
        if pids.size:
            done = sim.prefilled[pids] == sim.target[pids]
            first = done & (prev_gen_p == 0)
            again = done & (prev_gen_p > 0)
            late_p = ((first & ((end - sim.arrival_s[pids]) > ttft))
                      | (again & ((end - prev_last_p) > tbt)))
            emitted_p = int(np.count_nonzero(done))
        else:
            done = late_p = None
            emitted_p = 0
        if self.kind == "slo":
            late = int(np.count_nonzero(late_d))
            if late_p is not None:
                late += int(np.count_nonzero(late_p))
            return float(dids.size + emitted_p - 2 * late)
        bad = self._bad
        bad[dids[late_d]] = True
        gen, out = sim.generated, sim.output
        fin_d = dids[gen[dids] == out[dids]]
        good = int(np.count_nonzero(~bad[fin_d]))
        if pids.size:
            bad[pids[late_p]] = True
            fin_p = pids[done & (gen[pids] == out[pids])]
            good += int(np.count_nonzero(~bad[fin_p]))
        return float(good)
