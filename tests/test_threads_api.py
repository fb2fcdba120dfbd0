"""fastgru's thread-count API, with scikit-learn's conventions.

set_num_threads(n) is process-wide (None restores the default); get_num_threads() is the count
the calling thread would use now; ``with fastgru.threads(n):`` is local to the calling thread,
nests and restores on exit. The default is the number of CPUs this process may run on
(os.sched_getaffinity), capped by OMP_NUM_THREADS when that is a positive integer.
"""
import json
import os
import sys
import threading

import numpy as np
import pytest

import fastgru

from helpers import run_script

BAD_TYPES = ["2", 2.0, True, False, [2], object()]
BAD_TYPE_IDS = ["str", "float", "True", "False", "list", "object"]
BAD_VALUES = [0, -1, -8]
LINUX = sys.platform.startswith("linux")


@pytest.fixture(autouse=True)
def restore_default():
    yield
    if hasattr(fastgru, "set_num_threads"):
        fastgru.set_num_threads(None)


def in_thread(fn):
    """fn() run in a new Python thread; its result, or its exception raised here."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # pragma: no cover - re-raised below
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "thread hung"
    if "error" in box:
        raise box["error"]
    return box["value"]


def assert_names(excinfo, value):
    message = str(excinfo.value)
    assert repr(value) in message or type(value).__name__ in message, (
        f"the message should say what was given ({value!r}): {message!r}")


def test_public_names():
    for name in ("set_num_threads", "get_num_threads", "threads"):
        assert callable(getattr(fastgru, name, None)), f"fastgru.{name} is missing"
        assert name in fastgru.__all__, f"{name} not in fastgru.__all__"


def test_default_is_a_positive_int():
    n = fastgru.get_num_threads()
    assert type(n) is int and n >= 1, repr(n)


def test_set_get_and_none_restores_default():
    default = fastgru.get_num_threads()
    fastgru.set_num_threads(3)
    assert fastgru.get_num_threads() == 3
    fastgru.set_num_threads(1)
    assert fastgru.get_num_threads() == 1
    fastgru.set_num_threads(default + 5)   # more than the CPUs is allowed
    assert fastgru.get_num_threads() == default + 5
    fastgru.set_num_threads(None)
    assert fastgru.get_num_threads() == default


def test_numpy_integer_is_accepted():
    fastgru.set_num_threads(np.int64(2))
    assert fastgru.get_num_threads() == 2
    assert type(fastgru.get_num_threads()) is int


def test_set_is_process_wide():
    fastgru.set_num_threads(3)
    assert in_thread(fastgru.get_num_threads) == 3
    in_thread(lambda: fastgru.set_num_threads(2))
    assert fastgru.get_num_threads() == 2


# each bad value, with the error it must raise
BAD = ([(value, TypeError) for value in BAD_TYPES]
       + [(value, ValueError) for value in BAD_VALUES])
BAD_IDS = BAD_TYPE_IDS + [str(value) for value in BAD_VALUES]


@pytest.mark.parametrize("value, error", BAD, ids=BAD_IDS)
def test_set_rejects(value, error):
    fastgru.set_num_threads(2)
    with pytest.raises(error) as excinfo:
        fastgru.set_num_threads(value)
    assert_names(excinfo, value)
    assert fastgru.get_num_threads() == 2, "a rejected value must change nothing"


@pytest.mark.parametrize("value, error", BAD, ids=BAD_IDS)
def test_threads_rejects(value, error):
    before = fastgru.get_num_threads()
    with pytest.raises(error) as excinfo:
        with fastgru.threads(value):
            pass
    assert_names(excinfo, value)
    assert fastgru.get_num_threads() == before


def test_threads_sets_nests_and_restores():
    default = fastgru.get_num_threads()
    with fastgru.threads(2):
        assert fastgru.get_num_threads() == 2
        with fastgru.threads(3):
            assert fastgru.get_num_threads() == 3
            with fastgru.threads(1):
                assert fastgru.get_num_threads() == 1
            assert fastgru.get_num_threads() == 3
        assert fastgru.get_num_threads() == 2
    assert fastgru.get_num_threads() == default


def test_threads_overrides_the_process_setting_locally():
    fastgru.set_num_threads(3)
    with fastgru.threads(1):
        assert fastgru.get_num_threads() == 1
    assert fastgru.get_num_threads() == 3


def test_threads_restores_after_an_exception():
    default = fastgru.get_num_threads()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with fastgru.threads(2):
            with fastgru.threads(3):
                raise Boom
    assert fastgru.get_num_threads() == default
    with fastgru.threads(2):
        with pytest.raises(Boom):
            with fastgru.threads(3):
                raise Boom
        assert fastgru.get_num_threads() == 2
    assert fastgru.get_num_threads() == default


def test_threads_is_local_to_the_calling_thread():
    """Two Python threads, each inside its own threads(n), see their own count while both
    are inside; the main thread and a thread started inside a block see neither."""
    default = fastgru.get_num_threads()
    inside = threading.Barrier(3, timeout=30)
    leave = threading.Barrier(3, timeout=30)
    seen, errors = {}, []

    def work(n):
        try:
            with fastgru.threads(n):
                inside.wait()                 # both threads are inside their blocks now
                seen[n] = [fastgru.get_num_threads()]
                leave.wait()
                seen[n].append(fastgru.get_num_threads())
            seen[n].append(fastgru.get_num_threads())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            inside.abort()
            leave.abort()

    workers = [threading.Thread(target=work, args=(n,)) for n in (2, 3)]
    for t in workers:
        t.start()
    main_inside = None
    try:
        inside.wait()
        main_inside = fastgru.get_num_threads()
        leave.wait()
    except threading.BrokenBarrierError:
        pass
    for t in workers:
        t.join(timeout=30)
    assert not errors, errors
    assert main_inside == default, "the main thread saw another thread's threads(n)"
    assert seen[2] == [2, 2, default]
    assert seen[3] == [3, 3, default]

    with fastgru.threads(3):
        assert in_thread(fastgru.get_num_threads) == default, (
            "a thread started inside threads(3) must not inherit it")
        assert fastgru.get_num_threads() == 3


def test_setting_threads_changes_no_environment_variable():
    before = dict(os.environ)
    fastgru.set_num_threads(3)
    with fastgru.threads(2):
        assert dict(os.environ) == before
    fastgru.set_num_threads(None)
    assert dict(os.environ) == before


DEFAULT_SCRIPT = """
import json, os, sys
if {restrict}:
    os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
