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
import contextlib
import dataclasses
import functools
import importlib
import time

import numpy as np

from . import names, threads
from .grid import FORWARD, FORWARD_BACKWARD, STEP
from .names import FASTGRU_IMPLS, IMPLS, PEER_IMPLS, TOLERANCE, impls_for, is_peer, versions  # noqa: F401  (re-exported)

IN_PROCESS = "in-process"    # prepare(): compute the reference here (the pytest suite)


class Unsupported(Exception):
    """This implementation cannot run this case here (library missing, feature absent)."""


class CheckFailed(AssertionError):
    """An implementation's result differs from fastgru's NumPy reference."""


@dataclasses.dataclass
class Problem:
    params: dict            # torch-style name -> array in the case's dtype
    x: np.ndarray           # (T, B, I), or (B, I) for a cell step
    h0: np.ndarray          # (L*D, B, H), or (B, H) for a cell step
    lengths: object         # (B,) int64 or None
    d_out: np.ndarray       # (T, B, D*H): the gradient of the loss sum(out * d_out)


@dataclasses.dataclass
class Runner:
    impl: str
    fn: object                                  # zero-argument callable: what is timed
    collect: object                             # fn's return value -> {name: ndarray}
    context: object = contextlib.nullcontext    # entered around checks and timing loops
    activate: object = lambda: None             # called before checks and timing
    compile_s: object = None                    # ahead-of-time compile (JAX), excluded from timing
    first_call_s: object = None                 # the first call, checked (includes any JIT)
    max_err: object = None                      # None: not checked (no reference available)
    info: dict = dataclasses.field(default_factory=dict)   # settings worth recording


def _load(module):
    try:
        return importlib.import_module(module)
    except Exception as exc:     # ImportError, or a broken install: skip, never fail
        raise Unsupported(f"{module} is not installed ({type(exc).__name__}: {exc})") from None


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


# ---------------------------------------------------------------- torch

def _build_torch(case, op, p):
    torch = _load("torch")
    threads.apply_torch(torch)
    if case.reset != "after":
        raise Unsupported("torch.nn.GRU has only reset='after'")
    dt = {"float32": torch.float32, "float64": torch.float64}[case.dtype]
    if case.cell:
        m = torch.nn.GRUCell(case.I, case.H, dtype=dt)
    else:
        m = torch.nn.GRU(case.I, case.H, num_layers=case.num_layers,
                         bidirectional=case.bidirectional, dtype=dt)
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in p.params.items()})
    x, h0 = torch.from_numpy(p.x.copy()), torch.from_numpy(p.h0.copy())
    if op == STEP:
        return Runner("torch", lambda: m(x, h0), lambda h: {"h": h.numpy()},
                      context=torch.inference_mode)
    pack = torch.nn.utils.rnn
    lengths = None if p.lengths is None else torch.from_numpy(p.lengths)

    def run(x):
        if lengths is None:
            return m(x, h0)
        packed = pack.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h_n = m(packed, h0)
        return pack.pad_packed_sequence(out, total_length=case.T)[0], h_n

    if op == FORWARD:
        return Runner("torch", lambda: run(x), lambda r: {"out": r[0].numpy(), "h_n": r[1].numpy()},
                      context=torch.inference_mode)
    x.requires_grad_(True)
    d_out = torch.from_numpy(p.d_out.copy())
    named = list(m.named_parameters())

    def forward_backward():
        x.grad = None
        for _, q in named:
            q.grad = None
        run(x)[0].backward(d_out)

    return Runner("torch", forward_backward, lambda _: dict(
        dx=x.grad.numpy(), **{k: q.grad.numpy() for k, q in named}))


# ---------------------------------------------------------------- ONNX Runtime

