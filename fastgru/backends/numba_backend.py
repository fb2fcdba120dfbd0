"""Numba backend: the recurrence as one compiled, parallel kernel per pass.

The work splits three ways:

* the input projection ``x W_ih^T + b_ih`` for all T steps is one GEMM (NumPy,
  multithreaded BLAS), done before the recurrence;
* the recurrence runs in ``_forward_steps`` / ``_backward_steps``. Batch rows are
  independent through time, so the batch is cut into a fixed set of row blocks
  and each block walks all T steps on its own (``prange`` over blocks, one
  parallel region per pass, no barrier per step). Per step a block does its
  (rows, H) x (H, 3H) GEMM and one fused elementwise loop. BLAS is limited to
  one thread meanwhile: Numba's threads and BLAS's threads fighting over the
  cores made a naive kernel 78x slower on a 2-core machine;
* the weight gradients and dx are each one GEMM over all T*B rows, afterwards.

The row blocks depend only on the batch size, never on the thread count, so
results are bitwise identical for any number of threads.
"""
import threading

import numpy as np
from numba import njit, prange

from . import _blas

# Rows per block: small enough to spread a batch over many cores, large enough
# for the per-step GEMM to run at speed.
_BLOCK_ROWS = 8

# Numba's default workqueue threading layer aborts on concurrent parallel calls
# (numba issue 8563), and the BLAS thread limit is process-wide: one call at a time.
_lock = threading.Lock()


@njit(cache=True, inline="always")
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


