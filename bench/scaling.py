"""Thread scaling: fastgru and its peers at 1, 2, 4, 8, 16 threads on the large and wide shapes.

    python bench/scaling.py [--name NAME] [--threads 1,2,4,8,16] [--cases large,wide]

Each thread count runs in its own process, configured before anything is imported
(``bench.threads``: library knobs, and CPU affinity pinned to N cores below the core
count), so every implementation sees the same N. Counts above this machine's cores are
skipped and reported. Each result is checked against fastgru's NumPy reference before it
is timed. Writes bench/results/scaling-<name>.json and .md; takes about 2-4 minutes.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):      # run as a script: make ``bench`` importable
    sys.path.insert(0, ROOT)

from bench import threads  # noqa: E402  (configure before heavy imports in the child)

DEFAULT_IMPLS = ("fastgru-numba", "fastgru-cython", "torch", "onnxruntime")


def child(n, cases, impls):
    """In a fresh process: time every (case, op, impl) at n threads; JSON rows on stdout."""
    threads.configure(n)
    from bench import grid, peers, timer
    budget = timer.Budget(min_round_s=0.05, min_rounds=3, max_rounds=15, target_s=0.6)
    rows = []
    for name in cases:
        case = grid.BY_NAME[name]
        for op in case.ops:
            for impl in [i for i in peers.impls_for(op) if i in impls]:
                row = {"threads": n, "case": name, "op": op, "impl": impl}
                try:
                    runner = peers.prepare(impl, case, op)
                    runner.activate()
                    with runner.context():
                        t = timer.measure(runner.fn, budget)
                except peers.Unsupported as exc:
                    rows.append({**row, "skipped": str(exc)})
                    continue
                except Exception as exc:
                    rows.append({**row, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                rows.append({**row, "median_ms": t.median_s * 1e3, "iqr_ms": t.iqr_s * 1e3,
                             "rounds": t.rounds})
                print(f"  {n:2d} threads {name:6s} {op:17s} {impl:15s} {t.median_s * 1e3:9.2f} ms",
                      file=sys.stderr, flush=True)
        peers.clear_cache()
    return {"threads": threads.describe(), "rows": rows}


def markdown(data):
    rows = [r for r in data["rows"] if "median_ms" in r]
    counts = sorted({r["threads"] for r in rows})
    by = {(r["case"], r["op"], r["impl"], r["threads"]): r["median_ms"] for r in rows}
    keys = list(dict.fromkeys((r["case"], r["op"], r["impl"]) for r in rows))
    head = ["case", "op", "impl"] + [f"{n} thr ms (speedup)" for n in counts]
    lines = [f"# Thread scaling: {data['name']}", "",
             f"{data['date']} · {data['cpu']} · {data['cores']} cores available · "
             f"{data['elapsed_s']:.0f} s", "",
             "Median ms per call; in brackets the speedup over the same implementation at "
             f"{counts[0] if counts else 1} thread(s).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, op, impl in keys:
        base = by.get((case, op, impl, counts[0]))
        cells = []
        for n in counts:
            ms = by.get((case, op, impl, n))
            cells.append("-" if ms is None else
                         f"{ms:.1f} ({base / ms:.2f}x)" if base else f"{ms:.1f}")
        lines.append("| " + " | ".join([case, op, impl] + cells) + " |")
    notes = [f"- {r['threads']} threads {r['case']} {r['op']} {r['impl']}: "
             f"{r.get('skipped') or 'ERROR ' + r['error']}"
             for r in data["rows"] if "median_ms" not in r]
    notes += [f"- {n} threads: skipped, {why}" for n, why in data["skipped_counts"].items()]
    if notes:
        lines += ["", "Not measured:", ""] + notes
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default=None, help="results name (default: the hostname)")
    p.add_argument("--threads", default="1,2,4,8,16", help="comma-separated thread counts")
    p.add_argument("--cases", default="large,wide", help="comma-separated grid case names")
    p.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                   help="comma-separated implementations (add jax: +~30 s of compiling)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cases, impls = args.cases.split(","), args.impls.split(",")
    if args.child is not None:
        print(json.dumps(child(args.child, cases, impls)))
        return 0

    import datetime
    import socket
    from bench import report
    cores = threads.available_cores()
    name = args.name or report.default_name(cores, False).rsplit("-", 1)[0]
    data = {"name": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "cpu": report.machine_info()["cpu"], "hostname": socket.gethostname(),
            "cores": cores, "cases": cases, "impls": impls, "rows": [], "children": {},
            "skipped_counts": {}}
    started = time.time()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [x for x in [os.environ.get("PYTHONPATH")] if x]))
    for n in [int(x) for x in args.threads.split(",")]:
        if n > cores:
            data["skipped_counts"][n] = f"more than the {cores} cores available"
            print(f"{n} threads: skipped ({cores} cores)", file=sys.stderr)
            continue
        print(f"{n} threads:", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, "-m", "bench.scaling", "--child", str(n),
                               "--cases", args.cases, "--impls", args.impls],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            data["skipped_counts"][n] = f"the child process failed ({proc.returncode})"
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        data["rows"] += result["rows"]
        data["children"][n] = result["threads"]
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
    return 1 if any("error" in r for r in data["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
