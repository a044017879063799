"""Multi-GPU routing against queueing bounds."""

from __future__ import annotations

import llm_serving_env as lse
from llm_serving_env.analysis.queueing import mm1_sojourn_mean, mmc_sojourn_mean
from llm_serving_env.analysis.stats import t_interval

MU = 2.5  # one request per batch, S = A * 100 tokens, A ~ Exp(4 ms): Exp(mean 0.4 s)


def cluster_config(router: str, gpus: int, rate: float):
    return lse.load_config("mm1").replace({
        "num_requests": 11000, "warmup_requests": 1000,
        "workload.arrival.rate_per_s": rate, "gpus.count": gpus, "gpus.router": router})


def test_jsq_lies_between_a_central_queue_and_independent_queues():
    """4 GPUs, Poisson arrivals, one request per batch, exponential service.

    Join-the-shortest-queue at arrival is never better than one shared FCFS queue (M/M/4,
    Erlang C: no GPU idles while a request waits) and always better than splitting the stream
    into 4 independent M/M/1 queues with lambda/4 each (random or round-robin routing ignores
    queue lengths). At rho = 0.6 these are 0.472 s and 1.0 s. The 99% t-interval over 8
    replications of jsq's mean sojourn must lie strictly between the two closed forms.
    """
    rate = 4 * 0.6 * MU
    central = mmc_sojourn_mean(rate, MU, 4)
    split = mm1_sojourn_mean(rate / 4, MU)
    runs = [lse.simulate(cluster_config("jsq", 4, rate), seed=s).summary()["e2e_mean_s"]
            for s in range(8)]
    jsq = t_interval(runs, level=0.99)
    assert central < jsq.low and jsq.high < split, (central, jsq, split)
    # the central router itself is the M/M/4 queue
    runs = [lse.simulate(cluster_config("central", 4, rate), seed=s).summary()["e2e_mean_s"]
            for s in range(8)]
    assert t_interval(runs, level=0.99).contains(central)


def test_least_tokens_routes_by_outstanding_work_not_by_count():
    """2 GPUs, per-GPU queues, S(b) = 10 ms + 1 ms * b. r0 (prompt 1000, 1 token) arrives at
    0 and goes to GPU 0 (both empty). r1 (prompt 10) at 1 ms finds 1000 tokens of work on
    GPU 0 and none on GPU 1: GPU 1. r2 (prompt 10) at 2 ms: GPU 0 has 1000 tokens left, GPU 1
    10, so GPU 1 again, where jsq (one request each, tie -> lowest index) would pick GPU 0."""
    import numpy as np
    from helpers import make_config
    from test_engine import workload

    wl = workload([0.0, 0.001, 0.002], [1000, 10, 10], [1, 1, 1])
    cfg = make_config(num_requests=3, **{"gpus.count": 2})
    gpus = {router: lse.simulate(cfg.replace({"gpus.router": router}), "hybrid",
                                 workload=wl).gpu.tolist()
            for router in ("least_tokens", "jsq")}
    assert gpus == {"least_tokens": [0, 1, 1], "jsq": [0, 1, 0]}
    assert np.isfinite(lse.simulate(cfg.replace({"gpus.router": "least_tokens"}), "hybrid",
                                    workload=wl).finish_s).all()
