"""The large GEMMs around the recurrence, and BLAS thread control, shared by the
compiled backends.

Determinism: OpenBLAS splits a product differently for different thread counts
and row counts, and the bits of the result follow the split (measured: weight
gradients differed between 1 and 2 BLAS threads). So every product here runs with
BLAS held to one thread, cut into pieces fixed by the shapes alone, and the pieces
run on fastgru's own threads (NumPy releases the GIL in BLAS). Results are then
bitwise identical for any thread count, and the cores are still all used.
"""
import contextlib
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# At most this many pieces: enough to feed 16 cores, few enough that each BLAS
# call stays efficient. A piece has at least _MIN_ROWS rows of the T*B rows, or
# _MIN_WEIGHT_ROWS output rows of a weight gradient (each of those sums T*B rows).
_MAX_PIECES = 16
_MIN_ROWS = 1024
_MIN_WEIGHT_ROWS = 32

# One fastgru computation at a time: the BLAS limit is process-wide, and Numba's
# default workqueue threading layer aborts on concurrent parallel calls (numba #8563).
_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _blas_libraries():
    # Imported late: threadpoolctl scans the loaded libraries once, and scipy's
    # BLAS (the one Numba and Cython call) must be loaded by then.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController
    return [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]


@contextlib.contextmanager
def exclusive():
    """Hold fastgru's lock with every BLAS limited to one thread; yields the number of
    threads BLAS had, which fastgru's own GEMM pieces then use. Restores on exit.

    Calls the libraries' own setters: threadpoolctl's limit() costs ~10 us a call.
    """
    with _lock:
        libs = _blas_libraries()
        saved = [lib.get_num_threads() for lib in libs]
        for lib, n in zip(libs, saved):
            if n != 1:
                lib.set_num_threads(1)
        try:
            yield max(saved, default=1)
        finally:
            for lib, n in zip(libs, saved):
                if n != 1:
                    lib.set_num_threads(n)


@functools.lru_cache(maxsize=None)
def _pool(threads):
    return ThreadPoolExecutor(threads, thread_name_prefix="fastgru")


