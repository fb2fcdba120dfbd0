"""Numba backend: the recurrence as one compiled, parallel kernel per pass.

The work splits three ways:

* the input projection ``x W_ih^T + b_ih`` for all T steps is one GEMM (NumPy,
  multithreaded BLAS), done before the recurrence;
* the recurrence: batch rows are independent through time, so the batch is cut
  into a fixed set of row blocks and each block walks all T steps on its own
  (``prange`` over blocks, one parallel region per pass, no barrier per step).
  Per step a block does its (rows, H) x (H, 3H) product (taken tall for a big
  W_hh: ``_times``) and one loop per gate, in the data's own precision
  (``_numba_math``). BLAS is limited to one thread meanwhile: Numba's threads and
  BLAS's threads fighting over the cores made a naive kernel 78x slower on a
  2-core machine;
* the weight gradients and dx are products over all T*B rows, afterwards
  (``_blas.weight_grads``).

The row blocks depend only on the shapes, never on the thread count, so results
are bitwise identical for any number of threads.

Each reset variant has its own kernels, compiled on first use: a program pays
the compile time of the variant it runs, and the prange bodies stay one call
(the parfor pass compiles what it holds twice).
"""
import numpy as np
from numba import njit, prange
from numba.extending import overload

from . import _blas
from ._numba_math import like, sigmoid, tanh

_threads_launched = False


def _launch_threading_layer():
    """Start Numba's threading layer inside _blas.openmp_loading(), so that its
    OpenMP runtime loads there. Called before the first parallel kernel, not at
    import: a process that forks before using fastgru must not hold a started
    GNU OpenMP (the child would be killed), and a threading layer that cannot load
    (NUMBA_THREADING_LAYER=tbb without tbb) raises here, at the call, as Numba would."""
    global _threads_launched
    if _threads_launched:
        return
    try:
        from numba.np.ufunc.parallel import _launch_threads
    except ImportError:   # a Numba without it: the layer starts in the kernel call
        _threads_launched = True
        return
    with _blas.openmp_loading():
        _launch_threads()
    _threads_launched = True


@njit(cache=True, error_model="numpy")
def _step_after(g, hh, b_hh, h, out):
    """One row, reset="after": g holds x W_ih^T + b_ih in, r, z, n out; h is updated.

    One loop per gate: a loop that writes one section of g vectorizes at full width
    (float32, H=50-128: 1.8-3.2 ns per unit against 2.3-4.0 fused into one loop).
    """
    H = h.shape[0]
    one = like(h, 1.0)
    for j in range(H):
        g[j] = sigmoid(g[j] + hh[j] + b_hh[j])
    for j in range(H):
        g[H + j] = sigmoid(g[H + j] + hh[H + j] + b_hh[H + j])
    for j in range(H):
        n = tanh(g[2 * H + j] + g[j] * (hh[2 * H + j] + b_hh[2 * H + j]))
        g[2 * H + j] = n
        z = g[H + j]
        h_new = (one - z) * n + z * h[j]
        h[j] = h_new
        out[j] = h_new


@njit(cache=True, error_model="numpy")
def _gates_rz(g, hrz, b_hh, h, rh):
    """One row, reset="before", first half: r and z into g, r * h into rh."""
    H = h.shape[0]
    for j in range(H):
        r = sigmoid(g[j] + hrz[j] + b_hh[j])
        g[j] = r
        rh[j] = r * h[j]
    for j in range(H):
        g[H + j] = sigmoid(g[H + j] + hrz[H + j] + b_hh[H + j])


@njit(cache=True, error_model="numpy")
def _step_before(g, hn, b_hh, h, out):
    """One row, reset="before", second half: n from (r * h) W_hn^T, then h."""
    H = h.shape[0]
    one = like(h, 1.0)
    for j in range(H):
        z = g[H + j]
        n = tanh(g[2 * H + j] + hn[j] + b_hh[2 * H + j])
        g[2 * H + j] = n
        h_new = (one - z) * n + z * h[j]
        h[j] = h_new
        out[j] = h_new


@njit(cache=True, error_model="numpy")
def _grad_after(d_out, g, h_prev, hn_lin, dh, d_ih, d_hh):
    """One row, reset="after": gate gradients; dh becomes its direct part dh * z."""
    H = dh.shape[0]
    one = like(dh, 1.0)
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


@njit(cache=True, error_model="numpy")
def _grad_n_before(d_out, g, h_prev, dh, dn_pre, d_rz):
    """One row, reset="before", first half: n and z gradients; dh becomes dh * z."""
    H = dh.shape[0]
    one = like(dh, 1.0)
    for j in range(H):
        z = g[H + j]
        n = g[2 * H + j]
        dh_t = dh[j] + d_out[j]
        dn_pre[j] = dh_t * (one - z) * (one - n * n)
        d_rz[H + j] = dh_t * (h_prev[j] - n) * z * (one - z)
        dh[j] = dh_t * z


