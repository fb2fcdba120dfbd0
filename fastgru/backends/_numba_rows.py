"""The row kernels of the Numba engine: which rows and units a piece owns, and the
gate math on one row's units after its product. The C twin is
``fastgru_ext/_rows.pxd``: the same functions, with the same names, in the same
order and with the same order of operations, so the two backends give the same bits.

Each function is one loop over the units of one row: slices in, indexed with j
alone, an in-place update written through the very view it reads. Numba then
vectorizes each loop (with offsets into whole rows, or two views of one array, the
same loop ran scalar: 15-60 ns per unit against 2-4). The twin takes a pointer to
each slice's first element and the count n instead.
"""
from numba import njit

from ._numba_cache import CACHE
from ._numba_math import like, sigmoid, tanh

_JIT = dict(nogil=True, cache=CACHE, error_model="numpy")


@njit(**_JIT)
def span(n, tid, nthreads):
    """The contiguous share [lo, hi) of n items of thread tid."""
    return n * tid // nthreads, n * (tid + 1) // nthreads


@njit(**_JIT)
def piece(p, row_blocks, rows, U, B, H):
    """Piece p of a step (``_layout``: numbered chunk-major): (chunk, first row, rows,
    first unit, units)."""
    ch = p // row_blocks
    r0 = (p % row_blocks) * rows
    u0 = ch * U
    return ch, r0, min(B, r0 + rows) - r0, u0, min(H, u0 + U) - u0


# ---- forward ----------------------------------------------------------------------

@njit(**_JIT)
def sigmoid_of_sum(gx, s, bias):
    """s := sigmoid(gx + s + bias), in place."""
    for j in range(s.shape[0]):
        s[j] = sigmoid(gx[j] + s[j] + bias[j])


@njit(**_JIT)
def add_into(s, bias):
    """s := s + bias, in place."""
    for j in range(s.shape[0]):
        s[j] = s[j] + bias[j]


@njit(**_JIT)
def candidate_mix(gx, r, s, z, h, dst, o):
    """reset="after"'s n and the new state: s := tanh(gx + r * s) (s holding hn_lin),
    then dst := (1 - z) * s + z * h and o := dst."""
    one = like(dst, 1.0)
    for j in range(dst.shape[0]):
        c = tanh(gx[j] + r[j] * s[j])
        s[j] = c
        v = (one - z[j]) * c + z[j] * h[j]
        dst[j] = v
        o[j] = v


@njit(**_JIT)
def tanh_mix(gx, s, bias, z, h, dst, o):
    """reset="before"'s n and the new state: s := tanh(gx + s + bias), then
    dst := (1 - z) * s + z * h and o := dst."""
    one = like(dst, 1.0)
    for j in range(dst.shape[0]):
        c = tanh(gx[j] + s[j] + bias[j])
        s[j] = c
        v = (one - z[j]) * c + z[j] * h[j]
        dst[j] = v
        o[j] = v


@njit(**_JIT)
def product_of(a, b, dst):
    """dst := a * b."""
    for j in range(dst.shape[0]):
        dst[j] = a[j] * b[j]


@njit(**_JIT)
def sum_of(a, b, dst):
    """dst := a + b."""
    for j in range(dst.shape[0]):
        dst[j] = a[j] + b[j]


@njit(**_JIT)
def copy(src, dst):
    """dst := src."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(**_JIT)
def zero(dst):
    """dst := 0."""
    for j in range(dst.shape[0]):
        dst[j] = 0.0


@njit(**_JIT)
def finish_row(t, b, u0, valid, need_cache, H, r, z, n, aux_row, h_old, h_new, out,
               h_prev, gates, aux):
    """The rest of one row's units after its gates (the new state and the output are
    written when valid): a padded step keeps the state and gives 0; the cache when
    kept."""
    u1 = u0 + r.shape[0]
    if not valid:
        copy(h_old, h_new[b, u0:u1])
        zero(out[t, b, u0:u1])
    if need_cache:
        copy(h_old, h_prev[t, b, u0:u1])
        g = gates[t, b]
        if valid:
            copy(r, g[u0:u1])
            copy(z, g[H + u0:H + u1])
            copy(n, g[2 * H + u0:2 * H + u1])
            copy(aux_row, aux[t, b, u0:u1])
        else:
            zero(g[u0:u1])
            zero(g[H + u0:H + u1])
            zero(g[2 * H + u0:2 * H + u1])
            zero(aux[t, b, u0:u1])


# ---- backward ---------------------------------------------------------------------

@njit(**_JIT)
def grad_gates(dh, d_out, z, n, h_prev, dh_t, dh_dir, dz, dn):
    """One row's units: dh_t = dh + d_out, the z and n pre-activation gradients, and
    the direct part of dh_{t-1} (dh_t * z)."""
    one = like(dh, 1.0)
    sum_of(dh, d_out, dh_t)
    for j in range(dn.shape[0]):
        dn[j] = dh_t[j] * (one - z[j]) * (one - n[j] * n[j])
    for j in range(dz.shape[0]):
        dz[j] = dh_t[j] * (h_prev[j] - n[j]) * z[j] * (one - z[j])
    product_of(dh_t, z, dh_dir)


@njit(**_JIT)
def grad_r(a, b, r, dr):
    """dr := a * b * r * (1 - r), the gradient at r's pre-activation."""
    one = like(dr, 1.0)
    for j in range(dr.shape[0]):
        dr[j] = a[j] * b[j] * r[j] * (one - r[j])


@njit(**_JIT)
def add_product(dst, a, b):
    """dst := dst + a * b, in place."""
    for j in range(dst.shape[0]):
        dst[j] = dst[j] + a[j] * b[j]
