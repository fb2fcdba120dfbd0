"""The Cython backend (fastgru_ext._gru) against the NumPy reference, and its guard rails.

The numbers are checked through the backend module (``forward``/``backward``/``step``
with the reference's signature, i.e. ``fastgru.backends._engine`` on the C kernels);
the core suite runs the public API on every backend. The guard rails are checked on
the six kernels themselves, called directly: a malformed call raises, it never
crashes the process nor writes out of bounds.
"""
import numpy as np
import pytest

import fastgru
from fastgru import _threads, backends
from fastgru.backends import _engine, _layout
from fastgru.backends.contract import Grads, Layer, Saved

from helpers import GRAD_NAMES, assert_close, random_problem, upstream

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels

_gru = pytest.importorskip("fastgru_ext._gru", reason="the Cython extension is not built")

reference = backends.load("numpy")
cython = backends.load("cython")

SHAPES = [  # (T, B, I, H): every size 1; one piece; several pieces with partial row
    # blocks and unit chunks (37 x 72: 2 chunks of 64 units x 4 blocks of 12 rows;
    # 9 x 130: 3 chunks x 2 blocks), which a machine with 2 cores or more runs as a team
    (1, 1, 1, 1), (1, 4, 3, 2), (5, 1, 2, 3), (3, 2, 1, 4), (4, 3, 5, 1),
    (7, 17, 3, 5), (6, 33, 4, 8), (3, 130, 2, 6), (60, 3, 2, 16),
    (3, 37, 3, 72), (2, 9, 2, 130),
]


def make_lengths(rng, kind, T, B):
    if kind == "full":
        return np.full(B, T, np.int64)
    if kind == "edge":  # empty, one step and full sequences side by side
        return np.array([(0, 1, T)[b % 3] for b in range(B)], np.int64)
    return rng.integers(0, T + 1, B).astype(np.int64)


def run(backend, p, lengths, reverse, reset_after, d_out, d_h_n):
    """Forward with the cache kept, then backward: outputs, cache, gradients."""
    x, w_ih, w_hh = p["x"], p["w_ih"], p["w_hh"]
    (T, B, I), H, dt = x.shape, w_hh.shape[1], x.dtype
    out, h_n = np.empty((T, B, H), dt), np.empty((B, H), dt)
    saved = Saved(np.empty((T, B, H), dt), np.empty((T, B, 3 * H), dt), np.empty((T, B, H), dt))
    layer = Layer(x, w_ih, w_hh, p["b_ih"], p["b_hh"], lengths, reverse, reset_after)
    backend.forward(layer, p["h0"], out, h_n, saved)
    grads = Grads(np.empty((T, B, I), dt), np.empty((B, H), dt), np.empty_like(w_ih),
                  np.empty_like(w_hh), np.empty(3 * H, dt), np.empty(3 * H, dt))
    backend.backward(layer, saved, d_out, d_h_n, grads)
    return dict(out=out, h_n=h_n, **saved._asdict(), **dict(zip(GRAD_NAMES, grads)))


def problem(rng, shape, dtype, h0=True):
    T, B, I, H = shape
    p = random_problem(rng, T, B, I, H, dtype, h0=h0)
    if p["h0"] is None:
        p["h0"] = np.zeros((B, H), dtype)
    return p


@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths_kind", ["full", "random", "edge"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(dtype, rng, reset_after, reverse, lengths_kind, shape):
    T, B, I, H = shape
    p = problem(rng, shape, dtype, h0=rng.random() < 0.7)
    lengths = make_lengths(rng, lengths_kind, T, B)
    d_out, d_h_n = upstream(rng, T, B, H, dtype)
    got = run(cython, p, lengths, reverse, reset_after, d_out, d_h_n)
    want = run(reference, p, lengths, reverse, reset_after, d_out, d_h_n)
    for name in ("out", "h_n", "h_prev") + GRAD_NAMES:
        assert_close(got[name], want[name], dtype, f"cython {name}")
    # the cache is what backward needs: the valid steps (past a sequence's end it is not used)
    valid = (np.arange(T)[:, None] < lengths)[..., None]
    for name in ("gates", "aux"):
        assert_close(np.where(valid, got[name], 0), np.where(valid, want[name], 0), dtype,
                     f"cython {name} (cache)")


