"""Every backend against the NumPy reference at DESIGN.md's tolerances, forward and every gradient."""
import numpy as np
import pytest

import fastgru

from helpers import GRAD_NAMES, assert_close, random_problem, upstream

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels

SHAPES = [  # (T, B, I, H): every size 1, odd sizes, more rows than one block
    (1, 1, 1, 1), (1, 3, 2, 4), (6, 1, 3, 5), (5, 4, 1, 3), (4, 3, 2, 1),
    (7, 11, 3, 5), (3, 19, 6, 7), (12, 2, 4, 16),
    (3, 4, 0, 5),   # no input features: the gates see biases only
    # big H: Numba's forward takes the per-step product as (W_hh h^T)^T
    # (numba_backend.hidden_weight), with one and with two row blocks
    (3, 5, 2, 256), (2, 40, 3, 256),
]


def run_both(p, reset, reverse, d_out, d_h_n, reference):
    got = fastgru.gru_forward(reset=reset, reverse=reverse, need_cache=True, **p)
    got_grads = fastgru.gru_backward(d_out, d_h_n, got[2])
    with reference():
        want = fastgru.gru_forward(reset=reset, reverse=reverse, need_cache=True, **p)
        want_grads = fastgru.gru_backward(d_out, d_h_n, want[2])
    return got[:2] + got_grads, want[:2] + want_grads


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_backend_matches_reference(backend, dtype, rng, reference, reset, reverse,
                                   with_lengths, shape):
    T, B, I, H = shape
    p = random_problem(rng, T, B, I, H, dtype, lengths=with_lengths, h0=rng.random() < 0.7)
    d_out, d_h_n = upstream(rng, T, B, H, dtype)
    got, want = run_both(p, reset, reverse, d_out, d_h_n, reference)
    for name, a, b in zip(("out", "h_n") + GRAD_NAMES, got, want):
        assert_close(a, b, dtype, f"{backend} {name}")


@pytest.mark.parametrize("reset", ["after", "before"])
def test_lengths_semantics(backend, rng, reset):
    """Past its length a sequence outputs 0 and keeps its state; h_n is the last valid state."""
    T, B, I, H = 6, 3, 2, 4
    p = random_problem(rng, T, B, I, H, np.float64)
    p["lengths"] = np.array([6, 0, 3])
    out, h_n, _ = fastgru.gru_forward(reset=reset, **p)
    assert np.all(out[:, 1] == 0) and np.all(out[3:, 2] == 0)
    np.testing.assert_array_equal(h_n[1], p["h0"][1])
    np.testing.assert_array_equal(h_n[2], out[2, 2])
    # each sequence alone, cut to its length, gives the same numbers
    for b, n in enumerate(p["lengths"]):
        single = dict(p, x=p["x"][:n, b:b + 1], h0=p["h0"][b:b + 1], lengths=None)
        o, h, _ = fastgru.gru_forward(reset=reset, **single)
        assert_close(out[:n, b], o[:, 0], np.float64, f"out of sequence {b}")
        assert_close(h_n[b], h[0], np.float64, f"h_n of sequence {b}")
    # reverse starts at each sequence's own last step
    out_r, h_r, _ = fastgru.gru_forward(reset=reset, reverse=True, **p)
    cut = dict(p, x=p["x"][:3, 2:3], h0=p["h0"][2:3], lengths=None)
    o, h, _ = fastgru.gru_forward(reset=reset, reverse=True, **cut)
    assert_close(out_r[:3, 2], o[:, 0], np.float64, "reverse out with lengths")
    assert_close(h_r[2], h[0], np.float64, "reverse h_n with lengths")


def test_noncontiguous_and_fortran_inputs(backend, dtype, rng):
    T, B, I, H = 5, 4, 3, 6
    p = random_problem(rng, T, B, I, H, dtype)
    want = fastgru.gru_forward(**p)[:2]
    odd = dict(p)
    odd["x"] = np.asfortranarray(p["x"])
    odd["w_ih"] = np.asfortranarray(p["w_ih"])
    odd["w_hh"] = np.repeat(p["w_hh"], 2, axis=1)[:, ::2]       # strided view
    odd["h0"] = np.asfortranarray(p["h0"])
    odd["b_ih"] = np.repeat(p["b_ih"], 2)[::2]
    got = fastgru.gru_forward(**odd)[:2]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_inputs_not_modified(backend, dtype, rng):
    T, B, I, H = 4, 3, 2, 5
    p = random_problem(rng, T, B, I, H, dtype, lengths=True)
    before = {k: None if a is None else np.array(a, copy=True) for k, a in p.items()}
    out, h_n, cache = fastgru.gru_forward(need_cache=True, **p)
    d_out, d_h_n = upstream(rng, T, B, H, dtype)
    d_copy = (d_out.copy(), d_h_n.copy())
    fastgru.gru_backward(d_out, d_h_n, cache)
    for k, a in p.items():
        if a is not None:
            np.testing.assert_array_equal(a, before[k], err_msg=k)
    np.testing.assert_array_equal(d_out, d_copy[0])
    np.testing.assert_array_equal(d_h_n, d_copy[1])
    # a later change to the caller's x does not change the gradients
    g1 = fastgru.gru_backward(d_out, d_h_n, cache)
    p["x"][...] = 0
    g2 = fastgru.gru_backward(d_out, d_h_n, cache)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("reset", ["after", "before"])
