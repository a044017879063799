"""The environment's observation, built from a :class:`~llm_serving_env.sim.scheduler.DecisionView`
alone, so that a learned policy can run as a plain scheduler (``simulate(cfg, "ppo:PATH")``) and
see exactly what it saw in training.

The features and their normalisation are tabled in :class:`~llm_serving_env.env.LLMServingEnv`'s
docstring. The only state kept between calls is the arrival-rate estimate (an exponentially
weighted moving average updated at every decision point), which a real scheduler keeps too.
"""

from __future__ import annotations

import math

import numpy as np

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.sim.scheduler import DecisionView

__all__ = ["DECODING_FEATURES", "GLOBAL_FEATURES", "WAITING_FEATURES", "Observer"]

#: Names of the global observation features, in order.
GLOBAL_FEATURES = (
    "waiting", "waiting_prompt_tokens", "partial", "decoding", "resident", "kv_used",
    "oldest_waiting_age", "max_decode_stall", "arrival_rate", "arrived_fraction",
    "in_system", "other_gpus_busy", "gpu_index", "role_mixed", "role_prefill", "role_decode",
)
#: Per-slot features of the first ``num_slots`` entries of ``view.waiting``.
WAITING_FEATURES = ("occupied", "remaining_prompt", "remaining_fraction", "age", "resident")
#: Per-slot features of the first ``num_slots`` entries of ``view.decoding``.
DECODING_FEATURES = ("occupied", "since_last_token", "generated", "predicted_remaining",
                     "age")
_ROLE_SLOT = {role: 13 + k for k, role in enumerate(("mixed", "prefill", "decode"))}
_ARRIVED_FRACTION = GLOBAL_FEATURES.index("arrived_fraction")


