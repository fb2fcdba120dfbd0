"""fastgru's threads: how many a call may use, and the pool that runs a team.

One thread model for both compiled backends: plain Python threads of fastgru's
own, each running a compiled kernel that releases the GIL. No OpenMP runtime, no
BLAS thread pool, no environment variable: nothing of the host process is changed.

* ``set_num_threads(n)`` / ``get_num_threads()`` / ``with threads(n):`` follow
  scikit-learn's conventions: the default is the number of CPUs this process may
  run on (its affinity), capped by ``OMP_NUM_THREADS`` when that is set;
  ``threads(n)`` is local to the calling thread.
* ``run(kernel, args, nthreads)`` calls ``kernel(*args, tid, nthreads, sync)`` on
  nthreads threads at once, tid 0 on the caller; the kernels meet at barriers
  through ``sync`` (see ``_numba_sync`` and ``fastgru_ext/_sync.h``). The members
  of a team must all run together, so a team takes idle workers for itself (new
  ones are started when none is idle) rather than queueing behind another call:
  concurrent calls from different threads run concurrently.
* fork: threads do not survive ``os.fork()``; the child starts with an empty pool
  and a fresh lock (``os.register_at_fork``), so it computes as the parent does.

Which thread does what never changes a result: kernels split their work into
pieces fixed by the shapes, and each output element's arithmetic is the same
whoever computes it.
"""
from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from ._scoped import scoped
from .backends._layout import PIECE_FLOPS


def _default_threads():
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        n = min(n, int(env))
    return max(1, n)


_process_threads = None     # set_num_threads's value; None: the default
_local = threading.local()  # threads(n) of the calling thread


def _check_count(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"the number of threads must be an int >= 1 (or None for the default), "
                        f"got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}")
    return int(n)


def set_num_threads(n: int | None) -> int:
    """Use up to n threads per call, process-wide; None restores the default (the CPUs
    this process may use, capped by OMP_NUM_THREADS). Returns the previous setting."""
    global _process_threads
    previous = get_num_threads()
    _process_threads = None if n is None else _check_count(n)
    return previous


def get_num_threads() -> int:
    """The number of threads a fastgru call from this thread may use now."""
    local = getattr(_local, "n", None)
    if local is not None:
        return local
    return _process_threads if _process_threads is not None else _default_threads()


def threads(n: int) -> contextlib.AbstractContextManager[int]:
    """Within the block, calls from this thread use up to n threads (other threads
    are not affected); restores the previous count on exit."""
    return scoped(_local, "n", _check_count(n))


class _Worker:
    """One pool thread: waits for a job, runs it, reports, goes back to the pool."""

    def __init__(self):
        self.job: tuple | None = None
        self.wake = threading.Semaphore(0)
        self.done = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._loop, name="fastgru-worker", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            self.wake.acquire()
            assert self.job is not None   # set before wake is released
            kernel, args = self.job
            self.job = None
            try:
                kernel(*args)
            except BaseException as exc:   # noqa: BLE001 - handed to the caller
                self.error = exc
            self.done.set()


_idle: list[_Worker] = []
_pool_lock = threading.Lock()


def _after_fork_in_child():
    global _idle, _pool_lock
    _idle = []
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _take(n):
    with _pool_lock:
        taken = _idle[-n:] if n else []
        del _idle[len(_idle) - len(taken):]
    return taken + [_Worker() for _ in range(n - len(taken))]


def _give_back(workers):
    with _pool_lock:
        _idle.extend(workers)


def _wait(event):
    """Wait for a worker, also through a KeyboardInterrupt: the team writes into the
    caller's arrays and must be finished before the call returns or raises."""
    interrupted = None
    while True:
        try:
            event.wait()
            break
        except BaseException as exc:   # noqa: BLE001 - re-raised once the worker is done
            interrupted = exc
    return interrupted


def new_sync():
    """A zeroed barrier word pair for one team (see _numba_sync.barrier)."""
    return np.zeros(16, np.int64)


def run(kernel, args, nthreads):
    """kernel(*args, tid, nthreads, sync) for tid in range(nthreads), all at once."""
    sync = new_sync()
    if nthreads <= 1:
        kernel(*args, 0, 1, sync)
        return
    workers = _take(nthreads - 1)
    for tid, w in enumerate(workers, start=1):
        w.done.clear()
        w.error = None
        w.job = (kernel, (*args, tid, nthreads, sync))
        w.wake.release()
    errors = []
    try:
        kernel(*args, 0, nthreads, sync)
    except BaseException as exc:   # noqa: BLE001
        errors.append(exc)
    for w in workers:
        interrupted = _wait(w.done)
        if interrupted is not None:
            errors.append(interrupted)
        if w.error is not None:
            errors.append(w.error)
    _give_back(workers)
    if errors:
        raise errors[0]


def team_size(pieces, work):
    """Threads for a pass of `pieces` pieces doing about `work` flops in all per
    barrier: at most get_num_threads(); one where a share would be too small to
    pay for waking a thread and meeting at barriers (~1-2 us per step)."""
    n = min(get_num_threads(), pieces, max(1, work // PIECE_FLOPS))
    return max(1, n)
