"""fastgru as a guest in someone else's process (DESIGN.md, "A good guest").

Each check runs in a fresh interpreter, so that this test process stays clean and a hang
fails the test (the child's process group is killed) instead of hanging CI:

- fork safety: a child forked after the parent computed (also while another thread is
  computing), and multiprocessing pools ("fork", "spawn", "forkserver"), give the parent's bits;
- no environment variable is set, even briefly; SciPy and threadpoolctl stay unimported;
  no OpenMP runtime is loaded;
- torch imported after fastgru gets its usual thread count;
- BLAS thread settings are as in a process that never imported fastgru.
"""
import importlib.util
import json
import os
import signal
import sys

import pytest

from helpers import finish_script, run_script, start_script

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="reads /proc/self/maps (Linux)")
OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp")


_reports = {}


def cached_report(key, make):
    """make()'s report, run once per key for the whole session (a failure too: every test
    that reads the report fails with the subprocess's message)."""
    if key not in _reports:
        try:
            _reports[key] = (True, make())
        except (Exception, pytest.fail.Exception) as exc:
            _reports[key] = (False, str(exc))
    ok, value = _reports[key]
    if not ok:
        pytest.fail(f"[the subprocess this test reads, run once for {key}]\n{value}",
                    pytrace=False)
    return value


def compiled_only(backend):
    if backend == "numpy":
        pytest.skip("the compiled backends' property (the NumPy reference has no threads)")
    return backend


# ---------------------------------------------------------------------------------------------
# fork safety

FORK_SCRIPT = r"""
import hashlib, json, multiprocessing as mp, os, signal, sys, threading, time, traceback
import numpy as np
import fastgru


def digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype} {a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def make(backend):
    # big enough to use fastgru's thread pool
    fastgru.set_backend(backend)
    rng = np.random.default_rng(0)
    gru = fastgru.GRU(16, 256, seed=0)
    x = rng.standard_normal((40, 64, 16)).astype(np.float32)
    d = rng.standard_normal((40, 64, 256)).astype(np.float32)
    return gru, x, d


def step(model):
    gru, x, d = model
    gru.zero_grad()
    out, h_n = gru.forward(x, train=True)
    dx, dh0 = gru.backward(d)
    return digest([out, h_n, dx, dh0] + [p.grad for p in gru.parameters()])


def train_step(backend):
    return step(make(backend))


def infer(args):
    backend, seed = args
    fastgru.set_backend(backend)
    gru = fastgru.GRU(16, 256, seed=0)
    x = np.random.default_rng(seed).standard_normal((20, 32, 16)).astype(np.float32)
    return digest(gru(x))


def forked(fn, timeout):
    # fn() in a forked child; its result through a pipe, "hang" if it does not finish in time
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.write(w, fn().encode())
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return "hang: the forked child did not finish in %d s" % timeout
        time.sleep(0.02)
    data = os.read(r, 4096).decode()
    os.close(r)
    return data if status == 0 else "the forked child failed, wait status %d" % status


def verdict(got, want):
    return "ok" if got == want else (got if " " in got else "different bits")  # or why not


if __name__ == "__main__":
    backend = sys.argv[1]
    fastgru.set_num_threads(2)          # the pool is used even on a one-CPU machine
    want_train = train_step(backend)
    seeds = [(backend, s) for s in range(4)]
    want_infer = [infer(a) for a in seeds]
    assert train_step(backend) == want_train, "two calls in the parent differ"
    report = {"os.fork": verdict(forked(lambda: train_step(backend), 20), want_train)}

    # fork while another thread is inside a call that uses the pool (three times, at
    # different moments of its calls)
    stop, calls, model = threading.Event(), [], make(backend)
    def busy():
        while not stop.is_set():
            calls.append(step(model))
    t = threading.Thread(target=busy, daemon=True)
    t.start()
    while not calls and t.is_alive():
        time.sleep(0.01)
    verdicts = []
    for pause in (0.013, 0.029, 0.047):
        time.sleep(pause)
        verdicts.append(verdict(forked(lambda: train_step(backend), 20), want_train))
    child = "ok" if verdicts == ["ok"] * 3 else "; ".join(verdicts)
    stop.set()
    t.join(timeout=20)
    if t.is_alive():
        child += "; the parent's computing thread hung"
    elif not calls or any(c != want_train for c in calls):
        child += "; the parent's computing thread got other bits than the main thread"
    report["os.fork while computing"] = child

    # the three kinds of pool at once (a spawned worker imports numba afresh: seconds)
    pools, pending = {}, {}
    for method in ("fork", "spawn", "forkserver"):
        if method not in mp.get_all_start_methods():
            report[method] = "unavailable"
            continue
        pools[method] = mp.get_context(method).Pool(2 if method == "fork" else 1)
        pending[method] = pools[method].map_async(infer, seeds)
    deadline = time.monotonic() + 60
    for method, result in pending.items():
        try:
            got = result.get(timeout=max(1.0, deadline - time.monotonic()))
            report[method] = "ok" if got == want_infer else "different bits"
        except mp.TimeoutError:
            report[method] = "hang: the pool's workers did not finish in 60 s"
        except Exception as exc:
            report[method] = "error: %r" % (exc,)
    for pool in pools.values():
        pool.terminate()
        pool.join()
    print(json.dumps(report))
"""