class Observer:
    """Builds the float32 observation vector of shape ``(size,)`` at each decision point.

    Args:
        config: the run's config (scales: SLO, arrival rate, mean output, GPU count).
        num_slots: N, per-slot features for the first N waiting and N decoding requests.
        token_scale: P, the prompt-token scale (the env's largest chunk-ladder level).

    Call :meth:`reset` at the start of a run and :meth:`observe` at every decision point, in
    order (the arrival-rate estimate is updated from one call to the next).
    """

    def __init__(self, config: SimConfig, num_slots: int, token_scale: float) -> None:
        n = self.num_slots = int(num_slots)
        gpus = config.gpus
        self.max_batch_tokens = int(gpus.max_batch_tokens)
        self.max_batch_requests = int(gpus.max_batch_requests)
        self.num_requests = int(config.num_requests)
        self.num_gpus = int(gpus.count)
        service = ServiceModel.from_config(config.service, np.random.default_rng(0))
        self.token_scale = float(token_scale)
        self.time_unit_s = float(service.mean_s(int(token_scale)))
        slo = config.slo
        self.ttft_scale_s = slo.ttft_ms / 1000.0 if slo is not None else 10.0 * self.time_unit_s
        self.tbt_scale_s = slo.tbt_ms / 1000.0 if slo is not None else self.time_unit_s
        self.rate_scale = float(getattr(config.workload.arrival, "rate_per_s", 1.0))
        self.rate_window_s = 100.0 / self.rate_scale
        self.output_scale = float(config.workload.output_tokens.mean())
        # without a predictor the predicted-remaining feature is 0: skip computing it
        self._predicts = config.workload.length_predictor.knows_lengths
        self.num_global = len(GLOBAL_FEATURES)
        self.size = self.num_global + n * (len(WAITING_FEATURES) + len(DECODING_FEATURES))
        self.names = (list(GLOBAL_FEATURES)
                      + [f"waiting_{f}_{i}" for f in WAITING_FEATURES for i in range(n)]
                      + [f"decoding_{f}_{i}" for f in DECODING_FEATURES for i in range(n)])
        # obs = raw / (alpha * raw + scale): saturating features have alpha 1 (x / (x + scale)),
        # direct ones (flags, fractions) alpha 0 and scale 1
        alpha = np.zeros(self.size)
        scale = np.ones(self.size)
        base = self.num_global
        w_scales = (None, self.token_scale, None, self.ttft_scale_s, None)
        d_scales = (None, self.tbt_scale_s, self.output_scale, self.output_scale,
                    self.ttft_scale_s)
        for k, sc in enumerate(w_scales + d_scales):
            if sc is not None:
                alpha[base + k * n: base + (k + 1) * n] = 1.0
                scale[base + k * n: base + (k + 1) * n] = sc
        self._alpha, self._scale = alpha, scale
        self._raw = np.zeros(self.size)
        self.reset()

    def reset(self) -> None:
        """Forget the arrival-rate estimate (a new run starts)."""
        self._started = False
        self._rate = 0.0
        self._rate_t = 0.0
        self._rate_n = 0

    def _update_rate(self, view: DecisionView) -> None:
        """EWMA of the arrival rate (window ``rate_window_s``), arrivals counted at decision
        points; the first call starts it at (arrivals so far) / window."""
        now, arrived = view.now_s, view.num_arrived
        if not self._started:
            self._started = True
            self._rate = arrived / self.rate_window_s
        else:
            window = self.rate_window_s
            self._rate = (self._rate * math.exp((self._rate_t - now) / window)
                          + (arrived - self._rate_n) / window)
        self._rate_t = now
        self._rate_n = arrived

    def observe(self, view: DecisionView | None) -> np.ndarray:
        """The observation at ``view`` (None: the run is over; all 0 but arrived_fraction).

        Per-slot raw values are written with numpy slices into a preallocated float64 vector,
        then one vectorized ``raw / (alpha * raw + scale)`` makes the float32 observation.
        """
        raw = self._raw
        raw.fill(0.0)
        if view is None:
            raw[_ARRIVED_FRACTION] = 1.0
            return raw.astype(np.float32)
        self._update_rate(view)
        n = self.num_slots
        now = view.now_s
        t = view.requests
        arrival = t.arrival_s
        waiting = view.waiting
        nw_all = waiting.size
        # ---- waiting slots: occupied, remaining, remaining fraction, age, resident
        if nw_all:
            w = waiting[:n]
            nw = w.size
            o = self.num_global
            tgt = t.prefill_target_tokens[w]
            rem = tgt - t.prefilled_tokens[w]
            age = now - arrival[w]
            raw[o: o + nw] = 1.0
            raw[o + n: o + n + nw] = rem
            raw[o + 2 * n: o + 2 * n + nw] = rem / tgt
            raw[o + 3 * n: o + 3 * n + nw] = age
            raw[o + 4 * n: o + 4 * n + min(view.num_partial, nw)] = 1.0
            tokens = sum(rem.tolist())
            oldest = max(age.tolist())
            if nw_all > n:
                rest = waiting[n:]
                tokens += int((t.prefill_target_tokens[rest] - t.prefilled_tokens[rest]).sum())
                oldest = max(oldest, now - float(arrival[rest].min()))
        else:
            tokens = oldest = 0.0
        # ---- decoding slots: occupied, since last token, generated, predicted left, age
        decoding = view.decoding
        nd_all = decoding.size
        if nd_all:
            d = decoding[:n]
            nd = d.size
            o = self.num_global + len(WAITING_FEATURES) * n
            gen = t.generated_tokens[d]
            since = now - t.last_token_s[d]
            raw[o: o + nd] = 1.0
            raw[o + n: o + n + nd] = since
            raw[o + 2 * n: o + 2 * n + nd] = gen
            if self._predicts:
                left = t.predicted_output_tokens[d] - gen
                raw[o + 3 * n: o + 3 * n + nd] = np.where(left > 0.0, left, 0.0)  # NaN -> 0
            raw[o + 4 * n: o + 4 * n + nd] = now - arrival[d]
            stall = (max(since.tolist()) if nd_all <= n
                     else now - float(t.last_token_s[decoding].min()))
        else:
            stall = 0.0
        # ---- globals (GLOBAL_FEATURES order)
        r_max = self.max_batch_requests
        in_system = view.num_arrived - view.num_finished
        kv = (1.0 - view.kv_free_blocks / view.kv_capacity_blocks
              if view.kv_capacity_blocks != math.inf else 0.0)
        rate = self._rate
        g = view.gpu
        if self.num_gpus > 1:
            busy = view.other_gpus_busy / (self.num_gpus - 1)
            index = g / (self.num_gpus - 1)
        else:
            busy = index = 0.0
        npart = view.num_partial
        raw[:13] = (nw_all / (nw_all + n), tokens / (tokens + self.max_batch_tokens),
                    npart / (npart + n), nd_all / (nd_all + n), view.resident / r_max, kv,
                    oldest / (oldest + self.ttft_scale_s), stall / (stall + self.tbt_scale_s),
                    rate / (rate + self.rate_scale), view.num_arrived / self.num_requests,
                    in_system / (in_system + r_max), busy, index)
        raw[_ROLE_SLOT[view.role]] = 1.0
        denom = self._alpha * raw
        denom += self._scale
        return (raw / denom).astype(np.float32)
