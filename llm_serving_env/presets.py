"""Named service-time presets: fits of S(b) for a model on given hardware, with provenance.

Use one in a config as ``service: {preset: NAME}``; fields given beside it override the preset
(e.g. ``{preset: llama3_70b_a100_tp2, noise: exponential}``).
"""

from __future__ import annotations

from typing import Any

SERVICE_PRESETS: dict[str, dict[str, Any]] = {
    # Li, Dai, Peng et al., "Throughput-optimal scheduling algorithms for LLM inference and AI
    # agents" (arXiv 2504.07347, v1, Sec. 2.1): Llama-3-70B on two A100-80GB with NVLink,
    # tensor parallel: S(b) = 45.5 ms + 0.30 ms/token * max(0, b - 64). Quoted by the brief.
    "llama3_70b_a100_tp2": {
        "model": "piecewise_linear", "c_ms": 45.5, "a_ms": 0.30, "b0_tokens": 64,
    },
    # The same paper's later version fits a staircase for CodeLlama-34B on one A100:
    # S(b) = 11.28 ms + 35.47 ms * ceil(b / 128).
    "codellama34b_a100_staircase": {
        "model": "staircase", "c_ms": 11.28, "a_ms": 35.47, "b0_tokens": 128,
    },
}