@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
def test_saturated_and_extreme_gates(dtype, reset_after):
    """Pre-activations from -60 to 60 cover the whole range of the kernels' own exp."""
    T, B, H = 2, 241, 2   # I = 1
    rng = np.random.default_rng(7)
    p = dict(x=np.linspace(-1, 1, B, dtype=dtype).reshape(1, B, 1).repeat(T, axis=0),
             h0=rng.uniform(-1, 1, (B, H)).astype(dtype),
             w_ih=np.array([[60.0], [-42.0], [54.0], [30.0], [66.0], [-60.0]], dtype),
             w_hh=rng.uniform(-0.5, 0.5, (3 * H, H)).astype(dtype),
             b_ih=rng.uniform(-0.3, 0.3, 3 * H).astype(dtype),
             b_hh=rng.uniform(-0.3, 0.3, 3 * H).astype(dtype))
    d_out, d_h_n = upstream(rng, T, B, H, dtype)
    lengths = np.full(B, T, np.int64)
    got = run(cython, p, lengths, False, reset_after, d_out, d_h_n)
    with np.errstate(over="ignore"):
        want = run(reference, p, lengths, False, reset_after, d_out, d_h_n)
    for name in ("out", "h_n", "gates") + GRAD_NAMES:
        assert_close(got[name], want[name], dtype, f"cython {name}")


def test_nan_propagates(dtype):
    T, B, I, H = 3, 2, 2, 4
    p = problem(np.random.default_rng(1), (T, B, I, H), dtype)
    p["x"][1, 0, 0] = np.nan
    lengths = np.full(B, T, np.int64)
    d_out, d_h_n = upstream(np.random.default_rng(2), T, B, H, dtype)
    got = run(cython, p, lengths, False, True, d_out, d_h_n)
    assert np.isnan(got["out"][1:, 0]).all() and np.isnan(got["h_n"][0]).all()
    assert np.isfinite(got["out"][:, 1]).all() and np.isfinite(got["out"][0]).all()


@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
@pytest.mark.parametrize("B", [1, 3, 40])
def test_step_matches_reference(dtype, rng, reset_after, B):
    I, H = 4, 6
    p = problem(rng, (1, B, I, H), dtype)
    outs = []
    for backend in (cython, reference):
        out = np.empty((B, H), dtype)
        backend.step(p["x"][0], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], reset_after, out)
        outs.append(out)
    assert_close(*outs, dtype, "cython step")


# ---- direct calls of the kernels: well formed, as _engine makes them, then broken ----

T_, B_, I_, H_ = 3, 6, 5, 20   # float64: 8 columns a tile, so 3H = 60 and I = 5 are padded
KERNELS = ("project_team", "forward_team", "backward_team", "dx_team", "sums_team", "step")


