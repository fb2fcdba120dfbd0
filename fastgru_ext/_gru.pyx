# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""GRU recurrence kernels: one layer, one direction, float32 and float64.

The same structure as ``fastgru.backends.numba_backend``: the batch is cut into
fixed blocks of ``rows`` rows (``fastgru.backends._blas.block_rows``; rows are
independent through time), and
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
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove, memset

from ._blas cimport gemm
from ._math cimport sigmoid_, tanh_
from ._openmp cimport FASTGRU_OPENMP, omp_get_max_threads



cdef int _n_threads = 0    # 0: OpenMP's default (OMP_NUM_THREADS, else all cores)


def openmp_enabled():
    """Whether the extension was compiled with OpenMP (else it runs on one thread)."""
    return bool(FASTGRU_OPENMP)


def get_num_threads():
    """The number of threads the kernels use (at most one per row block); 1 without OpenMP."""
    if not FASTGRU_OPENMP:
        return 1
    return _n_threads if _n_threads > 0 else omp_get_max_threads()


def set_num_threads(n):
    """Use ``n`` threads from now on; None means OpenMP's default. Returns the previous setting."""
    global _n_threads
    previous = _n_threads if _n_threads > 0 else None
    if n is None:
        _n_threads = 0
    elif isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"the number of threads must be an int or None, got {type(n).__name__} {n!r}")
    elif n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}")
    else:
        _n_threads = n
    return previous


# One row of one step each; the compiler vectorizes these loops over j.

cdef inline void _row_after(Py_ssize_t H, floating *g, floating *hh, const floating *b_hh,
                            floating *h, floating *o) noexcept nogil:
    """reset="after", a valid row. g: x W_ih^T + b_ih in, r, z, n out; hh: h W_hh^T in,
    its n part becomes hn_lin = h W_hn^T + b_hn; h: the state, updated; o: the output."""
    cdef Py_ssize_t j
    cdef floating z, n, a, h_new, one = 1
    # two passes, r and z then n and h: fewer live values per loop, so the
    # vectorized loops keep them in registers
    for j in range(2 * H):
        g[j] = sigmoid_(g[j] + hh[j] + b_hh[j])
    for j in range(H):
        z = g[H + j]
        a = hh[2 * H + j] + b_hh[2 * H + j]
        n = tanh_(g[2 * H + j] + g[j] * a)
        h_new = (one - z) * n + z * h[j]
        g[2 * H + j] = n
        hh[2 * H + j] = a
        h[j] = h_new
        o[j] = h_new


cdef inline void _row_rz_before(Py_ssize_t H, floating *g, const floating *hrz,
                                const floating *b_hh, const floating *h,
                                floating *rh) noexcept nogil:
    """reset="before", first half: r and z into g (from h W_hr,hz^T in hrz), r * h into rh."""
    cdef Py_ssize_t j
    for j in range(2 * H):
        g[j] = sigmoid_(g[j] + hrz[j] + b_hh[j])
    for j in range(H):
        rh[j] = g[j] * h[j]


cdef inline void _row_n_before(Py_ssize_t H, floating *g, const floating *hn,
                               const floating *b_hh, floating *h, floating *o) noexcept nogil:
    """reset="before", second half, a valid row: n from (r * h) W_hn^T in hn, then h and o."""
    cdef Py_ssize_t j
    cdef floating z, n, h_new, one = 1
    for j in range(H):
        z = g[H + j]
        n = tanh_(g[2 * H + j] + hn[j] + b_hh[2 * H + j])
        h_new = (one - z) * n + z * h[j]
        g[2 * H + j] = n
        h[j] = h_new
        o[j] = h_new


cdef inline void _grad_row_after(Py_ssize_t H, const floating *d_out, const floating *g,
                                 const floating *h_prev, const floating *hn_lin, floating *dh,
                                 floating *d_ih, floating *d_hh) noexcept nogil:
    """reset="after", a valid row: the gate gradients; dh becomes its direct part dh_t * z."""
    cdef Py_ssize_t j
    cdef floating r, z, n, dh_t, dn, dz, dr, one = 1
    for j in range(H):
        r = g[j]
        z = g[H + j]
        n = g[2 * H + j]
        dh_t = dh[j] + d_out[j]
        dn = dh_t * (one - z) * (one - n * n)
        dz = dh_t * (h_prev[j] - n) * z * (one - z)
        dr = dn * hn_lin[j] * r * (one - r)
        dh[j] = dh_t * z
        d_ih[j] = dr
        d_ih[H + j] = dz
        d_ih[2 * H + j] = dn
        d_hh[j] = dr
        d_hh[H + j] = dz
        d_hh[2 * H + j] = dn * r


