"""Trace replay: readers, arrival replay, trace length distributions, errors, presets.

The per-minute and per-bucket checks recompute the expected numbers with pandas directly
from the raw files, independently of ``llm_serving_env.workload.traces``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import llm_serving_env as lse
from llm_serving_env.config.files import load_config
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.resources import RESOURCES_DIR
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.workload import traces as traces_module
from llm_serving_env.workload.arrivals import (
    PoissonArrival,
    TraceArrival,
    arrival_process_from_dict,
)
from llm_serving_env.workload.config import WorkloadConfig
from llm_serving_env.workload.generate import generate_workload
from llm_serving_env.workload.lengths import TraceLength, length_distribution_from_dict
from llm_serving_env.workload.traces import load_trace, resolve_trace_path

TRACES = RESOURCES_DIR / "traces"
CONV = "traces/AzureLLMInferenceTrace_conv.csv"
CODE = "traces/AzureLLMInferenceTrace_code.csv"
MOONCAKE = "traces/mooncake_conversation_trace.jsonl"
SHAREGPT = "traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv"


def replay_workload(path: str, **arrival: object) -> WorkloadConfig:
    """Real times and real lengths of ``path``, row by row."""
    return WorkloadConfig(
        TraceArrival(path, **arrival),
        TraceLength(path, "prompt", "replay"),
        TraceLength(path, "output", "replay"),
    )


def error_message(func, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        func(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------ replay


@pytest.mark.parametrize("path", [CONV, CODE])
@pytest.mark.parametrize("num_requests", [None, 5000])
def test_azure_replay_has_the_files_per_minute_counts(path: str, num_requests) -> None:
    raw = pd.read_csv(RESOURCES_DIR / path)
    stamps = pd.to_datetime(raw["TIMESTAMP"])
    if num_requests is not None:
        stamps = stamps.iloc[:num_requests]
    minute = ((stamps - stamps.iloc[0]).dt.total_seconds() // 60).astype(int)
    expected = minute.value_counts().sort_index()

    n = len(raw) if num_requests is None else num_requests
    w = generate_workload(replay_workload(path), n, seed=123)
    got = pd.Series((w.arrival_s // 60).astype(int)).value_counts().sort_index()
    assert len(w) == n
    np.testing.assert_array_equal(got.index.to_numpy(), expected.index.to_numpy())
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    # the lengths are the file's own, in order
    np.testing.assert_array_equal(w.prompt_tokens, raw["ContextTokens"].to_numpy()[:n])
    np.testing.assert_array_equal(w.output_tokens, raw["GeneratedTokens"].to_numpy()[:n])
    assert w.arrival_s[0] == 0.0


def test_azure_conv_preset_replays_all_19366_real_requests() -> None:
    cfg = load_config("azure_conv")
    assert cfg.num_requests == 19366
    assert cfg.service.preset == "llama3_70b_a100_tp2"
    raw = pd.read_csv(TRACES / "AzureLLMInferenceTrace_conv.csv")
    w = generate_workload(cfg.workload, cfg.num_requests, seed=0)
    seconds = (pd.to_datetime(raw["TIMESTAMP"]) - pd.to_datetime(raw["TIMESTAMP"]).iloc[0])
    np.testing.assert_allclose(w.arrival_s, seconds.dt.total_seconds().to_numpy(),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(w.prompt_tokens, raw["ContextTokens"].to_numpy())
    assert cfg.workload.prompt_tokens.max_value() == 14050
    assert cfg.gpus.max_batch_tokens >= cfg.scheduler.params["token_budget"]


def test_mooncake_replay_keeps_bucket_counts_and_spreads_within_buckets() -> None:
    raw = pd.read_json(RESOURCES_DIR / MOONCAKE, lines=True)
    ms = raw["timestamp"].to_numpy()
    buckets = np.unique(ms)
    cfg = replay_workload(MOONCAKE)
    a = generate_workload(cfg, len(raw), seed=1)
    b = generate_workload(cfg, len(raw), seed=1)
    c = generate_workload(cfg, len(raw), seed=2)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)  # seeded
    assert not np.array_equal(a.arrival_s, c.arrival_s)  # the seed moves times in buckets
    assert np.all(np.diff(a.arrival_s) >= 0)
    # row i stays in row i's bucket: [t_i, t_i + 3 s)
    start = (ms - ms[0]) / 1000.0
    assert np.all(a.arrival_s >= start - 1e-9)
    assert np.all(a.arrival_s < start + 3.0)
    # the count in every bucket is the file's count (bucket edges from the distinct stamps)
    edges = np.append((buckets - ms[0]) / 1000.0, np.inf)
    got = np.histogram(a.arrival_s, bins=edges)[0]
    expected = raw.groupby("timestamp").size().to_numpy()
    np.testing.assert_array_equal(got, expected)
    # spreading removes the quantisation: hardly any equal times remain
    assert np.mean(np.diff(a.arrival_s) == 0) < 1e-3
    np.testing.assert_array_equal(a.prompt_tokens, raw["input_length"].to_numpy())
    np.testing.assert_array_equal(a.output_tokens, raw["output_length"].to_numpy())
    # the first arrivals only: the same times as the full replay's prefix
    np.testing.assert_array_equal(generate_workload(cfg, 100, seed=1).arrival_s,
                                  a.arrival_s[:100])


def test_mean_rate_time_scale_and_rate_rescaling() -> None:
    raw = pd.read_csv(TRACES / "AzureLLMInferenceTrace_conv.csv")
    stamps = pd.to_datetime(raw["TIMESTAMP"])
    span = (stamps.iloc[-1] - stamps.iloc[0]).total_seconds()
    native = (len(raw) - 1) / span
    base = TraceArrival(CONV)
    assert base.rate_per_s == pytest.approx(native, rel=1e-12)
    assert base.num_rows == len(raw)
    times = base.sample_times(np.random.default_rng(0), 100)

    slow = TraceArrival(CONV, time_scale=2.0)
    assert slow.rate_per_s == pytest.approx(native / 2)
    np.testing.assert_allclose(slow.sample_times(None, 100), 2.0 * times)

    fast = arrival_process_from_dict({"process": "trace", "path": CONV, "rate_per_s": 11.0})
    assert fast.rate_per_s == 11.0
    all_times = fast.sample_times(None, len(raw))
    assert (len(raw) - 1) / all_times[-1] == pytest.approx(11.0, rel=1e-12)

    message = error_message(arrival_process_from_dict,
                            {"process": "trace", "path": CONV, "rate_per_s": 2.0,
                             "time_scale": 3.0}, "workload.arrival")
    assert "workload.arrival.time_scale = 3.0" in message and "rate_per_s" in message
    message = error_message(arrival_process_from_dict,
                            {"process": "trace", "path": CONV, "time_scale": 0}, "a")
    assert "a.time_scale = 0" in message


def test_more_requests_than_the_trace_is_an_error_naming_both_numbers() -> None:
    cfg = load_config("azure_conv").replace(num_requests=20000)
    message = error_message(lse.simulate, cfg)
    assert "20000" in message and "19366" in message
    message = error_message(TraceLength(CODE, "output", "replay").sample, None, 9000)
    assert "9000" in message and "8819" in message
    # i.i.d. sampling has no such limit
    assert TraceLength(CODE, "output").sample(np.random.default_rng(0), 9000).shape == (9000,)


def test_capacity_style_rate_override_works_on_a_trace() -> None:
    cfg = load_config("azure_conv")
    faster = cfg.replace({"workload.arrival.rate_per_s": 8.0})
    assert faster.workload.arrival.rate_per_s == 8.0
    assert SimConfig.from_dict(faster.to_dict()) == faster


# ------------------------------------------------------------------------------ lengths


def test_trace_length_mean_max_and_iid_sampling() -> None:
    raw = pd.read_csv(TRACES / "sharegpt_8k_filtered_stats_llama2_tokenizer.csv")
    for column, name in (("prompt", "num_prefill_tokens"), ("output", "num_decode_tokens")):
        dist = length_distribution_from_dict({"dist": "trace", "path": SHAREGPT,
                                              "column": column}, "x")
        values = raw[name].to_numpy()
        assert dist.mean() == pytest.approx(values.mean(), rel=1e-12)
        assert dist.max_value() == values.max()
        draws = dist.sample(np.random.default_rng(5), 200_000)
        assert draws.dtype == np.int64 and np.isin(draws, values).all()
        se = values.std() / np.sqrt(draws.size)
        assert abs(draws.mean() - values.mean()) < 4 * se
    mooncake = TraceLength(MOONCAKE, "prompt")
    assert mooncake.max_value() == 126195
    assert mooncake.to_dict() == {"dist": "trace", "path": MOONCAKE, "column": "prompt",
                                  "order": "iid"}


def test_trace_length_validation() -> None:
    message = error_message(length_distribution_from_dict,
                            {"dist": "trace", "path": SHAREGPT, "column": "decode"}, "w.p")
    assert "w.p.column = 'decode'" in message and "'prompt'" in message
    message = error_message(length_distribution_from_dict,
                            {"dist": "trace", "path": SHAREGPT, "column": "prompt",
                             "order": "shuffle"}, "w.p")
    assert "w.p.order" in message and "'replay'" in message
    message = error_message(length_distribution_from_dict,
                            {"dist": "trace", "path": SHAREGPT}, "w.p")
    assert "missing required key 'column'" in message


def test_lengths_only_file_is_not_an_arrival_process() -> None:
    message = error_message(arrival_process_from_dict, {"process": "trace", "path": SHAREGPT},
                            "workload.arrival")
    assert "workload.arrival.path" in message and "no arrival times" in message


# ------------------------------------------------------------------------------ files


AZURE_OK = ("TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-11-16 18:17:03.9799600,100,10\n"
            "2023-11-16 18:17:04.0319600,200,20\n")


def test_bad_timestamp_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(AZURE_OK + "2023-11-16 18:17:05.0,300,30\nyesterday noon,1,1\n")
    message = error_message(TraceArrival, str(path))
    assert str(path) in message and "line 5" in message and "'yesterday noon'" in message
    # the same through a whole config: the field path leads the message
    cfg = {"num_requests": 2, "service": {"preset": "llama3_70b_a100_tp2"},
           "workload": {"arrival": {"process": "trace", "path": str(path)},
                        "prompt_tokens": {"dist": "fixed", "value": 1},
                        "output_tokens": {"dist": "fixed", "value": 1}}}
    message = error_message(SimConfig.from_dict, cfg)
    assert message.startswith("workload.arrival.path") and "line 5" in message


def test_bad_token_count_and_ragged_row_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(AZURE_OK + "2023-11-16 18:17:05.0,0,30\n")
    message = error_message(load_trace, path)
    assert "line 4" in message and "ContextTokens '0'" in message
    path.write_text(AZURE_OK + "2023-11-16 18:17:05.0,12.5,30\n")
    assert "line 4" in error_message(load_trace, path)
    path.write_text(AZURE_OK + "2023-11-16 18:17:05.0,1,2,3\n")
    message = error_message(load_trace, path)
    assert str(path) in message and "line 4" in message
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    assert "no requests" in error_message(load_trace, path)


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text("TIMESTAMP,Context,GeneratedTokens\n2023-11-16 18:17:03,1,1\n")
    message = error_message(load_trace, path)
    assert "missing column 'ContextTokens'" in message
    assert "columns found: TIMESTAMP, Context, GeneratedTokens" in message
    path.write_text("when,prompt\n1,2\n")
    message = error_message(load_trace, path)
    assert "unknown CSV trace format" in message and "columns found: when, prompt" in message
    other = tmp_path / "trace.parquet"
    other.write_text("x")
    assert "unknown trace format" in error_message(load_trace, other)


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    good = json.dumps({"timestamp": 0, "input_length": 5, "output_length": 2})
    path = tmp_path / "moon.jsonl"
    path.write_text(good + "\n\n" + '{"timestamp": 3000, "input_length": 5,\n')
    message = error_message(load_trace, path)
    assert str(path) in message and "line 3" in message and "not valid JSON" in message
    path.write_text(good + "\n" + json.dumps({"timestamp": 1, "input": 5}) + "\n")
    message = error_message(load_trace, path)
    assert "line 2" in message and "missing key 'input_length'" in message
    assert "keys found: timestamp, input" in message
    path.write_text(good + "\n" + json.dumps({"timestamp": "soon", "input_length": 5,
                                              "output_length": 2}) + "\n")
    assert "line 2" in error_message(load_trace, path)
    path.write_text(good + "\n" + json.dumps({"timestamp": 3000, "input_length": 5,
                                              "output_length": -1}) + "\n")
    message = error_message(load_trace, path)
    assert "line 2" in message and "output_length" in message


def test_missing_file_and_path_resolution(tmp_path: Path, monkeypatch) -> None:
    message = error_message(TraceArrival, "data/traces/nope.csv")
    assert "no such trace file" in message and "nope.csv" in message
    monkeypatch.chdir(tmp_path)
    # not under the current directory: found relative to the repository root
    assert resolve_trace_path(CONV) == (RESOURCES_DIR / CONV).resolve()
    assert TraceArrival(CONV).num_rows == 19366
    # a file under the current directory wins
    local = tmp_path / CONV
    local.parent.mkdir(parents=True)
    local.write_text(AZURE_OK)
    assert resolve_trace_path(CONV) == local.resolve()
    assert TraceArrival(CONV).num_rows == 2


def test_loaded_traces_are_cached_and_reloaded_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(AZURE_OK)
    first = load_trace(path)
    assert load_trace(str(path)) is first
    path.write_text(AZURE_OK + "2023-11-16 18:17:09.0,300,30\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = load_trace(path)
    assert len(second) == 3 and len(first) == 2
    assert traces_module._load_cached.cache_info().hits >= 1


def test_unsorted_rows_and_vidur_style_times(tmp_path: Path) -> None:
    path = tmp_path / "vidur.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n"
                    "2.0,20,2\n0.5,5,1\n\n1.0,10,3\n")
    trace = load_trace(path)
    np.testing.assert_array_equal(trace.arrival_s, [0.0, 0.5, 1.5])
    np.testing.assert_array_equal(trace.prompt_tokens, [5, 10, 20])
    np.testing.assert_array_equal(trace.output_tokens, [1, 3, 2])
    assert TraceArrival(str(path), target_rate_per_s=1.0).sample_times(None, 3)[-1] == 2.0
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n1.0,1,1\nlate,1,1\n")
    assert "line 3" in error_message(load_trace, path)


# ------------------------------------------------------------------------------ presets


@pytest.mark.parametrize("name", ["azure_conv", "azure_code", "mooncake", "sharegpt"])
def test_trace_presets_load_round_trip_and_run(name: str) -> None:
    cfg = load_config(name)
    assert SimConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.slo is not None
    short = cfg.replace(num_requests=300, warmup_requests=30)
    summary = lse.simulate(short, seed=0).summary()
    assert summary["num_completed"] == 270


def test_sharegpt_preset_pairs_lengths_with_poisson() -> None:
    cfg = load_config("sharegpt")
    assert isinstance(cfg.workload.arrival, PoissonArrival)
    assert cfg.workload.prompt_tokens.mean() == pytest.approx(2340.03, abs=0.01)
    assert cfg.workload.output_tokens.max_value() == 1024
