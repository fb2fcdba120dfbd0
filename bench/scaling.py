"""Thread scaling: fastgru and its peers at 1, 2, 4, 8, 16 threads, and how fastgru cuts a step.

    python bench/scaling.py [--name NAME] [--threads 1,2,4,8,16] [--cases large,wide,...]
                            [--impls ...] [--rounds N]

Every (thread count, implementation) is timed in its own fresh process (``bench/child.py``),
configured before anything is imported (``bench.threads``: library knobs, and the CPU
affinity pinned to N cores below the core count), so every implementation sees the same N
and no two libraries share a process. Rounds (default 1) visit the thread counts and the
implementations in a rotated order; a figure is the median over rounds. Counts above this
machine's cores are skipped and reported (on a 2-core machine: 1 and 2 threads). Each
result is checked against fastgru's NumPy reference (computed once, in a process of its own).

Per case it also reports the pieces per recurrence step that fastgru's partition offers
(``fastgru.backends.partition(B, H)``; None where this fastgru has no such function): the
most threads a step can keep busy. Writes bench/results/scaling-<name>.json and .md.
"""
import argparse
import datetime
import json
import os
import socket
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):      # run as a script: make ``bench`` importable
    sys.path.insert(0, ROOT)

from bench import grid, names, procs, threads  # noqa: E402  (light: nothing heavy is imported here)

DEFAULT_IMPLS = ("fastgru-numba", "fastgru-cython", "torch", "onnxruntime", "openvino")
DEFAULT_CASES = ("large", "wide", "smallbatch", "manyshort")


def _pieces_cell(parts):
    """One case's partition over thread counts -> a table cell."""
    values = {json.dumps(p, sort_keys=True) for p in parts.values()}
    if not parts:
        return "-", "-"
    if len(values) == 1:
        p = next(iter(parts.values()))
        if p is None:
            return "None", "fastgru.backends has no partition()"
        if "error" in p:
            return "-", p["error"]
        rest = ", ".join(f"{k} {v}" for k, v in p.items() if k != "pieces")
        return str(p.get("pieces")), rest
    return (" / ".join(f"{n}t: {(p or {}).get('pieces')}" for n, p in sorted(parts.items())),
            "differs by thread count")


def markdown(data):
    rows = data["rows"]
    counts = sorted({r["threads"] for r in rows})
    by = {(r["case"], r["op"], r["impl"], r["threads"]): r["median_ms"] for r in rows}
    keys = list(dict.fromkeys((r["case"], r["op"], r["impl"]) for r in rows))
    head = ["case", "op", "impl"] + [f"{n} thr ms (speedup)" for n in counts]
    lines = [f"# Thread scaling: {data['name']}", "",
             f"{data['date']} · {data['cpu']} · {data['cores']} cores available · "
             f"{data['rounds']} round(s) · {data['elapsed_s']:.0f} s", "",
             "Every (thread count, implementation) timed in its own fresh process.", "",
             "## Pieces per step (fastgru.backends.partition(B, H))", "",
             "| case | (T,B,I,H) | pieces per step | partition |", "|---|---|---|---|"]
    for name in data["cases"]:
        pieces, rest = _pieces_cell({int(n): p[name] for n, p in data["partition"].items()
                                     if name in p})
        lines.append(f"| {name} | {grid.BY_NAME[name].shape} | {pieces} | {rest} |")
    lines += ["", "## Times", "",
              "Median ms per call (over rounds); in brackets the speedup over the same "
              f"implementation at {counts[0] if counts else 1} thread(s).", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, op, impl in keys:
        base = by.get((case, op, impl, counts[0]))
        cells = []
        for n in counts:
            ms = by.get((case, op, impl, n))
            cells.append("-" if ms is None else
                         f"{ms:.2f} ({base / ms:.2f}x)" if base else f"{ms:.2f}")
        lines.append("| " + " | ".join([case, op, impl] + cells) + " |")
    notes = [f"- {s['threads']} threads {s['case']} {s['op']} {s['impl']}: {s['reason']}"
             for s in data["skipped"]]
    notes += [f"- {f['threads']} threads {f['case']} {f['op']} {f['impl']}: ERROR {f['error']}"
              for f in data["failed"]]
    notes += [f"- {n} threads: skipped, {why}" for n, why in data["skipped_counts"].items()]
    if notes:
        lines += ["", "Not measured:", ""] + notes
    return "\n".join(lines) + "\n"


def _aggregate(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["case"], r["op"], r["impl"], r["threads"]), []).append(r)
    out = []
    for (case, op, impl, n), rs in groups.items():
        out.append({"threads": n, "case": case, "op": op, "impl": impl,
                    "median_ms": statistics.median(r["median_ms"] for r in rs),
                    "round_medians_ms": [r["median_ms"] for r in rs],
                    "iqr_ms": statistics.median(r["iqr_ms"] for r in rs),
                    "max_err": max((r["max_err"] for r in rs if r["max_err"] is not None),
                                   default=None)})
    order = {c: i for i, c in enumerate(grid.BY_NAME)}
    out.sort(key=lambda r: (order[r["case"]], grid.OPS.index(r["op"]),
                            names.IMPLS.index(r["impl"]), r["threads"]))
    return out


