"""The large GEMMs around the recurrence, and BLAS thread control, shared by the
compiled backends.

Determinism: OpenBLAS splits a product differently for different thread counts
and row counts, and the bits of the result follow the split (measured: weight
gradients differed between 1 and 2 BLAS threads). So every product here runs with
BLAS held to one thread, cut into pieces fixed by the shapes alone, and the pieces
run on fastgru's own threads (NumPy releases the GIL in BLAS). Results are then
bitwise identical for any thread count, and the cores are still all used.
"""
import concurrent.futures
import contextlib
import functools
import math
import os
import threading

import numpy as np

# At most this many pieces: enough to feed 16 cores, few enough that each BLAS
# call stays efficient. A piece has at least _MIN_ROWS rows of the T*B rows.
_MAX_PIECES = 16
_MIN_ROWS = 1024

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
                if not _limit_warned and lib.get_num_threads() != 1:
                    _warn_limit_ignored(lib)
        try:
            yield max(saved, default=1)
        finally:
            for lib, n in zip(libs, saved):
                if n != 1:
                    lib.set_num_threads(n)


_limit_warned = False


def _warn_limit_ignored(lib):
    """Once per process: BLAS refused the one-thread limit (OpenBLAS 0.3.30/0.3.31
    ignore openblas_set_num_threads from a non-main thread once the main thread has
    called it). fastgru still computes, but BLAS's threads then compete with its
    own, and the bits may differ from the same call made in the main thread."""
    global _limit_warned
    _limit_warned = True
    import warnings
    warnings.warn(
        f"fastgru: {lib.internal_api} {lib.version} ignored the request to run on one thread "
        "from this (non-main) thread, so this call may be slower and its results may differ "
        "in the last bits from the same call in the main thread. Compute from one thread, or "
        "start the process with OPENBLAS_NUM_THREADS=1.", RuntimeWarning, stacklevel=4)


@contextlib.contextmanager
def openmp_loading():
    """Around the first load of a compiled backend's OpenMP runtime.

    GNU OpenMP's workers spin for ~300000 pauses (milliseconds) after each parallel
    region before they sleep, and fastgru follows its regions with BLAS pieces on
    its own threads, which the spinning workers then slow down: the medium shape's
    backward (100, 32, 64, 128) took 14 ms against 10 without the spin. libgomp
    reads GOMP_SPINCOUNT once, when it loads, so it is 0 for that moment only: other
    runtimes loaded later see the environment as it was. A user's GOMP_SPINCOUNT or
    OMP_WAIT_POLICY is left alone, and a libgomp loaded earlier keeps its settings.
    """
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = "0"
    try:
        yield
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)


@functools.lru_cache(maxsize=None)
def _pool(threads):
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="fastgru")


