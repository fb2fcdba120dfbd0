"""Starting fresh Python processes for the benchmark scripts (the parent side of bench/child.py)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "BENCH-RESULT "     # bench.child prints its result on one line after this


class ChildFailed(RuntimeError):
    """A child process crashed, timed out or printed no result."""


def env(**extra):
    """The environment of a child: it imports this checkout's ``bench`` and the same fastgru."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [e.get("PYTHONPATH")] if p])
    e.update({k: str(v) for k, v in extra.items()})
    return e


def _tail(text, n=1500):
    text = (text or "").strip()
    return text[-n:]


def run_child(argv, timeout, extra_env=None):
    """``python -m bench.child ARGV...`` in a fresh process; its JSON result (ChildFailed if none)."""
    cmd = [sys.executable, "-m", "bench.child", *argv]
    try:
        proc = subprocess.run(cmd, env=env(**(extra_env or {})), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ChildFailed(f"timed out after {timeout:.0f} s; stderr: "
                          f"{_tail(exc.stderr if isinstance(exc.stderr, str) else '')}") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise ChildFailed(f"exit status {proc.returncode}, no result; stderr: {_tail(proc.stderr)}")
    result = json.loads(lines[-1][len(MARK):])
    result["stderr_tail"] = _tail(proc.stderr, 600)
    return result


def run_python(code, timeout=300, extra_env=None):
    """``python -c CODE`` in a fresh process; its last stdout line (ChildFailed otherwise)."""
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env(**(extra_env or {})),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ChildFailed(f"timed out after {timeout:.0f} s") from None
    out = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not out:
        raise ChildFailed(f"exit status {proc.returncode}: {_tail(proc.stderr, 800)}")
    return out[-1]
