"""KV transfers on shared links (processor sharing) and the Chrome/Perfetto timeline export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import make_config
from test_engine import workload
from test_invariants import check_invariants

import llm_serving_env as lse

# Service in these tests: S(b) = 10 ms + 1 ms * b (c = 10, a = 1, b0 = 0), deterministic.


def split(prefill: int = 1, decode: int = 1, **net) -> dict:
    return {"gpus.count": prefill + decode,
            "disaggregation": {"prefill": {"count": prefill}, "decode": {"count": decode},
                               **net}}


def transfers(res: lse.RunResult) -> dict[int, tuple[float, float]]:
    t = res.transfer_columns
    return {int(r): (s, e) for r, s, e in zip(t["request"], t["start_s"], t["end_s"],
                                              strict=True)}


# ------------------------------------------------------------------------------ transfer times


def test_one_transfer_is_bytes_over_bandwidth_plus_latency_with_model_bytes():
    cfg = make_config(num_requests=1, model="llama3_70b",
                      **split(bandwidth_gb_per_s=10.0, latency_ms=1.0))
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0], [100], [2]))
    # prefill: 10 + 100 ms -> 0.110 s. KV: 100 tokens * 327,680 B = 32.768 MB over 10 GB/s
    # = 3.2768 ms, + 1 ms latency -> lands at 0.1142768 s; one decode of 11 ms.
    t = res.transfer_columns
    assert t["request"].tolist() == [0] and (t["src"][0], t["dst"][0]) == (0, 1)
    assert t["bytes"][0] == 32_768_000
    assert t["start_s"][0] == pytest.approx(0.110)
    assert t["end_s"][0] == pytest.approx(0.1142768)
    assert res.finish_s[0] == pytest.approx(0.1252768)


def test_two_simultaneous_equal_transfers_share_the_link():
    # both prompts in one batch: 10 + 200 ms -> both transfers start at 0.210 s with 1e8 B
    # each (100 tokens * 1e6 B); alone one would take 0.1 s, together each takes
    # 2 * 1e8 / 1e9 = 0.2 s, + 2 ms latency -> both land at 0.412 s.
    cfg = make_config(num_requests=2, **split(kv_bytes_per_token=1e6, bandwidth_gb_per_s=1.0,
                                              latency_ms=2.0))
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0, 0.0], [100, 100], [2, 2]))
    tr = transfers(res)
    for r in (0, 1):
        assert tr[r][0] == pytest.approx(0.210)
        assert tr[r][1] == pytest.approx(0.210 + 2 * 1e8 / 1e9 + 0.002)


def test_staggered_transfers_by_hand():
    # A (100 tokens, 1e8 B) finishes prefill at 0.110 s; B (arrives 0.05 s, 50 tokens, 5e7 B)
    # is prefilled next, 0.110 -> 0.170 s. Link 1 GB/s:
    #   0.110-0.170  A alone sends 6e7 B (4e7 left);
    #   0.170-0.250  both at 0.5 GB/s: A's 4e7 B drain at 0.250, B has sent 4e7 (1e7 left);
    #   0.250-0.260  B alone sends its last 1e7 B.
    # + 2 ms latency: A lands at 0.252 s, B at 0.262 s (A alone would have landed at 0.212).
    cfg = make_config(num_requests=2, **split(kv_bytes_per_token=1e6, bandwidth_gb_per_s=1.0,
                                              latency_ms=2.0))
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0, 0.05], [100, 50], [2, 2]))
    tr = transfers(res)
    assert tr[0] == pytest.approx((0.110, 0.252))
    assert tr[1] == pytest.approx((0.170, 0.262))
    # decode GPU: A decodes 0.252-0.263; B landed at 0.262 and decodes 0.263-0.274
    np.testing.assert_allclose(res.finish_s, [0.263, 0.274])


@pytest.mark.parametrize(("links", "each_s"), [("per_source", 0.1), ("shared", 0.2)])
def test_links_per_source_or_shared(links, each_s):
    # two prefill GPUs (round robin) each finish a 100-token prefill at 0.110 s and send 1e8 B
    # at 1 GB/s: on their own links 0.1 s each, on one shared link 0.2 s each.
    cfg = make_config(num_requests=2, **{"gpus.router": "round_robin"},
                      **split(prefill=2, kv_bytes_per_token=1e6, bandwidth_gb_per_s=1.0,
                              latency_ms=2.0, links=links))
    res = lse.simulate(cfg, "hybrid", workload=workload([0.0, 0.0], [100, 100], [2, 2]))
    tr = transfers(res)
    assert sorted(res.transfer_columns["src"].tolist()) == [0, 1]
    for r in (0, 1):
        assert tr[r] == pytest.approx((0.110, 0.110 + each_s + 0.002))


def test_busy_link_is_work_conserving():
    # many transfers on one shared link, all started before the first lands: the last byte
    # leaves at (first start) + total bytes / bandwidth, whatever the order of arrivals
    cfg = make_config(num_requests=6, **split(prefill=1, kv_bytes_per_token=1e6,
                                              bandwidth_gb_per_s=0.1, links="shared"))
    arrivals = [0.0, 0.01, 0.02, 0.2, 0.21, 0.4]
    prompts = [40, 10, 30, 20, 50, 10]
    res = lse.simulate(cfg, "hybrid", workload=workload(arrivals, prompts, [2] * 6))
    t = res.transfer_columns
    assert t["start_s"].max() < t["end_s"].min()  # one busy period
    assert t["end_s"].max() == pytest.approx(t["start_s"].min() + t["bytes"].sum() / 1e8)


@pytest.mark.parametrize("links", ["per_source", "shared"])
def test_invariants_hold_with_congested_links(links):
    cfg = make_config(**{
        "num_requests": 150, "workload.arrival.rate_per_s": 40.0,
        "workload.prompt_tokens": {"dist": "uniform", "low": 8, "high": 64},
        "workload.output_tokens": {"dist": "geometric", "mean": 6, "max": 20},
        "gpus.kv_capacity_tokens": 512, "gpus.kv_block_tokens": 16},
        **split(prefill=2, decode=2, kv_bytes_per_token=1e6, bandwidth_gb_per_s=1.0,
                latency_ms=1.0, links=links))
    res = check_invariants(cfg, "hybrid", seed=5)
    t = res.transfer_columns
    assert t["request"].size >= 100 and (t["end_s"] > t["start_s"]).all()


# ------------------------------------------------------------------------------ Chrome trace


def load_trace(res: lse.RunResult, tmp_path) -> list[dict]:
    path = res.to_chrome_trace(tmp_path / "sub" / "trace.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data["traceEvents"], list)
    events = data["traceEvents"]
    for ev in events:  # the Trace Event Format's required keys
        assert {"name", "ph", "pid", "tid"} <= set(ev), ev
        if ev["ph"] == "X":
            assert {"ts", "dur"} <= set(ev) and ev["ts"] >= 0 and ev["dur"] >= 0
            assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
        else:
            assert ev["ph"] == "M" and ev["name"] in ("process_name", "thread_name")
            assert isinstance(ev["args"]["name"], str)
    return events


def test_chrome_trace_has_one_event_per_batch(tmp_path):
    cfg = make_config(num_requests=40, **{"workload.arrival.rate_per_s": 20.0,
                                          "gpus.count": 2})
    res = lse.simulate(cfg, "hybrid", seed=3)
    events = load_trace(res, tmp_path)
    batches = [e for e in events if e["ph"] == "X"]
    b = res.batches
    assert len(batches) == len(b) and all(e["pid"] == 1 and e["cat"] == "batch"
                                          for e in batches)
    np.testing.assert_allclose([e["ts"] for e in batches], b["start_s"] * 1e6)
    np.testing.assert_allclose([e["dur"] for e in batches], b["duration_s"] * 1e6)
    assert [e["tid"] for e in batches] == b["gpu"].tolist()
    for e, row in zip(batches, b.itertuples(), strict=True):
        assert e["args"]["tokens"] == row.token_load
        assert e["args"]["requests"] == row.num_prefills + row.num_decodes
        name = " + ".join(([f"prefill {row.prefill_tokens}"] if row.num_prefills else [])
                          + ([f"{row.num_decodes} decode" + "s" * (row.num_decodes != 1)]
                             if row.num_decodes else []))
        assert e["name"] == name
    names = {e["name"] for e in batches}
    assert any(" + " in n for n in names)  # e.g. "prefill 100 + 1 decode"
    tracks = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert tracks == {0: "GPU 0", 1: "GPU 1"}


def test_chrome_trace_shows_transfers_under_disaggregation(tmp_path):
    cfg = make_config(num_requests=40, **{"workload.arrival.rate_per_s": 30.0},
                      **split(prefill=1, decode=2, kv_bytes_per_token=2e6,
                              bandwidth_gb_per_s=1.0, latency_ms=1.0))
    res = lse.simulate(cfg, "hybrid", seed=1)
    events = load_trace(res, tmp_path)
    moves = [e for e in events if e["ph"] == "X" and e["pid"] == 2]
    t = res.transfer_columns
    assert len(moves) == t["request"].size == 40  # every request (3 output tokens) moves
    assert len([e for e in events if e["ph"] == "X" and e["pid"] == 1]) == len(res.batches)
    order = np.argsort(t["start_s"], kind="stable")
    by_request = {e["args"]["request"]: e for e in moves}
    for i in order:
        e = by_request[int(t["request"][i])]
        assert e["ts"] == pytest.approx(t["start_s"][i] * 1e6)
        assert e["dur"] == pytest.approx((t["end_s"][i] - t["start_s"][i]) * 1e6)
        assert e["name"] == f"KV r{t['request'][i]} {t['src'][i]}->{t['dst'][i]}"
    lanes: dict[int, list[tuple[float, float]]] = {}
    for e in moves:
        lanes.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in lanes.values():  # no two events of one track overlap
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert len(lanes) > 1  # this load makes transfers overlap
    labels = {e["args"]["name"] for e in events if e["ph"] == "M" and e["pid"] == 1}
    assert {"GPU 0 (prefill)", "GPU 1 (decode)", "GPU 2 (decode)"} <= labels