def kernel_args(kernel, dt=np.float64, reset_after=True, need_cache=True):
    """The arguments _engine gives `kernel` for a (T_, B_, I_, H_) layer (tid 0 of a team
    of one), by name, in the kernel's order."""
    rng = np.random.default_rng(0)
    T, B, I, H, G = T_, B_, I_, H_, 3 * H_
    nr = _layout.nr_of(dt)

    def f(*shape):
        return rng.uniform(-0.5, 0.5, shape).astype(dt)

    w_ih, w_hh = f(G, I), f(G, H)
    plan = _layout.partition(B, H, dt)
    rows, U, pieces = plan["rows"], plan["units"], plan["pieces"]
    lengths = np.array([T, 0, 1, T, 2, T], np.int64)
    team = dict(tid=0, nthreads=1, sync=_threads.new_sync())
    kept = T if need_cache else 0
    if kernel == "project_team":
        Gp = -(-G // nr) * nr
        a = dict(x=f(T * B, I), wp=_layout.pack(np.ascontiguousarray(w_ih.T), nr), b=f(G),
                 xg=np.zeros((T * B, Gp), dt))
    elif kernel == "forward_team":
        Gp = -(-G // nr) * nr
        a = dict(xg=f(T, B, Gp), wf=_layout.pack_forward(w_hh, U, nr), b_hh=f(G), lengths=lengths,
                 reverse=False, reset_after=reset_after, need_cache=need_cache, rows=rows, U=U,
                 hbuf=f(2, B, H), rh=np.zeros((B, H), dt),
                 scratch=np.zeros((pieces, rows, 4 * U), dt), out=np.zeros((T, B, H), dt),
                 h_prev=np.zeros((kept, B, H), dt), gates=np.zeros((kept, B, G), dt),
                 aux=np.zeros((kept, B, H), dt))
    elif kernel == "backward_team":
        d_ih = np.zeros((T, B, G), dt)
        a = dict(d_out=f(T, B, H), wb=_layout.pack_backward(w_hh, U, nr), lengths=lengths,
                 reverse=False, reset_after=reset_after, rows=rows, U=U,
                 h_prev=f(T, B, H), gates=(f(T, B, G) + 0.5), aux=f(T, B, H),
                 dh=f(B, H), dh_dir=np.zeros((B, H), dt),
                 scratch=np.zeros((pieces, rows, 2 * U), dt),
                 d_ih=d_ih, d_hh=np.zeros((T, B, G), dt) if reset_after else d_ih)
    elif kernel == "dx_team":
        a = dict(d_ih=f(T * B, G), wp=_layout.pack(w_ih, nr), dx=np.zeros((T * B, I), dt),
                 scratch=np.zeros((1, _layout.PROJECT_ROWS, -(-I // nr) * nr), dt))
    elif kernel == "sums_team":
        xp = _layout.pack(f(T * B, I), nr)
        a = dict(d=f(T * B, G), xp=xp, xp_n=xp, n_split=G, chunk=_layout.SUM_ROWS,
                 part=np.zeros((G, xp.shape[0] * nr + 1)), tile_buf=np.zeros((1, 4, nr), dt))
    else:
        wp_ih, wf, U = _engine.prepare_step(w_ih, w_hh, dt)
        return dict(x=f(B, I), h=f(B, H), wp_ih=wp_ih, wf=wf, b_ih=f(G), b_hh=f(G),
                    reset_after=reset_after, U=U, out=np.zeros((B, H), dt))
    return {**a, **team}


def call(kernel, args):
    getattr(_gru, kernel)(*args.values())


def resized(axis, by):
    """A break: the argument with one dimension longer (by > 0) or shorter, zeros."""
    def make(a):
        shape = list(a.shape)
        shape[axis] += by
        return np.zeros(shape, a.dtype)
    return make


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


NR64 = 8   # float64's tile width
# The calls only the kernels' own checks catch: kernel: {case: (argument, how to break
# it: its value -> the malformed one[, the argument the message blames, where the
# broken one sets a dimension the others must follow])}. Every argument is broken at
# least once, except the flags (reverse, reset_after: any truth value is well formed).
# Each case is tid 0 of a team of one, so that an unchecked kernel runs to its end:
# without the checks each of these crashed the process (out-of-bounds reads or writes),
# wrote out of bounds silently or ran on silently.
TEAM = {
    "tid = nthreads": ("tid", lambda a: 1),
    "tid < 0": ("tid", lambda a: -1),
    "nthreads = 0": ("nthreads", lambda a: 0, "tid"),
    "sync too short": ("sync", lambda a: np.zeros(8, np.int64)),
    "sync None": ("sync", lambda a: None),
}
MALFORMED = {
    "project_team": {
        "x one row more than xg": ("x", resized(0, 1), "xg"),
        "wp None": ("wp", lambda a: None),
        "wp one input too many": ("wp", resized(1, 1)),
        "wp one tile short": ("wp", resized(0, -1)),
        "wp half tiles": ("wp", lambda a: np.zeros((a.shape[0], a.shape[1], NR64 // 2))),
        "b longer than xg's rows": ("b", lambda a: np.zeros(80), "xg"),
        "xg one row short": ("xg", resized(0, -1)),
        "xg width not a multiple of NR": ("xg", resized(1, 1)),
        **TEAM,
    },
    "forward_team": {
        "xg narrower than 3H": ("xg", resized(2, -NR64)),
        "xg width not a multiple of NR": ("xg", resized(2, 1)),
        "xg one step more than out": ("xg", resized(0, 1), "out"),
        "hbuf None": ("hbuf", lambda a: None),
        "wf one tile short": ("wf", resized(0, -1)),
        "wf for another H": ("wf", resized(1, 1)),
        "wf of pack_backward": ("wf", lambda a: np.zeros((3, 60, NR64))),
        "b_hh too short": ("b_hh", resized(0, -1)),
        "lengths one short": ("lengths", lambda a: np.full(5, 3, np.int64)),
        "lengths past T": ("lengths", lambda a: np.array([3, 0, 1, 4, 2, 3], np.int64)),
        "lengths negative": ("lengths", lambda a: np.array([3, 0, -1, 3, 2, 3], np.int64)),
        "rows 0": ("rows", lambda a: 0),
        "rows beyond the batch": ("rows", lambda a: 1 << 40),
        "U 0": ("U", lambda a: 0),
        "U not a multiple of NR": ("U", lambda a: 12),
        "U beyond H": ("U", lambda a: 1 << 40),
        "hbuf one row short": ("hbuf", resized(1, -1)),
        "hbuf single": ("hbuf", resized(0, -1)),
        "rh one row short": ("rh", resized(0, -1)),
        "scratch no pieces": ("scratch", resized(0, -1)),
        "scratch rows short": ("scratch", resized(1, -4)),
        "scratch narrower than 4U": ("scratch", lambda a: np.zeros((1, 8, 3 * a.shape[2] // 4))),
        "out one step short": ("out", resized(0, -1)),
        "h_prev not kept": ("h_prev", resized(0, -3)),
        "gates H wide": ("gates", lambda a: np.zeros(a.shape[:2] + (20,))),
        "aux one row short": ("aux", resized(1, -1)),
        "need_cache without caches": ("need_cache", lambda a: True, "h_prev"),
        **TEAM,
    },
    "backward_team": {
        "d_out one step short": ("d_out", resized(0, -1)),
        "gates None": ("gates", lambda a: None),
        "wb of pack_forward": ("wb", lambda a: np.zeros((9, 20, NR64))),
        "wb one tile short": ("wb", resized(0, -1)),
        "lengths past T": ("lengths", lambda a: np.array([3, 0, 1, 3, 2, 9], np.int64)),
        "lengths one long": ("lengths", lambda a: np.full(7, 3, np.int64)),
        "rows 0": ("rows", lambda a: 0),
        "U not a multiple of NR": ("U", lambda a: 20),
        "h_prev not kept": ("h_prev", resized(0, -3)),
        "gates not 3H wide": ("gates", resized(2, -1)),
        "gates one row more": ("gates", resized(1, 1), "d_out"),
        "aux one unit short": ("aux", resized(2, -1)),
        "dh one row short": ("dh", resized(0, -1)),
        "dh_dir one unit short": ("dh_dir", resized(1, -1)),
        "scratch no pieces": ("scratch", resized(0, -1)),
        "scratch rows short": ("scratch", resized(1, -4)),
        "scratch narrower than 2U": ("scratch", lambda a: np.zeros(a.shape[:2] + (a.shape[2] // 2,))),
        "d_ih one step short": ("d_ih", resized(0, -1)),
        "d_hh one gate row short": ("d_hh", resized(2, -1)),
        **TEAM,
    },
    "dx_team": {
        "d_ih one row more than dx": ("d_ih", resized(0, 1), "dx"),
        "dx None": ("dx", lambda a: None),
        "wp one tile short": ("wp", resized(0, -1)),
        "wp another G": ("wp", resized(1, 1)),
        "dx one row short": ("dx", resized(0, -1)),
        "dx wider than the scratch": ("dx", lambda a: np.zeros((a.shape[0], 9)), "scratch"),
        "scratch no threads": ("scratch", resized(0, -1)),
        "scratch rows short": ("scratch", resized(1, -1)),
        "scratch width not a multiple of NR": ("scratch", resized(2, -1)),
        **TEAM,
    },
    "sums_team": {
        "d one row more than xp": ("d", resized(0, 1), "xp"),
        "xp_n None": ("xp_n", lambda a: None),
        "xp one row short": ("xp", resized(1, -1)),
        "xp half tiles": ("xp", lambda a: np.zeros(a.shape[:2] + (NR64 // 2,))),
        "xp_n one tile short": ("xp_n", resized(0, -1)),
        "n_split negative": ("n_split", lambda a: -1),
        "n_split past G": ("n_split", lambda a: 61),
        "chunk 0": ("chunk", lambda a: 0),
        "part one column short": ("part", resized(1, -1)),
        "part one gate row short": ("part", resized(0, -1)),
        "tile_buf no threads": ("tile_buf", resized(0, -1)),
        "tile_buf 2 rows": ("tile_buf", resized(1, -2)),
        **TEAM,
    },
    "step": {
        "x one row more than h": ("x", resized(0, 1)),
        "h of out's size, other dims": ("h", lambda a: np.zeros((4, 30)), "x"),
        "wf None": ("wf", lambda a: None),
        "wp_ih one input short": ("wp_ih", resized(1, -1)),
        "wp_ih one tile short": ("wp_ih", resized(0, -1)),
        "wf one tile short": ("wf", resized(0, -1)),
        "wf for another H": ("wf", resized(1, -1)),
        "b_ih too short": ("b_ih", resized(0, -1)),
        "b_hh too short": ("b_hh", resized(0, -1)),
        "U 0": ("U", lambda a: 0),
        "U not a multiple of NR": ("U", lambda a: 12),
        "U beyond H": ("U", lambda a: 64),
        "out of the right size, other dims": ("out", lambda a: np.zeros((5, 24))),
    },
}
MALFORMED_CASES = [pytest.param(kernel, case, id=f"{kernel}-{case}")
                   for kernel, cases in MALFORMED.items() for case in cases]


def malformed_args(kernel, case):
    """kernel_args with the one argument that `case` breaks, broken."""
    name, breaks = MALFORMED[kernel][case][:2]
    args = kernel_args(kernel, need_cache=case != "need_cache without caches")
    args[name] = breaks(args[name])
    return args


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_argument_is_broken_by_some_case(kernel):
    names = set(kernel_args(kernel)) - {"reverse", "reset_after"}
    assert names == {entry[0] for entry in MALFORMED[kernel].values()}


@pytest.mark.parametrize("kernel, case", MALFORMED_CASES)
def test_malformed_call_raises(kernel, case):
    args = malformed_args(kernel, case)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    with pytest.raises((TypeError, ValueError)) as info:
        call(kernel, args)
    message = str(info.value)
    if info.type is ValueError and "buffer" not in message.lower():   # not the conversion's
        entry = MALFORMED[kernel][case]
        blamed = entry[2] if len(entry) > 2 else entry[0]
        assert message.startswith(f"{blamed} must "), message
    for k, v in before.items():   # it raised before touching anything
        np.testing.assert_array_equal(args[k], v, err_msg=k)


@pytest.mark.parametrize("kernel, reset_after, need_cache", [
    ("project_team", True, True), ("dx_team", True, True), ("sums_team", True, True),
    ("forward_team", True, True), ("forward_team", False, True), ("forward_team", True, False),
    ("forward_team", False, False), ("backward_team", True, True),
    ("backward_team", False, True), ("step", True, True), ("step", False, True)])
def test_well_formed_direct_call_runs(kernel, reset_after, need_cache, dtype):
    args = kernel_args(kernel, dtype, reset_after, need_cache)
    call(kernel, args)
    for k, v in args.items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            assert np.isfinite(v).all(), k


def test_well_formed_direct_calls_compute(dtype):
    """The projection and dx called directly are the products they claim to be, by a
    team of two as by one."""
    for n in (1, 2):
        a = kernel_args("project_team", dtype)
        _threads.run(_gru.project_team, tuple(a.values())[:4], n)
        w_ih_t = a["wp"].transpose(1, 0, 2).reshape(I_, -1)[:, :3 * H_]
        assert_close(a["xg"][:, :3 * H_], a["x"] @ w_ih_t + a["b"], dtype, f"project_team, {n}")
        a = kernel_args("dx_team", dtype)
        a["scratch"] = np.zeros((n,) + a["scratch"].shape[1:], dtype)
        _threads.run(_gru.dx_team, tuple(a.values())[:4], n)
        w_ih = a["wp"].transpose(1, 0, 2).reshape(3 * H_, -1)[:, :I_]
        assert_close(a["dx"], a["d_ih"] @ w_ih, dtype, f"dx_team, {n}")


CONVERSION = {  # what the conversion of the arguments rejects, before any check
    "project_team": {"x None": ("x", lambda a: None),
                     "x complex": ("x", lambda a: a.astype(complex)),
                     "xg not contiguous": ("xg", lambda a: np.zeros((18, 128))[:, ::2])},
    "forward_team": {"hbuf float32 among float64": ("hbuf", lambda a: a.astype(np.float32)),
                     "lengths int32": ("lengths", lambda a: a.astype(np.int32)),
                     "out read-only": ("out", read_only),
                     "xg Fortran order": ("xg", np.asfortranarray),
                     "h_prev a list": ("h_prev", lambda a: a.tolist())},
    "backward_team": {"d_hh read-only": ("d_hh", read_only),
                      "gates integer": ("gates", lambda a: a.astype(np.int64))},
    "dx_team": {"dx 3-d": ("dx", lambda a: a[None])},
    "sums_team": {"part float32": ("part", lambda a: a.astype(np.float32)),
                  "chunk not an int": ("chunk", lambda a: "512")},
    "step": {"x float32 among float64": ("x", lambda a: a.astype(np.float32)),
             "out read-only": ("out", read_only)},
}


@pytest.mark.parametrize("kernel, case", [pytest.param(k, c, id=f"{k}-{c}")
                                          for k, cases in CONVERSION.items() for c in cases])
def test_unconvertible_argument_raises(kernel, case):
    args = kernel_args(kernel)
    name, breaks = CONVERSION[kernel][case]
    args[name] = breaks(args[name])
    with pytest.raises((TypeError, ValueError)):
        call(kernel, args)


def test_error_names_the_argument_and_both_shapes():
    a = malformed_args("forward_team", "scratch no pieces")
    with pytest.raises(ValueError, match=r"scratch must have shape \(1, 8, >= 96\) "
                                         r"\(pieces, rows, >= 4U\), got \(0, 8, 96\)"):
        call("forward_team", a)
    a = malformed_args("forward_team", "lengths past T")
    with pytest.raises(ValueError, match=r"lengths must be in \[0, T\] = \[0, 3\], "
                                         r"got lengths\[3\] = 4"):
        call("forward_team", a)


# ---- what the glue does around the kernels ----

@pytest.fixture
def on_cython():
    with fastgru.backend("cython"):
        yield


@pytest.mark.parametrize("shape", [(0, 3, 2, 4), (4, 0, 2, 4), (0, 0, 2, 4), (4, 3, 0, 5)],
                         ids=["T=0", "B=0", "T=B=0", "I=0"])
@pytest.mark.parametrize("reset", ["after", "before"])
def test_empty_shapes_through_the_glue(on_cython, dtype, shape, reset):
    """gru_forward / gru_backward with nothing to compute: T = 0 or B = 0 never reach the
    kernels; I = 0 does (projections and sums over zero inputs)."""
    T, B, I, H = shape
    rng = np.random.default_rng(5)
    p = problem(rng, shape, dtype)
    lengths = np.full(B, T, np.int64)
    d_out, d_h_n = upstream(rng, T, B, H, dtype)
    results = []
    for name in ("cython", "numpy"):
        with fastgru.backend(name):
            out, h_n, cache = fastgru.gru_forward(p["x"], p["h0"], p["w_ih"], p["w_hh"],
                                                  p["b_ih"], p["b_hh"], reset=reset,
                                                  lengths=lengths, need_cache=True, dtype=dtype)
            assert cache.backend == name
            results.append((out, h_n) + fastgru.gru_backward(d_out, d_h_n, cache))
    for what, got, want in zip(("out", "h_n") + GRAD_NAMES, *results):
        assert_close(got, want, dtype, what)
    if T == 0 or B == 0:
        np.testing.assert_array_equal(results[0][1], p["h0"])
        np.testing.assert_array_equal(results[0][3], d_h_n)


@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
def test_step_leaves_its_inputs_unchanged(dtype, reset_after):
    """... and computes the reference's step from the weights it was given packed."""
    a = kernel_args("step", dtype, reset_after)
    before = {k: v.copy() for k, v in a.items() if isinstance(v, np.ndarray) and k != "out"}
    call("step", a)
    for k, v in before.items():
        np.testing.assert_array_equal(a[k], v, err_msg=k)
    want = np.empty_like(a["out"])
    reference.step(a["x"], a["h"], *unpacked_weights(a, dtype), a["b_ih"], a["b_hh"],
                   reset_after, want)
    assert_close(a["out"], want, dtype, "step")


def unpacked_weights(a, dtype):
    """W_ih and W_hh back from the step's packed weights."""
    nr = _layout.nr_of(dtype)
    w_ih = a["wp_ih"].transpose(1, 0, 2).reshape(I_, -1)[:, :3 * H_].T
    U = a["U"]
    chunks = -(-H_ // U)
    wide = a["wf"].reshape(chunks, 3, U // nr, H_, nr).transpose(1, 0, 2, 4, 3)
    w_hh = wide.reshape(3, chunks * U, H_)[:, :H_].reshape(3 * H_, H_)
    return np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh)


def test_step_takes_an_empty_batch(dtype):
    a = kernel_args("step", dtype)
    a.update(x=np.zeros((0, I_), dtype), h=np.zeros((0, H_), dtype), out=np.zeros((0, H_), dtype))
    call("step", a)