def _dedupe(entries):
    seen = {}
    for e in entries:
        seen.setdefault((e["threads"], e["case"], e["op"], e["impl"]), e)
    return list(seen.values())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default=None, help="results name (default: the hostname)")
    p.add_argument("--threads", default="1,2,4,8,16", help="comma-separated thread counts")
    p.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated grid cases")
    p.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                   help="comma-separated implementations (add jax: +~30 s of compiling)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--child-timeout", type=float, default=1800)
    args = p.parse_args(argv)
    cases, impls = args.cases.split(","), args.impls.split(",")
    bad = [c for c in cases if c not in grid.BY_NAME] + [i for i in impls if i not in names.IMPLS]
    if bad:
        raise SystemExit(f"unknown cases or implementations: {bad}")

    from bench import report
    cores = threads.available_cores()
    name = args.name or report.default_name(cores, False).rsplit("-", 1)[0]
    data = {"name": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "cpu": report.machine_info()["cpu"], "hostname": socket.gethostname(),
            "versions": names.versions(), "cores": cores, "cases": cases, "impls": impls,
            "rounds": args.rounds, "partition": {}, "rows": [], "skipped": [], "failed": [],
            "children": {}, "skipped_counts": {}}
    started = time.time()
    counts = []
    for n in [int(x) for x in args.threads.split(",")]:
        if n > cores:
            data["skipped_counts"][n] = f"more than the {cores} cores available"
            print(f"{n} threads: skipped ({cores} cores)", file=sys.stderr)
        else:
            counts.append(n)
    runnable = []
    for impl in impls:
        why = names.installed(impl)
        if why:
            data["skipped"].append({"threads": "*", "case": "*", "op": "*", "impl": impl,
                                    "reason": why})
        else:
            runnable.append(impl)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastgru-scaling-") as workdir:
        common = ["--budget", "scaling", "--workdir", workdir, "--cases", args.cases]
        top = str(max(counts, default=1))
        try:
            ref = procs.run_child(["reference", "--threads", top, *common], args.child_timeout)
            if "unavailable" in ref:
                print(f"WARNING: results unchecked: {ref['unavailable']}", file=sys.stderr)
            data["reference"] = ref.get("unavailable") or ref.get("status")
        except procs.ChildFailed as exc:
            data["reference"] = f"failed: {exc}"
            data["failed"].append({"threads": "*", "case": "*", "op": "*",
                                   "impl": "reference (fastgru-numpy)", "error": str(exc)})
        for n in counts:
            try:
                part = procs.run_child(["partition", "--threads", str(n), *common], 300)
                data["partition"][n] = part["partition"]
            except procs.ChildFailed as exc:
                data["partition"][n] = {c: {"error": str(exc)[:200]} for c in cases}
        for r in range(args.rounds):
            for n in report.rotated(counts, r):
                for impl in report.rotated(runnable, r):
                    print(f"round {r + 1}, {n} threads, {impl}:", file=sys.stderr, flush=True)
                    try:
                        res = procs.run_child(["time", impl, "--threads", str(n), *common],
                                              args.child_timeout)
                    except procs.ChildFailed as exc:
                        data["failed"].append({"threads": n, "case": "*", "op": "*", "impl": impl,
                                               "error": f"child process: {exc}"})
                        continue
                    for row in res["rows"]:
                        rows.append({**row, "threads": n, "round": r})
                        print(f"  {n:2d} threads {row['case']:10s} {row['op']:17s} {impl:15s} "
                              f"{row['median_ms']:9.2f} ms", file=sys.stderr, flush=True)
                    data["skipped"] += [{**s, "threads": n} for s in res["skipped"]]
                    data["failed"] += [{**f, "threads": n} for f in res["failed"]]
                    data["children"].setdefault(f"{n} {impl}", res["threads"])
    data["rows"] = _aggregate(rows)
    data["skipped"], data["failed"] = _dedupe(data["skipped"]), _dedupe(data["failed"])
    data["elapsed_s"] = time.time() - started
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"scaling-{name}")
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1)
    md = markdown(data)
    with open(base + ".md", "w") as f:
        f.write(md)
    print(md)
    print(f"wrote {base}.json and {base}.md ({data['elapsed_s']:.0f} s)")
    return 1 if data["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
