# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""GRU recurrence kernels: one layer, one direction, float32 and float64.

The same structure as ``fastgru.backends.numba_backend``: the batch is cut into
fixed blocks of ``BLOCK_ROWS`` rows (rows are independent through time), and
each block walks all T steps on its own inside one ``prange`` (one parallel
region per pass, no barrier per step). Per step a block does its small GEMM
and one fused elementwise loop. Blocks depend only on the batch size, never on
the thread count, so results are bitwise identical for any number of threads.

The caller limits BLAS to one thread while these run (the OpenMP threads and
BLAS's own would fight over the cores), and does the input projection and the
weight gradients as large GEMMs outside (``fastgru.backends._blas``).

``forward_steps`` and ``backward_steps`` check the shapes, dtypes and
contiguity of what they are given (a wrong call raises, it does not crash),
then run without the GIL.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, tanh, tanhf
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from ._blas cimport gemm
from ._openmp cimport FASTGRU_OPENMP, omp_get_max_threads

# Rows per block: small enough to spread a batch over the cores, large enough
# for the per-step GEMM to run at speed. The Numba backend uses the same.
cdef enum:
    BLOCK = 8
BLOCK_ROWS = BLOCK

cdef int _n_threads = 0    # 0: OpenMP's default (OMP_NUM_THREADS, else all cores)


def openmp_enabled():
    """Whether the extension was compiled with OpenMP (else it runs on one thread)."""
    return bool(FASTGRU_OPENMP)


def get_num_threads():
    """The number of threads the kernels use (at most one per row block)."""
    return _n_threads if _n_threads > 0 else omp_get_max_threads()


def set_num_threads(n):
    """Use ``n`` threads from now on; None means OpenMP's default. Returns the previous setting."""
    global _n_threads
    previous = _n_threads if _n_threads > 0 else None
    if n is None:
        _n_threads = 0
    elif isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads must be an int >= 1 or None, got {n!r}")
    else:
        _n_threads = n
    return previous


cdef inline floating _sigmoid(floating a) noexcept nogil:
    cdef floating one = 1
    if floating is float:
        return one / (one + expf(-a))
    else:
        return one / (one + exp(-a))


cdef inline floating _tanh(floating a) noexcept nogil:
    if floating is float:
        return tanhf(a)
    else:
        return tanh(a)


cdef void _forward_after(Py_ssize_t lo, Py_ssize_t m, bint reverse, bint keep,
                         floating[:, :, ::1] xg, const floating[:, ::1] w_hh,
                         const floating[::1] b_hh, const int64_t[::1] lengths,  # IN
                         floating[:, :, ::1] out, floating[:, ::1] h_n,
                         floating[:, :, ::1] h_prev, floating[:, :, ::1] aux,  # OUT
                         floating *hh) noexcept nogil:
    """reset="after" for rows lo .. lo+m-1. h_n's rows hold h0 on entry and the
    running state throughout; hh is (m, 3H) scratch for h W_hh^T."""
    cdef Py_ssize_t T = xg.shape[0], G = xg.shape[2], H = G // 3
    cdef Py_ssize_t step, t, i, j
    cdef floating *h = &h_n[lo, 0]
    cdef const floating *bh = &b_hh[0]
    cdef floating *g
    cdef floating *o
    cdef floating *h_i
    cdef floating *hh_i
    cdef floating r, z, n, a, one = 1, zero = 0
    cdef bint valid
    for step in range(T):
        t = T - 1 - step if reverse else step
        if keep:
            memcpy(&h_prev[t, lo, 0], h, m * H * sizeof(floating))
        gemm(False, True, <int> m, <int> G, <int> H, one, h, <int> H,
             &w_hh[0, 0], <int> H, zero, hh, <int> G)
        for i in range(m):
            valid = t < lengths[lo + i]
            g = &xg[t, lo + i, 0]
            o = &out[t, lo + i, 0]
            h_i = h + i * H
            hh_i = hh + i * G
            for j in range(H):
                r = _sigmoid(g[j] + hh_i[j] + bh[j])
                z = _sigmoid(g[H + j] + hh_i[H + j] + bh[H + j])
                a = hh_i[2 * H + j] + bh[2 * H + j]
                n = _tanh(g[2 * H + j] + r * a)
                g[j] = r
                g[H + j] = z
                g[2 * H + j] = n
                if keep:
                    aux[t, lo + i, j] = a
                if valid:
                    h_i[j] = (one - z) * n + z * h_i[j]
                    o[j] = h_i[j]
                else:
                    o[j] = zero


cdef void _forward_before(Py_ssize_t lo, Py_ssize_t m, bint reverse, bint keep,
                          floating[:, :, ::1] xg, const floating[:, ::1] w_hh,
                          const floating[::1] b_hh, const int64_t[::1] lengths,  # IN
                          floating[:, :, ::1] out, floating[:, ::1] h_n,
                          floating[:, :, ::1] h_prev, floating[:, :, ::1] aux,  # OUT
                          floating *work) noexcept nogil:
    """reset="before" for rows lo .. lo+m-1; work is (m, 4H) scratch: h W_hrz^T and
    (r*h) W_hn^T side by side as (m, 3H), then r*h as (m, H)."""
    cdef Py_ssize_t T = xg.shape[0], G = xg.shape[2], H = G // 3
    cdef Py_ssize_t step, t, i, j
    cdef floating *h = &h_n[lo, 0]
    cdef floating *rh = work + m * G
    cdef const floating *bh = &b_hh[0]
    cdef floating *g
    cdef floating *o
    cdef floating *h_i
    cdef floating *w_i
    cdef floating *rh_i
    cdef floating r, z, n, one = 1, zero = 0
    cdef bint valid
    for step in range(T):
        t = T - 1 - step if reverse else step
        if keep:
            memcpy(&h_prev[t, lo, 0], h, m * H * sizeof(floating))
        gemm(False, True, <int> m, <int> (2 * H), <int> H, one, h, <int> H,
             &w_hh[0, 0], <int> H, zero, work, <int> G)
        for i in range(m):
            g = &xg[t, lo + i, 0]
            h_i = h + i * H
            w_i = work + i * G
            rh_i = rh + i * H
            for j in range(H):
                r = _sigmoid(g[j] + w_i[j] + bh[j])
                g[j] = r
                g[H + j] = _sigmoid(g[H + j] + w_i[H + j] + bh[H + j])
                rh_i[j] = r * h_i[j]
        gemm(False, True, <int> m, <int> H, <int> H, one, rh, <int> H,
             &w_hh[2 * H, 0], <int> H, zero, work + 2 * H, <int> G)
        for i in range(m):
            valid = t < lengths[lo + i]
            g = &xg[t, lo + i, 0]
            o = &out[t, lo + i, 0]
            h_i = h + i * H
            w_i = work + i * G
            rh_i = rh + i * H
            for j in range(H):
                z = g[H + j]
                n = _tanh(g[2 * H + j] + w_i[2 * H + j] + bh[2 * H + j])
                g[2 * H + j] = n
                if keep:
                    aux[t, lo + i, j] = rh_i[j]
                if valid:
                    h_i[j] = (one - z) * n + z * h_i[j]
                    o[j] = h_i[j]
                else:
                    o[j] = zero


cdef void _backward_after(Py_ssize_t lo, Py_ssize_t m, bint reverse,
                          const floating[:, :, ::1] d_out, const floating[:, ::1] w_hh,
                          const int64_t[::1] lengths, const floating[:, :, ::1] h_prev,
                          const floating[:, :, ::1] gates, const floating[:, :, ::1] aux,  # IN
                          floating[:, :, ::1] d_ih, floating[:, :, ::1] d_hh,
                          floating[:, ::1] dh0) noexcept nogil:  # OUT
    """reset="after" for rows lo .. lo+m-1; dh0's rows hold d_h_n on entry and
    the running gradient at the state throughout."""
    cdef Py_ssize_t T = gates.shape[0], G = gates.shape[2], H = G // 3
    cdef Py_ssize_t step, t, i, j, b
    cdef floating *dh = &dh0[lo, 0]
    cdef floating *dh_i
    cdef const floating *g
    cdef const floating *hp
    cdef const floating *ax
    cdef const floating *do
    cdef floating *di
    cdef floating *dhh
    cdef floating r, z, n, dh_t, dn, dz, dr, one = 1, zero = 0
    cdef bint valid
    for step in range(T):
        t = step if reverse else T - 1 - step
        for i in range(m):
            b = lo + i
            valid = t < lengths[b]
            g = &gates[t, b, 0]
            hp = &h_prev[t, b, 0]
            ax = &aux[t, b, 0]
            do = &d_out[t, b, 0]
            di = &d_ih[t, b, 0]
            dhh = &d_hh[t, b, 0]
            dh_i = dh + i * H
            for j in range(H):
                r = g[j]
                z = g[H + j]
                n = g[2 * H + j]
                if valid:
                    dh_t = dh_i[j] + do[j]
                    dn = dh_t * (one - z) * (one - n * n)
                    dz = dh_t * (hp[j] - n) * z * (one - z)
                    dr = dn * ax[j] * r * (one - r)
                    dh_i[j] = dh_t * z
                else:
                    dn = zero
                    dz = zero
                    dr = zero
                di[j] = dr
                di[H + j] = dz
                di[2 * H + j] = dn
                dhh[j] = dr
                dhh[H + j] = dz
                dhh[2 * H + j] = dn * r
        gemm(False, False, <int> m, <int> H, <int> G, one, &d_hh[t, lo, 0], <int> G,
             &w_hh[0, 0], <int> H, one, dh, <int> H)


cdef void _backward_before(Py_ssize_t lo, Py_ssize_t m, bint reverse,
                           const floating[:, :, ::1] d_out, const floating[:, ::1] w_hh,
                           const int64_t[::1] lengths, const floating[:, :, ::1] h_prev,
                           const floating[:, :, ::1] gates,  # IN
                           floating[:, :, ::1] d_ih, floating[:, ::1] dh0,  # OUT
                           floating *drh) noexcept nogil:
    """reset="before" for rows lo .. lo+m-1 (d_hh equals d_ih here); drh is
    (m, H) scratch for the gradient at r * h."""
    cdef Py_ssize_t T = gates.shape[0], G = gates.shape[2], H = G // 3
    cdef Py_ssize_t step, t, i, j, b
    cdef floating *dh = &dh0[lo, 0]
    cdef floating *dh_i
    cdef floating *drh_i
    cdef const floating *g
    cdef const floating *hp
    cdef const floating *do
    cdef floating *di
    cdef floating r, z, n, dh_t, one = 1, zero = 0
    cdef bint valid
    for step in range(T):
        t = step if reverse else T - 1 - step
        for i in range(m):
            b = lo + i
            valid = t < lengths[b]
            g = &gates[t, b, 0]
            hp = &h_prev[t, b, 0]
            do = &d_out[t, b, 0]
            di = &d_ih[t, b, 0]
            dh_i = dh + i * H
            for j in range(H):
                z = g[H + j]
                n = g[2 * H + j]
                if valid:
                    dh_t = dh_i[j] + do[j]
                    di[2 * H + j] = dh_t * (one - z) * (one - n * n)
                    di[H + j] = dh_t * (hp[j] - n) * z * (one - z)
                    dh_i[j] = dh_t * z
                else:
                    di[2 * H + j] = zero
                    di[H + j] = zero
        gemm(False, False, <int> m, <int> H, <int> H, one, &d_ih[t, lo, 2 * H], <int> G,
             &w_hh[2 * H, 0], <int> H, zero, drh, <int> H)
        for i in range(m):
            b = lo + i
            valid = t < lengths[b]
            g = &gates[t, b, 0]
            hp = &h_prev[t, b, 0]
            di = &d_ih[t, b, 0]
            dh_i = dh + i * H
            drh_i = drh + i * H
            for j in range(H):
                if valid:
                    r = g[j]
                    di[j] = drh_i[j] * hp[j] * r * (one - r)
                    dh_i[j] += drh_i[j] * r
                else:
                    di[j] = zero
        gemm(False, False, <int> m, <int> H, <int> (2 * H), one, &d_ih[t, lo, 0], <int> G,
             &w_hh[0, 0], <int> H, one, dh, <int> H)


cdef int _threads_for(Py_ssize_t n_blocks):
    cdef int n = _n_threads if _n_threads > 0 else omp_get_max_threads()
    return <int> min(n, max(n_blocks, 1))


cdef tuple _dims(const Py_ssize_t *shape, int ndim):
    return tuple([shape[k] for k in range(ndim)])


def _expect(name, got, want):
    if got != want:
        raise ValueError(f"{name} must have shape {want}, got {got}")


def forward_steps(floating[:, :, ::1] xg, const floating[:, ::1] h0,
                  const floating[:, ::1] w_hh, const floating[::1] b_hh,
                  const int64_t[::1] lengths, bint reverse, bint reset_after,  # IN
                  floating[:, :, ::1] out, floating[:, ::1] h_n,
                  floating[:, :, ::1] h_prev, floating[:, :, ::1] aux):  # OUT
    """Run the recurrence over all T steps.

    xg : (T, B, 3H) IN/OUT, x W_ih^T + b_ih on entry, the activated gates r, z, n on exit
    h0 : (B, H), w_hh : (3H, H), b_hh : (3H,), lengths : (B,) int64 IN
    out : (T, B, H), h_n : (B, H) OUT
    h_prev, aux : (T, B, H) OUT, the cache (see ``fastgru.backends.reference.forward``),
        or both (0, B, H) when not kept
    All arrays C-contiguous and of one float dtype.
    """
    cdef Py_ssize_t T = xg.shape[0], B = xg.shape[1], G = xg.shape[2], H = G // 3
    cdef Py_ssize_t n_blocks = (B + BLOCK - 1) // BLOCK, blk, lo, m
    if H < 1 or G != 3 * H:
        raise ValueError(f"xg must have shape (T, B, 3*H) with H >= 1, got {_dims(xg.shape, 3)}")
    _expect("h0", _dims(h0.shape, 2), (B, H))
    _expect("w_hh", _dims(w_hh.shape, 2), (G, H))
    _expect("b_hh", _dims(b_hh.shape, 1), (G,))
    _expect("lengths", _dims(lengths.shape, 1), (B,))
    _expect("out", _dims(out.shape, 3), (T, B, H))
    _expect("h_n", _dims(h_n.shape, 2), (B, H))
    cdef bint keep = h_prev.shape[0] == T and T > 0
    _expect("h_prev", _dims(h_prev.shape, 3), (T if keep else 0, B, H))
    _expect("aux", _dims(aux.shape, 3), (T if keep else 0, B, H))
    cdef floating *work = <floating *> malloc(max(B * 4 * H, 1) * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    cdef int n_threads = _threads_for(n_blocks)
    try:
        with nogil:
            for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
                lo = blk * BLOCK
                m = min(BLOCK, B - lo)
                memcpy(&h_n[lo, 0], &h0[lo, 0], m * H * sizeof(floating))
                if reset_after:
                    _forward_after(lo, m, reverse, keep, xg, w_hh, b_hh, lengths,
                                   out, h_n, h_prev, aux, work + lo * 4 * H)
                else:
                    _forward_before(lo, m, reverse, keep, xg, w_hh, b_hh, lengths,
                                    out, h_n, h_prev, aux, work + lo * 4 * H)
    finally:
        free(work)


def backward_steps(const floating[:, :, ::1] d_out, const floating[:, ::1] d_h_n,
                   const floating[:, ::1] w_hh, const int64_t[::1] lengths,
                   bint reverse, bint reset_after,  # IN
                   const floating[:, :, ::1] h_prev, const floating[:, :, ::1] gates,
                   const floating[:, :, ::1] aux,  # IN: the forward cache
                   floating[:, :, ::1] d_ih, floating[:, :, ::1] d_hh,
                   floating[:, ::1] dh0):  # OUT
    """Walk time backwards.

    d_out : (T, B, H), d_h_n : (B, H), w_hh : (3H, H), lengths : (B,) int64 IN
    h_prev, gates, aux : the cache ``forward_steps`` filled IN
    d_ih : (T, B, 3H) OUT, the pre-activation gate gradients (r, z, n), 0 on skipped steps
    d_hh : (T, B, 3H) OUT, the same with the gradient at W_hn's output in the n part;
        for reset="before" it equals d_ih: pass d_ih itself to skip the copy
    dh0 : (B, H) OUT
    """
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1], G = gates.shape[2], H = G // 3
    cdef Py_ssize_t n_blocks = (B + BLOCK - 1) // BLOCK, blk, lo, m
    if H < 1 or G != 3 * H:
        raise ValueError(f"gates must have shape (T, B, 3*H) with H >= 1, got {_dims(gates.shape, 3)}")
    _expect("d_out", _dims(d_out.shape, 3), (T, B, H))
    _expect("d_h_n", _dims(d_h_n.shape, 2), (B, H))
    _expect("w_hh", _dims(w_hh.shape, 2), (G, H))
    _expect("lengths", _dims(lengths.shape, 1), (B,))
    _expect("h_prev", _dims(h_prev.shape, 3), (T, B, H))
    _expect("aux", _dims(aux.shape, 3), (T, B, H))
    _expect("d_ih", _dims(d_ih.shape, 3), (T, B, G))
    _expect("d_hh", _dims(d_hh.shape, 3), (T, B, G))
    _expect("dh0", _dims(dh0.shape, 2), (B, H))
    cdef floating *drh = <floating *> malloc(max(B * H, 1) * sizeof(floating))
    if drh == NULL:
        raise MemoryError()
    cdef int n_threads = _threads_for(n_blocks)
    try:
        with nogil:
            for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
                lo = blk * BLOCK
                m = min(BLOCK, B - lo)
                memcpy(&dh0[lo, 0], &d_h_n[lo, 0], m * H * sizeof(floating))
                if reset_after:
                    _backward_after(lo, m, reverse, d_out, w_hh, lengths, h_prev, gates, aux,
                                    d_ih, d_hh, dh0)
                else:
                    _backward_before(lo, m, reverse, d_out, w_hh, lengths, h_prev, gates,
                                     d_ih, dh0, drh + lo * H)
    finally:
        free(drh)
    if not reset_after and T > 0 and B > 0 and &d_hh[0, 0, 0] != &d_ih[0, 0, 0]:
        d_hh[...] = d_ih