def _spans(n, min_rows=_MIN_ROWS, offset=0):
    """A split of range(offset, offset + n) that depends on n alone."""
    k = max(1, min(_MAX_PIECES, n // min_rows))
    edges = [offset + n * i // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _run(piece, spans, threads):
    """piece(lo, hi) for each span, on up to `threads` threads."""
    if threads <= 1 or len(spans) == 1:
        for lo, hi in spans:
            piece(lo, hi)
        return
    for future in [_pool(threads).submit(piece, lo, hi) for lo, hi in spans]:
        future.result()


def block_rows(B, H):
    """Rows per block of the recurrence, from the shapes alone: never from the thread
    count, since BLAS results for a row depend on how many rows its GEMM has.

    A block streams all of W_hh every step, so taller blocks reuse it better, while
    more blocks spread over more cores. Measured on 2 cores (medians, float32):
    B=16, H=64 forward 1.2-1.3 ms with 8 rows vs 1.6 with 16 (one block); B=32,
    H=128 7.0 ms with 16 rows vs 12.5 with 32 (one block); B=64, H=512 125 ms with
    32 rows vs 145 with 16; B=256, H=256 62 ms with 64 rows vs 79 with 16.
    """
    return max(8 if H < 256 else 32, -(-B // 4))


def _rows(a):
    """View (T, B, n) as (T*B, n)."""
    return a.reshape(-1, a.shape[-1])


def project(x, w_ih, b_ih, out, threads=1):
    """out := x W_ih^T + b_ih for all steps at once; x (T, B, I), out (T, B, 3H)."""
    x2, o2, w_T = _rows(x), _rows(out), w_ih.T

    def piece(lo, hi):
        o = o2[lo:hi]
        if x.shape[-1] == 1:
            # BLAS GEMM with K=1 is very slow (1.8 GFLOP/s measured), and so is NumPy's
            # broadcast multiply: a rank-1 update of the bias rows, in place (o^T is
            # Fortran-ordered). Seed shape, 6900 x 150: 0.26 ms against 0.71.
            o[...] = b_ih
            _ger(o.dtype)(1.0, w_ih[:, 0], x2[lo:hi, 0], a=o.T, overwrite_a=True)
        else:
            np.matmul(x2[lo:hi], w_T, out=o)
            o += b_ih
    _run(piece, _spans(x2.shape[0]), threads)


@functools.lru_cache(maxsize=None)
def _ger(dtype):
    from scipy.linalg import get_blas_funcs
    ger = get_blas_funcs("ger", dtype=dtype)

    def in_place(alpha, x, y, a, overwrite_a):
        result = ger(alpha, x, y, a=a, overwrite_a=overwrite_a)
        if not np.shares_memory(result, a):   # f2py copied a: never silently drop the update
            a[...] = result
    return in_place


def _sum_over_rows(a, b, out):
    """out := a^T b, the sum over the T*B rows of a and b.

    float32: in chunks of _SUM_ROWS rows whose float32 products are added up in
    float64. One float32 product over all T*B rows drifts by ~sqrt(T*B) ulp and
    took the weight gradients to 1.4e-6 of the reference at T=300 (contract: 2e-6).
    """
    n = a.shape[0]
    if out.dtype == np.float64 or n <= _SUM_ROWS:
        np.dot(a.T, b, out=out)
        return
    total = np.zeros(out.shape, np.float64)
    part = np.empty_like(out)
    for lo in range(0, n, _SUM_ROWS):
        np.dot(a[lo:lo + _SUM_ROWS].T, b[lo:lo + _SUM_ROWS], out=part)
        total += part
    out[...] = total


_SUM_ROWS = 512


def weight_grads(d_ih, d_hh, x, h_prev, aux, w_ih, reset_after,
                 dx, dw_ih, dw_hh, db_ih, db_hh, threads=1):
    """Each gradient as one product over all T*B rows.

    d_ih, d_hh : (T, B, 3H) pre-activation gate gradients (see the backends)
    dx is cut by rows; the weight gradients by their output rows, each piece
    summing over all T*B rows.
    """
    H = h_prev.shape[-1]
    g_ih, g_hh, x2, hp, a2 = _rows(d_ih), _rows(d_hh), _rows(x), _rows(h_prev), _rows(aux)
    dx2 = _rows(dx)
    # BLAS GEMMs with a dimension of 1 are slow: with one input feature, use GEMVs
    w_in, x_in, dw_in, dx_out = ((w_ih[:, 0], x2[:, 0], dw_ih[:, 0], dx2[:, 0])
                                 if x.shape[-1] == 1 else (w_ih, x2, dw_ih, dx2))

    def dx_piece(lo, hi):
        np.dot(g_ih[lo:hi], w_in, out=dx_out[lo:hi])

    ones = np.ones(g_ih.shape[0], g_ih.dtype)

    def dw_piece(lo, hi):   # rows lo:hi of the weight and bias gradients
        _sum_over_rows(g_ih[:, lo:hi], x_in, dw_in[lo:hi])
        # with reset="before", W_hn acts on r * h (aux), not on h
        _sum_over_rows(g_hh[:, lo:hi], hp if reset_after or hi <= 2 * H else a2, dw_hh[lo:hi])
        _sum_over_rows(g_ih[:, lo:hi], ones, db_ih[lo:hi])
        _sum_over_rows(g_hh[:, lo:hi], ones, db_hh[lo:hi])

    _run(dx_piece, _spans(g_ih.shape[0]), threads)
    # pieces inside one gate each, so none straddles the r, z | n boundary
    _run(dw_piece, [s for g in range(3) for s in _spans(H, _MIN_WEIGHT_ROWS, g * H)], threads)


# Scratch arrays reused across calls, one per slot and dtype, used only with the lock
# held. A fresh array costs a page fault per 4 KiB page on first touch: measured at
# the seed shape (10, 690, 1, 50), two fresh 4 MiB gradient arrays took the backward
# recurrence from 1.8 ms to 5.9 ms. Each slot keeps its largest size until
# release_workspace().
_workspace = {}


def _scratch(slot, shape, dtype):
    """An uninitialised array of `shape` from the workspace (lock held)."""
    size = int(np.prod(shape))
    key = (slot, np.dtype(dtype))
    buf = _workspace.get(key)
    if buf is None or buf.size < size:
        buf = _workspace[key] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def release_workspace():
    """Free the scratch arrays kept between calls (they are reallocated when needed)."""
    with _lock:
        _workspace.clear()


def forward_frame(x, w_ih, b_ih, gates, keep, recurrence):
    """What a compiled backend's forward does around its recurrence.

    Projects all steps into xg (the gates cache when kept, else scratch), then
    calls recurrence(xg, rows) with the lock held and BLAS at one thread.
    """
    T, B, _ = x.shape
    with exclusive() as threads:
        xg = gates if keep else _scratch("xg", (T, B, w_ih.shape[0]), x.dtype)
        project(x, w_ih, b_ih, xg, threads)
        recurrence(xg, block_rows(B, w_ih.shape[0] // 3))


def backward_frame(x, w_ih, h_prev, gates, aux, reset_after, grads, recurrence):
    """What a compiled backend's backward does around its recurrence.

    recurrence(d_ih, d_hh, rows) fills the pre-activation gate gradients (and dh0),
    then the weight gradients follow; grads = (dx, dw_ih, dw_hh, db_ih, db_hh).
    With reset="before" the gradients at both pre-activations are equal: one array.
    """
    with exclusive() as threads:
        d_ih = _scratch("d_ih", gates.shape, gates.dtype)
        d_hh = _scratch("d_hh", gates.shape, gates.dtype) if reset_after else d_ih
        recurrence(d_ih, d_hh, block_rows(gates.shape[1], gates.shape[2] // 3))
        weight_grads(d_ih, d_hh, x, h_prev, aux, w_ih, reset_after, *grads, threads=threads)