def fork_report(backend, tmp_path_factory):
    compiled_only(backend)
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    return cached_report(("fork", backend), lambda: run_script(
        FORK_SCRIPT, tmp_path_factory.mktemp(f"fork-{backend}"), args=(backend,), timeout=200))


def test_forked_child_computes_the_same_bits(backend, tmp_path_factory):
    """The parent used the pool, then forked: the child's forward+backward has the same bits
    (no hang on the parent's pool, no abort from an OpenMP runtime)."""
    report = fork_report(backend, tmp_path_factory)
    assert report["os.fork"] == "ok", report


def test_fork_while_another_thread_computes(backend, tmp_path_factory):
    """os.fork while another Python thread is inside a pooled call (a DataLoader forking
    while training runs): the child computes the same bits, the parent's thread goes on."""
    report = fork_report(backend, tmp_path_factory)
    assert report["os.fork while computing"] == "ok", report


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_pool_same_bits(backend, tmp_path_factory, method):
    """Pools started after the parent computed map a forward over a few inputs."""
    report = fork_report(backend, tmp_path_factory)
    if report[method] == "unavailable":
        pytest.skip(f"start method {method!r} not available here")
    assert report[method] == "ok", report


# ---------------------------------------------------------------------------------------------
# environment, imports, OpenMP runtimes, BLAS settings

COMMON = r"""
import ctypes, json, os, sys


def c_environ():
    # the C library's environment (a setenv() from C does not show in os.environ)
    try:
        p = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
    except (OSError, ValueError):
        return None
    env, i = {}, 0
    while p[i]:
        key, _, value = p[i].decode("latin-1").partition("=")
        env[key] = value
        i += 1
    return env


def openmp_runtimes():
    names = set()
    if not os.path.exists("/proc/self/maps"):
        return []
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if os.path.basename(path).startswith(("libgomp", "libomp", "libiomp")):
                names.add(path)
    return sorted(names)


def loaded(prefix):
    return sorted(m for m in sys.modules if m == prefix or m.startswith(prefix + "."))
"""

