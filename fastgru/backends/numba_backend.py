"""Numba backend: fastgru's engine in Numba (its twin in C is ``fastgru_ext``).

A pass is four kinds of work, each a team kernel ``kernel(..., tid, nthreads,
sync)`` run by ``fastgru._threads.run`` (compiled with ``nogil``: the team is
plain Python threads, no Numba threading layer, no OpenMP, no BLAS):

* the input projection ``x W_ih^T + b_ih`` for all steps, cut by rows;
* the recurrence, each step cut into pieces (row block x unit chunk, see
  ``_layout``) that a thread computes start to end: the product of its rows of
  h with its chunk's packed W_hh^T columns, then the gate math of its units
  (``_numba_rows``, mirrored by ``fastgru_ext/_rows.pxd``); one barrier per step
  (two for reset="before", which needs all of r * h first);
* backward: the same pieces through time in reverse (one barrier per step for
  reset="after", two for "before");
* dx and the weight gradients, cut by rows of dx and by gate rows of the sums.

All products are ``_numba_product.tile``: one fused multiply-add chain per output
element, so no result depends on the thread count or on the batch around a row.
Steps past a sequence's length (padding) never reach a result: they are skipped
in the recurrence and masked out of the weight-gradient sums.
"""
import numpy as np
from numba import njit

from . import _engine
from ._layout import K_BLOCK, PROJECT_ROWS, SUM_GROUPS
from ._numba_cache import CACHE
from ._numba_product import nr_of, tile, tiles_at_once
from ._numba_rows import (
    add_into,
    add_product,
    candidate_mix,
    copy,
    finish_row,
    grad_gates,
    grad_r,
    piece,
    product_of,
    sigmoid_of_sum,
    span,
    sum_of,
    tanh_mix,
    zero,
)
from ._numba_sync import barrier

_JIT = dict(nogil=True, cache=CACHE, error_model="numpy")


@njit(**_JIT)
def _product(a, a_off, lda, m, w, w_tile, n_tiles, K_all, k_first, K, c, ldc, k_block):
    """c[i, j*NR + l] = sum_k a[a_off + i*lda + k] w[w_tile + j, k_first + k, l] for
    i < m, j < n_tiles and k < K; w is packed tile-major (tiles, K_all, NR); c is
    (m, >= n_tiles*NR) flat with row stride ldc. K is cut into blocks of k_block that
    continue the same chains; each call of tile takes 1 or tiles_at_once(mr) tiles."""
    NR = nr_of(a.itemsize)
    wf = w.reshape(-1)
    step = K_all * NR
    for k0 in range(0, max(K, 1), k_block):
        kn = min(K, k0 + k_block) - k0
        w_base = (w_tile * K_all + k_first + k0) * NR
        full = m - m % 4 if m > 4 else 0   # rows in blocks of 4, each block over the
        nt = tiles_at_once(4)               # same few tiles of w while they are hot
        j = 0
        while j < n_tiles:
            t = nt if j + nt <= n_tiles else 1
            for i in range(0, full, 4):
                tile(4, t, a, a_off + i * lda + k0, lda, 1, wf, w_base + j * step, NR, step,
                     c, i * ldc + j * NR, ldc, kn, k0 > 0)
            j += t
        r = m - full                        # the last 1..4 rows: more tiles at once if few
        nt = tiles_at_once(r)
        j = 0
        while j < n_tiles and r > 0:
            t = nt if j + nt <= n_tiles else 1
            tile(r, t, a, a_off + full * lda + k0, lda, 1, wf, w_base + j * step, NR, step,
                 c, full * ldc + j * NR, ldc, kn, k0 > 0)
            j += t