@njit(cache=True, error_model="numpy")
def _grad_rz_before(g, h_prev, drh, dn_pre, dh, d_rz, d_pre):
    """One row, reset="before", second half: r gradient from drh = dn_pre W_hn."""
    H = dh.shape[0]
    one = like(dh, 1.0)
    for j in range(H):
        r = g[j]
        d_rz[j] = drh[j] * h_prev[j] * r * (one - r)
        dh[j] += drh[j] * r
        d_pre[j] = d_rz[j]
        d_pre[H + j] = d_rz[H + j]
        d_pre[2 * H + j] = dn_pre[j]


# Explicit loops rather than slice assignment: Numba's array assignment compiles a
# shape-mismatch error path that cost ~7 s of the first call's compile time.
@njit(cache=True)
def _copy_rows(src, dst):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@njit(cache=True)
def _add_valid_rows(src, lengths, t, lo, dst):
    """dst[i] += src[i] for the rows whose sequence has a step t."""
    for i in range(src.shape[0]):
        if t < lengths[lo + i]:
            for j in range(src.shape[1]):
                dst[i, j] += src[i, j]


@njit(cache=True)
def _transpose(src, dst):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[j, i] = src[i, j]


def _times(a, w, a_t, p_t, out):
    """out := a @ w in the kernels, taken tall when w is Fortran-ordered: as
    (w^T a^T)^T, with a_t and p_t as scratch for the transposes (see
    _blas.tall_product). The choice is by type, so a kernel compiles one way only."""
    raise NotImplementedError


@overload(_times)
def _times_impl(a, w, a_t, p_t, out):
    if w.layout == "F":
        def tall(a, w, a_t, p_t, out):
            _transpose(a, a_t)
            np.dot(w.T, a_t, p_t)
            _transpose(p_t, out)
        return tall
    return lambda a, w, a_t, p_t, out: np.dot(a, w, out)


@njit(cache=True, error_model="numpy")
def _forward_block_after(xg, h0, w, b_hh, lengths, reverse, keep, lo, hi,  # IN
                         out, h_n, h_prev, aux):  # OUT
    """Rows lo:hi through all steps, reset="after". xg (T, B, 3H) holds
    x W_ih^T + b_ih on entry and the activated gates r, z, n on exit. w is W_hh^T
    (H, 3H), C-ordered, or Fortran-ordered for the tall product (hidden_weight()).
    h_prev and aux (hn_lin) are written when keep."""
    T, _, G = xg.shape
    H = G // 3
    m = hi - lo
    h = h0[lo:hi].copy()
    hh = np.empty((m, G), xg.dtype)
    h_t = np.empty((H, m), xg.dtype)       # scratch of the tall product
    hh_t = np.empty((G, m), xg.dtype)
    for step in range(T):
        t = T - 1 - step if reverse else step
        if keep:
            _copy_rows(h, h_prev[t, lo:hi])
        _times(h, w, h_t, hh_t, hh)
        for i in range(hi - lo):
            b = lo + i
            if t >= lengths[b]:  # past the end: state frozen, output 0
                out[t, b] = 0.0
                if keep:
                    aux[t, b] = 0.0
                continue
            _step_after(xg[t, b], hh[i], b_hh, h[i], out[t, b])
            if keep:
                for j in range(H):
                    aux[t, b, j] = hh[i, 2 * H + j] + b_hh[2 * H + j]
    _copy_rows(h, h_n[lo:hi])


@njit(cache=True, error_model="numpy")
def _forward_block_before(xg, h0, w_rz_T, w_n_T, b_hh, lengths, reverse, keep, lo, hi,  # IN
                          out, h_n, h_prev, aux):  # OUT
    """As _forward_block_after for reset="before"; w_rz_T (H, 2H) and w_n_T (H, H)
    are the transposed r, z and n blocks of W_hh; aux gets r * h."""
    T = xg.shape[0]
    H = h0.shape[1]
    h = h0[lo:hi].copy()
    hrz = np.empty((hi - lo, 2 * H), xg.dtype)
    rh = np.empty((hi - lo, H), xg.dtype)
    hn = np.empty((hi - lo, H), xg.dtype)
    for step in range(T):
        t = T - 1 - step if reverse else step
        if keep:
            _copy_rows(h, h_prev[t, lo:hi])
        np.dot(h, w_rz_T, hrz)
        for i in range(hi - lo):
            _gates_rz(xg[t, lo + i], hrz[i], b_hh, h[i], rh[i])
        np.dot(rh, w_n_T, hn)
        for i in range(hi - lo):
            b = lo + i
            if t >= lengths[b]:
                out[t, b] = 0.0
                if keep:
                    aux[t, b] = 0.0
                continue
            _step_before(xg[t, b], hn[i], b_hh, h[i], out[t, b])
            if keep:
                for j in range(H):
                    aux[t, b, j] = rh[i, j]
    _copy_rows(h, h_n[lo:hi])