cpus = len(os.sched_getaffinity(0))
import fastgru
print(json.dumps({{"n": fastgru.get_num_threads(), "cpus": cpus}}))
"""


@pytest.mark.skipif(not LINUX, reason="os.sched_getaffinity is Linux's")
@pytest.mark.parametrize("omp", [None, "1", "2", "100000", "0", "-3", "abc", ""],
                         ids=lambda v: f"OMP_NUM_THREADS={v}")
def test_default_in_a_fresh_process(omp, tmp_path):
    """CPUs in the affinity mask, capped by OMP_NUM_THREADS when it is a positive integer;
    any other value of it is ignored."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    out = run_script(DEFAULT_SCRIPT.format(restrict=False), tmp_path, env=env, as_json=False)
    got = json.loads(out.splitlines()[-1])
    cpus = got["cpus"]
    want = min(cpus, int(omp)) if omp is not None and omp.isdigit() and int(omp) > 0 else cpus
    assert got["n"] == want, f"OMP_NUM_THREADS={omp!r}, {cpus} CPUs: default {got['n']}"


@pytest.mark.skipif(not LINUX, reason="os.sched_getaffinity is Linux's")
def test_default_follows_the_affinity_mask(tmp_path):
    """A process pinned to one CPU (taskset, a container's cpuset) defaults to one thread,
    whatever os.cpu_count() says."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = run_script(DEFAULT_SCRIPT.format(restrict=True), tmp_path, env=env, as_json=False)
    got = json.loads(out.splitlines()[-1])
    assert got["cpus"] == 1
    assert got["n"] == 1, f"pinned to one CPU, default {got['n']} threads"


ONE_THREAD_SCRIPT = """
import json, threading, numpy as np, fastgru
fastgru.set_num_threads(1)
report = {}
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 64, 16)).astype(np.float32)
d = rng.standard_normal((8, 64, 512)).astype(np.float32)
for name in ("numba", "cython"):
    if name not in fastgru.available_backends():
        continue
    fastgru.set_backend(name)
    gru = fastgru.GRU(16, 512, seed=0)
    gru.forward(x, train=True)
    gru.backward(d)
    report[name] = [t.name for t in threading.enumerate()]
print(json.dumps(report))
"""


def test_one_thread_computes_on_the_calling_thread(tmp_path):
    """set_num_threads(1) governs both compiled backends: a large forward+backward starts no
    other Python thread (fastgru's pool is plain Python threads)."""
    report = run_script(ONE_THREAD_SCRIPT, tmp_path)
    if not report:
        pytest.skip("no compiled backend here")
    for name, threads in report.items():
        assert threads == ["MainThread"], f"{name}: threads running at 1 thread: {threads}"
