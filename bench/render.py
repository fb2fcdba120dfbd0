"""Tables (markdown) and the chart (PNG) from a results dict of ``bench.report``."""
from . import names
from .grid import BY_NAME, FORWARD, FORWARD_BACKWARD, STEP
from .names import SHORT


def fmt(x):
    """3 significant digits, never scientific notation for timings."""
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _index(data):
    by = {(r["case"], r["op"], r["impl"]): r for r in data["results"]}
    cases = list(dict.fromkeys(r["case"] for r in data["results"]))
    impls = [i for i in names.IMPLS if any(r["impl"] == i for r in data["results"])]
    return by, cases, impls


def summary(data):
    """One table per operation: median per implementation, roofline, fastgru's ratios."""
    by, cases, impls = _index(data)
    fast = [i for i in impls if i in names.FASTGRU_IMPLS and i != "fastgru-numpy"]
    out = []
    for op in (FORWARD, FORWARD_BACKWARD, STEP):
        op_cases = [c for c in cases if any((c, op, i) in by for i in impls)]
        if not op_cases:
            continue
        cols = [i for i in impls if any((c, op, i) in by for c in op_cases)]
        unit, scale = ("us", 1e3) if op == STEP else ("ms", 1.0)
        header = ["case"] + [SHORT[i] for i in cols] + ["roofline"]
        for f in fast:
            header += [f"{SHORT[f]} / best peer", f"{SHORT[f]} / roofline"]
        rows = []
        for c in op_cases:
            some = next(by[(c, op, i)] for i in cols if (c, op, i) in by)
            row = [BY_NAME[c].describe() if c in BY_NAME else c]
            row += [fmt(by[(c, op, i)]["median_ms"] * scale) if (c, op, i) in by else "-"
                    for i in cols]
            row.append(fmt(some["roofline_ms"] * scale) if some["roofline_ms"] else "-")
            for f in fast:
                r = by.get((c, op, f))
                ratio = r and r["vs_fastest_peer"]
                row += [f"{ratio:.2f}x ({SHORT[r['fastest_peer']]})" if ratio else "-",
                        f"{r['x_roofline']:.2f}x" if r and r["x_roofline"] else "-"]
            rows.append(row)
        out.append(f"**{op}**, median {unit} over rounds\n\n" + _table(header, rows))
    return "\n\n".join(out)


def _ratio(x):
    return f"{x:.2f}x" if x else "-"


def details(data):
    rows = []
    for r in data["results"]:
        rounds = r.get("round_medians_ms") or [r["median_ms"]]
        per_round = r.get("vs_fastest_peer_rounds") or []
        rows.append([r["case"], r["op"], r["impl"], fmt(r["median_ms"]),
                     " / ".join(fmt(x) for x in rounds), fmt(r["iqr_ms"]),
                     _ratio(r["vs_fastest_peer"]),
                     " / ".join(_ratio(x) for x in per_round) or "-",
                     _ratio(r.get("vs_fastest_peer_median_of_rounds")),
                     fmt(r["gflops"]), _ratio(r["x_roofline"]), fmt(r["compile_s"]),
                     f"{r['max_err']:.1e}" if r["max_err"] is not None else "**unchecked**"])
    return _table(["case", "op", "impl", "median ms", "per round ms", "IQR ms", "vs fastest peer",
                   "per round", "median of per-round ratios", "GFLOP/s", "x roofline", "compile s",
                   "max err"], rows)


def first_call_table(fc):
    if "error" in fc:
        return f"not measured: {fc['error'][:300]}"
    rows = []
    for key, r in fc["first_calls"].items():
        if "error" in r:
            rows.append([key, "failed: " + r["error"][:80], "", "", ""])
            continue
        rows.append([key, fmt(r["cold"]["import+forward_s"]), fmt(r["cold"]["forward+backward_s"]),
                     fmt(r["warm"]["import+forward_s"]),
                     fmt(r.get("warm_default_cache", {}).get("import+forward_s"))])
    head = (f"`import fastgru`: {fc['import_s']:.3f} s (fresh interpreter, NumPy included)\n\n")
    return head + _table(["backend dtype", "cold: import + 1st forward s",
                          "cold: then 1st fwd+bwd s", "warm cache: import + 1st forward s",
                          "warm, default cache dir: import + 1st forward s"], rows)


def _load_line(m):
    """The machine's load average around the run: other work on it makes timings noisy."""
    a, b = m.get("loadavg"), m.get("loadavg_end")
    if not a:
        return ""
    return (f"load average (1 min) at start {a[0]:.1f}, at end {b[0]:.1f} on {m['cpu_count']} CPUs"
            + (" · **the machine was busy: timings are noisy**"
               if a[0] > 0.5 * m["cpu_count"] else ""))   # at the end it counts this run too


def _where(e):
    rounds = e.get("rounds") or []
    return f" (round {', '.join(str(r + 1) for r in rounds)})" if rounds else ""


