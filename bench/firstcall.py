"""First-call costs, each measured in a fresh Python process.

* import: ``import fastgru`` in a fresh interpreter (NumPy's import included; the median of 3);
* cold: the first forward (and then the first forward+backward) with an empty Numba cache
  (a new ``NUMBA_CACHE_DIR``): what the first run on a machine pays for compiling;
* warm: the same in a new process once that cache is filled: what every later run pays;
* warm, default cache: the same with Numba's default cache location (next to the installed
  package), run twice and the second taken: whether the cache works where fastgru is installed.

Times are seconds; ``import+forward`` counts from before ``import fastgru`` to the end of
the first forward.
"""
import json
import statistics
import subprocess
import sys
import tempfile

from . import procs

_IMPORT = "import time; t0 = time.perf_counter(); import fastgru; print(time.perf_counter() - t0)"

_FIRST_CALL = """
import json, time
t0 = time.perf_counter()
import fastgru
t1 = time.perf_counter()
import numpy as np
fastgru.set_backend({backend!r})
gru = fastgru.GRU(32, 64, dtype={dtype!r}, seed=0)
x = np.random.default_rng(0).uniform(-1, 1, (20, 8, 32)).astype({dtype!r})
t2 = time.perf_counter()
out, h_n = gru(x)
t3 = time.perf_counter()
out, h_n = gru.forward(x)
gru.backward(np.ones_like(out))
t4 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "forward_s": t3 - t2, "import+forward_s": t3 - t0,
                  "forward+backward_s": t4 - t3}}))
"""


def _env(**extra):
    """The environment of a child that imports the same fastgru as ``python -m bench`` would.

    Nothing is imported here: the parent process of the runner imports no implementation.
    """
    return procs.env(**extra)


def _run(code, env, timeout=300):
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip().splitlines()[-1]


def import_time(repeats=3, extra_env=None):
    """Median seconds of ``import fastgru`` in a fresh interpreter."""
    env = _env(**(extra_env or {}))
    return statistics.median(float(_run(_IMPORT, env)) for _ in range(repeats))


def first_calls(backend, dtype, default_cache=True, extra_env=None):
    """{"cold": {...}, "warm": {...}, "warm_default_cache": {...}} for one backend and dtype."""
    code = _FIRST_CALL.format(backend=backend, dtype=dtype)
    extra_env = extra_env or {}
    out = {}
    with tempfile.TemporaryDirectory(prefix="fastgru-numba-cache-") as cache:
        env = _env(**extra_env, NUMBA_CACHE_DIR=cache, FASTGRU_BACKEND=backend)
        out["cold"] = json.loads(_run(code, env))
        out["warm"] = json.loads(_run(code, env))
    if not default_cache:
        return out
    env = {k: v for k, v in _env(**extra_env, FASTGRU_BACKEND=backend).items()
           if k != "NUMBA_CACHE_DIR"}
    _run(code, env)
    out["warm_default_cache"] = json.loads(_run(code, env))
    return out


def measure_all(backends, dtypes=("float32", "float64"), default_cache=True, log=print,
                extra_env=None):
    """Import time and first-call costs for each compiled backend and dtype."""
    try:
        result = {"import_s": import_time(extra_env=extra_env), "first_calls": {}}
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        log(f"  import fastgru failed: {exc}")
        return {"error": f"import fastgru failed: {exc}"}
    log(f"  import fastgru: {result['import_s']:.3f} s")
    for backend in backends:
        for dtype in dtypes:
            try:
                r = first_calls(backend, dtype, default_cache, extra_env)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                r = {"error": str(exc)}
                log(f"  {backend} {dtype}: failed: {exc}")
            else:
                log(f"  {backend} {dtype}: cold {r['cold']['import+forward_s']:.2f} s, "
                    f"warm {r['warm']['import+forward_s']:.2f} s (import+forward)")
            result["first_calls"][f"{backend} {dtype}"] = r
    return result
