"""The report runner: time the grid, each implementation in its own process; write results/<name>.*

Run as ``python -m bench`` (see ``bench/README.md``). This process imports no implementation
and sets no thread count: every implementation is imported, checked and timed in a fresh
child process (``bench/child.py``) that sets the thread count before importing anything.
Libraries that share one OpenMP runtime distort each other (a torch loaded after fastgru
had run was measured 3-5x slower), so no two ever share a process.

A run is ``--rounds`` rounds (default 3); each round starts one child per implementation
(``--isolate case``: per implementation and case), visiting the implementations in a
rotated order, so slow drifts of a shared machine fall on everyone alike. Reported per
(implementation, case, op): the median over rounds of the per-round medians; the ratio to
the fastest peer is taken from those medians, and the per-round ratios are kept too.
"""
import argparse
import datetime
import json
import os
import platform
import re
import socket
import statistics
import sys
import tempfile
import time

from . import firstcall, grid, names, procs, render, threads

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="small shapes, few repetitions, 1 round (CI: catches breakage, asserts "
                        "no timing)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every implementation (default: all available cores)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds, each in fresh processes (default: 3; 1 with --quick)")
    p.add_argument("--isolate", choices=("impl", "case"), default="impl",
                   help="a fresh process per implementation and round (default), or per "
                        "implementation, case and round (slower: one start-up per case)")
    p.add_argument("--name", default=None,
                   help="results file name (default: <hostname>-<threads>t[-quick])")
    p.add_argument("--out", default=RESULTS, help=f"output folder (default: {RESULTS})")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated case names (default: all); known: {', '.join(grid.BY_NAME)}")
    p.add_argument("--impls", default=None,
                   help=f"comma-separated implementations (default: all): {', '.join(names.IMPLS)}")
    p.add_argument("--no-first-call", action="store_true", help="skip the first-call costs")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG chart")
    p.add_argument("--child-timeout", type=float, default=None,
                   help="seconds one child process may take (default: 600 quick, 3600 full)")
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


def _key(r):
    return (r["case"], r["op"], r["impl"])


def rotated(seq, k):
    """``seq`` starting at its ``k``-th element (mod its length): round k's visiting order."""
    if not seq:
        return []
    k %= len(seq)
    return list(seq[k:]) + list(seq[:k])


def units(order, cases, isolate):
    """(impl, [case names]) per child process of one round, in the order they run."""
    if isolate == "case":
        return [(impl, [c.name]) for c in cases for impl in order]
    return [(impl, [c.name for c in cases]) for impl in order]


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def aggregate(rows, cases, roofline):
    """Per-round rows -> one row per (case, op, impl): medians over rounds, then ratios.

    ``vs_fastest_peer`` is the row's median over the fastest peer's median (both over
    rounds); ``vs_fastest_peer_rounds`` holds the same ratio within each round (None where
    no peer ran in that round) and ``vs_fastest_peer_median_of_rounds`` their median.
    """
    by_case = {c.name: c for c in cases}
    groups = {}
    for r in rows:
        groups.setdefault(_key(r), []).append(r)
    order = {c.name: i for i, c in enumerate(cases)}
    ops = {op: i for i, op in enumerate(grid.OPS)}
    impls = {impl: i for i, impl in enumerate(names.IMPLS)}
    out = []
    for key in sorted(groups, key=lambda k: (order[k[0]], ops[k[1]], impls[k[2]])):
        rs = sorted(groups[key], key=lambda r: r["round"])
        case = by_case[key[0]]
        med = statistics.median(r["median_ms"] for r in rs)
        flops = grid.gemm_flops(case, key[1])
        rate = (roofline.get(case.dtype) or {}).get("gflops")
        errs = [r["max_err"] for r in rs if r["max_err"] is not None]
        out.append({
            "case": case.name, "description": case.describe(), "shape": case.shape,
            "dtype": case.dtype, "op": key[1], "impl": key[2],
            "median_ms": med, "round_medians_ms": [r["median_ms"] for r in rs],
            "rounds_measured": [r["round"] for r in rs],
            "min_ms": min(r["min_ms"] for r in rs), "iqr_ms": _median(r["iqr_ms"] for r in rs),
            "timer_rounds": sum(r["rounds"] for r in rs), "calls_per_round": rs[0]["calls_per_round"],
            "gemm_gflop": flops / 1e9, "gflops": flops / (med * 1e-3) / 1e9,
            "roofline_ms": flops / (rate * 1e9) * 1e3 if rate else None,
            "x_roofline": med / (flops / (rate * 1e9) * 1e3) if rate else None,
            "compile_s": _median(r["compile_s"] for r in rs),
            "first_call_s": rs[0]["first_call_s"],
            "first_call_s_rounds": [r["first_call_s"] for r in rs],
            "max_err": max(errs) if errs else None, "checked": all(r["checked"] for r in rs),
            "info": rs[0].get("info") or {},
        })
    # per-round ratios: within each round, against the fastest peer of that round
    best_round = {}
    for r in rows:
        if names.is_peer(r["impl"]):
            k = (r["case"], r["op"], r["round"])
            if k not in best_round or r["median_ms"] < best_round[k]["median_ms"]:
                best_round[k] = r
    per_round = {}
    for r in rows:
        b = best_round.get((r["case"], r["op"], r["round"]))
        per_round.setdefault(_key(r), {})[r["round"]] = r["median_ms"] / b["median_ms"] if b else None
    best = {}
    for r in out:
        if names.is_peer(r["impl"]):
            k = (r["case"], r["op"])
            if k not in best or r["median_ms"] < best[k]["median_ms"]:
                best[k] = r
    for r in out:
        b = best.get((r["case"], r["op"]))
        r["fastest_peer"] = b["impl"] if b else None
        r["vs_fastest_peer"] = r["median_ms"] / b["median_ms"] if b else None
        ratios = per_round.get(_key(r), {})
        r["vs_fastest_peer_rounds"] = [ratios.get(k) for k in r["rounds_measured"]]
        r["vs_fastest_peer_median_of_rounds"] = _median(r["vs_fastest_peer_rounds"])
    return out