cdef inline void _grad_row_nz_before(Py_ssize_t H, const floating *d_out, const floating *g,
                                     const floating *h_prev, floating *dh,
                                     floating *d_ih) noexcept nogil:
    """reset="before", first half, a valid row: the z and n gradients; dh becomes dh_t * z."""
    cdef Py_ssize_t j
    cdef floating z, n, dh_t, one = 1
    for j in range(H):
        z = g[H + j]
        n = g[2 * H + j]
        dh_t = dh[j] + d_out[j]
        d_ih[2 * H + j] = dh_t * (one - z) * (one - n * n)
        d_ih[H + j] = dh_t * (h_prev[j] - n) * z * (one - z)
        dh[j] = dh_t * z


cdef inline void _grad_row_r_before(Py_ssize_t H, const floating *g, const floating *h_prev,
                                    const floating *drh, floating *dh,
                                    floating *d_ih) noexcept nogil:
    """reset="before", second half, a valid row: the r gradient from drh = dn_pre W_hn."""
    cdef Py_ssize_t j
    cdef floating r, one = 1
    for j in range(H):
        r = g[j]
        d_ih[j] = drh[j] * h_prev[j] * r * (one - r)
        dh[j] += drh[j] * r


# One block of rows through all T steps. Rows past their length (t >= lengths[b])
# are skipped: output 0, state frozen, zero gradients, aux 0 in the cache (so that
# the weight-gradient GEMMs multiply zeros by finite numbers).

cdef inline void _transpose(Py_ssize_t rows, Py_ssize_t cols, const floating *src,
                            floating *dst) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            dst[j * rows + i] = src[i * cols + j]


cdef inline void _times_tall(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const floating *a,
                             const floating *b_t, floating *a_t, floating *p_t,
                             bint accumulate, floating *out) noexcept nogil:
    """out (m, n) := (or +=) a (m, k) @ b, given b_t = b^T (n, k), taken tall as
    (b^T a^T)^T: OpenBLAS runs the tall GEMM faster for short a (see
    fastgru.backends._blas.tall_product). a_t (k, m) and p_t (n, m) are scratch."""
    cdef Py_ssize_t i, j
    cdef floating one = 1, zero = 0
    _transpose(m, k, a, a_t)
    gemm(False, False, <int> n, <int> m, <int> k, one, b_t, <int> k, a_t, <int> m,
         zero, p_t, <int> m)
    for i in range(m):
        for j in range(n):
            out[i * n + j] = (out[i * n + j] if accumulate else zero) + p_t[j * m + i]


cdef void _forward_after(Py_ssize_t lo, Py_ssize_t m, bint reverse, bint keep,
                         floating[:, :, ::1] xg, const floating *w_t, const floating *w,
                         const floating[::1] b_hh, const int64_t[::1] lengths,  # IN
                         floating[:, :, ::1] out, floating[:, ::1] h_n,
                         floating[:, :, ::1] h_prev, floating[:, :, ::1] aux,  # OUT
                         floating *hh) noexcept nogil:
    """reset="after" for rows lo .. lo+m-1. h_n's rows hold h0 on entry and the
    running state throughout; w_t is W_hh^T (H, 3H). hh is (m, 3H) scratch for
    h W_hh^T, followed, when w (W_hh itself) is given, by (4H, m) scratch: the
    product is then taken as (W_hh h^T)^T."""
    cdef Py_ssize_t T = xg.shape[0], G = xg.shape[2], H = G // 3
    cdef Py_ssize_t step, t, i
    cdef floating *h = &h_n[lo, 0]
    cdef floating *h_t = hh + m * G
    cdef floating *hh_t = h_t + H * m
    cdef floating one = 1, zero = 0
    for step in range(T):
        t = T - 1 - step if reverse else step
        if keep:
            memcpy(&h_prev[t, lo, 0], h, m * H * sizeof(floating))
        if w != NULL:
            _times_tall(m, H, G, h, w, h_t, hh_t, False, hh)
        else:
            gemm(False, False, <int> m, <int> G, <int> H, one, h, <int> H,
                 w_t, <int> G, zero, hh, <int> G)
        for i in range(m):
            if t < lengths[lo + i]:
                _row_after(H, &xg[t, lo + i, 0], hh + i * G, &b_hh[0], h + i * H,
                           &out[t, lo + i, 0])
                if keep:
                    memcpy(&aux[t, lo + i, 0], hh + i * G + 2 * H, H * sizeof(floating))
            else:
                memset(&out[t, lo + i, 0], 0, H * sizeof(floating))
                if keep:
                    memset(&aux[t, lo + i, 0], 0, H * sizeof(floating))


