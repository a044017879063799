"""The simulation study behind ``main_report.ipynb``: every experiment, its CSVs and its figures.

``run_all(quick, out_dir)`` (command line: ``llm-serving report [--full] [--out-dir DIR]``) runs
the analyses below and writes their results to ``out_dir`` (default ``data/report/``) as small
long-format CSVs: one row per (setting, policy, metric) with the mean over independent
replications, the half-width of its 95% Student-t confidence interval and the number of
replications ``n`` (columns ``mean, half_width, low, high, n``). The notebook only reads these
CSVs (and runs a few small live demos), so it executes in seconds.

This module is the notebook's single import (``from llm_serving_env.study import report``); the
analyses live beside it, one module per group: ``validation`` (1), ``schedulers`` (2-5),
``workloads`` (5, 8), ``cluster`` (6-7), ``learned`` (9), ``sensitivity`` (10), ``warmup``
(11); ``common`` holds what they share, ``runner`` runs them and loads their CSVs, ``figures``
draws them and ``findings`` computes the numbers the executive summary quotes.

Analyses (one function each; the CSVs they write in brackets):

1. :func:`demo` -- the brief's demo: one GPU, fixed prompt and output lengths, request-level vs
   prefill-first (and hybrid) batching; throughput, TTFT and TBT over time with ensemble CIs
   [``demo_summary.csv``, ``demo_timeseries.csv``]. :func:`validation` -- the simulator against
   queueing theory: M/M/1 (mean, P95, waiting time) at four loads, M/D/1, M/M/2 and the
   two-GPU prefill/decode tandem [``validation.csv``].
2. :func:`comparison` -- every scheduler on ``configs/default.yaml`` with common random numbers;
   paired differences against ``hybrid``; SLO capacity per scheduler by bisection
   [``comparison.csv``, ``comparison_paired.csv``, ``capacity_slo.csv``].
3. :func:`chunk_size` -- hybrid's token budget (prefill chunk size) from 64 to 2048 tokens at two
   loads [``chunk_size.csv``].
4. :func:`batching` -- fixed-size vs dynamic vs request-level batching at loads they can carry
   [``batching.csv``].
5. :func:`load_sweep` -- latency against arrival rate up to and past capacity (phase
   transitions) [``load_sweep.csv``, ``capacities.csv``]; :func:`workload` -- sensitivity to the
   prompt-length mix, the output length and the burstiness of arrivals [``workload.csv``].
6. :func:`scaling` -- 1, 2 and 4 GPUs behind a central queue, join-shortest-queue or
   round-robin routing [``scaling.csv``]; :func:`disaggregation` -- colocated vs disaggregated
   prefill/decode pools at equal GPU count on a prefill-heavy load [``disaggregation.csv``].
7. :func:`kv_memory` -- Llama-3-70B on 2xA100: 80 GB vs 160 GB per GPU (KV-cache size),
   preemptions and latency [``kv_memory.csv``, ``kv_memory_long.csv``].
8. :func:`traces` -- real workloads (Azure conversation and code traces replayed, ShareGPT
   lengths) per policy [``traces.csv``].
9. :func:`learned` -- reads the learned scheduler's evaluation (``learned_vs_baselines.csv``,
   written by ``llm-serving evaluate --out``) when present; nothing is simulated here.
10. :func:`sensitivity` -- setup cost ``c`` and per-token cost ``a`` of S(b), and the service
    time distribution (deterministic, gamma, exponential) [``sensitivity_service.csv``,
    ``sensitivity_noise.csv``].
11. :func:`warmup` -- Welch's plot, MSER-5 and the precision reached per number of replications
    [``warmup_welch.csv``, ``warmup_mser.csv``, ``replication_precision.csv``].

``run_info.csv`` records each analysis's run size and wall time.

**Sizes.** ``quick=False`` (``--full``) runs the study's real sizes: 20,000 requests per run
with the first 2,000 deleted as warm-up (the brief's rule of thumb; checked in analysis 11),
3-10 replications per setting. ``quick=True`` (the default of the command, or the environment
variable ``LLM_SERVING_QUICK=1``) runs the same code on small sizes (a few thousand requests,
2-3 replications) to check that everything works, in a couple of minutes; its numbers are noisy.
See :func:`study_sizes`.

**Replications and common random numbers.** Replication ``r`` of every setting and policy uses
seed ``r`` (:func:`llm_serving_env.analysis.sweep.sweep`), so within one analysis all policies and
settings see the same arrivals and lengths in a replication; differences between policies are
therefore estimated with less noise (paired-t intervals in ``comparison_paired.csv``).

**Figures.** ``fig_*`` functions draw each analysis from the loaded CSVs (:func:`load`); every
axis has a label with its unit and estimates carry 95% CI bands or bars.
:func:`key_findings` computes the numbers quoted in the notebook's executive summary.
"""

from llm_serving_env.study.cluster import (  # noqa: F401
    DISAGG_VARIANTS,
    DISAGG_WORKLOAD,
    KV_HARDWARE,
    SCALING_LOADS,
    disaggregation,
    kv_memory,
    scaling,
)
from llm_serving_env.study.common import (  # noqa: F401
    COLORS,
    DEFAULT_OUT_DIR,
    METRICS,
    POLICY_ORDER,
    RATE,
    SATURATED_BELOW,
    Sizes,
    Study,
    default_config,
    noop,
    quick_mode,
    study_sizes,
    summarize,
    t_row,
    token_capacity,
)
from llm_serving_env.study.figures import (  # noqa: F401
    FIGURES,
    NICE,
    fig_batching,
    fig_chunk_size,
    fig_comparison,
    fig_demo_timeseries,
    fig_disaggregation,
    fig_kv_memory,
    fig_learned,
    fig_load_sweep,
    fig_noise,
    fig_paired,
    fig_replications,
    fig_scaling,
    fig_service_sensitivity,
    fig_slo,
    fig_timelines,
    fig_traces,
    fig_validation,
    fig_welch,
    fig_workload,
    scheduler_rules,
    timeline_runs,
)
from llm_serving_env.study.findings import (  # noqa: F401
    key_findings,
)
from llm_serving_env.study.learned import (  # noqa: F401
    LEARNED_CSV,
    compose_zoo,
    evaluation_csvs,
    learned,
    learned_scenarios,
)
from llm_serving_env.study.runner import (  # noqa: F401
    ANALYSES,
    CSV_NAMES,
    load,
    run_all,
    value,
)
from llm_serving_env.study.schedulers import (  # noqa: F401
    LOAD_POLICIES,
    PAIRED_METRICS,
    batching,
    chunk_size,
    comparison,
    load_sweep,
)
from llm_serving_env.study.sensitivity import (  # noqa: F401
    A_VALUES,
    C_VALUES,
    NOISES,
    sensitivity,
)
from llm_serving_env.study.validation import (  # noqa: F401
    DEMO_LENGTHS,
    DEMO_POLICIES,
    DEMO_RATES,
    demo,
    validation,
)
from llm_serving_env.study.warmup import (  # noqa: F401
    WARMUP_RATES,
    WELCH_BLOCK,
    warmup,
)
from llm_serving_env.study.workloads import (  # noqa: F401
    TRACE_BLOCKS,
    TRACE_METRICS,
    TRACE_POLICIES,
    TRACES,
    UNCHUNKED_MAX_TOKENS,
    WORKLOAD_VARIANTS,
    traces,
    workload,
)