@njit(**_JIT)
def _project_team(x, wp, b, xg, tid, nthreads, sync):
    """xg (N, Gp) := x (N, I) W_ih^T + b, rows cut into fixed pieces; wp is W_ih^T
    packed ((Gp / NR), I, NR); Gp is 3H rounded up to NR."""
    N, I = x.shape
    G = b.shape[0]
    Gp = xg.shape[1]
    NR = nr_of(x.itemsize)
    xf = x.reshape(-1)
    pieces = (N + PROJECT_ROWS - 1) // PROJECT_ROWS
    lo, hi = span(pieces, tid, nthreads)
    for p in range(lo, hi):
        r0 = p * PROJECT_ROWS
        m = min(N, r0 + PROJECT_ROWS) - r0
        c = xg[r0:r0 + m].reshape(-1)
        _product(xf, r0 * I, I, m, wp, 0, Gp // NR, I, 0, I, c, Gp, K_BLOCK)
        for i in range(r0, r0 + m):
            for j in range(G):
                xg[i, j] += b[j]


@njit(**_JIT)
def _forward_team(xg, wf, b_hh, lengths, reverse, reset_after, need_cache, rows, U,  # IN
                  hbuf, rh, scratch,  # WORK: hbuf[0] holds h0 on entry
                  out, h_prev, gates, aux,  # OUT
                  tid, nthreads, sync):
    """The recurrence. xg (T, B, Gp): the projection; wf: W_hh packed per chunk
    (_layout.pack_forward); hbuf (2, B, H): the state, double-buffered (step s reads
    hbuf[s % 2] and writes hbuf[1 - s % 2]); rh (B, H): r * h for reset="before";
    scratch (pieces, rows, 4U): the piece's product (r, z, n) and hn_lin.
    out (T, B, H); when need_cache, h_prev, gates (T, B, 3H) and aux (hn_lin, or
    r * h) are filled for backward."""
    T, B, _ = xg.shape
    H = hbuf.shape[2]
    NR = nr_of(xg.itemsize)
    chunks = (H + U - 1) // U
    row_blocks = (B + rows - 1) // rows
    lo, hi = span(chunks * row_blocks, tid, nthreads)
    tiles = U // NR
    G4 = scratch.shape[2]
    hflat = hbuf.reshape(-1)
    rhf = rh.reshape(-1)
    b_r, b_z, b_n = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
    for s in range(T):
        t = T - 1 - s if reverse else s
        cur = s % 2
        h = hbuf[cur]
        h_new = hbuf[1 - cur]
        for p in range(lo, hi):   # the product of the piece's rows and units, its r and z
            ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
            u1 = u0 + nu
            scr = scratch[p]
            _product(hflat, cur * B * H + r0 * H, H, m, wf, ch * 3 * tiles,
                     (3 if reset_after else 2) * tiles, H, 0, H, scr.reshape(-1), G4, K_BLOCK)
            for i in range(m):
                b = r0 + i
                g = xg[t, b]
                row = scr[i]
                r, z, n, hn_lin = row[:nu], row[U:U + nu], row[2 * U:2 * U + nu], row[3 * U:3 * U + nu]
                h_old = h[b, u0:u1]
                valid = t < lengths[b]
                sigmoid_of_sum(g[u0:u1], r, b_r[u0:u1])
                sigmoid_of_sum(g[H + u0:H + u1], z, b_z[u0:u1])
                if reset_after:
                    if valid:
                        add_into(n, b_n[u0:u1])    # n holds hn_lin = h W_hn^T + b_hn
                        if need_cache:
                            copy(n, hn_lin)
                        candidate_mix(g[2 * H + u0:2 * H + u1], r, n, z, h_old, h_new[b, u0:u1],
                                      out[t, b, u0:u1])
                    finish_row(t, b, u0, valid, need_cache, H, r, z, n, hn_lin, h_old, h_new,
                               out, h_prev, gates, aux)
                else:
                    product_of(r, h_old, rh[b, u0:u1])
        if not reset_after:
            barrier(sync, nthreads)    # the n product needs all of r * h
            for p in range(lo, hi):
                ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
                u1 = u0 + nu
                scr = scratch[p]
                _product(rhf, r0 * H, H, m, wf, ch * 3 * tiles + 2 * tiles, tiles, H, 0, H,
                         scr.reshape(-1)[2 * U:], G4, K_BLOCK)
                for i in range(m):
                    b = r0 + i
                    g = xg[t, b]
                    row = scr[i]
                    r, z, n = row[:nu], row[U:U + nu], row[2 * U:2 * U + nu]
                    h_old = h[b, u0:u1]
                    valid = t < lengths[b]
                    if valid:
                        tanh_mix(g[2 * H + u0:2 * H + u1], n, b_n[u0:u1], z, h_old,
                                 h_new[b, u0:u1], out[t, b, u0:u1])
                    finish_row(t, b, u0, valid, need_cache, H, r, z, n, rh[b, u0:u1], h_old,
                               h_new, out, h_prev, gates, aux)
        barrier(sync, nthreads)


@njit(**_JIT)
def _backward_team(d_out, wb, lengths, reverse, reset_after, rows, U,  # IN
                   h_prev, gates, aux,  # IN: the forward cache
                   dh, dh_dir, scratch,  # WORK: dh (B, H) holds d_h_n on entry, dh0 on exit
                   d_ih, d_hh,  # OUT
                   tid, nthreads, sync):
    """Backpropagation through time with the forward's pieces. wb: W_hh packed per
    chunk (_layout.pack_backward); dh_dir (B, H): the direct part dh_t * z;
    scratch (pieces, rows, 2U): the piece's product, and dh_t. Writes the
    pre-activation gradients d_ih and d_hh (T, B, 3H; d_hh is d_ih for
    reset="before"), zero on padded steps."""
    T, B, G = gates.shape
    H = G // 3
    NR = nr_of(gates.itemsize)
    chunks = (H + U - 1) // U
    row_blocks = (B + rows - 1) // rows
    lo, hi = span(chunks * row_blocks, tid, nthreads)
    tiles = U // NR
    W2 = scratch.shape[2]
    d_ihf = d_ih.reshape(-1)
    d_hhf = d_hh.reshape(-1)
    for s in range(T):
        t = s if reverse else T - 1 - s
        for p in range(lo, hi):   # the gate gradients of this piece's units
            ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
            u1 = u0 + nu
            scr = scratch[p]
            for i in range(m):
                b = r0 + i
                gi = d_ih[t, b]
                gh = d_hh[t, b]
                dr, dz, dn = gi[u0:u1], gi[H + u0:H + u1], gi[2 * H + u0:2 * H + u1]
                if t < lengths[b]:
                    g = gates[t, b]
                    r = g[u0:u1]
                    grad_gates(dh[b, u0:u1], d_out[t, b, u0:u1], g[H + u0:H + u1],
                               g[2 * H + u0:2 * H + u1], h_prev[t, b, u0:u1],
                               scr[i, U:U + nu], dh_dir[b, u0:u1], dz, dn)
                    if reset_after:
                        grad_r(dn, aux[t, b, u0:u1], r, dr)
                        copy(dr, gh[u0:u1])
                        copy(dz, gh[H + u0:H + u1])
                        product_of(dn, r, gh[2 * H + u0:2 * H + u1])
                else:
                    copy(dh[b, u0:u1], dh_dir[b, u0:u1])
                    zero(dr)
                    zero(dz)
                    zero(dn)
                    if reset_after:
                        zero(gh[u0:u1])
                        zero(gh[H + u0:H + u1])
                        zero(gh[2 * H + u0:2 * H + u1])
        barrier(sync, nthreads)
        if not reset_after:   # r's gradient needs drh = dn_pre W_hn over all units
            for p in range(lo, hi):
                ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
                u1 = u0 + nu
                scr = scratch[p]
                # rows 2H..3H of each packed tile: the n gate's
                _product(d_ihf, (t * B + r0) * G + 2 * H, G, m, wb, ch * tiles, tiles,
                         G, 2 * H, H, scr.reshape(-1), W2, K_BLOCK)
                for i in range(m):
                    b = r0 + i
                    if t < lengths[b]:
                        drh = scr[i, :nu]
                        r = gates[t, b, u0:u1]
                        grad_r(drh, h_prev[t, b, u0:u1], r, d_ih[t, b, u0:u1])
                        add_product(dh_dir[b, u0:u1], drh, r)
            barrier(sync, nthreads)
        for p in range(lo, hi):   # dh for this piece's units: direct + d W_hh
            ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
            u1 = u0 + nu
            scr = scratch[p]
            K = G if reset_after else 2 * H
            _product(d_hhf, (t * B + r0) * G, G, m, wb, ch * tiles, tiles, G, 0, K,
                     scr.reshape(-1), W2, K_BLOCK)
            for i in range(m):
                b = r0 + i
                if t < lengths[b]:
                    sum_of(dh_dir[b, u0:u1], scr[i, :nu], dh[b, u0:u1])
                else:
                    copy(dh_dir[b, u0:u1], dh[b, u0:u1])


@njit(**_JIT)
def _dx_team(d_ih, wp, dx, scratch, tid, nthreads, sync):
    """dx (N, I) := d_ih (N, G) W_ih; wp is W_ih packed ((Ip / NR), G, NR);
    scratch (nthreads, PROJECT_ROWS, Ip) holds each piece's padded rows."""
    N, G = d_ih.shape
    I = dx.shape[1]
    NR = nr_of(d_ih.itemsize)
    Ip = scratch.shape[2]
    df = d_ih.reshape(-1)
    scr = scratch[tid]
    sf = scr.reshape(-1)
    pieces = (N + PROJECT_ROWS - 1) // PROJECT_ROWS
    lo, hi = span(pieces, tid, nthreads)
    for p in range(lo, hi):
        r0 = p * PROJECT_ROWS
        m = min(N, r0 + PROJECT_ROWS) - r0
        _product(df, r0 * G, G, m, wp, 0, Ip // NR, G, 0, G, sf, Ip, K_BLOCK)
        for i in range(m):
            for j in range(I):
                dx[r0 + i, j] = scr[i, j]


@njit(**_JIT)
def _sums_team(d, xp, xp_n, n_split, chunk, part, tile_buf, tid, nthreads, sync):
    """Weight and bias gradients: part[c, :] (float64, (G, Ip + 1)) := sum over
    the N rows of d[n, c] * x[n, :] and of d[n, c] (the bias). x is packed
    ((Ip / NR), N, NR) with padded steps zeroed; for gate rows c >= n_split the
    second operand xp_n is used instead (reset="before": W_hn acts on r * h).
    Each weight chain runs over `chunk` rows in d's precision, the chunks added in
    float64; the bias sums run in float64 throughout. Pieces are groups of 4 gate rows."""
    N, G = d.shape
    NR = nr_of(d.itemsize)
    tiles, _, _ = xp.shape
    Ip = tiles * NR
    df = d.reshape(-1)
    groups = (G + 3) // 4
    lo, hi = span(groups, tid, nthreads)
    buf = tile_buf[tid]
    bf = buf.reshape(-1)
    sums = np.zeros(4 * SUM_GROUPS)   # float64 bias sums of one block of gate rows
    for c in range(lo * 4, min(G, hi * 4)):
        for j in range(Ip + 1):
            part[c, j] = 0.0
    # chunk by chunk, a block of gate rows at a time: each tile of x (chunk x NR)
    # serves the whole block from cache (one group at a time streamed all of x:
    # 2.5 GB of traffic at the wide shape). The additions into part keep their order.
    for n0 in range(0, N, chunk):
        kn = min(N, n0 + chunk) - n0
        for q0 in range(lo, hi, SUM_GROUPS):
            q1 = min(hi, q0 + SUM_GROUPS)
            for j in range(tiles):
                for q in range(q0, q1):
                    c0 = q * 4
                    m = min(G, c0 + 4) - c0
                    for side in range(2):   # a group must not straddle n_split: split it
                        a = c0 if side == 0 else max(c0, min(c0 + m, n_split))
                        e = min(c0 + m, n_split) if side == 0 else c0 + m
                        if e <= a:
                            continue
                        xf = (xp if a < n_split else xp_n).reshape(-1)
                        tile(e - a, 1, df, n0 * G + a, 1, G, xf, (j * N + n0) * NR, NR, 0,
                             bf, 0, NR, kn, False)
                        for i in range(e - a):
                            for l in range(NR):
                                part[a + i, j * NR + l] += buf[i, l]
            c_lo = q0 * 4
            c_hi = min(G, q1 * 4)
            for c in range(c_hi - c_lo):   # the bias: one float64 chain per column and chunk
                sums[c] = 0.0
            for n in range(n0, n0 + kn):
                row = d[n, c_lo:c_hi]
                for c in range(c_hi - c_lo):
                    sums[c] += row[c]
            for c in range(c_hi - c_lo):
                part[c_lo + c, Ip] += sums[c]


@njit(**_JIT)
def _step(x, h, wp_ih, wf, b_ih, b_hh, reset_after, U, out):
    """One step of B rows on the calling thread: the projection and one recurrence
    step of the team kernels, run as a team of one (GRUCell). out (B, H) OUT."""
    B, H = h.shape
    G = 3 * H
    NR = nr_of(x.itemsize)
    sync = np.zeros(16, np.int64)
    xg = np.empty((1, B, (G + NR - 1) // NR * NR), x.dtype)
    _project_team(x, wp_ih, b_ih, xg[0], 0, 1, sync)
    hbuf = np.empty((2, B, H), x.dtype)
    for b in range(B):
        for j in range(H):
            hbuf[0, b, j] = h[b, j]
    rows = (B + 3) // 4 * 4
    chunks = (H + U - 1) // U
    none = np.empty((0, B, H), x.dtype)
    _forward_team(xg, wf, b_hh, np.ones(B, np.int64), False, reset_after, False, rows, U,
                  hbuf, np.zeros((B, H), x.dtype), np.zeros((chunks, rows, 4 * U), x.dtype),
                  out.reshape(1, B, H), none, np.empty((0, B, G), x.dtype), none, 0, 1, sync)


KERNELS = _engine.Kernels(_project_team, _forward_team, _backward_team, _dx_team, _sums_team,
                          _step)
forward, backward, step = _engine.entry_points(KERNELS)
prepare_step = _engine.prepare_step


def linear(x, w, b, out):
    """Same contract as ``numpy_backend.linear``."""
    _engine.linear(KERNELS, x, w, b, out)