cdef void _forward_before(Py_ssize_t lo, Py_ssize_t m, bint reverse, bint keep,
                          floating[:, :, ::1] xg, const floating *w_t,
                          const floating[::1] b_hh, const int64_t[::1] lengths,  # IN
                          floating[:, :, ::1] out, floating[:, ::1] h_n,
                          floating[:, :, ::1] h_prev, floating[:, :, ::1] aux,  # OUT
                          floating *work) noexcept nogil:
    """reset="before" for rows lo .. lo+m-1; w_t is W_hh^T (H, 3H); work is (m, 4H) scratch: h W_hr,hz^T and
    (r*h) W_hn^T side by side as (m, 3H), then r*h as (m, H)."""
    cdef Py_ssize_t T = xg.shape[0], G = xg.shape[2], H = G // 3
    cdef Py_ssize_t step, t, i
    cdef floating *h = &h_n[lo, 0]
    cdef floating *rh = work + m * G
    cdef floating one = 1, zero = 0
    for step in range(T):
        t = T - 1 - step if reverse else step
        if keep:
            memcpy(&h_prev[t, lo, 0], h, m * H * sizeof(floating))
        gemm(False, False, <int> m, <int> (2 * H), <int> H, one, h, <int> H,
             w_t, <int> G, zero, work, <int> G)
        for i in range(m):
            if t < lengths[lo + i]:
                _row_rz_before(H, &xg[t, lo + i, 0], work + i * G, &b_hh[0], h + i * H,
                               rh + i * H)
            else:  # its GEMM row is discarded; keep it finite
                memset(rh + i * H, 0, H * sizeof(floating))
        gemm(False, False, <int> m, <int> H, <int> H, one, rh, <int> H,
             w_t + 2 * H, <int> G, zero, work + 2 * H, <int> G)
        for i in range(m):
            if t < lengths[lo + i]:
                _row_n_before(H, &xg[t, lo + i, 0], work + i * G + 2 * H, &b_hh[0],
                              h + i * H, &out[t, lo + i, 0])
            else:
                memset(&out[t, lo + i, 0], 0, H * sizeof(floating))
        if keep:
            memcpy(&aux[t, lo, 0], rh, m * H * sizeof(floating))


