"""How fastgru behaves as a guest in someone else's process: ``python -m bench.host``.

Three figures, each measured in fresh Python processes (``sys.executable``), interleaved
over rounds (the order of the variants rotated each round), medians reported:

a. torch after fastgru: ``torch.nn.GRU(64, 128)`` forward on (100, 32, 64) float32 at 2
   threads, in a fresh process alone vs. in a fresh process that first imported fastgru and
   ran one ``fastgru.GRU(64, 128)`` forward (numba backend; cython backend). The ratio of
   medians says what loading fastgru costs the host's other libraries (target: <= 1.3x).
b. concurrency: two small fastgru models, GRU(32, 64) on (100, 16, 32) and GRU(16, 48) on
   (100, 8, 16); two Python threads each running one model in a loop for ~1 s vs. one thread
   running both alternately for ~1 s. Throughput is counted in work: each call weighted by
   that model's per-call time in the one-thread run (so the one-thread run does 1.0 "model
   seconds" per second); the ratio is the two-thread throughput over it (2.0 = both cores
   fully used; target >= 1.35x on 2 cores). FASTGRU_BACKEND picks the backend in the child.
c. warm start: the whole process ``python -c "import fastgru, numpy as np;
   fastgru.GRU(16, 64)(np.zeros((10, 4, 16), np.float32))"`` with a warm Numba cache (one run
   first to warm it), wall time, median of 10 runs, FASTGRU_BACKEND=numba and =cython.

Writes bench/results/host-<name>.json; a failed variant is reported, and makes the exit
status 1; a missed target does not.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

from . import names, procs

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BACKENDS = ("numba", "cython")

# --------------------------------------------------------------- a. torch after fastgru

_TORCH = """
import json, statistics, time
{prelude}
import torch
torch.set_num_threads({threads})
torch.manual_seed(0)
gru = torch.nn.GRU(64, 128)
x = torch.randn(100, 32, 64)
with torch.inference_mode():
    for _ in range(5):
        gru(x)
    per_call, start = [], time.perf_counter()
    while time.perf_counter() - start < {seconds} or len(per_call) < 7:
        t0 = time.perf_counter()
        for _ in range(5):
            gru(x)
        per_call.append((time.perf_counter() - t0) / 5)
print(json.dumps({{"median_ms": statistics.median(per_call) * 1e3, "samples": len(per_call),
                  "torch_threads": torch.get_num_threads()}}))
"""

_FASTGRU_FIRST = """
import numpy as np
import fastgru
fastgru.set_backend({backend!r})
fastgru.GRU(64, 128, seed=0)(np.zeros((100, 32, 64), np.float32))
"""

# --------------------------------------------------------------- b. concurrency

_CONCURRENCY = """
import json, statistics, threading, time
import numpy as np
import fastgru
assert fastgru.get_backend() == {backend!r}, fastgru.get_backend()
rng = np.random.default_rng(0)
models = [(fastgru.GRU(32, 64, seed=0), rng.uniform(-1, 1, (100, 16, 32)).astype(np.float32)),
          (fastgru.GRU(16, 48, seed=1), rng.uniform(-1, 1, (100, 8, 16)).astype(np.float32))]
for m, x in models:
    for _ in range(3):
        m(x)
seconds = {seconds}
if {mode!r} == "serial":
    times, start = [[], []], time.perf_counter()
    while time.perf_counter() - start < seconds:
        for k, (m, x) in enumerate(models):
            t0 = time.perf_counter()
            m(x)
            times[k].append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    out = {{"calls": [len(t) for t in times], "elapsed_s": elapsed,
            "per_call_s": [statistics.median(t) for t in times]}}
