"""Readers for real LLM-serving request traces (one reader per file format).

Every reader returns a :class:`Trace`: per-request arrival times (seconds from the first
arrival, or ``None`` for length-only files), prompt and output token counts, all read-only
numpy arrays in arrival order. The arrival process ``{process: trace, ...}`` and the length
distribution ``{dist: trace, ...}`` in :mod:`llm_serving_env.config` are built on them.

Formats (detected from the file's extension and header; see :func:`detect_format`):

==========  ============================================  ===================  ==================
format      times                                         prompt column        output column
==========  ============================================  ===================  ==================
azure       ``TIMESTAMP``: absolute wall clock, e.g.      ``ContextTokens``    ``GeneratedTokens``
            ``2023-11-16 18:17:03.9799600``
            (Azure LLM inference trace 2023, ``.csv``)
mooncake    ``timestamp``: ms from the start, quantised   ``input_length``     ``output_length``
            into ~3 s buckets (Mooncake FAST'25
            ``.jsonl``, one JSON object per line)
token_csv   ``arrived_at`` in seconds, optional (ShareGPT  ``num_prefill_       ``num_decode_
            / Vidur / Sarathi "processed trace" ``.csv``;  tokens``            tokens``
            ShareGPT has no times)
==========  ============================================  ===================  ==================

Conventions and quirks handled:

* Times become float64 seconds relative to the earliest arrival (so the first is at 0.0).
  Rows are stably sorted by time if the file is not already sorted (the shipped files are).
* Mooncake timestamps are quantised: the 12,031 requests share only 1,180 distinct values,
  about 3,000 ms apart. The reader records, per request, the start of its bucket
  (:attr:`Trace.arrival_s`) and the bucket's width (:attr:`Trace.bucket_width_s`: the gap to
  the next distinct timestamp, capped at the median such gap, which is also used for the last
  bucket). The arrival process spreads the requests of a bucket uniformly over it (see
  :meth:`Trace.spread_arrivals`). Assumption, not checkable from the data: a timestamp is
  the *start* (floor) of its bucket.
* Token counts must be integers >= 1 (floats with an integral value are accepted).
* Blank lines are skipped, but they still count when a line number is reported.

Errors: a missing, unreadable or malformed file raises :class:`ConfigError` whose message
names the file and, for a bad value, the 1-based line number in the file, e.g.
``.../x.csv, line 57: TIMESTAMP 'garbage' is not a date-time``; a missing column lists the
columns found.

Paths: :func:`resolve_trace_path` tries the path as given (relative to the current directory)
and then, for a relative path, relative to the package's shipped resources
(:data:`llm_serving_env.resources.RESOURCES_DIR`), so the shipped configs say
``traces/<file>`` and work from any directory, in a checkout or an installed wheel.
Loaded traces are cached by (resolved path, mtime, size) with
``functools.lru_cache``: validating a config many times reads the file once, and an edited
file is read again.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_serving_env.resources import RESOURCES_DIR
from llm_serving_env.schema.fields import ConfigError

__all__ = [
    "FORMATS",
    "Trace",
    "detect_format",
    "load_trace",
    "read_azure_csv",
    "read_mooncake_jsonl",
    "read_token_csv",
    "resolve_trace_path",
]

#: Repository root; relative trace paths not found from the current directory resolve here.

#: Tokens per ``hash_ids`` block in Mooncake traces (Qin et al., FAST 2025: "block size 512").
MOONCAKE_BLOCK_TOKENS = 512

#: Column names per format: (time column or None, prompt column, output column).
FORMATS: dict[str, tuple[str | None, str, str]] = {
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "mooncake": ("timestamp", "input_length", "output_length"),
    "token_csv": ("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
}


def _readonly(values: np.ndarray, dtype: type) -> np.ndarray:
    arr = np.array(values, dtype=dtype, copy=True)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Trace:
    """One trace file's requests, in arrival order (read-only arrays of shape ``(n,)``).

    Attributes:
        path: the resolved file path.
        format: ``"azure"``, ``"mooncake"`` or ``"token_csv"``.
        prompt_tokens: int64, >= 1.
        output_tokens: int64, >= 1.
        arrival_s: float64 seconds since the first arrival (nondecreasing, first 0.0), or
            ``None`` if the file has no times. For a quantised trace, the start of each
            request's time bucket.
        bucket_width_s: float64 width (s) of each request's time bucket for a quantised trace
            (Mooncake), else ``None`` (times are exact).
        prefix_offsets, prefix_ids: the prompts' prefix-block ids (Mooncake's ``hash_ids``,
            one per ``prefix_block_tokens`` tokens, the last block possibly partial; equal ids
            mean equal prefixes), row ``i``'s at ``prefix_ids[prefix_offsets[i]:
            prefix_offsets[i + 1]]`` (int64 ``(n + 1,)`` and ``(total,)``), or ``None``.
        prefix_block_tokens: tokens per prefix block (512 for Mooncake), 0 without ids.
    """

    path: Path
    format: str
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray | None = None
    bucket_width_s: np.ndarray | None = None
    prefix_offsets: np.ndarray | None = None
    prefix_ids: np.ndarray | None = None
    prefix_block_tokens: int = 0

    def __len__(self) -> int:
        """Number of requests."""
        return int(self.prompt_tokens.shape[0])

    @property
    def has_times(self) -> bool:
        """Whether the file records arrival times."""
        return self.arrival_s is not None

    @property
    def span_s(self) -> float:
        """Last minus first recorded arrival time, seconds (bucket starts if quantised)."""
        if self.arrival_s is None:
            raise ValueError(f"{self.path} has no arrival times")
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) else 0.0

    @property
    def mean_rate_per_s(self) -> float:
        """Mean arrival rate ``(n - 1) / span_s`` in requests per second (the recorded
        times, before any spreading inside buckets)."""
        span = self.span_s
        if len(self) < 2 or span <= 0:
            raise ValueError(f"{self.path}: mean rate needs >= 2 distinct arrival times")
        return (len(self) - 1) / span

    def column(self, name: str) -> np.ndarray:
        """``"prompt"`` -> :attr:`prompt_tokens`, ``"output"`` -> :attr:`output_tokens`."""
        if name == "prompt":
            return self.prompt_tokens
        if name == "output":
            return self.output_tokens
        raise ValueError(f"column must be 'prompt' or 'output', got {name!r}")

    def spread_arrivals(self, rng: np.random.Generator) -> np.ndarray:
        """Arrival times (s, float64 ``(n,)``, nondecreasing), requests spread inside buckets.

        For a quantised trace, request ``i`` arrives at ``start_i + width_i * U_i`` with
        ``U_i ~ Uniform[0, 1)`` i.i.d. from ``rng`` (one draw per request, in file order), and
        the times are then sorted. Buckets are disjoint intervals, so the sort only reorders
        times *within* a bucket, and row ``i`` keeps its place: the i-th time still belongs
        to a request of the i-th row's bucket, and replayed lengths stay aligned with it.
        Exact traces are returned unchanged (``rng`` is not used).
        """
        if self.arrival_s is None:
            raise ValueError(f"{self.path} has no arrival times")
        if self.bucket_width_s is None:
            return self.arrival_s.copy()
        times = self.arrival_s + self.bucket_width_s * rng.random(len(self))
        return np.sort(times, kind="stable")


# --------------------------------------------------------------------------------------------
# Paths and cache
# --------------------------------------------------------------------------------------------


def resolve_trace_path(path: str | os.PathLike[str]) -> Path:
    """The trace file ``path`` refers to.

    Tried in order: ``path`` as given (absolute, or relative to the current directory), then,
    for a relative path, ``RESOURCES_DIR / path`` (the shipped ``traces/`` live there).

    Raises:
        ConfigError: neither exists (the message lists the places tried).
    """
    given = Path(path).expanduser()
    candidates = [given]
    if not given.is_absolute():
        candidates.append(RESOURCES_DIR / given)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = " or ".join(str(c.resolve()) if c.is_absolute() else str(Path.cwd() / c)
                        for c in candidates)
    raise ConfigError(f"no such trace file (tried {tried})", "path", str(path))


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read (or fetch from the cache) the trace at ``path``; see the module docstring.

    Raises:
        ConfigError: missing, unreadable or malformed file (the message names the file and,
            for a bad value, its line).
    """
    resolved = resolve_trace_path(path)
    stat = resolved.stat()
    return _load_cached(str(resolved), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load_cached(resolved: str, mtime_ns: int, size: int) -> Trace:
    """Cache key includes mtime and size, so an edited file is read again."""
    path = Path(resolved)
    fmt = detect_format(path)
    reader = {"azure": read_azure_csv, "mooncake": read_mooncake_jsonl,
              "token_csv": read_token_csv}[fmt]
    return reader(path)


def detect_format(path: Path) -> str:
    """``"mooncake"`` for ``.jsonl``; for ``.csv``, ``"azure"`` if the header has
    ``TIMESTAMP``, ``"token_csv"`` if it has ``num_prefill_tokens``.

    Raises:
        ConfigError: unknown extension or header (the message lists the columns found).
    """
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "mooncake"
    if suffix != ".csv":
        raise ConfigError(f"{path}: unknown trace format (expected a .csv or .jsonl file)",
                          "path", str(path))
    header = _csv_header(path)
    if FORMATS["azure"][0] in header:
        return "azure"
    if FORMATS["token_csv"][1] in header:
        return "token_csv"
    raise ConfigError(
        f"{path}, line 1: unknown CSV trace format: expected a column "
        f"{FORMATS['azure'][0]!r} (Azure) or {FORMATS['token_csv'][1]!r} (ShareGPT/Vidur); "
        f"columns found: {', '.join(header) or '(none)'}", "path", str(path))


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------


def _fail(path: Path, reason: str, line: int | None = None) -> ConfigError:
    where = f"{path}, line {line}" if line is not None else str(path)
    return ConfigError(f"{where}: {reason}", "path", str(path))


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as err:
        raise _fail(path, f"cannot read: {err}") from err
    return [c.strip() for c in first.rstrip("\r\n").split(",") if c.strip()]


def _read_csv(path: Path) -> pd.DataFrame:
    """All cells as strings; blank lines kept as all-NaN rows so that row ``i`` is on line
    ``i + 2`` (header on line 1); blank rows are dropped afterwards by the callers."""
    try:
        return pd.read_csv(path, dtype=str, skip_blank_lines=False, keep_default_na=False,
                           na_values=[""])
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as err:
        raise _fail(path, f"cannot parse CSV: {err}") from err


def _require(path: Path, columns: Sequence[str], needed: Sequence[str]) -> None:
    for col in needed:
        if col not in columns:
            raise _fail(path, f"missing column {col!r}; columns found: "
                              f"{', '.join(map(str, columns)) or '(none)'}", 1)


def _tokens(path: Path, raw: pd.Series, name: str, lines: np.ndarray,
            numeric: pd.Series | None = None) -> np.ndarray:
    """Parse a token-count column (``numeric``, default ``raw``): integers >= 1, else an
    error naming the first bad line and showing its ``raw`` value."""
    source = raw if numeric is None else numeric
    num = pd.to_numeric(source, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(num) | (num < 1) | (num != np.floor(num))
    if bad.any():
        i = int(np.argmax(bad))
        raise _fail(path, f"{name} {raw.iloc[i]!r} is not an integer >= 1", int(lines[i]))
    return num.astype(np.int64)


def _check_times(path: Path, seconds: np.ndarray, raw: Sequence[Any], name: str,
                 lines: np.ndarray) -> None:
    bad = ~np.isfinite(seconds)
    if bad.any():
        i = int(np.argmax(bad))
        raise _fail(path, f"{name} {raw[i]!r} is not a valid time", int(lines[i]))


def _build(path: Path, fmt: str, prompt: np.ndarray, output: np.ndarray,
           seconds: np.ndarray | None, quantised: bool = False,
           prefix_chains: list[list[int]] | None = None, prefix_block_tokens: int = 0) -> Trace:
    """Sort by time (stable), shift to start at 0, detect bucket widths, freeze arrays."""
    if prompt.size == 0:
        raise _fail(path, "no requests in the file")
    width = None
    if seconds is not None:
        order = np.argsort(seconds, kind="stable")
        if np.any(order != np.arange(order.size)):
            seconds, prompt, output = seconds[order], prompt[order], output[order]
            if prefix_chains is not None:
                prefix_chains = [prefix_chains[i] for i in order.tolist()]
        seconds = seconds - seconds[0]
        if quantised:
            width = _bucket_widths(seconds)
    offsets = ids = None
    if prefix_chains is not None:
        offsets = np.zeros(len(prefix_chains) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in prefix_chains], out=offsets[1:])
        ids = np.fromiter((h for c in prefix_chains for h in c), dtype=np.int64,
                          count=int(offsets[-1]))
    return Trace(
        prefix_offsets=None if offsets is None else _readonly(offsets, np.int64),
        prefix_ids=None if ids is None else _readonly(ids, np.int64),
        prefix_block_tokens=prefix_block_tokens if prefix_chains is not None else 0,
        path=path, format=fmt,
        prompt_tokens=_readonly(prompt, np.int64), output_tokens=_readonly(output, np.int64),
        arrival_s=None if seconds is None else _readonly(seconds, np.float64),
        bucket_width_s=None if width is None else _readonly(width, np.float64),
    )


def _bucket_widths(seconds: np.ndarray) -> np.ndarray:
    """Per-request bucket width (s): gap from its timestamp to the next distinct one, capped at
    the median gap between distinct timestamps (the quantum; also used for the last bucket).
    ``seconds`` sorted. A trace with one distinct time gets width 0 (nothing to spread)."""
    distinct, inverse = np.unique(seconds, return_inverse=True)
    gaps = np.diff(distinct)
    quantum = float(np.median(gaps)) if gaps.size else 0.0
    widths = np.minimum(np.append(gaps, quantum), quantum)
    return widths[inverse]


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


def read_azure_csv(path: str | os.PathLike[str]) -> Trace:
    """Azure LLM inference trace (2023 or 2024): ``TIMESTAMP,ContextTokens,GeneratedTokens``.

    ``TIMESTAMP`` is an absolute date-time with up to 7 fractional digits (parsed with
    ``pd.to_datetime(format="ISO8601")`` at ns resolution); times become seconds since the
    earliest row.
    """
    path = Path(path)
    time_col, prompt_col, output_col = FORMATS["azure"]
    df = _read_csv(path)
    _require(path, list(df.columns), (time_col, prompt_col, output_col))
    lines = np.arange(len(df)) + 2
    keep = ~df.isna().all(axis=1).to_numpy()
    df, lines = df[keep], lines[keep]
    if df.empty:
        raise _fail(path, "no requests in the file")
    stamps = pd.to_datetime(df[time_col].str.strip(), format="ISO8601", errors="coerce")
    nat = stamps.isna().to_numpy()
    if nat.any():
        i = int(np.argmax(nat))
        raise _fail(path, f"{time_col} {df[time_col].iloc[i]!r} is not a date-time "
                          "(expected e.g. '2023-11-16 18:17:03.9799600')", int(lines[i]))
    ns = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    seconds = (ns - ns.min()).astype(np.float64) / 1e9
    prompt = _tokens(path, df[prompt_col], prompt_col, lines)
    output = _tokens(path, df[output_col], output_col, lines)
    return _build(path, "azure", prompt, output, seconds)


def read_mooncake_jsonl(path: str | os.PathLike[str]) -> Trace:
    """Mooncake trace: one JSON object per line with ``timestamp`` (ms from the start),
    ``input_length`` and ``output_length`` (tokens), and ``hash_ids`` (the prompt's 512-token
    prefix blocks, kept when every row has them); other keys are ignored.

    Timestamps are treated as quantised (bucket starts); see :meth:`Trace.spread_arrivals`.
    """
    path = Path(path)
    time_col, prompt_col, output_col = FORMATS["mooncake"]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _fail(path, f"cannot read: {err}") from err
    rows: list[tuple[Any, Any, Any]] = []
    chains: list[Any] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise _fail(path, f"not valid JSON: {err.msg} (column {err.colno})", number) from err
        if not isinstance(obj, dict):
            raise _fail(path, f"expected a JSON object, got {type(obj).__name__}", number)
        missing = [k for k in (time_col, prompt_col, output_col) if k not in obj]
        if missing:
            raise _fail(path, f"missing key {missing[0]!r}; keys found: "
                              f"{', '.join(map(str, obj)) or '(none)'}", number)
        rows.append((obj[time_col], obj[prompt_col], obj[output_col]))
        chains.append(obj.get("hash_ids"))
        line_numbers.append(number)
    if not rows:
        raise _fail(path, "no requests in the file")
    lines = np.asarray(line_numbers)
    raw_t, raw_p, raw_o = (pd.Series(col, dtype=object) for col in zip(*rows, strict=True))
    ms = pd.to_numeric(raw_t.map(_number_or_nan), errors="coerce").to_numpy(np.float64)
    _check_times(path, ms, list(raw_t), time_col, lines)
    prompt = _tokens(path, raw_p, prompt_col, lines, raw_p.map(_number_or_nan))
    output = _tokens(path, raw_o, output_col, lines, raw_o.map(_number_or_nan))
    prefix = None
    if all(c is not None for c in chains):
        for c, number in zip(chains, line_numbers, strict=True):
            if not (isinstance(c, list) and all(isinstance(h, int) and not isinstance(h, bool)
                                                 and h >= 0 for h in c)):
                raise _fail(path, "hash_ids must be a list of integers >= 0", number)
        prefix = chains
    return _build(path, "mooncake", prompt, output, ms / 1000.0, quantised=True,
                  prefix_chains=prefix, prefix_block_tokens=MOONCAKE_BLOCK_TOKENS)


def _number_or_nan(value: Any) -> float:
    """JSON numbers pass (bools and strings do not: they become NaN and are reported)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def read_token_csv(path: str | os.PathLike[str]) -> Trace:
    """Processed-trace CSV (ShareGPT/etalon/Sarathi/Vidur): ``num_prefill_tokens``,
    ``num_decode_tokens`` and, if present, ``arrived_at`` (seconds). Other columns are
    ignored. Without ``arrived_at`` the trace has no times (lengths only)."""
    path = Path(path)
    time_col, prompt_col, output_col = FORMATS["token_csv"]
    df = _read_csv(path)
    _require(path, list(df.columns), (prompt_col, output_col))
    lines = np.arange(len(df)) + 2
    keep = ~df.isna().all(axis=1).to_numpy()
    df, lines = df[keep], lines[keep]
    if df.empty:
        raise _fail(path, "no requests in the file")
    prompt = _tokens(path, df[prompt_col], prompt_col, lines)
    output = _tokens(path, df[output_col], output_col, lines)
    seconds = None
    if time_col in df.columns:
        seconds = pd.to_numeric(df[time_col], errors="coerce").to_numpy(np.float64)
        _check_times(path, seconds, list(df[time_col]), time_col, lines)
    return _build(path, "token_csv", prompt, output, seconds)


def validate_trace_path(value: Any) -> str:
    """Validate a config's trace ``path`` field (a non-empty string or path); return it as
    ``str``."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty path to a trace file", "path", value)
    return value

