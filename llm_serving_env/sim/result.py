"""RunResult: per-request and per-batch tables of one run and the metrics defined on them.

Every metric is defined once, here, over the *measured* requests: those with id >= warm-up
(ids are arrival order), all of which have finished when a run ends. Times are in seconds.

Measurement window: ``[t0, t1]`` with ``t0`` = arrival of the first measured request and
``t1`` = latest finish among measured requests; ``T = t1 - t0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import os

    from llm_serving_env.config.sim_config import SimConfig

SUMMARY_KEYS = (
    "num_completed", "throughput_rps", "throughput_tokens_per_s",
    "ttft_mean_s", "ttft_p50_s", "ttft_p95_s", "ttft_p99_s",
    "tbt_mean_s", "tbt_p95_s", "tbt_p99_s",
    "e2e_mean_s", "e2e_p50_s", "e2e_p95_s", "e2e_p99_s",
    "queue_wait_mean_s", "gpu_utilization", "mean_batch_tokens", "mean_batch_requests",
    "num_preemptions",
)
SLO_KEYS = ("slo_attainment", "goodput_rps")


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if values.size else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def gap_runs(gaps: np.ndarray, rows: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encode token gaps in emission order: ``(values, lengths, rows)``, one entry
    per maximal run of consecutive gaps with the same value (s) and the same batch row. Most
    decodes of a batch share one gap (they also ran in the GPU's previous batch), so a run
    holds about one entry per batch where the gaps hold one per token."""
    if gaps.size == 0:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(
        ([True], (gaps[1:] != gaps[:-1]) | (rows[1:] != rows[:-1]))))
    lengths = np.diff(np.append(starts, gaps.size)).astype(np.int64)
    return gaps[starts], lengths, rows[starts].astype(np.int64)


def _run_mean(values: np.ndarray, lengths: np.ndarray) -> float:
    """Mean of ``values`` repeated ``lengths`` times."""
    n = int(lengths.sum())
    return float((values * lengths).sum() / n) if n else float("nan")


def _run_quantile(values: np.ndarray, lengths: np.ndarray, q: float) -> float:
    """Quantile ``q`` of ``values`` repeated ``lengths`` times, as numpy's default (linear)
    method defines it on the expanded array: the order statistics at ``floor(h)`` and the
    next, ``h = (n - 1) q``, interpolated; without expanding."""
    n = int(lengths.sum())
    if not n:
        return float("nan")
    order = np.argsort(values, kind="stable")
    ends = np.cumsum(lengths[order])  # sorted values[order[i]] fill positions < ends[i]
    h = (n - 1) * q
    lo = int(np.floor(h))
    a, b = (float(values[order[np.searchsorted(ends, j, side="right")]])
            for j in (lo, min(lo + 1, n - 1)))
    t = h - lo
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


