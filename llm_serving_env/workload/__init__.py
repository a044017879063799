"""What arrives: arrival processes, prompt and output length distributions, trace readers,
MMPP fitting, and the seeded generation of a run's requests.
"""

from llm_serving_env.workload.arrivals import ArrivalProcess
from llm_serving_env.workload.config import WorkloadConfig
from llm_serving_env.workload.generate import Workload, generate_workload
from llm_serving_env.workload.lengths import LengthDistribution
from llm_serving_env.workload.traces import Trace, load_trace

__all__ = [
    "ArrivalProcess",
    "LengthDistribution",
    "Trace",
    "Workload",
    "WorkloadConfig",
    "generate_workload",
    "load_trace",
]