cdef void _backward_after(Py_ssize_t lo, Py_ssize_t m, bint reverse,
                          const floating[:, :, ::1] d_out, const floating[:, ::1] w_hh,
                          const int64_t[::1] lengths, const floating[:, :, ::1] h_prev,
                          const floating[:, :, ::1] gates, const floating[:, :, ::1] aux,  # IN
                          floating[:, :, ::1] d_ih, floating[:, :, ::1] d_hh,
                          floating[:, ::1] dh0,  # OUT
                          const floating *w_t, floating *work) noexcept nogil:
    """reset="after" for rows lo .. lo+m-1; dh0's rows hold d_h_n on entry and
    the running gradient at the state throughout. With w_t (W_hh^T, (H, 3H)) given,
    d_hh W_hh is taken tall, as (W_hh^T d_hh^T)^T, in work ((4H, m) scratch)."""
    cdef Py_ssize_t T = gates.shape[0], G = gates.shape[2], H = G // 3
    cdef Py_ssize_t step, t, i, b
    cdef floating *dh = &dh0[lo, 0]
    cdef floating *d_t = work
    cdef floating *dh_rec_t = work + G * m
    cdef floating one = 1
    for step in range(T):
        t = step if reverse else T - 1 - step
        for i in range(m):
            b = lo + i
            if t < lengths[b]:
                _grad_row_after(H, &d_out[t, b, 0], &gates[t, b, 0], &h_prev[t, b, 0],
                                &aux[t, b, 0], dh + i * H, &d_ih[t, b, 0], &d_hh[t, b, 0])
            else:
                memset(&d_ih[t, b, 0], 0, G * sizeof(floating))
                memset(&d_hh[t, b, 0], 0, G * sizeof(floating))
        # dh += d_hh W_hh; the zero rows of skipped steps add exactly nothing
        if w_t != NULL:
            _times_tall(m, G, H, &d_hh[t, lo, 0], w_t, d_t, dh_rec_t, True, dh)
        else:
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
    cdef Py_ssize_t step, t, i, b
    cdef floating *dh = &dh0[lo, 0]
    cdef floating one = 1, zero = 0
    for step in range(T):
        t = step if reverse else T - 1 - step
        for i in range(m):
            b = lo + i
            if t < lengths[b]:
                _grad_row_nz_before(H, &d_out[t, b, 0], &gates[t, b, 0], &h_prev[t, b, 0],
                                    dh + i * H, &d_ih[t, b, 0])
            else:
                memset(&d_ih[t, b, 0], 0, G * sizeof(floating))
        # drh = dn_pre W_hn
        gemm(False, False, <int> m, <int> H, <int> H, one, &d_ih[t, lo, 2 * H], <int> G,
             &w_hh[2 * H, 0], <int> H, zero, drh, <int> H)
        for i in range(m):
            b = lo + i
            if t < lengths[b]:
                _grad_row_r_before(H, &gates[t, b, 0], &h_prev[t, b, 0], drh + i * H,
                                   dh + i * H, &d_ih[t, b, 0])
        # dh += d_rz W_hr,hz
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


def forward_steps(floating[:, :, ::1] xg not None, const floating[:, ::1] h0 not None,
                  const floating[:, ::1] w_hh not None, const floating[::1] b_hh not None,
                  const int64_t[::1] lengths not None, bint reverse, bint reset_after,
                  Py_ssize_t rows, bint tall,  # IN
                  floating[:, :, ::1] out not None, floating[:, ::1] h_n not None,
                  floating[:, :, ::1] h_prev not None, floating[:, :, ::1] aux not None):  # OUT
    """Run the recurrence over all T steps.

    xg : (T, B, 3H) IN/OUT, x W_ih^T + b_ih on entry, the activated gates r, z, n on exit
    h0 : (B, H), w_hh : (3H, H), b_hh : (3H,), lengths : (B,) int64 IN
    rows : rows per block, from the shapes alone (never the thread count) IN
    tall : reset="after" only: take h W_hh^T as (W_hh h^T)^T
        (``fastgru.backends._blas.tall_product``) IN
    out : (T, B, H), h_n : (B, H) OUT
    h_prev, aux : (T, B, H) OUT, the cache (see ``fastgru.backends.reference.forward``),
        or both (0, B, H) when not kept. On steps past a sequence's length (which
        backward skips) xg keeps the projection and aux is 0.
    All arrays C-contiguous and of one float dtype.
    """
    cdef Py_ssize_t T = xg.shape[0], B = xg.shape[1], G = xg.shape[2], H = G // 3
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    cdef Py_ssize_t n_blocks = (B + rows - 1) // rows, blk, lo, m
    if H < 1 or G != 3 * H:
        raise ValueError(f"xg must have shape (T, B, 3*H) with H >= 1, got {_dims(xg.shape, 3)}")
    _expect("h0", _dims(h0.shape, 2), (B, H))
    _expect("w_hh", _dims(w_hh.shape, 2), (G, H))
    _expect("b_hh", _dims(b_hh.shape, 1), (G,))
    _expect("lengths", _dims(lengths.shape, 1), (B,))
    _expect("out", _dims(out.shape, 3), (T, B, H))
    _expect("h_n", _dims(h_n.shape, 2), (B, H))
    cdef bint keep = h_prev.shape[0] == T and T > 0
    if _dims(h_prev.shape, 3) not in ((T, B, H), (0, B, H)):
        raise ValueError(f"h_prev must have shape {(T, B, H)} (cache kept) or {(0, B, H)}, "
                         f"got {_dims(h_prev.shape, 3)}")
    _expect("aux", _dims(aux.shape, 3), _dims(h_prev.shape, 3))
    # W_hh^T, C-ordered, so that each per-step product is a plain C x C GEMM;
    # then (B, 4H) of per-row scratch (a block uses its own rows), twice that
    # for the tall product.
    tall = tall and reset_after
    cdef Py_ssize_t per_row = 8 * H if tall else 4 * H
    cdef floating *w_t = <floating *> malloc((G * H + B * per_row) * sizeof(floating))
    cdef floating *work = w_t + G * H
    cdef const floating *w = &w_hh[0, 0] if tall else NULL
    cdef Py_ssize_t i, j
    if w_t == NULL:
        raise MemoryError()
    cdef int n_threads = _threads_for(n_blocks)
    try:
        with nogil:
            for i in range(G):
                for j in range(H):
                    w_t[j * G + i] = w_hh[i, j]
            for blk in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
                lo = blk * rows
                m = min(rows, B - lo)
                memmove(&h_n[lo, 0], &h0[lo, 0], m * H * sizeof(floating))  # may alias
                if reset_after:
                    _forward_after(lo, m, reverse, keep, xg, w_t, w, b_hh, lengths,
                                   out, h_n, h_prev, aux, work + lo * per_row)
                else:
                    _forward_before(lo, m, reverse, keep, xg, w_t, b_hh, lengths,
                                    out, h_n, h_prev, aux, work + lo * per_row)
    finally:
        free(w_t)


