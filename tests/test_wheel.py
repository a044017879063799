"""A wheel that works anywhere: build it from the sources, install it into a fresh venv, and
run the command line and the Gymnasium env from a directory outside the checkout, where no
``configs/`` or ``data/traces/`` can be found by accident.

Slow by nature (a build and an install, dependencies from pip's cache: about a minute), so one
test does it all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "num_requests=400", "--set", "warmup_requests=50"]
IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".ruff_cache", ".hypothesis", "data",
                                 "main_report.ipynb")


def run(cmd: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    # build from a copy, so the checkout gets no build/ folder
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=IGNORED)
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source],
        tmp_path, env)
    (wheel,) = wheels.glob("llm_serving_env-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix()
               for p in (ROOT / "llm_serving_env" / "resources").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)}"
    assert "baselines/hybrid.py" in names and "agents/zoo/ppo_slo_bursty_chat.zip" in names

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path, env)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    run([bin_dir / "python", "-m", "pip", "install", "-q", wheel], tmp_path, env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run([bin_dir / "llm-serving", "simulate", "--config", "default", *SMALL],
              elsewhere, env)
    assert "scheduler=hybrid" in out and "throughput_rps" in out
    # a preset whose requests are replayed from a trace shipped inside the wheel
    out = run([bin_dir / "llm-serving", "simulate", "--config", "azure_conv", *SMALL],
              elsewhere, env)
    assert "requests=400" in out and "slo_attainment" in out
    probe = (
        "import gymnasium as gym, llm_serving_env as lse\n"
        "env = gym.make('LLMServing-v0')\n"
        "obs, info = env.reset(seed=0)\n"
        "assert env.observation_space.contains(obs)\n"
        "assert {'hybrid', 'slo_aware', 'request_level'} <= set(lse.available_schedulers())\n"
        "print(lse.__file__)\n"
    )
    where = Path(run([bin_dir / "python", "-c", probe], elsewhere, env).strip())
    assert venv in where.parents, f"imported from {where}, not from the fresh venv"