def test_no_bias_equals_zero_bias(backend, rng, reset):
    p = random_problem(rng, 4, 3, 2, 5, np.float64)
    zero = dict(p, b_ih=np.zeros_like(p["b_ih"]), b_hh=np.zeros_like(p["b_hh"]))
    none = dict(p, b_ih=None, b_hh=None)
    for a, b in zip(fastgru.gru_forward(reset=reset, **zero)[:2],
                    fastgru.gru_forward(reset=reset, **none)[:2]):
        np.testing.assert_array_equal(a, b)


def test_empty_sequence_and_batch(backend):
    H = 3
    w = dict(w_ih=np.ones((9, 2)), w_hh=np.ones((9, 3)), b_ih=None, b_hh=None)
    h0 = np.full((2, H), 0.25)
    out, h_n, cache = fastgru.gru_forward(np.zeros((0, 2, 2)), h0, need_cache=True, **w)
    assert out.shape == (0, 2, 3)
    np.testing.assert_array_equal(h_n, h0)
    dx, dh0, *_ = fastgru.gru_backward(None, np.ones((2, H)), cache)
    np.testing.assert_array_equal(dh0, np.ones((2, H)))
    out, h_n, _ = fastgru.gru_forward(np.zeros((4, 0, 2)), None, **w)
    assert out.shape == (4, 0, 3) and h_n.shape == (0, 3)


@pytest.mark.parametrize("shape,reset,seed", [
    ((100, 32, 64, 128), "after", 1), ((100, 32, 64, 128), "before", 2),
    ((300, 4, 16, 64), "after", 1),
])
def test_long_sequences_float32(backend, reference, shape, reset, seed):
    """Sums over T*B rows are where float32 drifts: the contract must hold at real sizes
    (a plain float32 bias sum reached 2.3e-6 here, past the 2e-6 bound)."""
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    p = random_problem(rng, T, B, I, H, np.float32)
    d_out, d_h_n = upstream(rng, T, B, H, np.float32)
    got, want = run_both(p, reset, False, d_out, d_h_n, reference)
    for name, a, b in zip(("out", "h_n") + GRAD_NAMES, got, want):
        assert_close(a, b, np.float32, f"{backend} {name}")


def test_cache_keeps_its_own_weights(backend, rng):
    """Changing the weights between forward and backward (an optimizer step) does not
    change the gradients of the forward that was run."""
    p = random_problem(rng, 4, 3, 2, 5, np.float64)
    d_out, d_h_n = upstream(rng, 4, 3, 5, np.float64)
    _, _, cache = fastgru.gru_forward(need_cache=True, **p)
    want = fastgru.gru_backward(d_out, d_h_n, cache)
    p["w_hh"] *= 2
    p["w_ih"] *= 2
    for a, b in zip(fastgru.gru_backward(d_out, d_h_n, cache), want):
        np.testing.assert_array_equal(a, b)


def test_backend_block_is_the_callers_and_is_restored():
    import threading
    outer = fastgru.get_backend()
    seen = {}
    with fastgru.backend("numpy") as name:
        assert name == "numpy" and fastgru.get_backend() == "numpy"
        other = threading.Thread(target=lambda: seen.setdefault("other", fastgru.get_backend()))
        other.start()
        other.join()
        with pytest.raises(KeyError):
            with fastgru.backend(outer):
                assert fastgru.get_backend() == outer
                raise KeyError("left by an exception")
        assert fastgru.get_backend() == "numpy"
        _, _, cache = fastgru.gru_forward(np.zeros((2, 1, 3)), None, np.zeros((12, 3)),
                                          np.zeros((12, 4)), None, None, need_cache=True)
        assert cache.backend == "numpy"
    assert fastgru.get_backend() == outer
    assert seen["other"] == outer          # another thread keeps its own choice
    with pytest.raises(ValueError, match="backend must be one of"):
        with fastgru.backend("fast"):
            pass
    assert fastgru.get_backend() == outer