def _spans(n, min_rows=_MIN_ROWS, offset=0):
    """A split of range(offset, offset + n) that depends on n alone: a power of two
    pieces, which spreads evenly over 2, 4, 8 or 16 threads (medium shape's
    projection, 3200 rows on 2 threads: 1.5 ms as 3 pieces)."""
    k = 1 << (max(1, min(_MAX_PIECES, n // min_rows)).bit_length() - 1)
    edges = [offset + n * i // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _run(tasks, threads):
    """Each (function, lo, hi) of tasks as function(lo, hi), on up to `threads` threads.

    Returns, or raises, only once every task has finished: the tasks write into the
    workspace, which the next call (after the lock is released) reuses. An error or
    a KeyboardInterrupt while waiting must not leave tasks still writing there.
    """
    if threads <= 1 or len(tasks) == 1:
        for fn, lo, hi in tasks:
            fn(lo, hi)
        return
    futures = [_pool(threads).submit(fn, lo, hi) for fn, lo, hi in tasks]
    try:
        for future in futures:
            future.result()
    finally:
        for future in futures:
            future.cancel()     # those not started yet; the running ones are waited for
        concurrent.futures.wait(futures)


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


def tall_product(H, rows):
    """Whether the forward recurrence takes its per-step product h W_hh^T as
    (W_hh h^T)^T: for a big W_hh and short blocks OpenBLAS runs the tall GEMM faster
    (one core, float32: 32 x 512 x 1536 at 62 GFLOP/s, 1536 x 512 x 32 at 92), which
    pays for the two transposes. Measured forward, 2 threads, Numba: (100, 64, 256,
    512) 110-119 -> 100-107 ms; (100, 32, 64, 256) 24.9 -> 23.0 ms; but with 64-row
    blocks, (50, 256, 128, 256), 53 -> 58.5 ms; and small H loses outright
    (8 x 128 x 384: 115 -> 95 GFLOP/s). From the shapes alone, like the blocks."""
    return H >= 256 and rows <= 32


def _rows(a):
    """View (T, B, n) as (T*B, n); n may be 0 (an input size of 0)."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2])


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
    _run([(piece, lo, hi) for lo, hi in _spans(x2.shape[0])], threads)


@functools.lru_cache(maxsize=None)
def _ger(dtype):
    from scipy.linalg import get_blas_funcs
    ger = get_blas_funcs("ger", dtype=dtype)

    def in_place(alpha, x, y, a, overwrite_a):
        result = ger(alpha, x, y, a=a, overwrite_a=overwrite_a)
        if not np.shares_memory(result, a):   # f2py copied a: never silently drop the update
            a[...] = result
    return in_place


# Weight gradients sum over all T*B rows. In float32 they are summed in chunks of
# _SUM_ROWS rows: each chunk's product in float32, the chunks added in float64. One
# float32 product over all T*B rows drifts by ~sqrt(T*B) ulp and took the weight
# gradients to 1.4e-6 of the reference at T=300 (contract: 2e-6).
_SUM_ROWS = 512
# Each weight-gradient piece has its own float64 partial sums: at most this many
# bytes of them in all (they stay in the workspace).
_PARTIAL_BYTES = 32 << 20


def _sum_pieces(n, width, dtype):
    """Row spans of the weight-gradient pieces, from the shapes alone (a power of two
    of them, as _spans), and the chunk rows: float32 pieces are whole chunks; a
    float64 piece is one chunk."""
    cap = max(1, _PARTIAL_BYTES // (8 * width))
    if dtype != np.float32:
        spans = _spans(n)
        spans = spans if len(spans) <= cap else _spans(n, -(-n // cap))
        return spans, n
    chunks = -(-n // _SUM_ROWS)
    k = 1 << (max(1, min(_MAX_PIECES, chunks, cap)).bit_length() - 1)
    edges = [min(n, _SUM_ROWS * (chunks * i // k)) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:])), _SUM_ROWS


def weight_grads(d_ih, d_hh, x, h_prev, aux, w_ih, reset_after,
                 dx, dw_ih, dw_hh, db_ih, db_hh, threads=1):
    """dx, and the weight and bias gradients as sums over all T*B rows (lock held).

    d_ih, d_hh : (T, B, 3H) pre-activation gate gradients (see the backends)
    dx is cut by rows. The sums are cut by rows too, into pieces of whole chunks:
    each piece forms full-width products (efficient GEMMs: the large shape's dw_hh
    took 135 ms on one core against 248 ms as pieces of 32 output rows) and adds
    them into its float64 partials; the partials are added in piece order, so the
    bits depend on the shapes alone.
    """
    G, I = w_ih.shape
    H = G // 3
    g_ih, g_hh, x2, hp, a2, dx2 = (_rows(a) for a in (d_ih, d_hh, x, h_prev, aux, dx))
    n, dt = g_ih.shape[0], g_ih.dtype

    def dx_piece(lo, hi):
        if I == 1:  # BLAS GEMMs with a dimension of 1 are slow: a GEMV
            np.dot(g_ih[lo:hi], w_ih[:, 0], out=dx2[lo:hi, 0])
        else:
            np.dot(g_ih[lo:hi], w_ih, out=dx2[lo:hi])

    spans, chunk = _sum_pieces(n, G * (I + H + 2), dt)
    ones = np.ones(min(chunk, n), dt)
    # per piece: float64 partials [dw_ih | dw_hh | db_ih | db_hh], and the products of one chunk
    work = [(_scratch(("partial", k), (G, I + H + 2), np.float64),
             _scratch(("w_ih", k), (G, I), dt), _scratch(("w_hh", k), (G, H), dt),
             _scratch(("b", k), (2, G), dt)) for k in range(len(spans))]

    def sum_piece(k, _):
        part, p_ih, p_hh, p_b = work[k]
        part[...] = 0.0
        lo, hi = spans[k]
        for c in range(lo, hi, chunk):
            e = min(hi, c + chunk)
            gi, gh = g_ih[c:e].T, g_hh[c:e].T
            if I == 1:
                np.dot(gi, x2[c:e, 0], out=p_ih[:, 0])
            else:
                np.dot(gi, x2[c:e], out=p_ih)
            if reset_after:
                np.dot(gh, hp[c:e], out=p_hh)
            else:   # with reset="before", W_hn acts on r * h (aux), not on h
                np.dot(gh[:2 * H], hp[c:e], out=p_hh[:2 * H])
                np.dot(gh[2 * H:], a2[c:e], out=p_hh[2 * H:])
            np.dot(gi, ones[:e - c], out=p_b[0])
            np.dot(gh, ones[:e - c], out=p_b[1])
            part[:, :I] += p_ih
            part[:, I:I + H] += p_hh
            part[:, I + H:] += p_b.T

    # one batch, so that dx and the sums share the threads (small shape: 1 dx piece)
    _run([(sum_piece, k, None) for k in range(len(spans))]
         + [(dx_piece, lo, hi) for lo, hi in _spans(n)], threads)
    total = work[0][0]
    for part, *_ in work[1:]:
        total += part
    dw_ih[...] = total[:, :I]
    dw_hh[...] = total[:, I:I + H]
    db_ih[...] = total[:, I + H]
    db_hh[...] = total[:, I + H + 1]


# Scratch arrays reused across calls, one per slot and dtype, used only with the lock
# held. A fresh array costs a page fault per 4 KiB page on first touch: measured at
# the seed shape (10, 690, 1, 50), two fresh 4 MiB gradient arrays took the backward
# recurrence from 1.8 ms to 5.9 ms. Each slot keeps its largest size until
# release_workspace().
_workspace = {}


def _scratch(slot, shape, dtype):
    """An uninitialised array of `shape` from the workspace (lock held)."""
    size = math.prod(shape)
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