def _merge(entries, field):
    """Per-round skip or failure entries -> one per (case, op, impl), with the rounds it happened in."""
    merged = {}
    for e in entries:
        m = merged.setdefault(_key(e), {**{k: v for k, v in e.items() if k != "round"},
                                        "rounds": []})
        if e.get("round") is not None and e["round"] not in m["rounds"]:
            m["rounds"].append(e["round"])
        if e[field] != m[field] and e[field] not in m.get("other", []):
            m.setdefault("other", []).append(e[field])
    return list(merged.values())


def run(args, log=print):
    cases = grid.QUICK if args.quick else grid.GRID
    if args.cases:
        wanted = args.cases.split(",")
        unknown = [c for c in wanted if c not in grid.BY_NAME]
        if unknown:
            raise SystemExit(f"unknown cases {unknown}; known: {', '.join(grid.BY_NAME)}")
        cases = [grid.BY_NAME[c] for c in wanted]
    impls = args.impls.split(",") if args.impls else list(names.IMPLS)
    unknown = [i for i in impls if i not in names.IMPLS]
    if unknown:
        raise SystemExit(f"unknown implementations {unknown}; known: {', '.join(names.IMPLS)}")
    impls = [i for i in names.IMPLS if i in impls]
    n = args.threads or threads.available_cores()
    rounds = args.rounds or (1 if args.quick else 3)
    if rounds < 1:
        raise SystemExit("--rounds must be >= 1")
    budget = "quick" if args.quick else "full"
    timeout = args.child_timeout or (600 if args.quick else 3600)
    started = time.time()
    data = {"name": args.name, "quick": args.quick,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "versions": names.versions(),
            "rounds": rounds, "isolation": args.isolate, "round_orders": [],
            "roofline": {}, "reference": {}, "results": [], "skipped": [], "failed": [],
            "threads": {"threads": n, "cores_available": threads.available_cores(),
                        "pinned_to_cores": n < threads.available_cores(), "children": {}}}
    log(f"bench {args.name}: {len(cases)} cases, {len(impls)} implementations, {n} threads, "
        f"{rounds} round(s), a fresh process per "
        f"{'implementation and case' if args.isolate == 'case' else 'implementation'}")
    with tempfile.TemporaryDirectory(prefix="fastgru-bench-") as workdir:
        common = ["--threads", str(n), "--budget", budget, "--workdir", workdir]
        dtypes = sorted({c.dtype for c in cases})
        try:
            gemm = procs.run_child(["gemm", *common, "--dtypes", ",".join(dtypes)], timeout)
            for dt, rate in gemm["gflops"].items():
                data["roofline"][dt] = {"gemm": "2048x2048x2048 matmul, NumPy's BLAS",
                                        "gflops": rate}
                log(f"  {dt} GEMM: {rate:.1f} GFLOP/s")
        except procs.ChildFailed as exc:
            log(f"  no roofline: the GEMM child failed: {exc}")
        _reference(cases, common, timeout, data, log)
        runnable = []
        for impl in impls:
            why = names.installed(impl)
            if why:
                data["skipped"] += [{"case": c.name, "op": op, "impl": impl, "reason": why}
                                    for c in cases for op in c.ops if impl in names.impls_for(op)]
                log(f"  {impl}: skipped, {why}")
            else:
                runnable.append(impl)
        rows, skipped, failed = [], [], []
        for r in range(rounds):
            order = rotated(runnable, r)
            data["round_orders"].append(order)
            log(f"round {r + 1}/{rounds}: {', '.join(order)}")
            for impl, unit_cases in units(order, cases, args.isolate):
                t0 = time.perf_counter()
                try:
                    res = procs.run_child(["time", impl, *common, "--cases", ",".join(unit_cases)],
                                          timeout)
                except procs.ChildFailed as exc:
                    log(f"  FAILED {impl} ({', '.join(unit_cases)}): the child process: {exc}")
                    failed += [{"case": c, "op": op, "impl": impl, "round": r,
                                "error": f"child process: {exc}"}
                               for c in unit_cases for op in grid.BY_NAME[c].ops
                               if impl in names.impls_for(op)]
                    continue
                for row in res["rows"]:
                    rows.append({**row, "round": r})
                    log(f"  {row['case']:15s} {row['op']:17s} {impl:15s} {row['median_ms']:10.4f} ms"
                        + ("" if row["checked"] else "  (unchecked: no reference)"))
                skipped += [{**s, "round": r} for s in res["skipped"]]
                for f in res["failed"]:
                    failed.append({**f, "round": r})
                    log(f"  FAILED {f['case']} {f['op']} {impl}: {f['error']}")
                data["threads"]["children"].setdefault(impl, {**res["threads"],
                                                              "modules": res.get("modules")})
                log(f"  ({impl}: child {time.perf_counter() - t0:.1f} s)")
        data["skipped"] += _merge(skipped, "reason")
        data["failed"] += _merge(failed, "error")
        data["results"] = aggregate(rows, cases, data["roofline"])
    if not args.no_first_call:
        log("first-call costs (fresh processes):")
        data["first_call"] = _first_call(args.quick, n, log)
    data["elapsed_s"] = time.time() - started
    data["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return data


def _reference(cases, common, timeout, data, log):
    """fastgru's NumPy reference for every (case, op), in a child; its arrays go to the workdir."""
    t0 = time.perf_counter()
    try:
        ref = procs.run_child(["reference", *common, "--cases", ",".join(c.name for c in cases)],
                              timeout)
    except procs.ChildFailed as exc:
        ref = {"unavailable": f"the reference's child process failed: {exc}", "status": {}}
        data["failed"].append({"case": "*", "op": "*", "impl": "reference (fastgru-numpy)",
                               "error": str(exc), "rounds": []})
    data["reference"] = {"available": "unavailable" not in ref, "why": ref.get("unavailable"),
                         "status": ref.get("status", {})}
    if "unavailable" in ref:     # fastgru is what is tested: not importing it is a failure
        log(f"  FAILED reference: results are unchecked: {ref['unavailable']}")
        if not any(f["impl"] == "reference (fastgru-numpy)" for f in data["failed"]):
            data["failed"].append({"case": "*", "op": "*", "impl": "reference (fastgru-numpy)",
                                   "error": ref["unavailable"], "rounds": []})
    for key, status in ref.get("status", {}).items():
        if status != "ok":
            case, op = key.split("|")
            data["failed"].append({"case": case, "op": op, "impl": "reference (fastgru-numpy)",
                                   "error": status[len("error "):], "rounds": []})
            log(f"  FAILED reference {case} {op}: {status}")
    log(f"  reference: {time.perf_counter() - t0:.1f} s")
    return ref


def _first_call(quick, n, log):
    try:
        compiled = json.loads(procs.run_python(
            "import json, fastgru; print(json.dumps(fastgru.available_backends()))",
            extra_env=threads.env_for(n)))
    except (procs.ChildFailed, ValueError) as exc:
        log(f"  fastgru does not import: {exc}")
        return {"error": f"fastgru does not import: {exc}"}
    compiled = [b for b in ("numba", "cython") if b in compiled]
    dtypes = ("float32",) if quick else ("float32", "float64")
    return firstcall.measure_all(compiled, dtypes, default_cache=not quick, log=log,
                                 extra_env=threads.env_for(n))


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
    args.name = args.name or default_name(args.threads or threads.available_cores(), args.quick)
    data = run(args)
    for path in write(data, args.out, plot=not args.no_plot):
        print("wrote", path)
    print()
    print(render.summary(data))
    if data["skipped"]:
        print(f"{len(data['skipped'])} skipped (see the .md file for why)")
    if not data["reference"].get("available", True):
        print("WARNING: no reference: every result is unchecked")
    if data["failed"]:
        print(f"{len(data['failed'])} FAILED:")
        for f in data["failed"]:
            print(f"  {f['case']} {f['op']} {f['impl']}: {f['error']}")
        return 1
    return 0
