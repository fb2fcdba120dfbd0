"""What is timed: one problem per grid case, one runner per implementation, and the check.

Shared by the pytest-benchmark suite (``bench/test_bench.py``) and the report runner
(``python -m bench``). For every (implementation, case, operation):

* ``problem(case)`` makes the weights (torch layout, from fastgru's PyTorch-style init),
  the input, a non-zero h0, lengths and the output gradient, once per case;
* ``build(impl, case, op)`` turns them into a ``Runner``: a zero-argument ``fn`` to time,
  plus how to read its result; a missing library or an unsupported combination raises
  ``Unsupported`` (skipped and reported, never an error);
* ``prepare`` builds, runs once (compiling where there is a compiler) and checks the result
  against fastgru's NumPy reference before anything is timed.

Implementations: the fastgru backends (``fastgru-numba``, ``fastgru-cython``, ``fastgru-numpy``)
and the peers (``torch``, ``onnxruntime``, ``openvino``, ``jax``). All use ``bench.threads.count()``
threads. The data of a case is made here from a seeded NumPy generator (the same weights fastgru's
PyTorch-style init gives with seed 0), so a peer never runs fastgru: the report runner computes the
reference in a process of its own and hands it to each child (``bench/child.py``). A peer's process
imports only fastgru's Python layer, never its kernels (no Numba, no Cython extension): for the
parameter names (``fastgru.nn.parameter_names``) and, for ONNX Runtime and OpenVINO, the graph
(``fastgru.onnx.export``).
"""
import functools
import time

import numpy as np

from . import names, peer_runtimes, threads
from .grid import FORWARD, STEP
from .names import FASTGRU_IMPLS, IMPLS, PEER_IMPLS, TOLERANCE, impls_for, is_peer, versions  # noqa: F401  (re-exported)
from .peer_runtimes import onnx_gru_model  # noqa: F401  (re-exported)
from .runner import CheckFailed, Problem, Runner, Unsupported  # noqa: F401  (re-exported)
from .runner import load as _load

IN_PROCESS = "in-process"    # prepare(): compute the reference here (the pytest suite)


def init_params(case, seed=0):
    """torch-layout weights ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in fastgru's (and torch's) order.

    The same values as ``fastgru.GRU(..., seed=seed).state_dict()``, drawn here (fastgru only
    names them: ``fastgru.nn.parameter_names``, no kernel loaded).
    """
    names = _load("fastgru.nn").parameter_names
    H, D = case.H, case.directions
    if case.cell:
        w_ih, w_hh, b_ih, b_hh = names()
        shapes = [(w_ih, (3 * H, case.I)), (w_hh, (3 * H, H)), (b_ih, (3 * H,)), (b_hh, (3 * H,))]
    else:
        shapes = []
        for k in range(case.num_layers):
            in_k = case.I if k == 0 else H * D
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = names(k, bool(d))
                shapes += [(w_ih, (3 * H, in_k)), (w_hh, (3 * H, H)),
                           (b_ih, (3 * H,)), (b_hh, (3 * H,))]
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(H)
    return {name: rng.uniform(-bound, bound, size=shape).astype(case.dtype)
            for name, shape in shapes}


@functools.lru_cache(maxsize=4)
def problem(case):
    """The case's data, made once: same weights and inputs for every implementation."""
    rng = np.random.default_rng(0)
    dt = np.dtype(case.dtype)
    L, D, H = case.num_layers, case.directions, case.H
    params = init_params(case)
    if case.cell:
        x = rng.uniform(-1, 1, (case.B, case.I)).astype(dt)
        h0 = rng.uniform(-0.5, 0.5, (case.B, H)).astype(dt)
        return Problem(params, x, h0, None, np.zeros((0,), dt))
    x = rng.uniform(-1, 1, (case.T, case.B, case.I)).astype(dt)
    h0 = rng.uniform(-0.5, 0.5, (L * D, case.B, H)).astype(dt)
    lengths = None
    if case.lengths:
        lengths = rng.integers(1, case.T + 1, case.B).astype(np.int64)
        lengths[0] = case.T
    d_out = rng.standard_normal((case.T, case.B, D * H)).astype(dt)
    return Problem(params, x, h0, lengths, d_out)


def clear_cache():
    problem.cache_clear()
    expected.cache_clear()


# ---------------------------------------------------------------- fastgru