@dataclass(eq=False)
class RunResult:
    """Outcome of one simulation run.

    Per-request arrays have shape (num_requests,), indexed by request id (arrival order).
    ``batch_columns`` holds per-iteration arrays (gpu, start_s, end_s, prefill_tokens,
    num_prefills, num_decodes, token_load); :attr:`batches` is their DataFrame.
    The gaps between consecutive output tokens of the measured requests are stored run-length
    encoded in emission order (:func:`gap_runs`): ``tbt_gap_run_s`` (the gap, s),
    ``tbt_gap_run_length`` and ``tbt_gap_run_batch`` (the batch row whose end emitted those
    tokens), shape (k,) each; :attr:`tbt_gaps_s` and :attr:`tbt_gap_batch` expand them
    (shape (g,), one per gap), and the summary's TBT metrics never do.
    ``transfer_columns`` holds the KV transfers of a disaggregated run, in landing order
    (request, src, dst, start_s, end_s, bytes; empty otherwise).
    """

    config: SimConfig
    seed: int
    warmup: int
    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    first_scheduled_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    max_tbt_s: np.ndarray
    gpu: np.ndarray
    first_gpu: np.ndarray
    preemptions: np.ndarray
    batch_columns: dict[str, np.ndarray]
    tbt_gap_run_s: np.ndarray
    tbt_gap_run_length: np.ndarray
    tbt_gap_run_batch: np.ndarray
    num_gpus: int
    transfer_columns: dict[str, np.ndarray] = field(default_factory=dict)
    policy: str = ""  # the scheduler that ran (Scheduler.label); "" = the config's scheduler
    slo_class: np.ndarray | None = None  # index into slo.classes per request (None: all 0)
    # prompt tokens served from the prefix cache at each request's first admission (None: 0)
    cached_tokens: np.ndarray | None = None

    @cached_property
    def tbt_gaps_s(self) -> np.ndarray:
        """Every gap (s) between consecutive output tokens of the measured requests, in
        emission order, shape (g,)."""
        return np.repeat(self.tbt_gap_run_s, self.tbt_gap_run_length)

    @cached_property
    def tbt_gap_batch(self) -> np.ndarray:
        """The batch row whose end emitted each gap's later token, shape (g,)."""
        return np.repeat(self.tbt_gap_run_batch, self.tbt_gap_run_length)

    @property
    def policy_name(self) -> str:
        """The scheduler that produced this run: ``policy``, else ``config.scheduler.name``."""
        return self.policy or self.config.scheduler.name

    # ---------------------------------------------------------------- per-request metrics
    @property
    def ttft_s(self) -> np.ndarray:
        """TTFT_i = first_token_i - arrival_i."""
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> np.ndarray:
        """End-to-end latency E2E_i = finish_i - arrival_i."""
        return self.finish_s - self.arrival_s

    @property
    def queue_wait_s(self) -> np.ndarray:
        """Queue wait Q_i = (start of the first batch holding any token of i) - arrival_i."""
        return self.first_scheduled_s - self.arrival_s

    @property
    def request_max_tbt_s(self) -> np.ndarray:
        """Largest gap between consecutive output tokens of i (NaN for one-token outputs)."""
        return np.where(self.output_tokens > 1, self.max_tbt_s, np.nan)

    @property
    def measured(self) -> np.ndarray:
        """Boolean mask of the requests counted in statistics (not warm-up)."""
        mask = np.ones(self.arrival_s.size, dtype=bool)
        mask[: self.warmup] = False
        return mask

    @property
    def window_s(self) -> tuple[float, float]:
        """(t0, t1): first measured arrival, last measured finish."""
        m = self.measured
        if not m.any():
            return (float("nan"), float("nan"))
        return float(self.arrival_s[m].min()), float(self.finish_s[m].max())

    @property
    def request_slo_class(self) -> np.ndarray:
        """Each request's index into ``slo.classes`` (all 0 without classes)."""
        if self.slo_class is None:
            return np.zeros(self.arrival_s.size, dtype=np.int64)
        return self.slo_class

    def slo_met(self) -> np.ndarray:
        """Per-request SLO attainment: TTFT_i <= its TTFT objective and max TBT_i <= its TBT
        objective (``slo.ttft_ms`` / ``slo.tbt_ms``, or its class's with ``slo.classes``).

        A one-token output has no gap and meets the TBT part. Requires ``config.slo``.
        """
        slo = self.config.slo
        if slo is None:
            raise ValueError("slo_met() needs an SLO: set slo: {ttft_ms, tbt_ms} in the config")
        ttft_obj, tbt_obj = slo.objectives_s(self.request_slo_class)
        tbt_ok = (self.output_tokens <= 1) | (self.max_tbt_s <= tbt_obj)
        return (self.ttft_s <= ttft_obj) & tbt_ok

    # ---------------------------------------------------------------- tables
    @cached_property
    def requests(self) -> pd.DataFrame:
        """One row per request (warm-up ones included, flagged by the ``warmup`` column).

        ``gpu`` is the GPU that finished the request, ``first_gpu`` the one that first served
        it (they differ under disaggregation, where prefill and decode pools are separate).
        With ``slo.classes``, ``slo_class`` holds each request's class name. ``cached_tokens``
        are the prompt tokens its first admission found in the GPU's prefix cache (0 without
        ``gpus.prefix_caching``).
        """
        df = pd.DataFrame({
            "arrival_s": self.arrival_s,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "first_scheduled_s": self.first_scheduled_s,
            "first_token_s": self.first_token_s,
            "finish_s": self.finish_s,
            "ttft_s": self.ttft_s,
            "e2e_s": self.e2e_s,
            "max_tbt_s": self.request_max_tbt_s,
            "queue_wait_s": self.queue_wait_s,
            "gpu": self.gpu,
            "first_gpu": self.first_gpu,
            "preemptions": self.preemptions,
            "cached_tokens": (np.zeros(self.prompt_tokens.size, dtype=np.int64)
                              if self.cached_tokens is None else self.cached_tokens),
            "warmup": ~self.measured,
        })
        slo = self.config.slo
        if slo is not None and slo.classes:
            df["slo_class"] = np.asarray(slo.class_names, dtype=object)[self.request_slo_class]
        return df.rename_axis("request_id")

    @cached_property
    def batches(self) -> pd.DataFrame:
        """One row per iteration: gpu, start_s, end_s, prefill_tokens, num_prefills,
        num_decodes, token_load (= prefill_tokens + num_decodes), duration_s."""
        df = pd.DataFrame(self.batch_columns)
        df["duration_s"] = df["end_s"] - df["start_s"]
        return df.rename_axis("batch")

    # ---------------------------------------------------------------- summary
    def gpu_utilization(self) -> float:
        """Busy fraction: sum over batches of |[start, end] ∩ [t0, t1]| / (num_gpus * T)."""
        t0, t1 = self.window_s
        if not t1 > t0:
            return float("nan")
        start = np.clip(self.batch_columns["start_s"], t0, t1)
        end = np.clip(self.batch_columns["end_s"], t0, t1)
        return float((end - start).sum() / (self.num_gpus * (t1 - t0)))

    def summary(self) -> dict[str, Any]:
        """Headline metrics over the measured requests (seconds, requests, tokens).

        - throughput_rps = N / T; throughput_tokens_per_s = sum of their output tokens / T.
        - ttft_*, e2e_*, queue_wait_mean_s: mean and quantiles over measured requests.
        - tbt_*: over every gap between consecutive output tokens of measured requests.
        - gpu_utilization: see :meth:`gpu_utilization`.
        - mean_batch_tokens / mean_batch_requests: mean token load / number of requests
          (prefill chunks + decodes) of batches that start in [t0, t1].
        - num_preemptions: preemptions suffered by measured requests.
        - prefix_hit_rate (with ``gpus.prefix_caching``): cached / prompt tokens over measured
          requests, the cached ones counted at each request's first admission.
        - slo_attainment = fraction of measured requests meeting the SLO (see :meth:`slo_met`);
          goodput_rps = their number / T (DistServe's goodput). Only when an SLO is set.
        - With ``slo.classes``, also ``slo_attainment_NAME`` (over the measured requests of
          class NAME) and ``goodput_rps_NAME`` (those meeting it / T) per class.
        """
        m = self.measured
        n = int(m.sum())
        t0, t1 = self.window_s
        span = t1 - t0 if n else float("nan")
        ttft, e2e = self.ttft_s[m], self.e2e_s[m]
        runs = self.tbt_gap_run_s, self.tbt_gap_run_length
        b = self.batch_columns
        in_window = (b["start_s"] >= t0) & (b["start_s"] <= t1)
        out: dict[str, Any] = {
            "num_completed": n,
            "throughput_rps": n / span if span > 0 else float("nan"),
            "throughput_tokens_per_s": (float(self.output_tokens[m].sum()) / span
                                        if span > 0 else float("nan")),
            "ttft_mean_s": _mean(ttft),
            "ttft_p50_s": _quantile(ttft, 0.50),
            "ttft_p95_s": _quantile(ttft, 0.95),
            "ttft_p99_s": _quantile(ttft, 0.99),
            "tbt_mean_s": _run_mean(*runs),
            "tbt_p95_s": _run_quantile(*runs, 0.95),
            "tbt_p99_s": _run_quantile(*runs, 0.99),
            "e2e_mean_s": _mean(e2e),
            "e2e_p50_s": _quantile(e2e, 0.50),
            "e2e_p95_s": _quantile(e2e, 0.95),
            "e2e_p99_s": _quantile(e2e, 0.99),
            "queue_wait_mean_s": _mean(self.queue_wait_s[m]),
            "gpu_utilization": self.gpu_utilization(),
            "mean_batch_tokens": _mean(b["token_load"][in_window].astype(float)),
            "mean_batch_requests": _mean(
                (b["num_prefills"][in_window] + b["num_decodes"][in_window]).astype(float)),
            "num_preemptions": int(self.preemptions[m].sum()),
        }
        if self.config.gpus.prefix_caching:
            cached = 0 if self.cached_tokens is None else int(self.cached_tokens[m].sum())
            prompt = int(self.prompt_tokens[m].sum())
            out["prefix_hit_rate"] = cached / prompt if prompt else float("nan")
        if self.config.slo is not None:
            met = self.slo_met()[m]
            out["slo_attainment"] = _mean(met.astype(float))
            out["goodput_rps"] = float(met.sum()) / span if span > 0 else float("nan")
            classes = self.request_slo_class[m]
            for k, name in enumerate(self.config.slo.class_names):
                mine = met[classes == k]
                out[f"slo_attainment_{name}"] = _mean(mine.astype(float))
                out[f"goodput_rps_{name}"] = (float(mine.sum()) / span if span > 0
                                              else float("nan"))
        return out

    # ---------------------------------------------------------------- timeline
    def to_chrome_trace(self, path: str | os.PathLike[str]) -> Path:
        """Write the run's timeline as Chrome / Perfetto trace JSON; returns the path.

        The JSON object has ``traceEvents`` (the Trace Event Format), viewable in
        https://ui.perfetto.dev or chrome://tracing. Timestamps are simulated time in
        microseconds. Process 1, "GPUs", has one track (``tid`` = GPU id) with one complete
        event (``ph: "X"``, ``ts`` = start, ``dur`` = end - start) per batch, named like
        ``"prefill 312 + 14 decodes"``, with args ``tokens`` (token load), ``prefill_tokens``,
        ``requests`` (prefill chunks + decodes), ``num_prefills``, ``num_decodes``. Under
        disaggregation, process 2, "KV transfers", has one complete event per transfer
        (``"KV r17 0->2"``; args request, src, dst, bytes), from its start to its landing;
        transfers that overlap in time go on separate lanes (``tid``) so that no two events
        of a track overlap. Metadata events (``ph: "M"``) name the processes and tracks.
        """
        import json

        b = self.batch_columns
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "GPUs"}}]
        dis = self.config.disaggregation
        roles = (["mixed"] * self.num_gpus if dis is None
                 else ["prefill"] * dis.prefill.count + ["decode"] * dis.decode.count)
        for g in range(self.num_gpus):
            label = f"GPU {g}" if roles[g] == "mixed" else f"GPU {g} ({roles[g]})"
            events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": g,
                           "args": {"name": label}})
        columns = ("gpu", "start_s", "end_s", "prefill_tokens", "num_prefills", "num_decodes",
                   "token_load")
        for g, start, end, ptok, npre, ndec, load in zip(
                *(b[c].tolist() for c in columns), strict=True):
            parts = ([f"prefill {ptok}"] if npre else []) + (
                [f"{ndec} decode{'s' if ndec != 1 else ''}"] if ndec else [])
            events.append({
                "name": " + ".join(parts) or "empty", "cat": "batch", "ph": "X",
                "ts": start * 1e6, "dur": (end - start) * 1e6, "pid": 1, "tid": g,
                "args": {"tokens": load, "prefill_tokens": ptok, "requests": npre + ndec,
                         "num_prefills": npre, "num_decodes": ndec}})
        tr = self.transfer_columns
        if dis is not None:
            events.append({"name": "process_name", "ph": "M", "pid": 2, "tid": 0,
                           "args": {"name": "KV transfers"}})
            lane_free: list[float] = []  # per lane, the end of its last transfer
            rows = sorted(zip(*(tr[c].tolist() for c in (
                "start_s", "end_s", "request", "src", "dst", "bytes")), strict=True)
                ) if tr else []
            for start, end, r, src, dst, nbytes in rows:
                lane = next((i for i, free in enumerate(lane_free) if free <= start), None)
                if lane is None:
                    lane = len(lane_free)
                    lane_free.append(end)
                    events.append({"name": "thread_name", "ph": "M", "pid": 2, "tid": lane,
                                   "args": {"name": f"lane {lane}"}})
                lane_free[lane] = end
                events.append({
                    "name": f"KV r{r} {src}->{dst}", "cat": "kv_transfer", "ph": "X",
                    "ts": start * 1e6, "dur": (end - start) * 1e6, "pid": 2, "tid": lane,
                    "args": {"request": r, "src": src, "dst": dst, "bytes": nbytes}})
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        trace = {"traceEvents": events, "displayTimeUnit": "ms",
                 "otherData": {"scheduler": self.policy_name, "seed": self.seed,
                               "time_unit": "ts and dur in microseconds of simulated time"}}
        out.write_text(json.dumps(trace), encoding="utf-8")
        return out

    def __repr__(self) -> str:
        return (f"RunResult(scheduler={self.policy_name!r}, seed={self.seed}, "
                f"requests={self.arrival_s.size}, batches={self.batch_columns['gpu'].size})")
