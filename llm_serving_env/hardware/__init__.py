"""The GPUs: batch service-time models S(b), GPU / model / interconnect specs, and the fitted
service presets.
"""

from llm_serving_env.hardware.service import ServiceModel
from llm_serving_env.hardware.service_config import ServiceConfig
from llm_serving_env.hardware.specs import GpuSpec, ModelSpec

__all__ = ["GpuSpec", "ModelSpec", "ServiceConfig", "ServiceModel"]