def backward_steps(const floating[:, :, ::1] d_out not None, const floating[:, ::1] d_h_n not None,
                   const floating[:, ::1] w_hh not None, const int64_t[::1] lengths not None,
                   bint reverse, bint reset_after, Py_ssize_t rows, bint tall,  # IN
                   const floating[:, :, ::1] h_prev not None, const floating[:, :, ::1] gates not None,
                   const floating[:, :, ::1] aux not None,  # IN: the forward cache
                   floating[:, :, ::1] d_ih not None, floating[:, :, ::1] d_hh not None,
                   floating[:, ::1] dh0 not None):  # OUT
    """Walk time backwards.

    d_out : (T, B, H), d_h_n : (B, H), w_hh : (3H, H), lengths : (B,) int64 IN
    rows : rows per block, as given to ``forward_steps`` IN
    tall : reset="after" only: take d_hh W_hh as (W_hh^T d_hh^T)^T IN
    h_prev, gates, aux : the cache ``forward_steps`` filled IN
    d_ih : (T, B, 3H) OUT, the pre-activation gate gradients (r, z, n), 0 on skipped steps
    d_hh : (T, B, 3H) OUT, the same with the gradient at W_hn's output in the n part;
        for reset="before" it equals d_ih: pass d_ih itself to skip the copy
    dh0 : (B, H) OUT
    """
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1], G = gates.shape[2], H = G // 3
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    cdef Py_ssize_t n_blocks = (B + rows - 1) // rows, blk, lo, m
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
    tall = tall and reset_after
    # scratch: (B, H) for reset="before"'s drh; W_hh^T and (B, 4H) for the tall product
    cdef Py_ssize_t size = G * H + B * 4 * H if tall else B * H
    cdef floating *drh = <floating *> malloc(max(size, 1) * sizeof(floating))
    if drh == NULL:
        raise MemoryError()
    cdef floating *w_t = drh if tall else NULL
    cdef Py_ssize_t i, j
    if tall:
        for i in range(G):
            for j in range(H):
                w_t[j * G + i] = w_hh[i, j]
    cdef int n_threads = _threads_for(n_blocks)
    try:
        with nogil:
            for blk in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
                lo = blk * rows
                m = min(rows, B - lo)
                memmove(&dh0[lo, 0], &d_h_n[lo, 0], m * H * sizeof(floating))  # may alias
                if reset_after:
                    _backward_after(lo, m, reverse, d_out, w_hh, lengths, h_prev, gates, aux,
                                    d_ih, d_hh, dh0, w_t,
                                    drh + G * H + lo * 4 * H if tall else NULL)
                else:
                    _backward_before(lo, m, reverse, d_out, w_hh, lengths, h_prev, gates,
                                     d_ih, dh0, drh + lo * H)
    finally:
        free(drh)
    if not reset_after and T > 0 and B > 0 and &d_hh[0, 0, 0] != &d_ih[0, 0, 0]:
        d_hh[...] = d_ih