@njit(parallel=True, cache=True)
def _forward_after(xg, h0, w, b_hh, lengths, reverse, keep, rows, out, h_n, h_prev, aux):
    B = xg.shape[1]
    for blk in prange((B + rows - 1) // rows):
        _forward_block_after(xg, h0, w, b_hh, lengths, reverse, keep, blk * rows,
                             min(B, blk * rows + rows), out, h_n, h_prev, aux)


@njit(parallel=True, cache=True)
def _forward_before(xg, h0, w_rz_T, w_n_T, b_hh, lengths, reverse, keep, rows,
                    out, h_n, h_prev, aux):
    B = xg.shape[1]
    for blk in prange((B + rows - 1) // rows):
        _forward_block_before(xg, h0, w_rz_T, w_n_T, b_hh, lengths, reverse, keep, blk * rows,
                              min(B, blk * rows + rows), out, h_n, h_prev, aux)


@njit(cache=True, error_model="numpy")
def _backward_block_after(d_out, d_h_n, w, lengths, reverse, lo, hi,  # IN
                          h_prev, gates, aux,  # IN: the forward cache
                          d_ih, d_hh, dh0):  # OUT
    """Rows lo:hi backwards through time, reset="after". Writes the pre-activation
    gate gradients d_ih (T, B, 3H: r, z, n) and d_hh (T, B, 3H: r, z and the
    gradient at W_hn h + b_hn), zero on skipped steps, and dh0. w is W_hh (3H, H),
    C-ordered, or Fortran-ordered for the tall product (see backward())."""
    T = gates.shape[0]
    H = d_h_n.shape[1]
    m = hi - lo
    dh = d_h_n[lo:hi].copy()
    dh_rec = np.empty((m, H), gates.dtype)    # d_hh W_hh, the recurrent part
    d_t = np.empty((3 * H, m), gates.dtype)   # scratch of the tall product
    dh_rec_t = np.empty((H, m), gates.dtype)
    for step in range(T):
        t = step if reverse else T - 1 - step
        for i in range(hi - lo):
            b = lo + i
            if t >= lengths[b]:
                d_ih[t, b] = 0.0
                d_hh[t, b] = 0.0
            else:
                _grad_after(d_out[t, b], gates[t, b], h_prev[t, b], aux[t, b], dh[i],
                            d_ih[t, b], d_hh[t, b])
        _times(d_hh[t, lo:hi], w, d_t, dh_rec_t, dh_rec)
        _add_valid_rows(dh_rec, lengths, t, lo, dh)
    _copy_rows(dh, dh0[lo:hi])


@njit(cache=True, error_model="numpy")
def _backward_block_before(d_out, d_h_n, w_rz, w_n, lengths, reverse, lo, hi,  # IN
                           h_prev, gates,  # IN: the forward cache
                           d_pre, dh0):  # OUT
    """As _backward_block_after for reset="before", where the gradients at the input
    and hidden pre-activations are equal (one array, d_pre); w_rz (2H, H) and
    w_n (H, H) are the r, z and n blocks of W_hh."""
    T = gates.shape[0]
    H = d_h_n.shape[1]
    m = hi - lo
    dh = d_h_n[lo:hi].copy()
    dh_rec = np.empty((m, H), gates.dtype)
    drh = np.empty((m, H), gates.dtype)       # gradient at r * h
    dn_pre = np.zeros((m, H), gates.dtype)
    d_rz = np.zeros((m, 2 * H), gates.dtype)
    for step in range(T):
        t = step if reverse else T - 1 - step
        for i in range(m):
            b = lo + i
            if t >= lengths[b]:
                d_pre[t, b] = 0.0
                dn_pre[i] = 0.0
            else:
                _grad_n_before(d_out[t, b], gates[t, b], h_prev[t, b], dh[i], dn_pre[i], d_rz[i])
        np.dot(dn_pre, w_n, drh)
        for i in range(m):
            b = lo + i
            if t < lengths[b]:
                _grad_rz_before(gates[t, b], h_prev[t, b], drh[i], dn_pre[i], dh[i],
                                d_rz[i], d_pre[t, b])
            else:
                d_rz[i] = 0.0
        np.dot(d_rz, w_rz, dh_rec)
        _add_valid_rows(dh_rec, lengths, t, lo, dh)
    _copy_rows(dh, dh0[lo:hi])


@njit(parallel=True, cache=True)
def _backward_after(d_out, d_h_n, w, lengths, reverse, rows, h_prev, gates, aux,
                    d_ih, d_hh, dh0):
    B = gates.shape[1]
    for blk in prange((B + rows - 1) // rows):
        _backward_block_after(d_out, d_h_n, w, lengths, reverse, blk * rows,
                              min(B, blk * rows + rows), h_prev, gates, aux, d_ih, d_hh, dh0)


@njit(parallel=True, cache=True)
def _backward_before(d_out, d_h_n, w_rz, w_n, lengths, reverse, rows, h_prev, gates,
                     d_pre, dh0):
    B = gates.shape[1]
    for blk in prange((B + rows - 1) // rows):
        _backward_block_before(d_out, d_h_n, w_rz, w_n, lengths, reverse, blk * rows,
                               min(B, blk * rows + rows), h_prev, gates, d_pre, dh0)


@njit(cache=True, error_model="numpy")
def _cell_step(x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out):  # IN ..., OUT out
    """One step for a few rows, serial: GEMVs per row and the recurrence's own gate
    loops. No prange and no BLAS thread limit: their costs exceed the step itself."""
    H = h.shape[1]
    g = np.empty(3 * H, x.dtype)
    gh = np.empty(3 * H, x.dtype)
    rh = np.empty(H, x.dtype)
    for b in range(x.shape[0]):
        state = h[b].copy()     # the gate loops update the state in place; h is the caller's
        np.dot(w_ih, x[b], g)
        for j in range(3 * H):
            g[j] += b_ih[j]
        if reset_after:
            np.dot(w_hh, state, gh)
            _step_after(g, gh, b_hh, state, out[b])
        else:
            np.dot(w_hh[:2 * H], state, gh[:2 * H])
            _gates_rz(g, gh, b_hh, state, rh)
            np.dot(w_hh[2 * H:], rh, gh[:H])
            _step_before(g, gh, b_hh, state, out[b])


def step(x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out):
    """Same contract as ``reference.step``."""
    _cell_step(x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out)


def hidden_weight(w_hh, rows):
    """What the forward kernels multiply the state by: W_hh^T, C-ordered, or as a
    Fortran-ordered view where the product is taken tall (_blas.tall_product)."""
    if _blas.tall_product(w_hh.shape[1], rows):
        return w_hh.T
    return np.ascontiguousarray(w_hh.T)


def forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after,
            out, h_n, h_prev, gates, aux):
    """Same contract as ``reference.forward``."""
    H = h0.shape[1]
    keep = h_prev.shape[0] == x.shape[0]

    def recurrence(xg, rows):
        _launch_threading_layer()
        if reset_after:
            _forward_after(xg, h0, hidden_weight(w_hh, rows), b_hh, lengths, reverse, keep,
                           rows, out, h_n, h_prev, aux)
        else:
            _forward_before(xg, h0, np.ascontiguousarray(w_hh[:2 * H].T),
                            np.ascontiguousarray(w_hh[2 * H:].T), b_hh, lengths, reverse, keep,
                            rows, out, h_n, h_prev, aux)
    _blas.forward_frame(x, w_ih, b_ih, gates, keep, recurrence)


def backward(d_out, d_h_n, x, w_ih, w_hh, lengths, reverse, reset_after,
             h_prev, gates, aux, dx, dh0, dw_ih, dw_hh, db_ih, db_hh):
    """Same contract as ``reference.backward``."""
    H = w_hh.shape[1]

    def recurrence(d_ih, d_hh, rows):
        _launch_threading_layer()
        if reset_after:
            # the tall product as in the forward, here d_hh W_hh as (W_hh^T d_hh^T)^T
            w = np.asfortranarray(w_hh) if _blas.tall_product(H, rows) else w_hh
            _backward_after(d_out, d_h_n, w, lengths, reverse, rows, h_prev, gates, aux,
                            d_ih, d_hh, dh0)
        else:  # d_hh is d_ih
            _backward_before(d_out, d_h_n, w_hh[:2 * H], w_hh[2 * H:], lengths, reverse, rows,
                             h_prev, gates, d_ih, dh0)
    _blas.backward_frame(x, w_ih, h_prev, gates, aux, reset_after,
                         (dx, dw_ih, dw_hh, db_ih, db_hh), recurrence)