def _fastgru_model(fastgru, case, p):
    if case.cell:
        m = fastgru.GRUCell(case.I, case.H, reset=case.reset, dtype=case.dtype)
    else:
        m = fastgru.GRU(case.I, case.H, num_layers=case.num_layers,
                        bidirectional=case.bidirectional, reset=case.reset, dtype=case.dtype)
    m.load_state_dict(p.params)
    return m


def _fastgru_fn(m, case, op, p):
    if op == STEP:
        return (lambda: m(p.x, p.h0)), (lambda h: {"h": h})
    if op == FORWARD:
        return (lambda: m(p.x, p.h0, p.lengths)), (lambda r: {"out": r[0], "h_n": r[1]})

    def forward_backward():
        m.zero_grad()
        m.forward(p.x, p.h0, p.lengths, train=True)
        dx, _ = m.backward(p.d_out)
        return dx

    return forward_backward, lambda dx: dict(dx=dx, **{k: q.grad for k, q in m.named_parameters()})


@functools.lru_cache(maxsize=8)
def expected(case, op):
    """The NumPy reference backend's result: what every implementation is checked against."""
    import fastgru
    with fastgru.backend("numpy"):
        fn, collect = _fastgru_fn(_fastgru_model(fastgru, case, problem(case)), case, op,
                                  problem(case))
        return {k: np.array(v) for k, v in collect(fn()).items()}


def _build_fastgru(impl, case, op, p):
    fastgru = _load("fastgru")
    backend = impl.split("-", 1)[1]
    missing = names.fastgru_backend_missing(fastgru.backends, backend)
    if missing:
        raise Unsupported(missing)
    if backend == "numpy" and not case.reference:
        raise Unsupported("the NumPy reference is timed at small shapes only")
    how = threads.apply_fastgru(fastgru)
    fn, collect = _fastgru_fn(_fastgru_model(fastgru, case, p), case, op, p)
    return Runner(impl, fn, collect, activate=lambda: fastgru.set_backend(backend),
                  info={"threads_set_by": how})


# ---------------------------------------------------------------- checks

def build(impl, case, op):
    """A Runner for ``impl`` on ``case`` and ``op``; raises Unsupported to skip."""
    if op not in case.ops:
        raise Unsupported(f"{case.name} has no {op!r} operation")
    p = problem(case)
    if impl in FASTGRU_IMPLS:
        return _build_fastgru(impl, case, op, p)
    builders = {"torch": peer_runtimes.build_torch,
                "onnxruntime": peer_runtimes.build_onnxruntime,
                "openvino": peer_runtimes.build_openvino, "jax": peer_runtimes.build_jax}
    if impl not in builders:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return builders[impl](case, op, p)


def compare(got, want, dtype, what):
    """Largest error relative to max(1, max |expected|) over the arrays; CheckFailed if too big."""
    if set(got) != set(want):
        raise CheckFailed(f"{what}: returned {sorted(got)}, expected {sorted(want)}")
    worst = 0.0
    for name, w in want.items():
        g = np.asarray(got[name])
        if g.shape != w.shape:
            raise CheckFailed(f"{what}: {name} has shape {g.shape}, expected {w.shape}")
        err = float(np.max(np.abs(g.astype(np.float64) - w), initial=0.0))
        err /= max(1.0, float(np.max(np.abs(w), initial=0.0)))
        if not err <= TOLERANCE[dtype]:
            raise CheckFailed(f"{what}: {name} differs from the NumPy reference by {err:.3g} "
                              f"(relative to its largest value; tolerance {TOLERANCE[dtype]:g})")
        worst = max(worst, err)
    return worst


def prepare(impl, case, op, want=IN_PROCESS):
    """Build, run once and check: a Runner ready to time. Unsupported or CheckFailed otherwise.

    ``want``: the reference's arrays; IN_PROCESS computes them here with fastgru's NumPy
    backend; None checks nothing (no reference could be computed; ``max_err`` stays None).
    """
    runner = build(impl, case, op)
    runner.activate()
    with runner.context():
        t0 = time.perf_counter()
        result = runner.fn()
        runner.first_call_s = time.perf_counter() - t0
        got = runner.collect(result)
    if isinstance(want, str) and want == IN_PROCESS:
        want = expected(case, op)
    if want is not None:
        runner.max_err = compare(got, want, case.dtype, f"{impl} {case.name} {op}")
    return runner
