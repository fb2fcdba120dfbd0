"""The Cython backend (fastgru_ext) against the NumPy reference, its threads, and its guard rails.

The kernels are called through the backend modules (``forward``/``backward`` with the
reference's signature), so these tests check the extension itself; the core suite runs
the public API on every backend.
"""
import numpy as np
import pytest

from fastgru import backends
from fastgru.backends._blas import block_rows
from helpers import GRAD_NAMES, assert_close, random_problem, upstream

_gru = pytest.importorskip("fastgru_ext._gru", reason="the Cython extension is not built")

reference = backends.load("numpy")
cython = backends.load("cython")

SHAPES = [  # (T, B, I, H): every size 1, row blocks (8 rows, up to 4 blocks) full and partial
    (1, 1, 1, 1), (1, 4, 3, 2), (5, 1, 2, 3), (3, 2, 1, 4), (4, 3, 5, 1),
    (7, 17, 3, 5), (6, 33, 4, 8), (3, 130, 2, 6), (60, 3, 2, 16),
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
    h_prev, gates, aux = np.empty((T, B, H), dt), np.empty((T, B, 3 * H), dt), np.empty((T, B, H), dt)
    backend.forward(x, p["h0"], w_ih, w_hh, p["b_ih"], p["b_hh"], lengths, reverse, reset_after,
                    out, h_n, h_prev, gates, aux)
    grads = (np.empty((T, B, I), dt), np.empty((B, H), dt), np.empty_like(w_ih),
             np.empty_like(w_hh), np.empty(3 * H, dt), np.empty(3 * H, dt))
    backend.backward(d_out, d_h_n, x, w_ih, w_hh, lengths, reverse, reset_after,
                     h_prev, gates, aux, *grads)
    return dict(out=out, h_n=h_n, h_prev=h_prev, gates=gates, aux=aux,
                **dict(zip(GRAD_NAMES, grads)))


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
    T, B, I, H = 2, 241, 1, 2
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


@pytest.fixture
def restore_threads():
    before = _gru.set_num_threads(None)
    _gru.set_num_threads(before)
    try:
        yield
    finally:
        _gru.set_num_threads(before)


@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
@pytest.mark.parametrize("B", [37, 200])
def test_one_vs_two_threads_bitwise_equal(dtype, rng, restore_threads, reset_after, B):
    T, I, H = 9, 5, 7
    rows = block_rows(B, H)
    assert (B + rows - 1) // rows > 2  # several row blocks
    p = problem(rng, (T, B, I, H), dtype)
    lengths = make_lengths(rng, "random", T, B)
    d_out, d_h_n = upstream(rng, T, B, H, dtype)
    results = []
    for n in (1, 2):
        _gru.set_num_threads(n)
        results.append(run(cython, p, lengths, False, reset_after, d_out, d_h_n))
    for name, a in results[0].items():
        np.testing.assert_array_equal(a, results[1][name], err_msg=name)


def test_thread_setting(restore_threads):
    _gru.set_num_threads(3)
    assert _gru.set_num_threads(None) == 3
    assert _gru.get_num_threads() >= 1
    assert _gru.set_num_threads(None) is None
    if not _gru.openmp_enabled():
        assert _gru.get_num_threads() == 1
    with pytest.raises(ValueError, match=">= 1"):
        _gru.set_num_threads(0)
    with pytest.raises(TypeError, match="int"):
        _gru.set_num_threads(2.0)


def test_block_rows_depend_on_shapes_only():
    assert block_rows(1, 7) == 8 and block_rows(1, 512) == 32
    assert [(B + block_rows(B, 7) - 1) // block_rows(B, 7) for B in (16, 17, 64, 65, 10**6)] \
        == [2, 3, 4, 4, 4]


def test_reset_before_distinct_d_hh_gets_a_copy():
    """d_hh equals d_ih for reset="before"; a separate d_hh array is filled, not left empty."""
    T, B, H = 4, 3, 5
    rng = np.random.default_rng(3)
    p = problem(rng, (T, B, 2, H), np.float64)
    d_out, d_h_n = upstream(rng, T, B, H, np.float64)
    lengths = np.array([4, 2, 0], np.int64)
    cache = run(cython, p, lengths, False, False, d_out, d_h_n)
    d_ih, d_hh, dh0 = np.empty((T, B, 3 * H)), np.full((T, B, 3 * H), np.nan), np.empty((B, H))
    _gru.backward_steps(d_out, d_h_n, p["w_hh"], lengths, False, False, block_rows(B, H), False,
                        cache["h_prev"], cache["gates"], cache["aux"], d_ih, d_hh, dh0)
    np.testing.assert_array_equal(d_hh, d_ih)
    assert_close(dh0, cache["dh0"], np.float64, "dh0")


def forward_args(T=3, B=4, H=2, dt=np.float64):
    z = lambda *s: np.zeros(s, dt)  # noqa: E731
    return dict(xg=z(T, B, 3 * H), h0=z(B, H), w_hh=z(3 * H, H), b_hh=z(3 * H),
                lengths=np.full(B, T, np.int64), reverse=False, reset_after=True, rows=2,
                tall=False, out=z(T, B, H), h_n=z(B, H), h_prev=z(T, B, H), aux=z(T, B, H))


def backward_args(T=3, B=4, H=2, dt=np.float64):
    z = lambda *s: np.zeros(s, dt)  # noqa: E731
    return dict(d_out=z(T, B, H), d_h_n=z(B, H), w_hh=z(3 * H, H),
                lengths=np.full(B, T, np.int64), reverse=False, reset_after=True, rows=2,
                tall=False, h_prev=z(T, B, H), gates=z(T, B, 3 * H), aux=z(T, B, H),
                d_ih=z(T, B, 3 * H), d_hh=z(T, B, 3 * H), dh0=z(B, H))


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


MALFORMED_FORWARD = {
    "h0 None": dict(h0=None),
    "h0 float32 among float64": dict(h0=np.zeros((4, 2), np.float32)),
    "xg integer": dict(xg=np.zeros((3, 4, 6), np.int64)),
    "xg complex": dict(xg=np.zeros((3, 4, 6), complex)),
    "h0 wrong batch": dict(h0=np.zeros((5, 2))),
    "w_hh transposed": dict(w_hh=np.zeros((2, 6))),
    "b_hh too short": dict(b_hh=np.zeros(5)),
    "lengths int32": dict(lengths=np.full(4, 3, np.int32)),
    "lengths wrong size": dict(lengths=np.full(3, 3, np.int64)),
    "rows zero": dict(rows=0),
    "xg not 3H": dict(xg=np.zeros((3, 4, 7))),
    "xg H = 0": dict(xg=np.zeros((3, 4, 0))),
    "out not contiguous": dict(out=np.zeros((3, 4, 4))[:, :, ::2]),
    "h0 Fortran order": dict(h0=np.asfortranarray(np.zeros((4, 2)))),
    "out read-only": dict(out=read_only(np.zeros((3, 4, 2)))),
    "xg read-only": dict(xg=read_only(np.zeros((3, 4, 6)))),
    "h_n wrong ndim": dict(h_n=np.zeros((4, 2, 1))),
    "h_prev wrong T": dict(h_prev=np.zeros((2, 4, 2))),
    "aux not matching h_prev": dict(aux=np.zeros((0, 4, 2))),
    "a list": dict(h0=[[0.0, 0.0]] * 4),
}

MALFORMED_BACKWARD = {
    "gates None": dict(gates=None),
    "d_out float32 among float64": dict(d_out=np.zeros((3, 4, 2), np.float32)),
    "d_out wrong T": dict(d_out=np.zeros((2, 4, 2))),
    "h_prev not kept": dict(h_prev=np.zeros((0, 4, 2))),
    "d_ih wrong width": dict(d_ih=np.zeros((3, 4, 5))),
    "d_hh read-only": dict(d_hh=read_only(np.zeros((3, 4, 6)))),
    "dh0 not contiguous": dict(dh0=np.zeros((4, 4))[:, ::2]),
    "w_hh wrong shape": dict(w_hh=np.zeros((6, 3))),
    "lengths float": dict(lengths=np.full(4, 3.0)),
}


@pytest.mark.parametrize("case", MALFORMED_FORWARD)
def test_malformed_forward_call_raises(case):
    with pytest.raises((TypeError, ValueError)):
        _gru.forward_steps(**dict(forward_args(), **MALFORMED_FORWARD[case]))


@pytest.mark.parametrize("case", MALFORMED_BACKWARD)
def test_malformed_backward_call_raises(case):
    with pytest.raises((TypeError, ValueError)):
        _gru.backward_steps(**dict(backward_args(), **MALFORMED_BACKWARD[case]))


def test_well_formed_direct_calls_run():
    _gru.forward_steps(**forward_args())
    _gru.forward_steps(**dict(forward_args(), h_prev=np.zeros((0, 4, 2)), aux=np.zeros((0, 4, 2))))
    _gru.forward_steps(**forward_args(dt=np.float32))
    _gru.backward_steps(**backward_args())
    _gru.backward_steps(**dict(backward_args(), reset_after=False))


def test_empty_sequences_and_batches():
    a = forward_args(T=0)
    a["h0"] = np.arange(8.0).reshape(4, 2)
    _gru.forward_steps(**dict(a, h_prev=np.zeros((0, 4, 2)), aux=np.zeros((0, 4, 2))))
    np.testing.assert_array_equal(a["h_n"], a["h0"])
    _gru.forward_steps(**forward_args(B=0))
    b = backward_args(T=0)
    b["d_h_n"] = np.ones((4, 2))
    _gru.backward_steps(**b)
    np.testing.assert_array_equal(b["dh0"], b["d_h_n"])


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


def step_args(B=2, I=3, H=2, dt=np.float64):
    z = lambda *s: np.zeros(s, dt)  # noqa: E731
    return dict(x=z(B, I), h=z(B, H), w_ih=z(3 * H, I), w_hh=z(3 * H, H), b_ih=z(3 * H),
                b_hh=z(3 * H), reset_after=True, out=z(B, H))


MALFORMED_STEP = {
    "x None": dict(x=None),
    "h float32 among float64": dict(h=np.zeros((2, 2), np.float32)),
    "x wrong batch": dict(x=np.zeros((3, 3))),
    "w_ih wrong inputs": dict(w_ih=np.zeros((6, 4))),
    "w_hh transposed": dict(w_hh=np.zeros((2, 6))),
    "b_ih too short": dict(b_ih=np.zeros(5)),
    "out wrong shape": dict(out=np.zeros((2, 3))),
    "out read-only": dict(out=read_only(np.zeros((2, 2)))),
    "h H = 0": dict(h=np.zeros((2, 0))),
    "x not contiguous": dict(x=np.zeros((2, 6))[:, ::2]),
}


@pytest.mark.parametrize("case", MALFORMED_STEP)
def test_malformed_step_call_raises(case):
    with pytest.raises((TypeError, ValueError)):
        _gru.step(**dict(step_args(), **MALFORMED_STEP[case]))


@pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])
def test_step_leaves_inputs_alone_and_takes_empty_batches(rng, reset_after):
    a = {k: (rng.standard_normal(v.shape) if isinstance(v, np.ndarray) else v)
         for k, v in step_args(B=3).items()}
    a["reset_after"] = reset_after
    before = {k: v.copy() for k, v in a.items() if isinstance(v, np.ndarray) and k != "out"}
    _gru.step(**a)
    for k, v in before.items():
        np.testing.assert_array_equal(a[k], v, err_msg=k)
    _gru.step(**step_args(B=0))


