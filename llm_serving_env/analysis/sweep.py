"""Parameter sweeps: a grid of config values x schedulers x replications, run over an Executor.

A sweep runs one simulation per *(point, policy, seed)*: ``point`` is one combination of the
grid's values (the Cartesian product over its paths, in the order given), ``policy`` a scheduler
name and ``seed = first_seed + r`` for replication ``r``. Every point and policy uses the same
seeds, so they all see the same arrivals and lengths in a replication (common random numbers).

**Rows.** :func:`sweep` returns one row per run: the grid values in columns named by their
dotted paths (e.g. ``workload.arrival.rate_per_s``), then ``policy``, ``seed``, then every key of
:meth:`~llm_serving_env.sim.result.RunResult.summary` (seconds, requests/s, tokens, fractions, as
named). :func:`summarize_sweep` turns it into a mean and a Student-t CI per metric, point and
policy.

**Scheduler parameters under other schedulers.** A grid value is applied to the config with
:meth:`SimConfig.replace`, then the run's scheduler is built as ``simulate(cfg, policy=name)``
builds it (:func:`~llm_serving_env.sim.scheduler.make_scheduler`): a scheduler that does not take a
parameter (``scheduler.token_budget`` under ``orca``) ignores it and uses its own defaults. The
same rule covers the config's own scheduler, for parameters set by the grid: a grid over
``scheduler.token_budget`` with ``policies=["orca"]`` on a config whose scheduler is ``orca``
does not fail. Such a policy gives identical results at every value of that parameter, so the
sweep runs it once per distinct *effective* config and seed and writes the result on every row
it stands for (the rows carry the grid value all the same). A grid parameter that no policy of
the sweep takes is an error (usually a typo).

**Executors.** Runs go to a :class:`concurrent.futures.Executor`: a local
:class:`~concurrent.futures.ProcessPoolExecutor` by default (``workers`` processes, default one
per CPU; ``workers=1`` runs in this process), or a Dask cluster with ``executor="dask://HOST:PORT"``
(``distributed.Client(address).get_executor()``; needs the ``dask`` extra), or any Executor you
pass. Results do not depend on the executor: each run's randomness comes from its seed only.

**Resuming.** With ``out``, each finished run is appended to the CSV at once (whole lines,
flushed), and a rerun with the same grid skips the runs already in the file, matched on grid
values + policy + seed (numbers compared to 12 significant digits, so ``1.25``, ``1.250`` and
``1.2500000000001`` are one key). An interrupted sweep (Ctrl-C, a killed job) therefore loses only
the runs in flight; rerun the same command to finish it. A partial last line (a write cut by a
crash) is dropped on resume. The CSV may hold rows of other sweeps with the same columns (other
grid values, policies or seeds); they are kept but not returned.

**Fingerprint.** Beside the CSV, ``X.csv.meta.json`` records a sha256 of the base config (in
canonical JSON, without the values at the grid's paths, which the grid sets) and of the grid's
paths. A sweep refuses to resume into a CSV whose fingerprint differs (e.g. after changing
``num_requests``: its rows would be passed off as this sweep's), or a non-empty CSV with no
fingerprint; the error names the fields that differ and says how to start fresh.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from llm_serving_env.analysis.replications import Interrupted, run_jobs
from llm_serving_env.analysis.stats import summarize_replications
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError, flatten
from llm_serving_env.schema.yaml_io import strict_load
from llm_serving_env.sim.scheduler import make_scheduler, scheduler_class
from llm_serving_env.sim.simulate import as_config, simulate

__all__ = ["SweepPartial", "config_fingerprint", "meta_path", "parse_grid", "parse_grid_values",
           "summarize_sweep", "sweep"]

#: Largest number of values one ``start:stop:step`` range may expand to (guards typos).
MAX_RANGE_POINTS = 100_000

#: Columns that follow the grid columns in a sweep table.
KEY_COLUMNS = ("policy", "seed")

RowCallback = Callable[[list[dict[str, Any]]], None]

#: read_csv options that parse floats back exactly (pandas >= 3 does by default and deprecates
#: the option; pandas 2's default parser can be off by an ulp)
_EXACT_FLOATS: dict[str, Any] = (
    {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"})


# --------------------------------------------------------------------------------------------
# Grid syntax
# --------------------------------------------------------------------------------------------


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def parse_grid_values(text: str, path: str = "grid") -> list[Any]:
    """The values of one grid axis from its text.

    - ``start:stop:step``: ``start + i * step`` for ``i = 0, 1, ...`` while it does not pass
      ``stop`` (so ``stop`` is included when it lands on the grid). Computed in exact decimal
      arithmetic from the text, so ``1:4:0.25`` gives ``1.0, 1.25, ..., 4.0`` with no float
      drift. Ints when all three are written as integers (``128:512:128``), floats otherwise. A
      negative step counts down.
    - ``a,b,c``: a list read with ``yaml.safe_load`` (as ``[a,b,c]``): ``3`` -> int, ``0.5`` ->
      float, ``null`` -> None, ``{dist: fixed, value: 64}`` -> a dict, ``hybrid`` -> a string.

    Raises ConfigError (naming ``path``) on an empty, malformed or too long list.
    """
    raw = text.strip()
    if not raw:
        raise ConfigError("empty grid (write start:stop:step or a,b,c)", path, text)
    parts = raw.split(":")
    if len(parts) == 3 and all(_decimal(p) is not None for p in parts):
        start, stop, step = (_decimal(p) for p in parts)
        assert start is not None and stop is not None and step is not None
        if step == 0:
            raise ConfigError("range step must not be 0", path, text)
        count = int(((stop - start) / step).to_integral_value(rounding="ROUND_FLOOR")) + 1
        if count < 1:
            raise ConfigError("empty range: stop is before start in the step's direction",
                              path, text)
        if count > MAX_RANGE_POINTS:
            raise ConfigError(f"range has {count} values (more than {MAX_RANGE_POINTS})",
                              path, text)
        integral = all(not any(c in p.lower() for c in ".e") for p in parts)
        values = [start + i * step for i in range(count)]
        return [int(v) for v in values] if integral else [float(v) for v in values]
    try:
        values = strict_load(f"[{raw}]")
    except yaml.YAMLError as err:
        raise ConfigError(f"grid values are not valid YAML: {err}", path, text) from err
    if not isinstance(values, list) or not values:
        raise ConfigError("expected start:stop:step or a,b,c", path, text)
    return values


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """Parse a command-line grid ``key.path=VALUES`` into ``(key_path, values)``.

    ``VALUES`` is ``start:stop:step`` or ``a,b,c`` (see :func:`parse_grid_values`), e.g.
    ``workload.arrival.rate_per_s=1:4:0.25`` or ``scheduler.token_budget=128,256,512``.
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError("malformed grid; expected key.path=start:stop:step or key.path=a,b,c",
                          "--grid", text)
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part or part != part.strip() for part in key.split(".")):
        raise ConfigError("malformed grid key; expected key.path=values", "--grid", text)
    return key, parse_grid_values(raw, key)


