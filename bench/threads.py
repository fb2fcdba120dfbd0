"""One thread count for every implementation timed.

Each library has its own knob:

* fastgru: ``fastgru.set_num_threads(n)`` where fastgru has it (it covers its backends and
  its BLAS); with an older fastgru, ``numba.set_num_threads`` and, for BLAS (NumPy's,
  SciPy's), ``threadpoolctl`` (``apply_fastgru``);
* PyTorch: ``torch.set_num_threads``;
* ONNX Runtime: ``SessionOptions.intra_op_num_threads``, given when a session is built;
* OpenVINO: ``INFERENCE_NUM_THREADS`` in the config given to ``compile_model``;
* JAX: none that works at run time. XLA sizes its CPU thread pool from the process's CPU
  affinity when jax is imported (``--xla_cpu_multi_thread_eigen=false`` is ignored by
  jax 0.10's CPU runtime: measured). So for N threads below the core count, ``configure``
  pins the whole process to N cores *before anything is imported*; every library then
  also sees N cores. With the default (all cores) nothing is pinned.

Call ``configure(n)`` first thing, before numpy, numba, torch or jax are imported, then
``apply_fastgru`` / ``apply_torch`` / ``ort_session_options`` / ``openvino_config`` as each
library loads. ``configure`` also sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS
and NUMBA_NUM_THREADS, which every library reads when it loads.

``python -m bench`` runs every implementation in a fresh process (``bench/child.py``), which
calls ``configure`` before anything else; the parent process configures nothing.
"""
import os
import sys

_state = {"n": None, "pinned": False, "cores": None, "late": []}


def available_cores():
    """Cores this process may run on (its CPU affinity), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def configure(n=None, pin=True):
    """Use ``n`` threads everywhere (None: all available cores). Call before heavy imports.

    Returns the thread count in force.
    """
    if _state["n"] is not None and n in (None, _state["n"]):
        return _state["n"]      # configured already (by __main__ or conftest)
    cores = available_cores()
    n = cores if n is None else int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    _state.update(n=n, cores=cores, pinned=False)
    late = [m for m in ("numpy", "numba", "torch", "jax", "onnxruntime", "openvino")
            if m in sys.modules]
    _state["late"] = late
    if pin and n < cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:n])
        _state["pinned"] = True
    env = env_for(n)
    if "numba" in sys.modules:   # Numba's pool size is fixed when it loads; it must hold n threads
        del env["NUMBA_NUM_THREADS"]
    os.environ.update(env)
    return n


def env_for(n):
    """The environment variables that give a process started with them ``n`` threads."""
    return {var: str(n) for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                    "NUMBA_NUM_THREADS")}


def count():
    """The thread count in force (configuring for all cores if nobody did)."""
    if _state["n"] is None:
        configure(None)
    return _state["n"]


_blas_limiter = []


def apply_fastgru(fastgru=None):
    """Set fastgru's threads to ``count()``; returns how, for the results file.

    ``fastgru.set_num_threads`` where it exists (then neither threadpoolctl nor SciPy is
    imported); otherwise Numba's and every loaded BLAS's count (``apply_numba_blas``).
    """
    if fastgru is None:
        import fastgru
    if hasattr(fastgru, "set_num_threads"):
        fastgru.set_num_threads(count())
        return "fastgru.set_num_threads"
    apply_numba_blas()
    return "numba.set_num_threads + threadpoolctl"


def apply_numba_blas():
    """Set Numba's and every loaded BLAS's thread count to ``count()`` (an older fastgru)."""
    n = count()
    try:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS so it is limited too)
    except ImportError:
        pass
    from threadpoolctl import threadpool_limits
    _blas_limiter[:] = [threadpool_limits(limits=n)]   # kept alive: the limit holds


def apply_torch(torch):
    torch.set_num_threads(count())


def ort_session_options(ort):
    """SessionOptions for ``count()`` threads (inter-op 1: a one-node graph has no parallel branches)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = count()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3     # errors are reported as skips, not printed
    return so


def openvino_config():
    """compile_model's config for ``count()`` threads, float32 kept as float32 (no bf16/f16)."""
    return {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": count()}


def describe():
    """What was set, and what each loaded library reports, for the results file."""
    n = count()
    info = {"threads": n, "cores_available": _state["cores"], "pinned_to_cores": _state["pinned"],
            "jax": (f"pinned to {n} cores by CPU affinity" if _state["pinned"] else
                    "all available cores (XLA's default)")}
    if _state["late"]:
        info["imported_before_configure"] = _state["late"]
    fastgru = sys.modules.get("fastgru")
    if fastgru is not None and hasattr(fastgru, "get_num_threads"):
        try:
            info["fastgru"] = fastgru.get_num_threads()
        except Exception as exc:    # mid-rewrite or broken: recorded, never fatal
            info["fastgru"] = f"{type(exc).__name__}: {exc}"
    if "torch" in sys.modules:
        info["torch"] = sys.modules["torch"].get_num_threads()
    if "numba" in sys.modules:
        info["numba"] = sys.modules["numba"].get_num_threads()
    if "threadpoolctl" in sys.modules:
        from threadpoolctl import threadpool_info
        info["threadpools"] = sorted({(p["internal_api"], p["num_threads"])
                                      for p in threadpool_info()})
    return info
