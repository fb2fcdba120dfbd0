"""Shared test helpers: tolerances from DESIGN.md's contract, one comparison function."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastgru

from tolerances import BACKEND as BACKEND_TOL
from tolerances import GOLDEN as GOLDEN_TOL  # noqa: F401  (the tests import it from here)

GRAD_NAMES = ("dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh")


def assert_close(actual, expected, dtype, what, table=BACKEND_TOL):
    """Shape and dtype first, then max abs diff scaled by max(1, max |expected|)."""
    dtype = np.dtype(dtype)
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {dtype}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    err = float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max(initial=0.0))
    assert err <= table[dtype] * scale, (
        f"{what}: max abs diff {err:.3g} > {table[dtype]:g} * {scale:.3g} ({dtype})")
    return err / scale


def central_difference(f, a, eps=1e-6, touched=None):
    """d f() / d a by central differences, for a scalar function f that reads the array a,
    which is changed in place and restored; ``touched()`` runs after each change (e.g. a
    Parameter's ``changed`` after an in-place edit of its ``.data``)."""
    def set_to(idx, value):
        a[idx] = value
        if touched is not None:
            touched()

    grad = np.zeros_like(a, dtype=np.float64)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        set_to(idx, old + eps)
        up = f()
        set_to(idx, old - eps)
        down = f()
        set_to(idx, old)
        grad[idx] = (up - down) / (2 * eps)
    return grad


def make_gru(rng, dtype="float64", *, input_size=3, hidden_size=4, scale=0.7, **kwargs):
    """A fastgru.GRU (``kwargs`` as GRU's) with every parameter drawn from U(-scale, scale)
    by rng: non-zero, different biases, weights wide enough for a layout mistake to show."""
    gru = fastgru.GRU(input_size, hidden_size, dtype=dtype, **kwargs)
    gru.load_state_dict({name: rng.uniform(-scale, scale, a.shape)
                         for name, a in gru.state_dict().items()})
    return gru


def random_problem(rng, T, B, I, H, dtype, lengths=False, h0=True):
    """Inputs for one layer with non-zero, different biases; values keep tanh unsaturated."""
    def f(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)
    s = 1.0 / np.sqrt(H)
    return dict(
        x=f(T, B, I), h0=f(B, H, scale=0.5) if h0 else None,
        w_ih=f(3 * H, I, scale=s), w_hh=f(3 * H, H, scale=s),
        b_ih=f(3 * H, scale=0.3), b_hh=f(3 * H, scale=0.3),
        lengths=rng.integers(0, T + 1, B) if lengths else None)


def upstream(rng, T, B, H, dtype):
    return (rng.standard_normal((T, B, H)).astype(dtype),
            rng.standard_normal((B, H)).astype(dtype))


def torch_gru_run(torch, module, x, h0, lengths, packed):
    """(out, h_n) of a torch.nn.GRU, through a PackedSequence of ``lengths`` when packed
    (out padded back to the full length), else on the padded batch directly."""
    if not packed:
        return module(x, h0)
    bf = module.batch_first
    seq = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False)
    out, h_n = module(seq, h0)
    T = x.shape[1 if bf else 0]
    return torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=bf, total_length=T)[0], h_n


# ---- subprocess checks: a fresh interpreter on the fastgru the tests imported ----

def start_script(code, cwd, args=(), env=None):
    """Start ``code`` as a script in a fresh interpreter that imports the fastgru this test
    imported, in a process group of its own."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastgru.__file__)))
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.makedirs(str(cwd), exist_ok=True)
    script = os.path.join(str(cwd), "script.py")
    with open(script, "w") as f:
        f.write(textwrap.dedent(code))
    return subprocess.Popen([sys.executable, script, *args], cwd=str(cwd), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def finish_script(proc, timeout=120, as_json=True):
    """The JSON the script printed last (or all it printed); a hang fails the test (the
    whole process group is killed), never CI."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"subprocess hung (> {timeout} s)\nstdout:\n{out}\nstderr:\n{err}")
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode})\n{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1]) if as_json else out


def run_script(code, cwd, args=(), env=None, timeout=120, as_json=True):
    """start_script, then finish_script."""
    return finish_script(start_script(code, cwd, args, env), timeout, as_json)