@pytest.mark.parametrize("keep", [True, False])
def test_tall_product_matches_the_plain_one(dtype, rng, keep):
    """forward_steps(tall=True) takes h W_hh^T as (W_hh h^T)^T: the same numbers,
    whatever the hidden size (the backend asks for it only for big ones)."""
    T, B, H = 4, 5, 6
    results = []
    for tall in (False, True):
        a = forward_args(T, B, H, dtype)
        for k in ("xg", "h0", "w_hh", "b_hh"):
            a[k] = np.random.default_rng(1).standard_normal(a[k].shape).astype(dtype)
        a["lengths"] = np.array([4, 0, 2, 4, 1], np.int64)
        a.update(rows=2, tall=tall)
        if not keep:
            a.update(h_prev=np.zeros((0, B, H), dtype), aux=np.zeros((0, B, H), dtype))
        _gru.forward_steps(**a)
        results.append([a[k] for k in ("xg", "out", "h_n", "h_prev", "aux")])
    for name, x, y in zip(("gates", "out", "h_n", "h_prev", "aux"), *results):
        assert_close(x, y, dtype, f"tall {name}")


def test_tall_backward_matches_the_plain_one(dtype, rng):
    """backward_steps(tall=True) takes d_hh W_hh as (W_hh^T d_hh^T)^T: the same numbers."""
    T, B, I, H = 4, 5, 3, 6
    p = problem(rng, (T, B, I, H), dtype)
    lengths = np.array([4, 0, 2, 4, 1], np.int64)
    d_out, d_h_n = upstream(rng, T, B, H, dtype)
    cache = run(cython, p, lengths, False, True, d_out, d_h_n)
    results = []
    for tall in (False, True):
        d_ih, d_hh, dh0 = (np.empty(s, dtype) for s in ((T, B, 3 * H), (T, B, 3 * H), (B, H)))
        _gru.backward_steps(d_out, d_h_n, p["w_hh"], lengths, False, True, 2, tall,
                            cache["h_prev"], cache["gates"], cache["aux"], d_ih, d_hh, dh0)
        results.append((d_ih, d_hh, dh0))
    for name, x, y in zip(("d_ih", "d_hh", "dh0"), *results):
        assert_close(x, y, dtype, f"tall {name}")
