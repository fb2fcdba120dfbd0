"""The report runner: time the grid, write results/<name>.json, .md and .png.

Run as ``python -m bench`` (see ``bench/README.md``); ``bench/__main__.py`` sets the
thread count before anything heavy is imported, then calls ``main``.
"""
import argparse
import datetime
import gc
import json
import os
import platform
import re
import socket
import sys
import time

from . import firstcall, grid, peers, render, threads, timer

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="small shapes, few repetitions (CI: catches breakage, asserts no timing)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every implementation (default: all available cores)")
    p.add_argument("--name", default=None,
                   help="results file name (default: <hostname>-<threads>t[-quick])")
    p.add_argument("--out", default=RESULTS, help=f"output folder (default: {RESULTS})")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated case names (default: all); known: {', '.join(grid.BY_NAME)}")
    p.add_argument("--impls", default=None,
                   help=f"comma-separated implementations (default: all): {', '.join(peers.IMPLS)}")
    p.add_argument("--no-first-call", action="store_true", help="skip the first-call costs")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG chart")
    return p


def default_name(n_threads, quick):
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname().split(".")[0]) or "machine"
    return f"{host}-{n_threads}t" + ("-quick" if quick else "")


def machine_info():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"hostname": socket.gethostname(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": sys.version.split()[0],
            "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None}


def time_one(impl, case, op, budget, roofline_flops):
    """One row of results: prepare (build, run, check), then time. Raises Unsupported/CheckFailed."""
    runner = peers.prepare(impl, case, op)
    runner.activate()
    with runner.context():
        t = timer.measure(runner.fn, budget)
    flops = grid.gemm_flops(case, op)
    return {
        "case": case.name, "description": case.describe(), "shape": case.shape,
        "dtype": case.dtype, "op": op, "impl": impl,
        "median_ms": t.median_s * 1e3, "min_ms": t.min_s * 1e3, "iqr_ms": t.iqr_s * 1e3,
        "rounds": t.rounds, "calls_per_round": t.number,
        "gemm_gflop": flops / 1e9, "gflops": flops / t.median_s / 1e9,
        "roofline_ms": flops / roofline_flops * 1e3,
        "x_roofline": t.median_s / (flops / roofline_flops),
        "compile_s": runner.compile_s, "first_call_s": runner.first_call_s,
        "max_err": runner.max_err,
    }


def add_ratios(rows):
    """Each row's median over the fastest peer's on the same case and op."""
    best = {}
    for r in rows:
        if peers.is_peer(r["impl"]):
            key = (r["case"], r["op"])
            if key not in best or r["median_ms"] < best[key]["median_ms"]:
                best[key] = r
    for r in rows:
        b = best.get((r["case"], r["op"]))
        r["fastest_peer"] = b["impl"] if b else None
        r["vs_fastest_peer"] = r["median_ms"] / b["median_ms"] if b else None


def run(args, log=print):
    cases = grid.QUICK if args.quick else grid.GRID
    if args.cases:
        wanted = args.cases.split(",")
        unknown = [c for c in wanted if c not in grid.BY_NAME]
        if unknown:
            raise SystemExit(f"unknown cases {unknown}; known: {', '.join(grid.BY_NAME)}")
        cases = [grid.BY_NAME[c] for c in wanted]
    impls = args.impls.split(",") if args.impls else list(peers.IMPLS)
    unknown = [i for i in impls if i not in peers.IMPLS]
    if unknown:
        raise SystemExit(f"unknown implementations {unknown}; known: {', '.join(peers.IMPLS)}")
    budget = timer.QUICK if args.quick else timer.FULL
    started = time.time()
    threads.apply_numba_blas()
    data = {"name": args.name, "quick": args.quick,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "versions": peers.versions(), "roofline": {},
            "results": [], "skipped": [], "failed": []}
    log(f"bench {args.name}: {len(cases)} cases, {threads.count()} threads")
    for dtype in sorted({c.dtype for c in cases}):
        rate = timer.gemm_rate(dtype, budget=budget)
        data["roofline"][dtype] = {"gemm": "2048x2048x2048 matmul, NumPy's BLAS",
                                   "gflops": rate / 1e9}
        log(f"  {dtype} GEMM: {rate / 1e9:.1f} GFLOP/s")
    for case in cases:
        rate = data["roofline"][case.dtype]["gflops"] * 1e9
        for op in case.ops:
            for impl in [i for i in peers.impls_for(op) if i in impls]:
                what = {"case": case.name, "op": op, "impl": impl}
                t0 = time.perf_counter()
                try:
                    row = time_one(impl, case, op, budget, rate)
                except peers.Unsupported as exc:
                    data["skipped"].append({**what, "reason": str(exc)})
                    continue
                except Exception as exc:      # a wrong result, or a crash: reported, run goes on
                    data["failed"].append({**what, "error": f"{type(exc).__name__}: {exc}"})
                    log(f"  FAILED {case.name} {op} {impl}: {exc}")
                    continue
                data["results"].append(row)
                log(f"  {case.name:15s} {op:17s} {impl:15s} {row['median_ms']:10.4f} ms"
                    f"   ({time.perf_counter() - t0:.1f} s)")
        peers.clear_cache()
        gc.collect()
    add_ratios(data["results"])
    data["threads"] = threads.describe()
    if not args.no_first_call:
        log("first-call costs (fresh processes):")
        import fastgru
        compiled = [b for b in ("numba", "cython") if b in fastgru.available_backends()]
        dtypes = ("float32",) if args.quick else ("float32", "float64")
        data["first_call"] = firstcall.measure_all(compiled, dtypes, default_cache=not args.quick,
                                                   log=log)
    data["elapsed_s"] = time.time() - started
    data["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return data


def write(data, out, plot=True, log=print):
    os.makedirs(out, exist_ok=True)
    base = os.path.join(out, data["name"])
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(render.markdown(data))
    written = [base + ".json", base + ".md"]
    if plot:
        png = render.chart(data, base + ".png")
        if png:
            written.append(png)
        else:
            log("no chart: matplotlib is not installed")
    return written


def main(argv=None):
    args = build_parser().parse_args(argv)
    threads.configure(args.threads)     # a no-op when __main__ did it already
    args.name = args.name or default_name(threads.count(), args.quick)
    data = run(args)
    for path in write(data, args.out, plot=not args.no_plot):
        print("wrote", path)
    print()
    print(render.summary(data))
    if data["skipped"]:
        print(f"{len(data['skipped'])} skipped (see the .md file for why)")
    if data["failed"]:
        print(f"{len(data['failed'])} FAILED:")
        for f in data["failed"]:
            print(f"  {f['case']} {f['op']} {f['impl']}: {f['error']}")
        return 1
    return 0
