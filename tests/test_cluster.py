"""Multi-GPU routing against queueing bounds."""

from __future__ import annotations

import llm_serving_env as lse
from llm_serving_env.queueing import mm1_sojourn_mean, mmc_sojourn_mean
from llm_serving_env.stats import t_interval

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
