"""Ctrl-C for real: ``llm-serving compare``, ``sweep`` and ``evaluate`` run as subprocesses
and get SIGINT (once, or twice in a row) after their first runs finished. They must stop within
seconds with exit code 130, no traceback, the finished runs written to ``--out`` and marked as
partial, and leave no worker behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: ~0.3 s per run: enough work that a SIGINT lands mid-way, little enough to be quick
MEDIUM = ["--config", "default", "--set", "num_requests=3000", "--set", "warmup_requests=300"]
STOP_WITHIN_S = 8.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


class Cli:
    """``llm-serving ARGS`` in a subprocess, its stderr collected as it comes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llm_serving_env.cli", *args], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.out: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.proc.stderr, self.err),
                                              (self.proc.stdout, self.out))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        while chunk := stream.read(1):
            into.append(chunk)

    def wait_for(self, condition, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"exited early: {''.join(self.err)}"
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.05)

    def runs_done(self) -> int:
        """Finished runs per the progress bar (``N/M``)."""
        counts = re.findall(r"(\d+)/\d+ \[", "".join(self.err))
        return int(counts[-1]) if counts else 0

    def interrupt(self, times: int = 1) -> tuple[int, str, str, float]:
        t0 = time.monotonic()
        for i in range(times):
            if i:
                time.sleep(0.1)
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("the command hung after SIGINT")
        took = time.monotonic() - t0
        for reader in self._readers:
            reader.join(5)
        return self.proc.returncode, "".join(self.out), "".join(self.err), took


def _interrupted(err: str) -> tuple[int, int]:
    match = re.search(r"interrupted: (\d+) of (\d+) runs finished", err)
    assert match, err
    return int(match[1]), int(match[2])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _gone(pid: int, timeout: float = 3.0) -> bool:
    """True once ``pid`` has exited (or is a zombie waiting to be reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return True
        if re.search(r"^State:\s+Z", status, re.M):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("times", [1, 2])
def test_compare_ctrl_c_keeps_finished_runs(tmp_path, times):
    out = tmp_path / "c.csv"
    cli = Cli("compare", *MEDIUM, "--policies", "request_level,hybrid", "--seeds", "40",
              "--workers", "2", "--out", str(out), "--progress")
    cli.wait_for(lambda: cli.runs_done() >= 2)
    workers = _children(cli.proc.pid)
    code, stdout, err, took = cli.interrupt(times)
    assert code == 130, err
    assert took < STOP_WITHIN_S
    assert "Traceback" not in err
    finished, total = _interrupted(err)
    assert total == 80 and 2 <= finished < total
    assert f"partial results written to {out}" in err
    assert "PARTIAL" in stdout
    table = pd.read_csv(out)
    assert table["status"].str.startswith(f"partial: {finished} of 80").all()
    completed = table[table["metric"] == "num_completed"]
    assert completed["n"].sum() == finished  # exactly the finished runs, none invented
    assert workers and all(_gone(w) for w in workers)  # the pool's workers were stopped


@pytest.mark.parametrize("times", [1, 2])
def test_sweep_ctrl_c_keeps_finished_rows_and_resumes(tmp_path, times):
    out = tmp_path / "s.csv"
    argv = ["sweep", *MEDIUM, "--policies", "hybrid,orca", "--replications", "40",
            "--workers", "2", "--out", str(out)]
    cli = Cli(*argv)
    cli.wait_for(lambda: out.exists() and out.read_text().count("\n") >= 3)
    workers = _children(cli.proc.pid)
    code, _, err, took = cli.interrupt(times)
    assert code == 130, err
    assert took < STOP_WITHIN_S
    assert "Traceback" not in err
    finished, total = _interrupted(err)
    assert total == 80 and 2 <= finished < total
    assert "rerun the same command to resume" in err
    rows = pd.read_csv(out)
    assert len(rows) == finished  # every finished run, each once
    assert not rows.duplicated(["policy", "seed"]).any()
    assert workers and all(_gone(w) for w in workers)  # the pool's workers were stopped


def test_evaluate_ctrl_c_in_process(tmp_path):
    out = tmp_path / "e.csv"
    cli = Cli("evaluate", *MEDIUM, "--policies", "hybrid,orca", "--seeds", "40",
              "--workers", "1", "--out", str(out), "--progress")
    cli.wait_for(lambda: cli.runs_done() >= 2)
    code, _, err, took = cli.interrupt()
    assert code == 130, err
    assert took < STOP_WITHIN_S
    assert "Traceback" not in err
    finished, total = _interrupted(err)
    assert total == 80 and finished >= 2
    runs = pd.read_csv(out)
    assert len(runs) == finished and runs["status"].str.startswith("partial").all()


@pytest.mark.parametrize("engine, long_run", [
    ("reference", ["--set", "num_requests=2000000"]),
    # the compiled engine runs 2,000,000 default requests in seconds: a run of ~30 million
    # single-decode-heavy iterations instead (it returns to Python every 65,536 decisions)
    ("compiled", ["--set", "num_requests=300000", "--set", "gpus.max_batch_requests=4",
                  "--set", "workload.output_tokens={dist: fixed, value: 400}"]),
])
def test_simulate_ctrl_c_is_a_clean_exit_130(engine, long_run):
    cli = Cli("simulate", "--config", "default", *long_run, "--engine", engine, "--progress")
    cli.wait_for(lambda: "simulating" in "".join(cli.err))
    code, _, err, took = cli.interrupt()
    assert code == 130 and took < STOP_WITHIN_S
    assert "Traceback" not in err and "interrupted" in err