# --------------------------------------------------------------------------------------------
# CSV cells and run keys
# --------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """The CSV text of a value: shortest round-trip repr for floats, JSON for dicts/lists."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=_json_default)
    return str(value)


def _norm(text: str) -> str:
    """Key form of a CSV cell: numbers to 12 significant digits, anything else as is."""
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isnan(number):
        return "nan"
    return format(number, ".12g")


def _key(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(_norm(_cell(v)) for v in values)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def _scheduler_fields(policy: str) -> set[str]:
    return {f.name for f in dataclasses.fields(scheduler_class(policy).Config)}


def _effective_config(base: SimConfig, point: Mapping[str, Any], policy: str) -> SimConfig:
    """The config one run uses: ``base`` with the point applied and the scheduler block set to
    ``policy`` with the parameters it takes (see the module docstring)."""
    cfg = base.replace(dict(point)) if point else base
    cls = scheduler_class(policy)
    fields = _scheduler_fields(policy)
    params = dict(cfg.scheduler.params)
    if scheduler_class(cfg.scheduler.name) is cls:
        # the config's own scheduler keeps its parameters (a bad one is an error, as in
        # simulate); only the ones the grid set and it does not take are dropped
        from_grid = {p.split(".", 1)[1] for p in point if p.startswith("scheduler.")}
        params = {k: v for k, v in params.items() if k in fields or k not in from_grid}
    else:
        params = {k: v for k, v in params.items() if k in fields}  # as make_scheduler does
    cfg = cfg.replace({"scheduler": {"name": cls.name, **params}})
    make_scheduler(cfg, policy)  # fail fast on bad parameter values, before any run
    return cfg


def _fingerprint(cfg: SimConfig, seed: int) -> str | None:
    """Identity of a run's inputs (config + seed), or None when the config cannot be dumped."""
    try:
        return json.dumps([cfg.to_dict(), seed], sort_keys=True, default=_json_default)
    except (TypeError, ValueError):
        return None


def _run_summary(cfg: SimConfig, policy: str, seed: int) -> dict[str, Any]:
    """One simulation's summary (runs in a worker process)."""
    return simulate(cfg, policy=policy, seed=seed).summary()


class SweepPartial(typing.NamedTuple):
    """What an interrupted :func:`sweep` finished: ``rows`` new in this call, and ``done``
    of the sweep's ``total`` rows (those resumed from ``out`` included)."""

    rows: pd.DataFrame
    done: int
    total: int


@dataclasses.dataclass
class _Job:
    """One simulation and the sweep rows (grid values, policy, seed) it stands for."""

    cfg: SimConfig
    policy: str
    seed: int
    rows: list[dict[str, Any]]


# --------------------------------------------------------------------------------------------
# The fingerprint of a sweep's CSV
# --------------------------------------------------------------------------------------------


def meta_path(out: str | os.PathLike[str]) -> Path:
    """The sidecar of a sweep CSV: ``X.csv`` -> ``X.csv.meta.json``."""
    return Path(f"{os.fspath(out)}.meta.json")


def _fingerprint_data(base: SimConfig, paths: Sequence[str]) -> dict[str, Any]:
    config = json.loads(json.dumps(base.to_dict(), sort_keys=True, default=_json_default))
    for path in paths:  # the grid sets these: the base value does not matter
        node: Any = config
        *head, last = path.split(".")
        for part in head:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return {"config": config, "grid_paths": list(paths)}


def config_fingerprint(base: SimConfig, paths: Sequence[str]) -> str:
    """sha256 of the base config (canonical JSON, without the grid's paths) and the grid's
    paths: equal for two sweeps whose rows may share a CSV."""
    text = json.dumps(_fingerprint_data(base, paths), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    a, b = flatten(old.get("config", {})), flatten(new["config"])
    fields = sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))
    if old.get("grid_paths") != new["grid_paths"]:
        fields.append("the grid's paths")
    return fields


