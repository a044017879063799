"""The one replication runner: independent jobs, in this process or on an Executor.

Every "policy x seeds" analysis (:mod:`~llm_serving_env.analysis.comparison`,
:mod:`~llm_serving_env.analysis.sweep`, ``agents.evaluate``, the study) is a list of
independent jobs ``fn(*args)`` whose results depend only on their arguments (each run's
randomness comes from its seed). :func:`iter_jobs` runs them and yields ``(index, result)`` as
they finish; :func:`run_jobs` collects them in job order. Both show a tqdm bar over jobs.

Where jobs run (``executor``):

- ``None`` / ``"local"``: a :class:`~concurrent.futures.ProcessPoolExecutor` of ``workers``
  processes (default one per CPU, at most one per job); ``workers=1`` (or a single job) runs
  in this process, with no pool.
- ``"dask://HOST:PORT"``: a Dask cluster (``distributed.Client(address).get_executor()``).
- any :class:`concurrent.futures.Executor`: used as is and never shut down (its owner does).

Ctrl-C. The pool's workers ignore SIGINT (a pool initializer), so only this process sees it.
On a KeyboardInterrupt the pending jobs are cancelled, a pool the runner opened is shut down
without waiting and its workers are terminated (so a second Ctrl-C has nothing to hang on),
and :class:`Interrupted` (a KeyboardInterrupt) is raised with the results already finished.
A job passed to a foreign Executor that is already running keeps running there; its result is
dropped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, Generic, TypeVar

from tqdm.auto import tqdm

__all__ = ["Interrupted", "iter_jobs", "open_executor", "run_jobs"]

R = TypeVar("R")

#: How long (s) to wait for terminated workers to exit before giving up on them.
_TERMINATE_TIMEOUT_S = 2.0


class Interrupted(KeyboardInterrupt, Generic[R]):
    """Ctrl-C stopped a run of jobs; the finished ones are kept.

    Attributes:
        results: finished results by job index (the job order given).
        total: number of jobs asked for.
        partial: what the caller built from the finished results (e.g. a table), or None;
            layers above fill it in as the exception passes through them.
    """

    def __init__(self, results: dict[int, R], total: int, partial: Any = None) -> None:
        super().__init__(f"interrupted: {len(results)} of {total} runs finished")
        self.results = results
        self.total = total
        self.partial = partial

    @property
    def finished(self) -> int:
        """Number of jobs that finished."""
        return len(self.results)

    def with_partial(self, partial: Any) -> Interrupted[R]:
        """The same interruption carrying ``partial`` (raise it ``from None``)."""
        return Interrupted(self.results, self.total, partial)


def ignore_sigint() -> None:
    """Pool initializer: a worker ignores Ctrl-C; the parent handles it and stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _local_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, initializer=ignore_sigint)