def step(const floating[:, ::1] x not None, const floating[:, ::1] h not None,
         const floating[:, ::1] w_ih not None, const floating[:, ::1] w_hh not None,
         const floating[::1] b_ih not None, const floating[::1] b_hh not None,
         bint reset_after,  # IN
         floating[:, ::1] out not None):  # OUT
    """One step for a few rows (GRUCell), serial: the contract of
    ``fastgru.backends.reference.step``. Two GEMMs over all rows (three for
    reset="before") and the recurrence's own row loops; no OpenMP region, no
    projection pass and no BLAS thread limit, which would all cost more than a
    streaming step itself (29 us through forward_steps against ~3 us here, B=1, H=64).

    x : (B, I), h : (B, H), w_ih : (3H, I), w_hh : (3H, H), b_ih, b_hh : (3H,) IN
    out : (B, H) OUT, the next state
    """
    cdef Py_ssize_t B = h.shape[0], H = h.shape[1], I = x.shape[1], G = 3 * H
    if H < 1:
        raise ValueError(f"h must have shape (B, H) with H >= 1, got {_dims(h.shape, 2)}")
    _expect("x", _dims(x.shape, 2), (B, I))
    _expect("w_ih", _dims(w_ih.shape, 2), (G, I))
    _expect("w_hh", _dims(w_hh.shape, 2), (G, H))
    _expect("b_ih", _dims(b_ih.shape, 1), (G,))
    _expect("b_hh", _dims(b_hh.shape, 1), (G,))
    _expect("out", _dims(out.shape, 2), (B, H))
    if B == 0:
        return
    # per row: g (3H) the input gates, hh (3H) h W_hh^T, rh (H) r * h
    cdef floating *work = <floating *> malloc(B * 7 * H * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    cdef floating *g = work
    cdef floating *hh = work + B * G
    cdef floating *rh = work + 2 * B * G
    cdef floating one = 1, zero = 0
    cdef Py_ssize_t b, j
    try:
        with nogil:
            for b in range(B):
                memcpy(g + b * G, &b_ih[0], G * sizeof(floating))
            if I > 0:
                gemm(False, True, <int> B, <int> G, <int> I, one, &x[0, 0], <int> I,
                     &w_ih[0, 0], <int> I, one, g, <int> G)
            # the state is updated in place by the row loops: start from a copy in out
            memcpy(&out[0, 0], &h[0, 0], B * H * sizeof(floating))
            if reset_after:
                gemm(False, True, <int> B, <int> G, <int> H, one, &h[0, 0], <int> H,
                     &w_hh[0, 0], <int> H, zero, hh, <int> G)
                for b in range(B):
                    _row_after(H, g + b * G, hh + b * G, &b_hh[0], &out[b, 0], &out[b, 0])
            else:
                gemm(False, True, <int> B, <int> (2 * H), <int> H, one, &h[0, 0], <int> H,
                     &w_hh[0, 0], <int> H, zero, hh, <int> G)
                for b in range(B):
                    _row_rz_before(H, g + b * G, hh + b * G, &b_hh[0], &h[b, 0], rh + b * H)
                gemm(False, True, <int> B, <int> H, <int> H, one, rh, <int> H,
                     &w_hh[2 * H, 0], <int> H, zero, hh + 2 * H, <int> G)
                for b in range(B):
                    _row_n_before(H, g + b * G, hh + b * G + 2 * H, &b_hh[0], &out[b, 0],
                                  &out[b, 0])
    finally:
        free(work)