GUEST_SCRIPT = COMMON + r"""
writes = []
_putenv, _unsetenv = os.putenv, os.unsetenv
def putenv(key, value):
    writes.append(("set", key if isinstance(key, str) else key.decode()))
    _putenv(key, value)
def unsetenv(key):
    writes.append(("unset", key if isinstance(key, str) else key.decode()))
    _unsetenv(key)
import numpy as np   # numpy's own import sets and unsets OPENBLAS_MAIN_FREE: not fastgru's doing
os.putenv, os.unsetenv = putenv, unsetenv      # os.environ[...] = / del / pop go through these

name = sys.argv[1]
py_before, c_before = dict(os.environ), c_environ()
import fastgru
report = {"import": {"scipy": loaded("scipy"), "threadpoolctl": loaded("threadpoolctl"),
                     "openmp": openmp_runtimes()}}
if name == "numba":
    # numba brings SciPy in where it is installed (scipy at import, scipy.linalg when its CPU
    # target starts, for any jitted function): numba's doing, not fastgru's
    import numba
    numba.njit(lambda v: v + 1)(1)
scipy_before = set(loaded("scipy"))

fastgru.set_backend(name)
fastgru.set_num_threads(2)
rng = np.random.default_rng(0)
for dtype in ("float32", "float64"):
    gru = fastgru.GRU(16, 256, dtype=dtype, seed=0)
    x = rng.standard_normal((40, 64, 16)).astype(dtype)
    gru(x)
    gru.forward(x, train=True)
    gru.backward(rng.standard_normal((40, 64, 256)).astype(dtype))
    cell = fastgru.GRUCell(16, 256, dtype=dtype, seed=0)
    cell(x[0], cell(x[1]))
with fastgru.threads(1):
    gru(x)

py_after, c_after = dict(os.environ), c_environ()
report["env"] = {
    "writes": list(writes),     # threadpoolctl, imported below, writes KMP_DUPLICATE_LIB_OK
    "added": sorted(set(py_after) - set(py_before)),
    "removed": sorted(set(py_before) - set(py_after)),
    "changed": sorted(k for k in py_before if k in py_after and py_before[k] != py_after[k]),
    "c_same": c_before == c_after,
    "c_diff": None if c_before is None or c_after is None else sorted(
        k for k in set(c_before) | set(c_after) if c_before.get(k) != c_after.get(k)),
}
report["scipy"] = sorted(set(loaded("scipy")) - scipy_before)
report["threadpoolctl"] = loaded("threadpoolctl")
report["openmp"] = openmp_runtimes()

try:
    import threadpoolctl   # only now: it must not have been imported by fastgru
except ImportError:
    report["blas"] = {}
else:
    report["blas"] = {i["filepath"]: [i["internal_api"], i["num_threads"]]
                      for i in threadpoolctl.threadpool_info()}
print(json.dumps(report))
"""

FRESH_BLAS_SCRIPT = COMMON + r"""
# a process that never imported fastgru, with the same libraries loaded
import numpy as np
for path in json.loads(sys.argv[1]):
    ctypes.CDLL(path)
import threadpoolctl
print(json.dumps({i["filepath"]: [i["internal_api"], i["num_threads"]]
                  for i in threadpoolctl.threadpool_info()}))
"""


def guest_report(backend, tmp_path_factory):
    compiled_only(backend)
    return cached_report(("guest", backend), lambda: run_script(
        GUEST_SCRIPT, tmp_path_factory.mktemp(f"guest-{backend}"), args=(backend,)))


@linux_only
def test_import_fastgru_loads_no_scipy_threadpoolctl_or_openmp(tmp_path):
    report = run_script(COMMON + r"""
import fastgru
print(json.dumps({"scipy": loaded("scipy"), "threadpoolctl": loaded("threadpoolctl"),
                  "openmp": openmp_runtimes()}))
""", tmp_path)
    assert report == {"scipy": [], "threadpoolctl": [], "openmp": []}, report