@njit(parallel=True, cache=True)
def _forward_steps(xg, h0, w_hh, b_hh, lengths, reverse, reset_after, keep,  # IN
                   out, h_n, h_prev, aux):  # OUT
    """Run the recurrence. xg (T, B, 3H) holds x W_ih^T + b_ih on entry and the
    activated gates r, z, n on exit. h_prev, aux (T, B, H) are written when keep."""
    T, B, G = xg.shape
    H = G // 3
    w_rz_T = w_hh[:2 * H].T  # F-ordered views; np.dot reads them without a copy
    w_n_T = w_hh[2 * H:].T
    w_T = w_hh.T
    n_blocks = (B + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for blk in prange(n_blocks):
        lo = blk * _BLOCK_ROWS
        hi = min(B, lo + _BLOCK_ROWS)
        h = h0[lo:hi].copy()
        hh = np.empty((hi - lo, G), xg.dtype)      # h W_hh^T for the block
        rh = np.empty((hi - lo, H), xg.dtype)      # r * h (reset="before")
        hn = np.empty((hi - lo, H), xg.dtype)      # (r * h) W_hn^T (reset="before")
        hrz = np.empty((hi - lo, 2 * H), xg.dtype)
        for step in range(T):
            t = T - 1 - step if reverse else step
            g = xg[t]
            if keep:
                h_prev[t, lo:hi] = h
            if reset_after:
                np.dot(h, w_T, hh)
                for i in range(hi - lo):
                    b = lo + i
                    valid = t < lengths[b]
                    for j in range(H):
                        r = _sigmoid(g[b, j] + hh[i, j] + b_hh[j])
                        z = _sigmoid(g[b, H + j] + hh[i, H + j] + b_hh[H + j])
                        a = hh[i, 2 * H + j] + b_hh[2 * H + j]
                        n = np.tanh(g[b, 2 * H + j] + r * a)
                        g[b, j] = r
                        g[b, H + j] = z
                        g[b, 2 * H + j] = n
                        if keep:
                            aux[t, b, j] = a
                        if valid:
                            h[i, j] = (1.0 - z) * n + z * h[i, j]
                            out[t, b, j] = h[i, j]
                        else:
                            out[t, b, j] = 0.0
            else:
                np.dot(h, w_rz_T, hrz)
                for i in range(hi - lo):
                    b = lo + i
                    for j in range(H):
                        r = _sigmoid(g[b, j] + hrz[i, j] + b_hh[j])
                        g[b, j] = r
                        g[b, H + j] = _sigmoid(g[b, H + j] + hrz[i, H + j] + b_hh[H + j])
                        rh[i, j] = r * h[i, j]
                np.dot(rh, w_n_T, hn)
                for i in range(hi - lo):
                    b = lo + i
                    valid = t < lengths[b]
                    for j in range(H):
                        z = g[b, H + j]
                        n = np.tanh(g[b, 2 * H + j] + hn[i, j] + b_hh[2 * H + j])
                        g[b, 2 * H + j] = n
                        if keep:
                            aux[t, b, j] = rh[i, j]
                        if valid:
                            h[i, j] = (1.0 - z) * n + z * h[i, j]
                            out[t, b, j] = h[i, j]
                        else:
                            out[t, b, j] = 0.0
        h_n[lo:hi] = h


@njit(parallel=True, cache=True)
def _backward_steps(d_out, d_h_n, w_hh, lengths, reverse, reset_after,  # IN
                    h_prev, gates, aux,  # IN: the forward cache
                    d_ih, d_hh, dh0):  # OUT
    """Walk time backwards. Writes the pre-activation gate gradients d_ih
    (T, B, 3H: r, z, n) and d_hh (T, B, 3H: r, z and the gradient at W_hn's
    output), zero on skipped steps, and dh0."""
    T, B, G = gates.shape
    H = G // 3
    w_rz = w_hh[:2 * H]
    w_n = w_hh[2 * H:]
    n_blocks = (B + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for blk in prange(n_blocks):
        lo = blk * _BLOCK_ROWS
        hi = min(B, lo + _BLOCK_ROWS)
        m = hi - lo
        dh = d_h_n[lo:hi].copy()
        dh_rec = np.empty((m, H), gates.dtype)    # d_hh @ W_hh, the recurrent part
        drh = np.empty((m, H), gates.dtype)       # gradient at r * h (reset="before")
        dn_pre = np.empty((m, H), gates.dtype)
        d_rz = np.empty((m, 2 * H), gates.dtype)
        for step in range(T):
            t = step if reverse else T - 1 - step
            g = gates[t]
            hp = h_prev[t]
            if reset_after:
                for i in range(m):
                    b = lo + i
                    valid = t < lengths[b]
                    for j in range(H):
                        r = g[b, j]
                        z = g[b, H + j]
                        n = g[b, 2 * H + j]
                        if valid:
                            dh_t = dh[i, j] + d_out[t, b, j]
                            dn = dh_t * (1.0 - z) * (1.0 - n * n)
                            dz = dh_t * (hp[b, j] - n) * z * (1.0 - z)
                            dr = dn * aux[t, b, j] * r * (1.0 - r)
                            dh[i, j] = dh_t * z
                        else:
                            dn = 0.0
                            dz = 0.0
                            dr = 0.0
                        d_ih[t, b, j] = dr
                        d_ih[t, b, H + j] = dz
                        d_ih[t, b, 2 * H + j] = dn
                        d_hh[t, b, j] = dr
                        d_hh[t, b, H + j] = dz
                        d_hh[t, b, 2 * H + j] = dn * r
                np.dot(d_hh[t, lo:hi], w_hh, dh_rec)
                for i in range(m):
                    for j in range(H):
                        dh[i, j] += dh_rec[i, j]
            else:
                for i in range(m):
                    b = lo + i
                    valid = t < lengths[b]
                    for j in range(H):
                        z = g[b, H + j]
                        n = g[b, 2 * H + j]
                        if valid:
                            dh_t = dh[i, j] + d_out[t, b, j]
                            dn_pre[i, j] = dh_t * (1.0 - z) * (1.0 - n * n)
                            d_rz[i, H + j] = dh_t * (hp[b, j] - n) * z * (1.0 - z)
                            dh[i, j] = dh_t * z
                        else:
                            dn_pre[i, j] = 0.0
                            d_rz[i, H + j] = 0.0
                np.dot(dn_pre, w_n, drh)
                for i in range(m):
                    b = lo + i
                    valid = t < lengths[b]
                    for j in range(H):
                        r = g[b, j]
                        if valid:
                            d_rz[i, j] = drh[i, j] * hp[b, j] * r * (1.0 - r)
                            dh[i, j] += drh[i, j] * r
                        else:
                            d_rz[i, j] = 0.0
                        d_ih[t, b, j] = d_rz[i, j]
                        d_ih[t, b, H + j] = d_rz[i, H + j]
                        d_ih[t, b, 2 * H + j] = dn_pre[i, j]
                        d_hh[t, b, j] = d_rz[i, j]
                        d_hh[t, b, H + j] = d_rz[i, H + j]
                        d_hh[t, b, 2 * H + j] = dn_pre[i, j]
                np.dot(d_rz, w_rz, dh_rec)
                for i in range(m):
                    for j in range(H):
                        dh[i, j] += dh_rec[i, j]
        dh0[lo:hi] = dh


def forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after,
            out, h_n, h_prev, gates, aux):
    """Same contract as ``reference.forward``."""
    T, B, _ = x.shape
    keep = h_prev.shape[0] == T
    xg = gates if keep else np.empty((T, B, w_ih.shape[0]), x.dtype)
    _blas.project(x, w_ih, b_ih, xg)
    with _lock, _blas.single_threaded():
        _forward_steps(xg, h0, w_hh, b_hh, lengths, reverse, reset_after, keep,
                       out, h_n, h_prev, aux)


def backward(d_out, d_h_n, x, w_ih, w_hh, lengths, reverse, reset_after,
             h_prev, gates, aux, dx, dh0, dw_ih, dw_hh, db_ih, db_hh):
    """Same contract as ``reference.backward``."""
    d_ih = np.empty_like(gates)
    d_hh = np.empty_like(gates)
    with _lock, _blas.single_threaded():
        _backward_steps(d_out, d_h_n, w_hh, lengths, reverse, reset_after,
                        h_prev, gates, aux, d_ih, d_hh, dh0)
    _blas.weight_grads(d_ih, d_hh, x, h_prev, aux, w_ih, reset_after,
                       dx, dw_ih, dw_hh, db_ih, db_hh)
