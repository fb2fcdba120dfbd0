"""The kernels' vectorizable exp, sigmoid and tanh, in each float precision, on both
compiled backends: the Numba functions (fastgru/backends/_numba_math.py) and their C
twins (fastgru_ext/_math.pxd), one test for both.

They replace libm inside the kernels, so their accuracy is part of the numerical
contract: checked here against float64 NumPy on a dense grid, at the clamp edges and
on non-finite input, for keeping the argument's precision (the point of the float32
versions: eight lanes per vector instead of four), and for giving the same bits in
both backends.
"""
import warnings

import numpy as np
import pytest

from tolerances import F32, F64, MATH


def _numba():
    pytest.importorskip("numba")
    from numba import njit

    from fastgru.backends._numba_math import exp, sigmoid, tanh

    @njit(error_model="numpy")
    def run(a, e, s, t):
        for i in range(a.shape[0]):
            e[i] = exp(a[i])
            s[i] = sigmoid(a[i])
            t[i] = tanh(a[i])
    return run


def _cython():
    gru = pytest.importorskip("fastgru_ext._gru", reason="the Cython extension is not built")
    return gru.math


@pytest.fixture(params=["numba", "cython"])
def evaluate(request):
    run = {"numba": _numba, "cython": _cython}[request.param]()

    def evaluate(a):
        e, s, t = np.empty_like(a), np.empty_like(a), np.empty_like(a)
        run(a, e, s, t)
        return e, s, t
    return evaluate


def last_finite_exp(dtype):
    """The largest argument whose exp is finite in NumPy (libm), by bisection."""
    lo, hi = dtype(80), dtype(720 if dtype == np.float64 else 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while np.nextafter(lo, hi) < hi:
            mid = dtype((lo + hi) / 2)
            if mid in (lo, hi):
                mid = np.nextafter(lo, hi)
            lo, hi = (mid, hi) if np.isfinite(np.exp(mid)) else (lo, mid)
    return lo


# (dtype, clamp, exp relative bound, sigmoid/tanh absolute bound): a few ulp
CASES = [(np.float64, 708.0, MATH[F64], MATH[F64]), (np.float32, 87.0, MATH[F32], MATH[F32])]


@pytest.mark.parametrize("dtype, clamp, exp_rel, abs_bound", CASES)
def test_accuracy_against_float64_numpy(evaluate, dtype, clamp, exp_rel, abs_bound):
    rng = np.random.default_rng(0)
    a = np.concatenate([np.linspace(-clamp, clamp, 400_001), rng.standard_normal(100_000) * 4,
                        np.linspace(-1e-3, 1e-3, 1001)]).astype(dtype)
    e, s, t = evaluate(a)
    assert e.dtype == s.dtype == t.dtype == dtype
    exact = a.astype(np.float64)
    assert np.max(np.abs(e - np.exp(exact)) / np.exp(exact)) <= exp_rel
    assert np.max(np.abs(s - 1.0 / (1.0 + np.exp(-exact)))) <= abs_bound
    assert np.max(np.abs(t - np.tanh(exact))) <= abs_bound


@pytest.mark.parametrize("dtype, clamp, exp_rel, abs_bound", CASES)
def test_saturation_and_non_finite(evaluate, dtype, clamp, exp_rel, abs_bound):
    a = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0], dtype)
    e, s, t = evaluate(a)
    assert np.isnan(e[0]) and np.isnan(s[0]) and np.isnan(t[0])
    # overflows to +inf as libm's exp; saturates at the clamp below
    assert e[1] == e[3] == np.inf
    assert e[2] == e[4] and abs(e[2] / np.exp(-clamp) - 1) <= exp_rel
    # the overflow threshold is libm's: the last finite argument stays finite
    last = last_finite_exp(dtype)
    assert np.isfinite(np.exp(last)) and np.exp(np.nextafter(last, dtype(np.inf))) == np.inf
    edge = np.array([last, np.nextafter(last, dtype(np.inf))], dtype)
    e_edge, _, _ = evaluate(edge)
    assert np.isfinite(e_edge[0]) and e_edge[1] == np.inf
    _, s_edge, _ = evaluate(-edge)
    assert s_edge[0] > 0 and s_edge[1] == 0      # sigmoid reaches 0 where exp overflows
    np.testing.assert_allclose(s[1:], [1, 0, 1, 0, 0.5, 0.5], rtol=0, atol=abs_bound)
    np.testing.assert_allclose(t[1:], [1, -1, 1, -1, 0, 0], rtol=0, atol=abs_bound)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_backends_give_the_same_bits(dtype):
    numba, cython = _numba(), _cython()
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.standard_normal(200_000) * 30, [np.nan, np.inf, -np.inf, 0.0, -0.0],
                        np.linspace(-800, 800, 10_001)]).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [tuple(np.empty_like(a) for _ in range(3)) for _ in range(2)]
        numba(a, *got[0])
        cython(a, *got[1])
    for name, x, y in zip(("exp", "sigmoid", "tanh"), *got):
        assert x.tobytes() == y.tobytes(), name