else:
    calls, barrier, stop = [0, 0], threading.Barrier(3), []
    def loop(k):
        m, x = models[k]
        barrier.wait()
        n = 0
        while not stop:
            m(x)
            n += 1
        calls[k] = n
    workers = [threading.Thread(target=loop, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.append(True)
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start   # includes the last calls' tails: a slight underestimate
    out = {{"calls": calls, "elapsed_s": elapsed}}
print(json.dumps(out))
"""

# --------------------------------------------------------------- c. warm start

WARM_START = ("import fastgru, numpy as np; "
              "fastgru.GRU(16, 64)(np.zeros((10, 4, 16), np.float32))")


def rotated(seq, k):
    seq = list(seq)
    k %= len(seq)
    return seq[k:] + seq[:k]


def _child(code, extra_env=None, timeout=300):
    return json.loads(procs.run_python(code, timeout=timeout, extra_env=extra_env))


def _why(exc):
    """The exception line of a failed child (the last line of its stderr)."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1][-300:] if lines else str(exc)[-300:]


def available_backends():
    """fastgru's compiled backends, asked of a fresh process: ({name: None, or why it is
    missing}, why fastgru does not import at all)."""
    try:
        got = json.loads(procs.run_python(names.FASTGRU_BACKENDS_CHILD))
    except (procs.ChildFailed, ValueError) as exc:
        return {}, f"fastgru does not import: {_why(exc)}"
    return {b: got.get(b, "unknown backend") for b in BACKENDS}, None


def _skip_reason(backend, available, why):
    if why:
        return why
    return available.get(backend, f"fastgru backend {backend!r}: fastgru did not import")


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def torch_after_fastgru(rounds, seconds, threads, available, why_not, log):
    why = names.installed("torch")
    if why:
        return {"skipped": why}
    variants = {"alone": ""}
    res = {"alone": {"round_ms": [], "errors": []}}
    for b in BACKENDS:
        v = f"after fastgru {b}"
        skip = _skip_reason(b, available, why_not)
        res[v] = {"round_ms": [], "errors": []}
        if skip:
            res[v]["skipped"] = skip
            log(f"  a. {v}: skipped, {skip}")
        else:
            variants[v] = _FASTGRU_FIRST.format(backend=b)
    for r in range(rounds):
        for v in rotated(variants, r):
            code = _TORCH.format(prelude=variants[v], threads=threads, seconds=seconds)
            try:
                out = _child(code, {"FASTGRU_BACKEND": v.split()[-1]} if v != "alone" else None)
                res[v]["round_ms"].append(out["median_ms"])
                log(f"  a. round {r + 1} {v:22s} {out['median_ms']:8.3f} ms")
            except (procs.ChildFailed, ValueError) as exc:
                res[v]["errors"].append(_why(exc))
                log(f"  a. round {r + 1} {v:22s} FAILED: {_why(exc)}")
    for v in res.values():
        v["median_ms"] = _median(v["round_ms"])
    base = res["alone"]["median_ms"]
    ratios = {v: (res[v]["median_ms"] / base if base and res[v]["median_ms"] else None)
              for v in res if v != "alone"}
    return {"what": f"torch.nn.GRU(64, 128) forward on (100, 32, 64) float32, "
                    f"torch.set_num_threads({threads}), inference_mode",
            "variants": res, "ratio_to_alone": ratios, "target": "<= 1.3x"}


def concurrency(rounds, seconds, available, why_not, log):
    res, live = {}, []
    for b in BACKENDS:
        res[b] = {"rounds": [], "errors": []}
        skip = _skip_reason(b, available, why_not)
        if skip:
            res[b]["skipped"] = skip
            log(f"  b. {b}: skipped, {skip}")
        else:
            live.append(b)
    for r in range(rounds):
        for b in rotated(live, r) if live else []:
            one = {}
            for mode in rotated(("serial", "parallel"), r):
                code = _CONCURRENCY.format(backend=b, mode=mode, seconds=seconds)
                try:
                    one[mode] = _child(code, {"FASTGRU_BACKEND": b})
                except (procs.ChildFailed, ValueError) as exc:
                    res[b]["errors"].append(f"{mode}: {_why(exc)}")
                    log(f"  b. round {r + 1} {b} {mode} FAILED: {_why(exc)}")
            if len(one) < 2:
                continue
            s, p = one["serial"], one["parallel"]
            cost = s["per_call_s"]          # the one-thread per-call time of each model
            serial = sum(n * c for n, c in zip(s["calls"], cost)) / s["elapsed_s"]
            parallel = sum(n * c for n, c in zip(p["calls"], cost)) / p["elapsed_s"]
            res[b]["rounds"].append({"serial": s, "parallel": p, "serial_work_per_s": serial,
                                     "parallel_work_per_s": parallel, "ratio": parallel / serial})
            log(f"  b. round {r + 1} {b:6s} two threads / one thread: {parallel / serial:5.2f}x "
                f"(calls one thread {s['calls']}, two threads {p['calls']})")
    for b in res.values():
        b["ratio_median"] = _median(r["ratio"] for r in b["rounds"])
        b["ratio_of_medians"] = (
            _median(r["parallel_work_per_s"] for r in b["rounds"])
            / _median(r["serial_work_per_s"] for r in b["rounds"]) if b["rounds"] else None)
    return {"what": "GRU(32, 64) on (100, 16, 32) and GRU(16, 48) on (100, 8, 16), float32: two "
                    "Python threads (one model each) vs one thread alternating, ~"
                    f"{seconds:g} s each; work = calls x that model's one-thread per-call time",
            "backends": res, "target": ">= 1.35x on 2 cores"}


def warm_start(runs, available, why_not, log):
    res = {b: {"runs_s": [], "errors": []} for b in BACKENDS}
    check = WARM_START + "; print(fastgru.get_backend())"
    for b in BACKENDS:      # warm the Numba cache, and check the backend really is b
        skip = _skip_reason(b, available, why_not)
        if skip:
            res[b]["skipped"] = skip
            log(f"  c. {b}: skipped, {skip}")
            continue
        try:
            got = procs.run_python(check, extra_env={"FASTGRU_BACKEND": b})
            if got.strip() != b:
                res[b]["errors"].append(f"FASTGRU_BACKEND={b} ran the {got.strip()!r} backend")
        except procs.ChildFailed as exc:
            res[b]["errors"].append(_why(exc))
            log(f"  c. {b}: FAILED: {_why(exc)}")
    live = [b for b in BACKENDS if not res[b]["errors"] and "skipped" not in res[b]]
    for i in range(runs):
        for b in rotated(live, i) if live else []:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", WARM_START],
                                  env=procs.env(FASTGRU_BACKEND=b), capture_output=True, text=True)
            elapsed = time.perf_counter() - t0
            if proc.returncode != 0:
                res[b]["errors"].append(_why(proc.stderr))
                continue
            res[b]["runs_s"].append(elapsed)
    for b, v in res.items():
        v["median_s"] = _median(v["runs_s"])
        if v["median_s"] is not None:
            log(f"  c. {b:6s} warm start {v['median_s']:.3f} s (median of {len(v['runs_s'])})")
    ts = []     # for scale: a bare interpreter that imports NumPy
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], capture_output=True)
        ts.append(time.perf_counter() - t0)
    log(f"  c. (python -c 'import numpy': {statistics.median(ts):.3f} s)")
    return {"what": f"wall time of `python -c \"{WARM_START}\"`, warm Numba cache",
            "backends": res, "python_import_numpy_s": statistics.median(ts)}


