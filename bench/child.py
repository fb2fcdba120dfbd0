"""One piece of a benchmark run, in a fresh process: ``python -m bench.child TASK ...``.

The report runner (``bench/report.py``) and the scaling script start one of these per
implementation (or per implementation and case), so no two libraries ever share a process:
libraries that share one OpenMP runtime distort each other's timings (a torch loaded after
fastgru had run was measured 3-5x slower). Tasks:

* ``time IMPL``: prepare (build, run once, check against the reference), then time, every
  (case, op) of ``--cases`` for one implementation;
* ``reference``: fastgru's NumPy backend on every (case, op); the arrays are written to
  ``--workdir`` for the ``time`` children to check against (a peer never runs fastgru);
* ``gemm``: the GEMM rate of NumPy's BLAS (the roofline);
* ``partition``: ``fastgru.backends.partition(B, H)`` per case (None where fastgru lacks it).

The thread count is set first thing, before NumPy or any library is imported. The result is
one line ``BENCH-RESULT <json>`` on stdout (libraries may print there too); progress and
library noise go to stderr.
"""
import argparse
import json
import os
import sys
import time
import traceback

from bench import threads
from bench.procs import MARK


def _ref_path(workdir, case, op):
    return os.path.join(workdir, f"ref-{case}-{op.replace('+', '_')}.npz")


def _error(exc):
    return f"{type(exc).__name__}: {exc}"


def _jsonable(x):
    """partition()'s answer (NumPy scalars, tuples, arrays) as plain JSON."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return x.tolist()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def task_gemm(args):
    from bench import timer
    budget = timer.QUICK if args.budget == "quick" else timer.FULL
    return {"gflops": {dt: timer.gemm_rate(dt, budget=budget) / 1e9 for dt in args.dtypes.split(",")},
            "threads": threads.describe()}


def task_reference(args):
    """The NumPy reference for every (case, op), saved as .npz files in the workdir."""
    import numpy as np

    from bench import grid, peers
    try:
        import fastgru
        if "numpy" not in fastgru.available_backends():
            raise ImportError("fastgru has no 'numpy' backend here")
    except Exception as exc:     # fastgru broken: reported as a failure, the peers run unchecked
        return {"unavailable": f"fastgru's NumPy reference cannot be loaded: {_error(exc)}",
                "status": {}}
    status = {}
    for name in args.cases.split(","):
        case = grid.BY_NAME[name]
        for op in case.ops:
            t0 = time.perf_counter()
            try:
                want = peers.expected(case, op)
                np.savez(_ref_path(args.workdir, name, op), **want)
                status[f"{name}|{op}"] = "ok"
            except Exception as exc:
                status[f"{name}|{op}"] = "error " + _error(exc)
                traceback.print_exc(file=sys.stderr)
            print(f"  reference {name} {op}: {time.perf_counter() - t0:.1f} s", file=sys.stderr,
                  flush=True)
        peers.clear_cache()
    return {"status": status}


def _load_reference(workdir, case, op):
    """The reference's arrays, or None where none was computed (the result is then unchecked)."""
    import numpy as np
    path = _ref_path(workdir, case, op)
    if not workdir or not os.path.exists(path):
        return None
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def task_time(args):
    from bench import grid, peers, timer
    impl = args.impl
    if args.budget == "quick":
        budget = timer.QUICK
    elif args.budget == "scaling":
        budget = timer.Budget(min_round_s=0.05, min_rounds=3, max_rounds=15, target_s=0.6)
    else:
        budget = timer.FULL
    rows, skipped, failed = [], [], []
    for name in args.cases.split(","):
        case = grid.BY_NAME[name]
        for op in case.ops:
            if impl not in peers.impls_for(op):
                continue
            what = {"case": name, "op": op, "impl": impl}
            t0 = time.perf_counter()
            try:
                want = _load_reference(args.workdir, name, op)
                runner = peers.prepare(impl, case, op, want=want)
                runner.activate()
                with runner.context():
                    t = timer.measure(runner.fn, budget)
            except peers.Unsupported as exc:
                skipped.append({**what, "reason": str(exc)})
                continue
            except Exception as exc:      # a wrong result, or a crash: reported, the run goes on
                failed.append({**what, "error": _error(exc)})
                traceback.print_exc(file=sys.stderr)
                continue
            rows.append({**what, "median_ms": t.median_s * 1e3, "min_ms": t.min_s * 1e3,
                         "iqr_ms": t.iqr_s * 1e3, "rounds": t.rounds, "calls_per_round": t.number,
                         "compile_s": runner.compile_s, "first_call_s": runner.first_call_s,
                         "max_err": runner.max_err, "checked": want is not None,
                         "info": runner.info})
            print(f"    {name:15s} {op:17s} {impl:15s} {t.median_s * 1e3:10.4f} ms"
                  f"   ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
        peers.clear_cache()
    return {"rows": rows, "skipped": skipped, "failed": failed, "threads": threads.describe(),
            "modules": loaded_modules()}


WATCHED = ("fastgru", "numba", "scipy", "threadpoolctl", "torch", "onnxruntime", "openvino", "jax")


def loaded_modules():
    """Which of the libraries that matter this process has imported (a peer: fastgru's
    Python layer at most, for parameter names and ONNX export; never numba)."""
    return [m for m in WATCHED if m in sys.modules]


def task_partition(args):
    from bench import grid
    try:
        import fastgru.backends as backends
    except Exception as exc:
        return {"partition": {}, "error": _error(exc)}
    if not hasattr(backends, "partition"):
        return {"partition": {name: None for name in args.cases.split(",")},
                "note": "fastgru.backends has no partition()"}
    out = {}
    for name in args.cases.split(","):
        case = grid.BY_NAME[name]
        try:
            try:
                part = backends.partition(case.B, case.H, dtype=case.dtype)
            except TypeError:       # a partition(B, H) without dtype
                part = backends.partition(case.B, case.H)
            out[name] = _jsonable(part)
        except Exception as exc:
            out[name] = {"error": _error(exc)}
    return {"partition": out, "threads": threads.describe()}


TASKS = {"time": task_time, "reference": task_reference, "gemm": task_gemm,
         "partition": task_partition}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.child", description=__doc__.splitlines()[0])
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("impl", nargs="?", default=None, help="the implementation (task 'time')")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--cases", default="")
    p.add_argument("--budget", choices=("quick", "full", "scaling"), default="full")
    p.add_argument("--workdir", default="", help="where the reference's arrays are")
    p.add_argument("--dtypes", default="float32")
    args = p.parse_args(argv)
    threads.configure(args.threads)      # first: before NumPy or any library is imported
    started = time.perf_counter()
    result = TASKS[args.task](args)
    result["child_s"] = time.perf_counter() - started
    sys.stdout.flush()
    print(MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