def onnx_gru_model(case, params):
    """``fastgru.onnx.export``'s model of a GRU holding ``params`` (one ONNX GRU node per layer).

    Inputs ``input`` (T, B, I), ``h0`` (L*D, B, H) and, with lengths, ``lengths`` (B,) int32;
    outputs ``output`` (T, B, D*H) and ``h_n`` (L*D, B, H). The exporter is fastgru's
    Python and the onnx package: no fastgru kernel is loaded into a peer's process.
    """
    _load("onnx")
    fastgru_onnx = _load("fastgru.onnx")
    gru = _load("fastgru").GRU(case.I, case.H, num_layers=case.num_layers,
                               bidirectional=case.bidirectional, reset=case.reset,
                               dtype=case.dtype)
    gru.load_state_dict(params)
    model = fastgru_onnx.export(gru, h0=True, lengths=case.lengths)
    model.ir_version = min(model.ir_version, 8)    # readable by older onnxruntime too
    # the case's sizes for the symbolic "time" and "batch": OpenVINO (2026.4) ignores a GRU's
    # sequence_lens when they are symbolic (outputs past the lengths are then not 0)
    sizes = {"time": case.T, "batch": case.B}
    for value in list(model.graph.input) + list(model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in sizes:
                dim.dim_value = sizes[dim.dim_param]    # clears dim_param (a oneof)
    return model


def _onnx_problem(case, p):
    """The ONNX model's case (a one-step sequence for a cell), torch-named weights, feeds."""
    if case.cell:   # one step of a one-layer GRU
        from .grid import Case
        seq = Case(case.name, 1, case.B, case.I, case.H, case.dtype, reset=case.reset)
        names = _load("fastgru.nn").parameter_names
        params = dict(zip(names(0), (p.params[name] for name in names())))
        feeds = {"input": p.x[None], "h0": p.h0[None]}
    else:
        seq, params = case, p.params
        feeds = {"input": p.x, "h0": p.h0}
        if case.lengths:
            feeds["lengths"] = p.lengths.astype(np.int32)
    return seq, params, feeds


def _onnx_collect(case):
    """The ONNX model's outputs [output, h_n] -> the names checked."""
    def collect(r):
        if case.cell:
            return {"h": r[1][0]}
        return {"out": r[0], "h_n": r[1]}
    return collect


def _first_line(exc):
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def _build_onnxruntime(case, op, p):
    if op == FORWARD_BACKWARD:
        raise Unsupported("ONNX Runtime has no backward pass")
    ort = _load("onnxruntime")
    ort.set_default_logger_severity(3)   # failures become skips; don't print them too
    seq, params, feeds = _onnx_problem(case, p)
    try:
        sess = ort.InferenceSession(onnx_gru_model(seq, params).SerializeToString(),
                                    threads.ort_session_options(ort),
                                    providers=["CPUExecutionProvider"])
        sess.run(None, feeds)   # some kernels fail only when run ("does not support double yet")
    except Exception as exc:
        raise Unsupported(f"onnxruntime cannot run it: {_first_line(exc)}") from None
    return Runner("onnxruntime", lambda: sess.run(None, feeds), _onnx_collect(case),
                  info={"intra_op_num_threads": threads.count()})


# ---------------------------------------------------------------- OpenVINO

def _build_openvino(case, op, p):
    """The ONNX Runtime model (one GRU node per layer), read and compiled by OpenVINO for its CPU."""
    if op == FORWARD_BACKWARD:
        raise Unsupported("OpenVINO has no backward pass")
    if case.dtype != "float32":
        raise Unsupported("OpenVINO is timed in float32 only")
    ov = _load("openvino")
    seq, params, feeds = _onnx_problem(case, p)
    try:
        core = ov.Core()
        model = core.read_model(onnx_gru_model(seq, params).SerializeToString())
        compiled = core.compile_model(model, "CPU", threads.openvino_config())
        request = compiled.create_infer_request()
        request.infer(feeds)
    except Unsupported:
        raise
    except Exception as exc:
        raise Unsupported(f"openvino cannot run it: {_first_line(exc)}") from None
    outputs = list(compiled.outputs)
    info = {}
    for prop in ("INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                 "NUM_STREAMS"):
        try:
            value = compiled.get_property(prop)
            info[prop] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        except Exception:   # a property this version does not report
            pass
    collect = _onnx_collect(case)
    return Runner("openvino", lambda: request.infer(feeds),
                  lambda r: collect([r[o] for o in outputs]), info=info)


# ---------------------------------------------------------------- JAX

def _build_jax(case, op, p):
    jax = _load("jax")
    from . import jax_gru as jgru
    jnp = jax.numpy
    params = {k: jnp.asarray(v) for k, v in p.params.items()}
    x, h0 = jnp.asarray(p.x), jnp.asarray(p.h0)
    after = case.reset == "after"
    if op == STEP:
        args = (params, x, h0)
        f = jax.jit(lambda params, x, h: jgru.cell(params, x, h, after))

        def collect(h):
            return {"h": np.asarray(h)}
    else:
        mask = None
        if case.lengths:
            mask = jnp.asarray((np.arange(case.T)[:, None] < p.lengths[None, :])[..., None])

        def forward(params, x):
            return jgru.gru(params, x, h0, mask, case.num_layers, case.bidirectional, after)

        if op == FORWARD:
            args = (params, x)
            f = jax.jit(forward)

            def collect(r):
                return {"out": np.asarray(r[0]), "h_n": np.asarray(r[1])}
        else:
            d_out = jnp.asarray(p.d_out)
            args = (params, x)
            f = jax.jit(jax.grad(lambda params, x: jnp.sum(forward(params, x)[0] * d_out),
                                 argnums=(0, 1)))

            def collect(g):
                return dict(dx=np.asarray(g[1]), **{k: np.asarray(v) for k, v in g[0].items()})
    t0 = time.perf_counter()
    compiled = f.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    return Runner("jax", lambda: jax.block_until_ready(compiled(*args)), collect,
                  compile_s=compile_s)


# ---------------------------------------------------------------- checks

def build(impl, case, op):
    """A Runner for ``impl`` on ``case`` and ``op``; raises Unsupported to skip."""
    if op not in case.ops:
        raise Unsupported(f"{case.name} has no {op!r} operation")
    p = problem(case)
    if impl in FASTGRU_IMPLS:
        return _build_fastgru(impl, case, op, p)
    builders = {"torch": _build_torch, "onnxruntime": _build_onnxruntime,
                "openvino": _build_openvino, "jax": _build_jax}
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