def markdown(data):
    m, v = data["machine"], data["versions"]
    rounds = data.get("rounds", 1)
    how = ("each implementation timed in its own fresh process"
           + (", one per case" if data.get("isolation") == "case" else "")
           + f"; {rounds} interleaved round(s), the order rotated each round; a figure is the "
           "median over rounds of the per-round medians")
    lines = [f"# fastgru benchmark: {data['name']}", "",
             f"{data['date']} · {m['cpu']} · {m['cpu_count']} CPUs · "
             f"{data['threads']['threads']} threads for every implementation"
             + (" (pinned)" if data["threads"].get("pinned_to_cores") else "")
             + (" · **quick mode: few repetitions, not for comparison**" if data["quick"] else ""),
             "", how + ".", "", _load_line(m), "",
             "versions: " + ", ".join(f"{k} {x}" for k, x in v.items() if x), ""]
    if data["roofline"]:
        lines += ["GEMM roofline: " + ", ".join(f"{dt} {r['gflops']:.1f} GFLOP/s"
                                                for dt, r in data["roofline"].items())
                  + " (2048^3 matmul, NumPy's BLAS, in a fresh process of the same run); "
                  "roofline time = the case's GEMM flops at that rate.", ""]
    ref = data.get("reference") or {}
    if ref and not ref.get("available", True):
        lines += [f"**No reference: every result below is unchecked** ({ref.get('why')}).", ""]
    lines += [summary(data), "", "## All timings", "",
              "`per round`: the per-round medians (ms) and ratios to that round's fastest peer, "
              "in round order.", "", details(data)]
    if data.get("first_call"):
        lines += ["", "## First-call costs (fresh processes)", "", first_call_table(data["first_call"])]
    if data["skipped"]:
        lines += ["", "## Skipped", ""]
        reasons = {}
        for s in data["skipped"]:
            reasons.setdefault((s["impl"], s["reason"]), []).append(f"{s['case']} {s['op']}")
        lines += [f"- {impl}: {why} ({'; '.join(where)})" for (impl, why), where in reasons.items()]
    if data["failed"]:
        lines += ["", "## FAILED", ""]
        lines += [f"- {f['case']} {f['op']} {f['impl']}{_where(f)}: {f['error']}"
                  for f in data["failed"]]
    if data.get("round_orders"):
        lines += ["", "Round orders: " + "; ".join(f"{k + 1}: {', '.join(SHORT.get(i, i) for i in o)}"
                                                   for k, o in enumerate(data["round_orders"]))]
    lines += ["", threads_section(data), ""]
    return "\n".join(lines)


def threads_section(data):
    """What each child process set and reported, one line per implementation."""
    t = data["threads"]
    common = ("threads", "cores_available", "pinned_to_cores", "jax")
    lines = [f"Threads: {t['threads']} for every implementation, {t.get('cores_available')} cores "
             "available" + (", each child pinned to that many cores (CPU affinity)"
                            if t.get("pinned_to_cores") else "") + "; per child process:", ""]
    info = {}
    for r in data["results"]:
        info.setdefault(r["impl"], r.get("info") or {})
    for impl, d in (t.get("children") or {}).items():
        seen = {k: v for k, v in d.items() if k not in common or (k == "jax" and impl == "jax")}
        seen.update(info.get(impl, {}))
        lines.append(f"- {impl}: " + (", ".join(f"{k} {v}" for k, v in seen.items()) or "-"))
    return "\n".join(lines)


def chart(data, path):
    """Bars of each implementation's time over the fastest peer's (log scale); None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    by, cases, impls = _index(data)
    for (c, op, i), r in list(by.items()):   # the cell step joins the forward panel
        if op == STEP:
            by[(c, FORWARD, i)] = r
    ops = [op for op in (FORWARD, FORWARD_BACKWARD)
           if any(by.get((c, op, i), {}).get("vs_fastest_peer") for c in cases for i in impls)]
    if not ops:
        return None
    fig, axes = plt.subplots(1, len(ops), figsize=(7 * len(ops), 1.0 + 0.7 * len(cases)),
                             squeeze=False)
    width = 0.8 / len(impls)
    for ax, op in zip(axes[0], ops):
        op_cases = [c for c in cases if any((c, op, i) in by for i in impls)]
        for k, impl in enumerate(impls):
            ys, xs = [], []
            for j, c in enumerate(op_cases):
                r = by.get((c, op, impl))
                if r and r["vs_fastest_peer"]:
                    ys.append(j + (k - (len(impls) - 1) / 2) * width)
                    xs.append(r["vs_fastest_peer"])
            ax.barh(ys, xs, height=width, label=SHORT[impl])
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yticks(range(len(op_cases)))
        ax.set_yticklabels(op_cases)
        ax.invert_yaxis()
        ax.set_title(f"{op}{' (cell: one step)' if op == FORWARD else ''}: "
                     "time / fastest peer, lower is better", fontsize="medium")
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0][0].legend(loc="best", fontsize="small")
    fig.suptitle(f"fastgru {data['name']}: {data['threads']['threads']} threads, {data['date'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
