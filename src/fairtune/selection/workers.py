"""Worker processes for the search: several methods' settings fitted side by side.

The unit of work is one method's whole search on one seed
(:func:`fairtune.selection.search.search`). Its settings share the relative importances
and the backbone features computed on the starting model, which so stay in the
one worker that uses them, and optuna's trials, each proposed from the ones
before, keep their order. Every unit is fitted exactly as in the parent
process, so the results equal those of one job when the threads per process
are equal (float reductions may round otherwise).

Workers are spawned (not forked: a forked copy of a process that has started
threads, as torch does, may deadlock) and each computes with
``max(1, torch.get_num_threads() // jobs)`` threads, so the workers together
use the parent's threads and no more. Tasks and results travel as plain pickled
bytes: torch's own pickling for process queues would move every tensor of every
fitted model into shared memory, one file descriptor each.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing import get_context
from types import TracebackType

import torch

from fairtune.console import progress_bar
from fairtune.errors import FairtuneError
from fairtune.selection.halving import GridPlan, halving_search
from fairtune.selection.search import MethodSearch, SearchContext, report_outcome, search

PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15
"""Linux's prctl options: the signal this process gets when its parent dies; a thread's name."""
WATCH_THREAD = "fairtune-watch"
"""The name of a worker's thread that watches its parent (at most 15 characters on Linux)."""


@dataclass(frozen=True)
class SearchTask:
    """One method's search on one seed's data: a unit of work."""

    method: str
    context: SearchContext
    start_auc: float
    budget_rows: float | None = None
    """With successive halving: the rows this method's search may pass (None: no budget)."""
    plan: GridPlan | None = None
    """With successive halving: the method's planned grid (None: planned by the task)."""

    def run(self) -> MethodSearch:
        """Every setting of the method tried (see :func:`fairtune.selection.search.search`), or
        those successive halving kept (:func:`fairtune.selection.halving.halving_search`)."""
        if self.context.settings.search == "halving":
            budget = self.budget_rows
            return halving_search(self.method, self.context, self.start_auc, budget, self.plan)
        return search(self.method, self.context, self.start_auc)

    def what(self) -> str:
        """The task in words, for messages."""
        return f"{self.method} (seed {self.context.seed})"


@dataclass(frozen=True)
class WorkerError:
    """Why a worker's task failed, as the one line the command prints."""

    message: str


class SearchPool:
    """Runs search tasks: in this process with one job, else in ``jobs`` worker processes.

    Use it as a context manager; the workers start with the first tasks given to
    :meth:`run` and serve every later call (each seed of a comparison).
    """

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> SearchPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            # after an error, what is left is not waited for (a running task ends on its own)
            self._executor.shutdown(wait=kind is None, cancel_futures=True)
            self._executor = None

    def run(self, tasks: list[SearchTask], progress: bool = False) -> list[MethodSearch]:
        """Each task's search, in the order of ``tasks``.

        With several jobs, workers show no progress of their own: a bar counts the
        finished tasks. A worker's error ends the run with one line: a
        :class:`FairtuneError` unchanged, any other error named with its task.
        """
        if self.jobs == 1:
            return [task.run() for task in tasks]
        executor = self._start()
        quiet = [replace(t, context=replace(t.context, progress=False)) for t in tasks]
        futures = {
            executor.submit(_run_in_worker, pickle.dumps(quiet[i])): i for i in longest_first(tasks)
        }
        found: dict[int, MethodSearch] = {}
        with progress_bar(progress, f"fitting in {self.jobs} workers", len(tasks)) as advance:
            try:
                for future in as_completed(futures):
                    index = futures[future]
                    found[index] = _result(future, tasks[index])
                    for outcome in found[index].outcomes:  # the worker had no view to tell
                        report_outcome(tasks[index].method, tasks[index].context.seed, outcome)
                    advance()
            except FairtuneError:
                for future in futures:
                    future.cancel()  # the tasks not yet started
                raise
        return [found[i] for i in range(len(tasks))]

    def worker_threads(self) -> int:
        """The torch threads each worker computes with: its share of this process's."""
        return max(1, torch.get_num_threads() // self.jobs)

    @contextlib.contextmanager
    def as_a_worker(self) -> Iterator[None]:
        """Fits made here, in this process, computing with a worker's threads (the final
        rung of a halving search), so their results equal those of one job."""
        threads = torch.get_num_threads()
        torch.set_num_threads(self.worker_threads())
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.jobs, get_context("spawn"), initializer=_start_worker,
                initargs=(self.worker_threads(), os.getpid()),
            )
        return self._executor


def longest_first(tasks: list[SearchTask]) -> list[int]:
    """The tasks' indexes, those that fit the most settings first (ties in their order): the
    longest searches start at once instead of last, so the workers finish closer together."""
    sizes = [t.context.settings.tries(t.method) for t in tasks]
    return sorted(range(len(tasks)), key=lambda i: -sizes[i])


def _result(future: Future[bytes], task: SearchTask) -> MethodSearch:
    """A finished task's search, or its error raised as one line."""
    try:
        outcome = pickle.loads(future.result())
    except BrokenProcessPool:
        raise FairtuneError(
            f"a worker process stopped while fitting {task.what()} (out of memory?): try fewer jobs"
        ) from None
    if isinstance(outcome, WorkerError):
        raise FairtuneError(outcome.message)
    return outcome


def _start_worker(threads: int, parent: int) -> None:
    """A worker's setup: its share of the parent's threads, and death with the parent.

    A parent killed outright (``kill -9``, the out-of-memory killer) runs no clean-up, so
    the worker watches for itself: on Linux the kernel signals it when the parent dies
    (``PR_SET_PDEATHSIG``), and everywhere a thread checks every second that its parent is
    still ``parent``. With the workers gone, the multiprocessing resource tracker, which
    the parent and the workers hold a pipe to, reads its end of file and stops too.
    """
    torch.set_num_threads(threads)
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """End this process when the process ``parent`` ends (see :func:`_start_worker`)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        _prctl(PR_SET_NAME, WATCH_THREAD.encode())  # shown by ps -L, and seen by the tests
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name=WATCH_THREAD, daemon=True).start()


def _prctl(option: int, value: object) -> None:
    """Linux's prctl(option, value); nothing elsewhere (the watching thread still works)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value)


def _run_in_worker(payload: bytes) -> bytes:
    """A worker's task: the pickled search, or the pickled :class:`WorkerError`."""
    task: SearchTask = pickle.loads(payload)
    try:
        outcome: MethodSearch | WorkerError = task.run()
    except FairtuneError as error:
        outcome = WorkerError(str(error))
    except Exception as error:  # any other error: the one line the parent prints, with its task
        outcome = WorkerError(
            f"fitting {task.what()} failed in a worker process: {type(error).__name__}: "
            f"{error} (run with one job to see where)"
        )
    return pickle.dumps(outcome)
