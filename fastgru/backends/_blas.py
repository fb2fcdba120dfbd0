"""The large GEMMs around the recurrence, shared by the compiled backends.

These run in NumPy with BLAS at its full thread count; only the recurrence
itself runs under ``single_threaded()``.
"""
import contextlib
import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def _controller():
    # Imported late: threadpoolctl scans the loaded BLAS libraries once, and
    # scipy's (the one Numba and Cython call) must be loaded by then.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


@functools.lru_cache(maxsize=None)
def _blas_libraries():
    return [lib for lib in _controller().lib_controllers if lib.user_api == "blas"]


@contextlib.contextmanager
def single_threaded():
    """Limit every loaded BLAS to one thread, restoring the limits on exit.

    Calls the libraries' own setters: threadpoolctl's limit() context costs ~10 us,
    too much for a short sequence.
    """
    libs = _blas_libraries()
    saved = [lib.get_num_threads() for lib in libs]
    for lib, n in zip(libs, saved):
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libs, saved):
            if n != 1:
                lib.set_num_threads(n)


def _rows(a):
    """View (T, B, n) as (T*B, n)."""
    return a.reshape(-1, a.shape[-1])


def project(x, w_ih, b_ih, out):
    """out := x W_ih^T + b_ih for all steps at once; x (T, B, I), out (T, B, 3H)."""
    x2, o2 = _rows(x), _rows(out)
    if x.shape[-1] == 1:
        # BLAS GEMM with K=1 is very slow (1.8 GFLOP/s measured): an outer product.
        np.multiply(x2, w_ih[:, 0], out=o2)
    else:
        np.matmul(x2, w_ih.T, out=o2)
    o2 += b_ih


def weight_grads(d_ih, d_hh, x, h_prev, aux, w_ih, reset_after,
                 dx, dw_ih, dw_hh, db_ih, db_hh):
    """Each gradient as one GEMM (or sum) over all T*B rows.

    d_ih, d_hh : (T, B, 3H) pre-activation gate gradients (see the backends)
    """
    H = h_prev.shape[-1]
    g_ih, g_hh, x2, hp = _rows(d_ih), _rows(d_hh), _rows(x), _rows(h_prev)
    if x.shape[-1] == 1:  # GEMMs with a dimension of 1 are slow; these are GEMVs
        np.dot(g_ih, w_ih[:, 0], out=_rows(dx)[:, 0])
        np.dot(g_ih.T, x2[:, 0], out=dw_ih[:, 0])
    else:
        np.matmul(g_ih, w_ih, out=_rows(dx))
        np.matmul(g_ih.T, x2, out=dw_ih)
    if reset_after:
        np.matmul(g_hh.T, hp, out=dw_hh)
    else:
        np.matmul(g_hh[:, :2 * H].T, hp, out=dw_hh[:2 * H])
        np.matmul(g_hh[:, 2 * H:].T, _rows(aux), out=dw_hh[2 * H:])
    g_ih.sum(axis=0, out=db_ih)
    g_hh.sum(axis=0, out=db_hh)