# --------------------------------------------------------------------------------------------
# The CSV
# --------------------------------------------------------------------------------------------


class _CsvLog:
    """Append-only CSV of finished runs: one header, whole flushed lines."""

    def __init__(self, path: Path, key_columns: list[str], meta: dict[str, Any]) -> None:
        self.path = path
        self.key_columns = key_columns
        self.header: list[str] | None = None
        self.done: set[tuple[str, ...]] = set()
        self.meta = meta
        if path.exists() and path.stat().st_size > 0:
            self._load()
        if self.done:
            self._check_meta()

    def _check_meta(self) -> None:
        """Refuse rows of another base config (see the module docstring)."""
        side = meta_path(self.path)
        fresh = (f"use another --out file, or delete {self.path} and {side} to start fresh "
                 f"(or rerun with the old config to resume)")
        if not side.is_file():
            raise ConfigError(f"this CSV has finished runs but no fingerprint file {side.name}, "
                              f"so it cannot be told which config they ran: {fresh}", "--out",
                              str(self.path))
        try:
            old = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read its fingerprint file {side}: {err}; {fresh}",
                              "--out", str(self.path)) from None
        if old.get("fingerprint") != self.meta["fingerprint"]:
            fields = _differences(old, self.meta)
            what = ", ".join(fields[:8]) + (", ..." if len(fields) > 8 else "") or "unknown"
            raise ConfigError(f"its runs were made with another base config (differs in: "
                              f"{what}); resuming would mix them with this sweep's: {fresh}",
                              "--out", str(self.path))

    def write_meta(self) -> None:
        """Write the fingerprint sidecar (before the first row)."""
        meta_path(self.path).write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n",
                                        encoding="utf-8")

    def _load(self) -> None:
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):  # a write cut short: drop the partial last line
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        if not data.strip():
            return
        reader = csv.reader(io.StringIO(data.decode("utf-8")))
        header = next(reader)
        n = len(self.key_columns)
        if header[:n] != self.key_columns:
            raise ConfigError(
                f"{self.path} holds a sweep with columns {header[:n]}, this sweep writes "
                f"{self.key_columns}: use another --out file", "--out", str(self.path))
        self.header = header
        for row in reader:
            if len(row) == len(header):
                self.done.add(tuple(_norm(c) for c in row[:n]))

    def append(self, rows: list[dict[str, Any]]) -> None:
        if self.header is None:
            self.header = list(rows[0])
            lines = [self.header]
        else:
            lines = []
        for row in rows:
            extra = set(row) - set(self.header)
            if extra:
                raise ValueError(f"run has columns {sorted(extra)} that {self.path} lacks "
                                 f"(its header: {self.header}): use another --out file")
            lines.append([_cell(row.get(col)) for col in self.header])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(lines)
        with self.path.open("a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())  # whole lines in one write, then flushed on close
            f.flush()

    def read(self, keys: Sequence[tuple[str, ...]]) -> pd.DataFrame:
        """The rows of ``keys`` (first occurrence of each), in the order of ``keys``."""
        text = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        values = pd.read_csv(self.path, **_EXACT_FLOATS)
        n = len(self.key_columns)
        found = {}
        for i, row in enumerate(text.iloc[:, :n].itertuples(index=False, name=None)):
            found.setdefault(tuple(_norm(c) for c in row), i)
        missing = [k for k in keys if k not in found]
        if missing:
            raise RuntimeError(f"{self.path} lacks {len(missing)} runs of the sweep, "
                               f"e.g. {missing[0]}")
        return values.iloc[[found[k] for k in keys]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------


def _grid_axes(grid: Mapping[str, Sequence[Any]]) -> tuple[list[str], list[list[Any]]]:
    paths, axes = [], []
    for path, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ConfigError("grid values must be a sequence (e.g. [1, 2, 3])", path, values)
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        if not values:
            raise ConfigError("grid axis has no values", path, values)
        keys = [_key([v]) for v in values]
        if len(set(keys)) != len(keys):
            raise ConfigError("grid axis has duplicate values", path, values)
        if path in KEY_COLUMNS:
            raise ConfigError(f"{path!r} is a sweep column, not a config path", path)
        paths.append(path)
        axes.append(values)
    return paths, axes


def _check_scheduler_params(paths: Sequence[str], policies: Sequence[str]) -> None:
    taken = set().union(*(_scheduler_fields(p) for p in policies))
    for path in paths:
        if path.startswith("scheduler.") and path.count(".") == 1:
            name = path.split(".", 1)[1]
            if name != "name" and name not in taken:
                raise ConfigError(
                    f"no scheduler of the sweep ({', '.join(policies)}) takes this parameter; "
                    f"they take: {', '.join(sorted(taken)) or 'none'}", path)


def sweep(
    cfg: SimConfig | str | os.PathLike | Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    policies: Sequence[str] | str | None,
    replications: int,
    out: str | os.PathLike[str] | None = None,
    executor: Executor | str | None = None,
    progress: bool = True,
    *,
    first_seed: int = 0,
    workers: int | None = None,
    on_run: RowCallback | None = None,
) -> pd.DataFrame:
    """Run every (grid point, policy, seed) and return one summary row per run.

    Args:
        cfg: base config (SimConfig, YAML path, preset name or dict).
        grid: dotted config path -> values, e.g. ``{"workload.arrival.rate_per_s": [1, 2],
            "scheduler.token_budget": [256, 512]}`` (see :func:`parse_grid` for the CLI
            syntax). Points are the Cartesian product, first path varying slowest. ``{}``
            sweeps policies and seeds only.
        policies: scheduler names (a list or ``"a,b"``); None uses the config's scheduler.
        replications: runs per point and policy, seeds ``first_seed .. first_seed + R - 1``.
        out: CSV to append each finished run to, and to resume from (see the module docstring).
        executor: None or ``"local"`` (a process pool of ``workers``), ``"dask://HOST:PORT"``,
            or a :class:`concurrent.futures.Executor` (used as is, not shut down).
        progress: show a tqdm bar over runs.
        first_seed: seed of replication 0.
        workers: local processes (default one per CPU; 1 runs in this process).
        on_run: called in this process with the rows of each simulation as it finishes
            (several rows when one run stands for several grid points); not for skipped runs.

    Returns:
        DataFrame, one row per (point, policy, seed) in product order: the grid columns (named
        by path), ``policy``, ``seed``, then every summary key. With ``out`` it is read back
        from the CSV (so a resumed sweep returns exactly what a fresh one does); without, it is
        built from the summaries in memory.

    Raises:
        ConfigError: a bad grid path or value, policy or scheduler parameter, or an ``out``
            CSV of another sweep (before any run).
        Interrupted: on Ctrl-C (see :mod:`~llm_serving_env.analysis.replications`), after
            the finished runs were written to ``out``; its ``partial`` is a
            :class:`SweepPartial`.
    """
    base = as_config(cfg)
    if isinstance(policies, str):
        policies = [p.strip() for p in policies.split(",") if p.strip()]
    policies = list(policies) if policies else [base.scheduler.name]
    if len(set(policies)) != len(policies):
        raise ConfigError("duplicate policy names", "policies", policies)
    if isinstance(replications, bool) or not isinstance(replications, (int, np.integer)) \
            or replications < 1:
        raise ValueError(f"replications = {replications!r}: must be an integer >= 1")
    paths, axes = _grid_axes(grid)
    _check_scheduler_params(paths, policies)
    key_columns = [*paths, *KEY_COLUMNS]
    seeds = [first_seed + r for r in range(int(replications))]

    # every run's config, validated before any run; runs with equal inputs share one job
    all_keys: list[tuple[str, ...]] = []
    rows_of: dict[tuple[str, ...], tuple[SimConfig, dict[str, Any]]] = {}
    for values in itertools.product(*axes):
        point = dict(zip(paths, values, strict=True))
        for policy in policies:
            run_cfg = _effective_config(base, point, policy)
            for seed in seeds:
                key = _key([*values, policy, seed])
                all_keys.append(key)
                rows_of[key] = (run_cfg, {**point, "policy": policy, "seed": seed})

    meta = {"fingerprint": config_fingerprint(base, paths), **_fingerprint_data(base, paths)}
    log = _CsvLog(Path(out), key_columns, meta) if out is not None else None
    if log is not None:
        log.path.parent.mkdir(parents=True, exist_ok=True)
        if not log.done:
            log.write_meta()
    todo = [k for k in all_keys if log is None or k not in log.done]
    jobs: list[_Job] = []
    by_input: dict[str, _Job] = {}
    for key in todo:
        run_cfg, row = rows_of[key]
        fp = _fingerprint(run_cfg, row["seed"])
        job = by_input.get(fp) if fp is not None else None
        if job is None or job.policy != row["policy"]:
            job = _Job(run_cfg, row["policy"], row["seed"], [])
            jobs.append(job)
            if fp is not None:
                by_input[fp] = job
        job.rows.append(row)

    memory: dict[tuple[str, ...], dict[str, Any]] = {}
    new_rows: list[dict[str, Any]] = []

    def finish(i: int, summary: dict[str, Any]) -> None:
        rows = [{**row, **summary} for row in jobs[i].rows]
        if log is not None:
            log.append(rows)
        else:
            for row in rows:
                memory[_key([row[c] for c in key_columns])] = row
        new_rows.extend(rows)
        if on_run is not None:
            on_run(rows)

    try:
        run_jobs(_run_summary, [(job.cfg, job.policy, job.seed) for job in jobs],
                 executor=executor, workers=workers, progress=progress, desc="sweep",
                 on_result=finish, bar_total=len(all_keys),
                 bar_initial=len(all_keys) - len(todo), bar_step=lambda i, _: len(jobs[i].rows))
    except Interrupted as exc:
        # the rows this call finished (all in ``out`` already, when given)
        partial = SweepPartial(pd.DataFrame.from_records(new_rows),
                               len(all_keys) - len(todo) + len(new_rows), len(all_keys))
        raise exc.with_partial(partial) from None

    if log is not None:
        return log.read(all_keys)
    return pd.DataFrame.from_records([memory[k] for k in all_keys])


def summarize_sweep(
    df: pd.DataFrame,
    level: float = 0.95,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mean and t-CI over replications of every metric, per grid point and policy.

    ``df`` is a :func:`sweep` table: grid columns, then ``policy`` and ``seed``, then metrics
    (the grid columns are those before ``policy``). Returns a long DataFrame with the grid
    columns, ``policy``, ``metric``, ``mean``, ``half_width``, ``low``, ``high``, ``n`` (units
    those of the metric; ``half_width`` NaN with one replication), points in order of first
    appearance.
    """
    columns = list(df.columns)
    if "policy" not in columns or "seed" not in columns:
        raise ValueError("df must be a sweep table with 'policy' and 'seed' columns")
    grid_cols = columns[: columns.index("policy")]
    group_cols = [*grid_cols, "policy"]
    metric_cols = list(metrics) if metrics is not None else [
        c for c in columns if c not in group_cols and c != "seed"]
    tables = []
    for key, rows in df.groupby(group_cols, sort=False, dropna=False):
        table = summarize_replications(rows[metric_cols].to_dict("records"), level=level)
        table = table.rename_axis("metric").reset_index()
        values = key if isinstance(key, tuple) else (key,)
        for col, value in reversed(list(zip(group_cols, values, strict=True))):
            table.insert(0, col, value)
        tables.append(table)
    if not tables:
        return pd.DataFrame(columns=[*group_cols, "metric", "mean", "half_width", "low",
                                     "high", "n"])
    return pd.concat(tables, ignore_index=True)