def open_executor(
    executor: Executor | str | None, workers: int | None, num_jobs: int
) -> tuple[Executor | None, bool, Callable[[], None]]:
    """``(executor or None for in-process, owned, close)`` for :func:`iter_jobs`.

    ``owned`` is True when the runner opened the executor (so it may terminate its workers);
    ``close`` releases it after a normal finish.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers = {workers!r}: must be an integer >= 1 (or None: one per CPU)")
    if isinstance(executor, Executor):
        return executor, False, lambda: None
    if executor is None or executor == "local":
        n = min(workers or os.cpu_count() or 1, num_jobs)
        if n <= 1:
            return None, False, lambda: None
        pool = _local_pool(n)
        return pool, True, lambda: pool.shutdown(wait=True, cancel_futures=True)
    if isinstance(executor, str) and executor.startswith(("dask://", "tcp://")):
        try:
            from distributed import Client
        except ImportError as err:
            raise ImportError(
                "executor='dask://...' needs dask.distributed: pip install -e '.[dask]'"
            ) from err
        address = "tcp://" + executor.split("://", 1)[1]
        client = Client(address, set_as_default=False)
        return client.get_executor(), False, client.close
    raise ValueError(f"executor = {executor!r}: expected None, 'local', 'dask://HOST:PORT' "
                     f"or a concurrent.futures.Executor")


def _stop(pool: Executor, futures: Sequence[Future], owned: bool) -> None:
    """Cancel what has not started; for a pool we own, stop at once and kill its workers."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        for future in futures:
            future.cancel()
        if owned and isinstance(pool, ProcessPoolExecutor):
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                if proc.is_alive():
                    proc.terminate()
            for proc in processes:
                proc.join(_TERMINATE_TIMEOUT_S)
            # let the pool's manager thread finish closing its wake-up pipe now: left running,
            # it races the interpreter's exit hook, which then writes to the closed pipe and
            # prints an OSError traceback (seen once in three CI runs of the Ctrl-C tests)
            manager = getattr(pool, "_executor_manager_thread", None)
            if manager is not None and manager.is_alive():
                manager.join(_TERMINATE_TIMEOUT_S)
        elif owned:
            pool.shutdown(wait=False, cancel_futures=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def iter_jobs(
    fn: Callable[..., R],
    jobs: Sequence[tuple[Any, ...]],
    *,
    executor: Executor | str | None = None,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "runs",
    bar_total: int | None = None,
    bar_initial: int = 0,
    bar_step: Callable[[int, R], int] | None = None,
) -> Iterator[tuple[int, R]]:
    """Run ``fn(*args)`` for every ``args`` in ``jobs``; yield ``(index, result)`` as each
    finishes (in job order when run in this process).

    Args:
        fn: a picklable (module-level) function when jobs go to processes or a cluster.
        jobs: the argument tuples, one per job.
        executor, workers: where jobs run (see the module docstring).
        progress: show a tqdm bar (on stderr).
        desc: the bar's label.
        bar_total, bar_initial: the bar's total and starting count (default: one per job,
            from 0), e.g. to count rows of which some were done before.
        bar_step: how far a finished job moves the bar (default 1).

    Raises:
        Interrupted: on Ctrl-C (while waiting or in the caller's loop body), after stopping
            the jobs; it holds the results yielded so far.
        Exception: the first exception a job raised, after cancelling the others.
    """
    results: dict[int, R] = {}
    bar = tqdm(total=len(jobs) if bar_total is None else bar_total, initial=bar_initial,
               desc=desc, unit="run", disable=not progress)
    pool, owned, close = open_executor(executor, workers, len(jobs)) if jobs \
        else (None, False, lambda: None)
    futures: dict[Future, int] = {}
    try:
        if pool is None:
            for i, args in enumerate(jobs):
                result = fn(*args)
                results[i] = result
                bar.update(1 if bar_step is None else bar_step(i, result))
                yield i, result
        else:
            futures = {pool.submit(fn, *args): i for i, args in enumerate(jobs)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    i = futures[future]
                    result = future.result()
                    results[i] = result
                    bar.update(1 if bar_step is None else bar_step(i, result))
                    yield i, result
    except KeyboardInterrupt as exc:
        if pool is not None:
            _stop(pool, list(futures), owned)
        bar.close()
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(results, len(jobs)) from None
    except BaseException:  # a failed job, or the caller stopped iterating (GeneratorExit)
        if pool is not None:
            for future in futures:
                future.cancel()
            close()
        bar.close()
        raise
    bar.close()
    close()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) back until the block ends (POSIX, main thread; elsewhere a
    no-op): a Ctrl-C between writing a finished run to a file and counting it would make the
    count and the file disagree."""
    if not (hasattr(signal, "pthread_sigmask")
            and threading.current_thread() is threading.main_thread()):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_jobs(
    fn: Callable[..., R],
    jobs: Sequence[tuple[Any, ...]],
    *,
    executor: Executor | str | None = None,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "runs",
    on_result: Callable[[int, R], None] | None = None,
    bar_total: int | None = None,
    bar_initial: int = 0,
    bar_step: Callable[[int, R], int] | None = None,
) -> list[R]:
    """Every job's result, in job order (see :func:`iter_jobs`).

    ``bar_total``, ``bar_initial``, ``bar_step``: as in :func:`iter_jobs`.
    ``on_result(index, result)`` is called in this process as each job finishes (e.g. to
    append it to a file), with Ctrl-C held back until it returns. A Ctrl-C raises
    :class:`Interrupted` with the finished results: exactly those ``on_result`` handled.
    """
    finished: dict[int, R] = {}
    runs = iter_jobs(fn, jobs, executor=executor, workers=workers, progress=progress, desc=desc,
                     bar_total=bar_total, bar_initial=bar_initial, bar_step=bar_step)
    try:
        for i, result in runs:
            with _sigint_deferred():  # a run is recorded and handed on, or neither
                finished[i] = result
                if on_result is not None:
                    on_result(i, result)
    except Interrupted as exc:
        raise Interrupted({**exc.results, **finished}, len(jobs)) from None
    except KeyboardInterrupt:  # in on_result: stop the jobs still running, keep the rest
        with contextlib.suppress(KeyboardInterrupt, StopIteration):
            runs.throw(KeyboardInterrupt())
        raise Interrupted(finished, len(jobs)) from None
    return [finished[i] for i in range(len(jobs))]