@linux_only
def test_environment_is_never_changed(backend, tmp_path_factory):
    """Not even briefly: no os.environ write during import, compute, train and GRUCell steps,
    and the C library's environment is the same afterwards."""
    report = guest_report(backend, tmp_path_factory)
    env = report["env"]
    assert env["writes"] == [], f"environment written: {env['writes']}"
    assert env["added"] == [] and env["removed"] == [] and env["changed"] == [], env
    assert env["c_same"], f"the C environment changed: {env['c_diff']}"
    for key in ("KMP_DUPLICATE_LIB_OK", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        assert key not in env["added"], key


@linux_only
def test_no_openmp_runtime_is_loaded(backend, tmp_path_factory):
    """No libgomp / libomp / libiomp in /proc/self/maps after import and computing."""
    report = guest_report(backend, tmp_path_factory)
    assert report["import"]["openmp"] == []
    assert report["openmp"] == [], (
        f"OpenMP runtime loaded by computing: {report['openmp']}")


def test_computing_imports_no_scipy_or_threadpoolctl(backend, tmp_path_factory):
    """(numba brings SciPy in where it is installed, at its import and when it first
    compiles anything; only what fastgru adds after that counts.)"""
    report = guest_report(backend, tmp_path_factory)
    assert report["import"]["scipy"] == [], report["import"]
    assert report["import"]["threadpoolctl"] == [], report["import"]
    new = report["scipy"]
    assert new == [], f"imported by computing: {len(new)} modules, {new[:4]} ..."
    assert report["threadpoolctl"] == [], "threadpoolctl imported by computing"


@linux_only
def test_blas_thread_settings_unchanged(backend, tmp_path_factory, tmp_path):
    """Each BLAS / OpenMP library's thread count after fastgru computed is the one it has in
    a process that never imported fastgru (and loaded the same libraries)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        pytest.skip("threadpoolctl is not installed")
    after = guest_report(backend, tmp_path_factory)["blas"]
    if not after:
        pytest.skip("threadpoolctl finds no BLAS or OpenMP library here")
    fresh = run_script(FRESH_BLAS_SCRIPT, tmp_path, args=(json.dumps(sorted(after)),))
    for path, (api, n) in after.items():
        assert path in fresh, f"{path} not found in the fresh process: {fresh}"
        assert n == fresh[path][1], (
            f"{api} ({path}): {n} threads after fastgru, {fresh[path][1]} in a fresh process")


# ---------------------------------------------------------------------------------------------
# a library loaded after fastgru

TORCH_FRESH = r"""
import json, torch
print(json.dumps({"threads": torch.get_num_threads(),
                  "interop": torch.get_num_interop_threads()}))
"""

TORCH_AFTER = COMMON + r"""
import numpy as np
import fastgru
used = []
x = np.random.default_rng(0).standard_normal((40, 64, 16)).astype(np.float32)
for name in ("numba", "cython"):
    try:
        fastgru.set_backend(name)
    except ImportError:
        continue
    used.append(name)
    gru = fastgru.GRU(16, 256, seed=0)
    gru(x)
    gru.forward(x, train=True)
    gru.backward(np.ones((40, 64, 256), np.float32))
openmp_before_torch = openmp_runtimes()
import torch
report = {"used": used, "openmp_before_torch": openmp_before_torch,
          "threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads()}
# both still work, in either order
t = torch.nn.GRU(16, 32)
t(torch.from_numpy(x))
for name in used:
    fastgru.set_backend(name)
    fastgru.GRU(16, 256, seed=0)(x)
t(torch.from_numpy(x))
print(json.dumps(report))
"""


@linux_only
def test_torch_after_fastgru_keeps_its_threads(tmp_path):
    """fastgru loads no OpenMP runtime, so torch imported afterwards brings its own and
    gets the thread count it gets in a process without fastgru."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    procs = [start_script(TORCH_FRESH, tmp_path / "fresh"),
             start_script(TORCH_AFTER, tmp_path / "after")]     # at once: torch loads slowly
    try:
        fresh, after = [finish_script(proc) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    if not after["used"]:
        pytest.skip("no compiled backend here")
    assert after["openmp_before_torch"] == [], (
        f"fastgru ({after['used']}) loaded {after['openmp_before_torch']} before torch")
    assert after["threads"] == fresh["threads"], (after, fresh)
    assert after["interop"] == fresh["interop"], (after, fresh)


def test_fork_while_another_thread_adds_into_grads(tmp_path):
    """A thread holds the lock under which backward adds into .grad when another forks: the
    child's own backward must not wait for a thread it does not have (seen as a rare hang
    of the fork-while-computing test)."""
    report = run_script(r"""
import json, os, threading, time
import numpy as np
import fastgru
from fastgru.nn.module import grad_lock

gru = fastgru.GRU(3, 4, seed=0)
x = np.ones((2, 1, 3), np.float32)
held = threading.Event()

def hold():
    with grad_lock:
        held.set()
        time.sleep(0.5)

threading.Thread(target=hold).start()
held.wait()
pid = os.fork()
if pid == 0:
    gru.backward(np.ones_like(gru.forward(x)[0]))
    os._exit(0)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.02)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    status = "hang"
print(json.dumps({"child": status}))
""", tmp_path)
    assert report["child"] == 0, report
