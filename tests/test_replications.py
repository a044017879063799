"""The one replication runner (llm_serving_env.analysis.replications): results in job order
whatever runs them, failures and Ctrl-C stop the other jobs, finished results are kept."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llm_serving_env.analysis.comparison import run_replications
from llm_serving_env.analysis.replications import Interrupted, iter_jobs, run_jobs
from llm_serving_env.config.files import load_config


def square(x: int, delay: float = 0.0) -> int:
    time.sleep(delay)
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"job {x} failed")
    return x


def pid_of(_: int) -> int:
    time.sleep(0.05)
    return os.getpid()


@pytest.mark.parametrize("workers", [1, 2])
def test_results_in_job_order_and_callback_per_job(workers):
    seen: list[tuple[int, int]] = []
    jobs = [(x, 0.02 * (5 - x)) for x in range(5)]  # later jobs finish first in a pool
    out = run_jobs(square, jobs, workers=workers, progress=False,
                   on_result=lambda i, r: seen.append((i, r)))
    assert out == [0, 1, 4, 9, 16]
    assert sorted(seen) == [(i, i * i) for i in range(5)]


def test_workers_are_other_processes_and_a_foreign_executor_is_left_open():
    pids = run_jobs(pid_of, [(i,) for i in range(4)], workers=2, progress=False)
    assert os.getpid() not in pids
    with ThreadPoolExecutor(2) as pool:
        assert run_jobs(square, [(3,)], executor=pool, progress=False) == [9]
        assert pool.submit(square, 4).result() == 16  # not shut down by the runner


def test_a_failed_job_raises_its_error():
    with pytest.raises(ValueError, match="job 2 failed"):
        run_jobs(fail_on, [(x, 2) for x in range(4)], workers=1, progress=False)
    with pytest.raises(ValueError, match="job 2 failed"):
        run_jobs(fail_on, [(x, 2) for x in range(4)], workers=2, progress=False)


def test_bad_workers_is_an_error():
    with pytest.raises(ValueError, match="workers = 0"):
        run_jobs(square, [(1,), (2,)], workers=0, progress=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_at_once_and_keeps_finished_results(workers):
    # two quick jobs, then slow ones that would take 20 s if they were waited for
    jobs = [(0, 0.0), (1, 0.0)] + [(x, 5.0) for x in range(2, 6)]

    def on_result(i: int, result: int) -> None:
        if len(done) == 1:
            raise KeyboardInterrupt  # Ctrl-C while handling the second result
        done.append(i)

    done: list[int] = []
    t0 = time.monotonic()
    with pytest.raises(Interrupted) as info:
        run_jobs(square, jobs, workers=workers, progress=False, on_result=on_result)
    assert time.monotonic() - t0 < 4.0  # the slow jobs were not waited for
    exc = info.value
    assert isinstance(exc, KeyboardInterrupt)
    assert exc.total == 6 and exc.results == {0: 0, 1: 1} and exc.finished == 2


def test_ctrl_c_while_waiting_for_the_pool():
    runs = iter_jobs(square, [(0, 0.0), (1, 3.0), (2, 3.0)], workers=2, progress=False)
    assert next(runs) == (0, 0)
    t0 = time.monotonic()
    with pytest.raises(Interrupted) as info:
        runs.throw(KeyboardInterrupt())
    assert time.monotonic() - t0 < 2.5
    assert info.value.results == {0: 0}


def test_run_replications_rows_do_not_depend_on_workers():
    cfg = load_config("default").replace({"num_requests": 200, "warmup_requests": 20})
    one = run_replications(cfg, ["hybrid", "orca"], [0, 1], progress=False, workers=1)
    two = run_replications(cfg, ["hybrid", "orca"], [0, 1], progress=False, workers=2)
    assert list(one["policy"]) == ["hybrid", "hybrid", "orca", "orca"]
    assert one.equals(two)
