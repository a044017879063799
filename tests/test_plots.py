"""Plots on small real runs (Agg backend): each returns a Figure whose every Axes has x and y
labels with a unit in parentheses and a legend when it holds several series; the binned time
series against a hand-computed run and a brute-force loop."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from llm_serving_env import plots  # noqa: E402
from llm_serving_env.analysis.capacity import capacity  # noqa: E402
from llm_serving_env.analysis.comparison import compare_policies  # noqa: E402
from llm_serving_env.analysis.sweep import summarize_sweep, sweep  # noqa: E402
from llm_serving_env.config.files import load_config
from llm_serving_env.sim.result import RunResult  # noqa: E402
from llm_serving_env.sim.simulate import simulate  # noqa: E402
from tests.helpers import make_config  # noqa: E402

UNIT = re.compile(r"\(.+\)")


@pytest.fixture(scope="module")
def small():
    return load_config("default").replace({"num_requests": 600, "warmup_requests": 60})


@pytest.fixture(scope="module")
def runs(small):
    return {p: simulate(small, policy=p, seed=0) for p in ("hybrid", "orca")}


@pytest.fixture(scope="module")
def two_gpus(small):
    return simulate(small.replace({"gpus.count": 2, "gpus.router": "round_robin",
                                   "workload.arrival.rate_per_s": 10.0}), seed=1)


def check_figure(fig) -> None:
    """Every Axes: x and y labels with a unit in parentheses; a legend when it holds more than
    one labelled line or collection (error-bar caps and CI bands of one series are unlabelled
    parts of it)."""
    assert isinstance(fig, Figure)
    assert fig.axes
    for ax in fig.axes:
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            assert label.strip() and UNIT.search(label), (label, ax.get_title())
        series = [a for a in [*ax.lines, *ax.collections]
                  if not a.get_label().startswith("_")]
        if len(series) > 1:
            assert ax.get_legend() is not None, ax.get_ylabel()
    fig.canvas.draw()  # renders without error
    plt.close(fig)


def test_no_plot_shows_a_window(monkeypatch, runs):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() called"))
    check_figure(plots.plot_cdf(runs))


def test_plot_comparison_still_works(small):
    long = compare_policies(small, ["hybrid", "orca"], num_seeds=2, progress=False, workers=1)
    check_figure(plots.plot_comparison(long))


def test_latency_throughput_has_a_ci_band_per_policy(small):
    df = sweep(small, {"workload.arrival.rate_per_s": [2.0, 4.0, 6.0]}, ["hybrid", "orca"], 3,
               progress=False, workers=1)
    fig = plots.plot_latency_throughput(summarize_sweep(df))
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["hybrid", "orca"]
    assert len(ax.collections) == 2  # one band per curve
    assert ax.get_xlabel() == "arrival rate (requests/s)"
    assert ax.get_ylabel() == "TTFT P95 (s)"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [2.0, 4.0, 6.0])
    check_figure(fig)
    # a second grid column splits the curves; a missing metric is a clear error
    df2 = sweep(small, {"workload.arrival.rate_per_s": [2.0, 4.0],
                        "scheduler.token_budget": [256, 512]}, ["hybrid"], 2,
                progress=False, workers=1)
    fig = plots.plot_latency_throughput(summarize_sweep(df2), metric="tbt_p95_s", logy=True)
    assert [line.get_label() for line in fig.axes[0].lines] == [
        "hybrid, scheduler.token_budget=256", "hybrid, scheduler.token_budget=512"]
    check_figure(fig)
    with pytest.raises(ValueError, match="nope"):
        plots.plot_latency_throughput(summarize_sweep(df), metric="nope")


@pytest.mark.parametrize("metric", ["ttft", "tbt", "e2e"])
@pytest.mark.parametrize("logx", [False, True])
def test_cdf_per_policy(runs, metric, logx):
    fig = plots.plot_cdf(runs, metric=metric, logx=logx)
    ax = fig.axes[0]
    curves = [line for line in ax.lines if line.get_label() in runs]
    assert len(curves) == 2
    for line in curves:
        y = np.asarray(line.get_ydata())
        assert y[-1] == pytest.approx(1.0) and np.all(np.diff(y) >= 0)
    assert (ax.get_xscale() == "log") == logx
    check_figure(fig)


def test_over_time_and_gpu_timeseries(runs, two_gpus):
    check_figure(plots.plot_over_time(runs["hybrid"], bin_s=5.0))
    check_figure(plots.plot_over_time(runs["orca"]))  # automatic bins
    check_figure(plots.plot_gpu_timeseries(runs["hybrid"], bin_s=5.0))
    fig = plots.plot_gpu_timeseries(two_gpus, bin_s=2.0, per_gpu=True)
    assert [line.get_label() for line in fig.axes[0].lines] == ["GPU 0", "GPU 1"]
    check_figure(fig)


def test_batch_timeline_stacks_prefill_and_decode(runs, two_gpus):
    result = runs["hybrid"]
    b = result.batches
    t0, t1 = float(b["start_s"].iloc[20]), float(b["end_s"].iloc[40])
    fig = plots.plot_batch_timeline(result, t0, t1)
    ax = fig.axes[0]
    prefill, decode = ax.containers
    shown = b[(b["end_s"] > t0) & (b["start_s"] < t1)]
    assert len(prefill) == len(decode) == len(shown)
    heights = np.array([p.get_height() + d.get_height() for p, d in zip(prefill, decode,
                                                                       strict=True)])
    np.testing.assert_allclose(heights, shown["token_load"])
    np.testing.assert_allclose([d.get_y() for d in decode], shown["prefill_tokens"])
    check_figure(fig)
    fig = plots.plot_batch_timeline(two_gpus, 10.0, 12.0, gpus=[1, 0])
    assert [a.get_ylabel() for a in fig.axes] == ["GPU 1 batch (tokens)",
                                                  "GPU 0 batch (tokens)"]
    check_figure(fig)
    with pytest.raises(ValueError, match="gpus"):
        plots.plot_batch_timeline(two_gpus, 0.0, 1.0, gpus=[2])


def test_capacity_bars_from_real_searches():
    cfg = load_config("configs/mm1.yaml").replace({
        "num_requests": 1500, "warmup_requests": 150,
        "slo": {"ttft_ms": 4000.0, "tbt_ms": 1.0e9}})
    results = [capacity(cfg, policy=p, replications=3, rel_tol=0.1, progress=False)
               for p in ("request_level", "orca")]
    fig = plots.plot_capacity_bars(results)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["request_level", "orca"]
    assert [p.get_height() for p in ax.patches] == pytest.approx(
        [r.rate_per_s for r in results])
    check_figure(fig)
    frame = pd.DataFrame([r.to_dict() for r in results])
    check_figure(plots.plot_capacity_bars(frame))


def test_welch_marks_the_mser_cut(small):
    reps = np.array([simulate(small, seed=s).e2e_s[:400] for s in range(4)])
    fig = plots.plot_welch(reps, window=10)
    ax = fig.axes[0]
    from llm_serving_env.analysis.stats import mser_truncation

    cut = mser_truncation(reps.mean(axis=0))
    assert any(line.get_label() == f"MSER-5 cut: {cut}" for line in ax.lines)
    check_figure(fig)


def test_axis_label_units():
    assert plots.axis_label("ttft_p99_s") == "TTFT P99 (s)"
    assert plots.axis_label("goodput_rps") == "goodput (requests/s)"
    assert plots.axis_label("service.c_ms") == "service.c_ms (ms)"
    assert plots.axis_label("gpus.router") == "gpus.router (config units)"


# ------------------------------------------------------------------------------ time series


def hand_run() -> RunResult:
    """Two requests of 3 output tokens on one GPU, four batches:

    b0 [0.5, 1.0] prefill r0 (100 tokens)            -> r0 token 1 at 1.0
    b1 [1.2, 1.6] prefill r1 (50) + decode r0        -> r1 token 1, r0 token 2 at 1.6
    b2 [1.6, 2.4] decode r0 + decode r1              -> r0 token 3 (done), r1 token 2 at 2.4
    b3 [2.4, 3.0] decode r1                          -> r1 token 3 (done) at 3.0
    """
    return RunResult(
        config=make_config(), seed=0, warmup=0,
        arrival_s=np.array([0.2, 1.1]),
        prompt_tokens=np.array([100, 50]),
        output_tokens=np.array([3, 3]),
        first_scheduled_s=np.array([0.5, 1.2]),
        first_token_s=np.array([1.0, 1.6]),
        finish_s=np.array([2.4, 3.0]),
        max_tbt_s=np.array([0.8, 0.8]),
        gpu=np.array([0, 0]), first_gpu=np.array([0, 0]), preemptions=np.array([0, 0]),
        batch_columns={
            "gpu": np.array([0, 0, 0, 0]),
            "start_s": np.array([0.5, 1.2, 1.6, 2.4]),
            "end_s": np.array([1.0, 1.6, 2.4, 3.0]),
            "prefill_tokens": np.array([100, 50, 0, 0]),
            "num_prefills": np.array([1, 1, 0, 0]),
            "num_decodes": np.array([0, 1, 2, 1]),
            "token_load": np.array([100, 51, 2, 1]),
        },
        # r0: 1.0 -> 1.6 -> 2.4 ; r1: 1.6 -> 2.4 -> 3.0 (gap ends at batches 1, 2, 2, 3)
        tbt_gap_run_s=np.array([0.6, 0.8, 0.6]),
        tbt_gap_run_length=np.array([1, 2, 1]),
        tbt_gap_run_batch=np.array([1, 2, 3]),
        num_gpus=1,
    )


def test_time_series_of_a_hand_computed_run():
    ts = plots.time_series(hand_run(), bin_s=1.0)
    assert len(ts) == 3  # [0, 1), [1, 2), [2, 3] (the last event, 3.0, closes the last bin)
    expected = {
        "t_start_s": [0.0, 1.0, 2.0],
        "t_end_s": [1.0, 2.0, 3.0],
        "arrivals": [1, 1, 0],
        "completions": [0, 0, 2],
        "throughput_rps": [0.0, 0.0, 2.0],
        "tokens": [0, 3, 3],  # bin 1: two first tokens + one decode; bin 2: three decodes
        "first_tokens": [0, 2, 0],
        "ttft_mean_s": [np.nan, 0.65, np.nan],  # TTFTs 0.8 and 0.5
        "ttft_p95_s": [np.nan, 0.5 + 0.95 * 0.3, np.nan],  # linear between 0.5 and 0.8
        "tbt_gaps": [0, 1, 3],
        "tbt_mean_s": [np.nan, 0.6, 2.2 / 3],
        "tbt_p95_s": [np.nan, 0.6, 0.8],
        "batches": [1, 2, 1],  # by start: 0.5 | 1.2, 1.6 | 2.4
        "mean_batch_tokens": [100.0, 26.5, 1.0],
        "mean_batch_requests": [1.0, 2.0, 1.0],
        "busy_s": [0.5, 0.8, 1.0],  # b2 [1.6, 2.4] is split 0.4 / 0.4
        "gpu_utilization": [0.5, 0.8, 1.0],
    }
    for column, values in expected.items():
        np.testing.assert_allclose(ts[column].to_numpy(float), values, atol=1e-12,
                                   err_msg=column)


def test_time_series_last_bin_is_cut_at_the_last_event():
    ts = plots.time_series(hand_run(), bin_s=0.7)
    np.testing.assert_allclose(ts["t_end_s"], [0.7, 1.4, 2.1, 2.8, 3.0])
    np.testing.assert_allclose(ts["width_s"], [0.7, 0.7, 0.7, 0.7, 0.2])
    np.testing.assert_array_equal(ts["completions"], [0, 0, 0, 1, 1])
    assert ts["busy_s"].sum() == pytest.approx(2.3)
    assert ts["gpu_utilization"].iloc[-1] == pytest.approx(1.0)  # b3 covers [2.8, 3.0]
    assert ts["throughput_rps"].iloc[-1] == pytest.approx(1 / 0.2)


def test_time_series_matches_a_brute_force_loop(two_gpus):
    r, bin_s = two_gpus, 0.37
    for gpu in (None, 1):
        ts = plots.time_series(r, bin_s, gpu=gpu)
        edges = np.append(ts["t_start_s"].to_numpy(), ts["t_end_s"].iloc[-1])
        n = len(ts)

        def which(t, edges=edges, n=n):
            return min(int(np.searchsorted(edges, t, side="right")) - 1, n - 1)

        b = r.batch_columns
        on = np.ones(b["gpu"].size, bool) if gpu is None else b["gpu"] == gpu
        busy = np.zeros(n)
        for s, e in zip(b["start_s"][on], b["end_s"][on], strict=True):
            for k in range(n):
                busy[k] += max(0.0, min(e, edges[k + 1]) - max(s, edges[k]))
        np.testing.assert_allclose(ts["busy_s"], busy, atol=1e-9)
        done = r.finish_s if gpu is None else r.finish_s[r.gpu == gpu]
        completions = np.zeros(n, int)
        for t in done:
            completions[which(t)] += 1
        np.testing.assert_array_equal(ts["completions"], completions)
        first = np.ones(r.arrival_s.size, bool) if gpu is None else r.first_gpu == gpu
        per_bin: dict[int, list[float]] = {}
        for t, v in zip(r.first_token_s[first], r.ttft_s[first], strict=True):
            per_bin.setdefault(which(t), []).append(v)
        for k, values in per_bin.items():
            assert ts["ttft_mean_s"].iloc[k] == pytest.approx(np.mean(values))
            assert ts["ttft_p95_s"].iloc[k] == pytest.approx(np.quantile(values, 0.95))
        gap_t = b["end_s"][r.tbt_gap_batch]
        keep = np.ones(gap_t.size, bool) if gpu is None else b["gpu"][r.tbt_gap_batch] == gpu
        gaps: dict[int, list[float]] = {}
        for t, v in zip(gap_t[keep], r.tbt_gaps_s[keep], strict=True):
            gaps.setdefault(which(t), []).append(v)
        for k, values in gaps.items():
            assert ts["tbt_p95_s"].iloc[k] == pytest.approx(np.quantile(values, 0.95))
        if gpu is None:  # every output token is counted once: first tokens + decodes
            assert ts["tokens"].sum() == r.output_tokens.sum()
            assert ts["completions"].sum() == r.arrival_s.size
    with pytest.raises(ValueError, match="bin_s"):
        plots.time_series(r, 0.0)


def test_a_run_is_titled_with_the_policy_that_ran_not_the_configs():
    """RunResult carries its policy's name: a config naming hybrid run with orca is orca's."""
    cfg = load_config("default").replace({"num_requests": 60, "warmup_requests": 0})
    assert cfg.scheduler.name == "hybrid"
    res = simulate(cfg, policy="orca", seed=0)
    assert res.policy_name == "orca" and "orca" in repr(res)
    fig = plots.plot_batch_timeline(res, 0.0, 5.0)
    assert "orca" in fig.axes[0].get_title() and "hybrid" not in fig.axes[0].get_title()
    assert simulate(cfg, seed=0).policy_name == "hybrid"
    plt.close(fig)
