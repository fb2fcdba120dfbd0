# The row kernels of the C engine: which rows and units a piece owns, and the gate
# math on one row's units after its product. The twin of
# fastgru/backends/_numba_rows.py: the same functions, with the same names, in the
# same order and with the same order of operations, so that both backends give the
# same bits. Where the twin takes a slice, these take a pointer to its first element
# and the count n; where it takes a whole array, a pointer to its first element and
# the sizes its indexing needs.
cimport cython
from cython cimport floating

from ._math cimport sigmoid_, tanh_


@cython.cdivision(True)
cdef inline void span(Py_ssize_t n, int tid, int nthreads, Py_ssize_t *lo,
                      Py_ssize_t *hi) noexcept nogil:
    """The contiguous share [lo, hi) of n items of thread tid."""
    lo[0] = n * tid // nthreads
    hi[0] = n * (tid + 1) // nthreads


@cython.cdivision(True)
cdef inline (Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t) piece(
        Py_ssize_t p, Py_ssize_t row_blocks, Py_ssize_t rows, Py_ssize_t U, Py_ssize_t B,
        Py_ssize_t H) noexcept nogil:
    """Piece p of a step (_layout: numbered chunk-major): (chunk, first row, rows,
    first unit, units)."""
    cdef Py_ssize_t ch = p // row_blocks
    cdef Py_ssize_t r0 = (p % row_blocks) * rows
    cdef Py_ssize_t u0 = ch * U
    return (ch, r0, (B if B < r0 + rows else r0 + rows) - r0, u0,
            (H if H < u0 + U else u0 + U) - u0)


# ---- forward ----------------------------------------------------------------------

cdef inline void sigmoid_of_sum(const floating *gx, floating *s, const floating *bias,
                                Py_ssize_t n) noexcept nogil:
    """s := sigmoid(gx + s + bias), in place."""
    cdef Py_ssize_t j
    for j in range(n):
        s[j] = sigmoid_(gx[j] + s[j] + bias[j])


cdef inline void add_into(floating *s, const floating *bias, Py_ssize_t n) noexcept nogil:
    """s := s + bias, in place."""
    cdef Py_ssize_t j
    for j in range(n):
        s[j] = s[j] + bias[j]


cdef inline void candidate_mix(const floating *gx, const floating *r, floating *s,
                               const floating *z, const floating *h, floating *dst,
                               floating *o, Py_ssize_t n) noexcept nogil:
    """reset="after"'s n and the new state: s := tanh(gx + r * s) (s holding hn_lin),
    then dst := (1 - z) * s + z * h and o := dst."""
    cdef Py_ssize_t j
    cdef floating one = 1, v, c
    for j in range(n):
        c = tanh_(gx[j] + r[j] * s[j])
        s[j] = c
        v = (one - z[j]) * c + z[j] * h[j]
        dst[j] = v
        o[j] = v


cdef inline void tanh_mix(const floating *gx, floating *s, const floating *bias,
                          const floating *z, const floating *h, floating *dst, floating *o,
                          Py_ssize_t n) noexcept nogil:
    """reset="before"'s n and the new state: s := tanh(gx + s + bias), then
    dst := (1 - z) * s + z * h and o := dst."""
    cdef Py_ssize_t j
    cdef floating one = 1, v, c
    for j in range(n):
        c = tanh_(gx[j] + s[j] + bias[j])
        s[j] = c
        v = (one - z[j]) * c + z[j] * h[j]
        dst[j] = v
        o[j] = v


cdef inline void product_of(const floating *a, const floating *b, floating *dst,
                            Py_ssize_t n) noexcept nogil:
    """dst := a * b."""
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = a[j] * b[j]


cdef inline void sum_of(const floating *a, const floating *b, floating *dst,
                        Py_ssize_t n) noexcept nogil:
    """dst := a + b."""
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = a[j] + b[j]


cdef inline void copy(const floating *src, floating *dst, Py_ssize_t n) noexcept nogil:
    """dst := src."""
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = src[j]


cdef inline void zero(floating *dst, Py_ssize_t n) noexcept nogil:
    """dst := 0."""
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = 0


cdef inline void finish_row(Py_ssize_t t, Py_ssize_t b, Py_ssize_t u0, bint valid,
                            bint need_cache, Py_ssize_t H, const floating *r,
                            const floating *z, const floating *n_, const floating *aux_row,
                            const floating *h_old, floating *h_new, floating *out,
                            floating *h_prev, floating *gates, floating *aux, Py_ssize_t B,
                            Py_ssize_t n) noexcept nogil:
    """The rest of one row's units after its gates (the new state and the output are
    written when valid): a padded step keeps the state and gives 0; the cache when
    kept. h_new (B, H), out, h_prev and aux (T, B, H), gates (T, B, 3H)."""
    cdef floating *g
    if not valid:
        copy(h_old, h_new + b * H + u0, n)
        zero(out + (t * B + b) * H + u0, n)
    if need_cache:
        copy(h_old, h_prev + (t * B + b) * H + u0, n)
        g = gates + (t * B + b) * 3 * H
        if valid:
            copy(r, g + u0, n)
            copy(z, g + H + u0, n)
            copy(n_, g + 2 * H + u0, n)
            copy(aux_row, aux + (t * B + b) * H + u0, n)
        else:
            zero(g + u0, n)
            zero(g + H + u0, n)
            zero(g + 2 * H + u0, n)
            zero(aux + (t * B + b) * H + u0, n)


# ---- backward ---------------------------------------------------------------------

cdef inline void grad_gates(const floating *dh, const floating *d_out, const floating *z,
                            const floating *n_, const floating *h_prev, floating *dh_t,
                            floating *dh_dir, floating *dz, floating *dn,
                            Py_ssize_t n) noexcept nogil:
    """One row's units: dh_t = dh + d_out, the z and n pre-activation gradients, and
    the direct part of dh_{t-1} (dh_t * z)."""
    cdef Py_ssize_t j
    cdef floating one = 1
    sum_of(dh, d_out, dh_t, n)
    for j in range(n):
        dn[j] = dh_t[j] * (one - z[j]) * (one - n_[j] * n_[j])
    for j in range(n):
        dz[j] = dh_t[j] * (h_prev[j] - n_[j]) * z[j] * (one - z[j])
    product_of(dh_t, z, dh_dir, n)


cdef inline void grad_r(const floating *a, const floating *b, const floating *r, floating *dr,
                        Py_ssize_t n) noexcept nogil:
    """dr := a * b * r * (1 - r), the gradient at r's pre-activation."""
    cdef Py_ssize_t j
    cdef floating one = 1
    for j in range(n):
        dr[j] = a[j] * b[j] * r[j] * (one - r[j])


cdef inline void add_product(floating *dst, const floating *a, const floating *b,
                             Py_ssize_t n) noexcept nogil:
    """dst := dst + a * b, in place."""
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = dst[j] + a[j] * b[j]
