"""Simulation speed of both engines: simulated requests and iterations per wall second, and
peak memory, on the speed workloads (issue 12).

Workloads: ``configs/perf/azure_conv_8b.yaml`` (the workload measured side by side with Vidur:
16,000 Azure-conversation requests at 5.25 req/s on one Llama-3-8B/A100 replica, hybrid with a
512-token budget), ``configs/default.yaml`` (20,000 requests) and ``configs/mooncake.yaml``
(Mooncake's conversation trace, 20 replicas). Each (workload, engine) runs in its own process:
one small warm-up run (imports; the compiled engine loads its numba cache), then ``--repeat``
timed ``simulate`` calls (workload generation, the run and the RunResult; not the summary),
seeds 0, 1, ...; the process's peak resident memory (RSS, interpreter and libraries included)
is reported beside them. ``--compile`` also times the compiled engine's first call with an
empty numba cache (what a fresh install pays once). ``--million`` adds one million requests of
the Azure workload on the compiled engine. Usage::

    .venv/bin/python benchmarks/bench_speed.py [--repeat 3] [--compile] [--million]
        [--only azure_conv_8b,default,mooncake] [--engines compiled,reference]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "azure_conv_8b": ROOT / "configs" / "perf" / "azure_conv_8b.yaml",
    "default": ROOT / "configs" / "default.yaml",
    "mooncake": ROOT / "configs" / "mooncake.yaml",
}

CHILD = r"""
import json, resource, sys, time
import llm_serving_env as lse
path, engine, repeat, requests = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = lse.load_config(path)
if requests:
    cfg = cfg.replace(num_requests=requests,
                      warmup_requests=min(cfg.warmup_requests, requests // 10))
t0 = time.perf_counter()
lse.simulate(cfg.replace(num_requests=200, warmup_requests=0), engine=engine)
first = time.perf_counter() - t0
walls, iterations = [], 0
for seed in range(repeat):
    t0 = time.perf_counter()
    result = lse.simulate(cfg, seed=seed, engine=engine)
    walls.append(time.perf_counter() - t0)
    iterations = len(result.batch_columns["gpu"])
    del result
print(json.dumps({"requests": cfg.num_requests, "iterations": iterations, "walls": walls,
                  "first_call_s": first,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(path: Path, engine: str, repeat: int, requests: int = 0,
            env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), engine, str(repeat),
                          str(requests)], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(name: str, engine: str, m: dict) -> None:
    walls = m["walls"]
    best, median = min(walls), statistics.median(walls)
    print(f"{name:>14} {engine:>9}: {m['requests']:>9,} requests, {m['iterations']:>10,} "
          f"iterations | req/s best {m['requests'] / best:>11,.0f} median "
          f"{m['requests'] / median:>11,.0f} | it/s best {m['iterations'] / best:>12,.0f} "
          f"median {m['iterations'] / median:>12,.0f} | wall best {best:.3f} s | "
          f"peak RSS {m['peak_rss_mb']:,.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--engines", default="compiled,reference")
    parser.add_argument("--compile", action="store_true",
                        help="time the compiled engine's first call with an empty numba cache")
    parser.add_argument("--million", action="store_true",
                        help="one million Azure requests on the compiled engine")
    args = parser.parse_args()
    for name in args.only.split(","):
        for engine in args.engines.split(","):
            report(name, engine, measure(WORKLOADS[name], engine, args.repeat))
    if args.compile:
        with tempfile.TemporaryDirectory() as cache:
            m = measure(WORKLOADS["default"], "compiled", 1, env={"NUMBA_CACHE_DIR": cache})
        print(f"compiled engine, first call with an empty numba cache (compiles and caches): "
              f"{m['first_call_s']:.1f} s; with the cache warm: "
              f"{measure(WORKLOADS['default'], 'compiled', 1)['first_call_s']:.2f} s")
    if args.million:
        report("azure 1M", "compiled",
               measure(WORKLOADS["azure_conv_8b"], "compiled", args.repeat, requests=1_000_000))


if __name__ == "__main__":
    main()