def _f(x, unit="", digits=3):
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def table(data):
    rows = [("measurement", "variant", "median", "ratio", "target")]
    a = data.get("torch_after_fastgru")
    if a and "variants" in a:
        for v, r in a["variants"].items():
            ratio = a["ratio_to_alone"].get(v)
            rows.append(("a. torch GRU fwd", v, "skipped" if "skipped" in r else
                         _f(r["median_ms"], " ms") + (" (errors)" if r["errors"] else ""),
                         _f(ratio, "x", 2) if v != "alone" else "",
                         a["target"] if v != "alone" else ""))
    elif a:
        rows.append(("a. torch GRU fwd", "-", "skipped", a.get("skipped", ""), ""))
    b = data.get("concurrency")
    if b:
        for name, r in b["backends"].items():
            rows.append(("b. 2 threads / 1", name, "skipped" if "skipped" in r else "",
                         _f(r["ratio_median"], "x", 2) + ("" if not r["errors"] else " (errors)"),
                         b["target"]))
    c = data.get("warm_start")
    if c:
        for name, r in c["backends"].items():
            rows.append(("c. warm start", name, "skipped" if "skipped" in r else
                         _f(r["median_s"], " s") + (" (errors)" if r["errors"] else ""), "", ""))
    widths = [max(len(str(row[k])) for row in rows) for k in range(5)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _failures(data):
    out = [f"fastgru: {data['fastgru_error']}"] if data.get("fastgru_error") else []
    a = data.get("torch_after_fastgru") or {}
    out += [f"a. {v}: {e}" for v, r in a.get("variants", {}).items() for e in r["errors"]]
    for key in ("concurrency", "warm_start"):
        for b, r in (data.get(key) or {}).get("backends", {}).items():
            out += [f"{key} {b}: {e}" for e in r["errors"]]
    return out


def main(argv=None):
    from . import report
    p = argparse.ArgumentParser(prog="python -m bench.host", description=__doc__.splitlines()[0])
    p.add_argument("--name", default=None, help="results name (default: the hostname)")
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds for a. and b.")
    p.add_argument("--runs", type=int, default=10, help="warm-start runs per backend (c.)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of each timed loop")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--only", default="a,b,c", help="which figures (comma-separated: a,b,c)")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    name = args.name or report.default_name(0, False).rsplit("-", 1)[0]
    started = time.time()
    data = {"name": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "machine": report.machine_info(), "versions": names.versions(),
            "python": sys.executable, "rounds": args.rounds}
    log = lambda s: print(s, file=sys.stderr, flush=True)   # noqa: E731
    available, why_not = available_backends()
    data["fastgru_backends"] = available
    if why_not:
        data["fastgru_error"] = why_not
        log(f"fastgru: {why_not}")
    if "a" in only:
        log("a. torch after fastgru")
        data["torch_after_fastgru"] = torch_after_fastgru(args.rounds, args.seconds,
                                                          args.torch_threads, available, why_not,
                                                          log)
    if "b" in only:
        log("b. concurrency")
        data["concurrency"] = concurrency(args.rounds, args.seconds, available, why_not, log)
    if "c" in only:
        log("c. warm start")
        data["warm_start"] = warm_start(args.runs, available, why_not, log)
    data["elapsed_s"] = time.time() - started
    data["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"host-{name}.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    print(table(data))
    failures = _failures(data)
    for f in failures:
        print("FAILED", f[:300])
    print(f"wrote {path} ({data['elapsed_s']:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
