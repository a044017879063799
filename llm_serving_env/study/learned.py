"""Analysis 9: the learned scheduler's evaluation, read from ``llm-serving evaluate --out``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from llm_serving_env.study.common import DEFAULT_OUT_DIR

LEARNED_CSV = "learned_vs_baselines.csv"



def learned(out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR) -> pd.DataFrame | None:
    """The learned scheduler's evaluation table (``llm-serving evaluate ... --out``) if
    ``out_dir/learned_vs_baselines.csv`` exists, else None. Nothing is simulated here."""
    path = Path(out_dir) / LEARNED_CSV
    return pd.read_csv(path) if path.exists() else None

