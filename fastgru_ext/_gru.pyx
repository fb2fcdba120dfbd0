# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""fastgru's engine in C: the twin of ``fastgru.backends.numba_backend``.

Five team kernels, with the Numba kernels' names (less the underscore), arguments
and meaning, each called as ``kernel(*args, tid, nthreads, sync)`` by
``fastgru._threads.run`` on plain Python threads (``fastgru.backends._engine``
allocates, packs the weights and sizes the team). Each runs its whole body
without the GIL; the team meets at ``barrier`` (``_sync.h``). No OpenMP, no BLAS:

* ``project_team``: the input projection ``x W_ih^T + b_ih`` for all steps, cut by rows;
* ``forward_team``: the recurrence, each step cut into pieces (row block x unit
  chunk, see ``fastgru.backends._layout``, numbered chunk-major, a contiguous
  span of them per thread): the product of its rows of h with its chunk's packed
  W_hh^T columns, then the gate math of its units; one barrier per step (two for
  reset="before", which needs all of r * h first);
* ``backward_team``: the same pieces through time in reverse;
* ``dx_team`` and ``sums_team``: dx and the weight gradients, cut by rows of dx
  and by groups of gate rows of the sums;
* ``step``: one step of a few rows on the calling thread (GRUCell), the
  projection and the recurrence run as a team of one.

All products are ``tile_f32`` / ``tile_f64`` (``_product.h``, in the variant for
the instruction set chosen by ``use_isa``): one multiply-add chain per output
element, as in the Numba twin, so that no result depends on the thread count or on
the batch around a row, and the two backends give the same bits where both fuse
(or both do not fuse) multiply and add. The row kernels (the pieces, the gate math) are
``_rows.pxd``, the twin of ``fastgru.backends._numba_rows``, on the exp, sigmoid and tanh
of ``_math.pxd``, the twin of ``fastgru.backends._numba_math``: the same functions in the
same order of operations.

Each kernel checks its call before it starts (``_checks.pxd``; a wrong call raises, it
does not crash): a wrong dtype, a non-contiguous or read-only output or None raises when the
arguments are converted; then a few integer comparisons check that every array has
the shape the kernel's loops assume, derived from the others, that the lengths are
in [0, T], the team's tid, nthreads and sync, and the plan's rows and U, so that no
index the kernel computes is out of bounds (ValueError naming the argument, what
was expected and what was given). The checks depend only on the arguments the
whole team shares, tid aside: all members raise, or none (a member that raised
would leave the others waiting at a barrier).
"""
from cython cimport floating
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

from ._checks cimport (_K_BLOCK, _PROJECT_ROWS, _SUM_GROUPS, _SYNC, _check_backward,
                       _check_dx, _check_forward, _check_project, _check_step, _check_sums,
                       _put)
from ._math cimport _exp32, _exp64, sigmoid_, tanh_
from ._rows cimport (add_into, add_product, candidate_mix, copy, finish_row, grad_gates,
                     grad_r, piece, product_of, sigmoid_of_sum, span, sum_of, tanh_mix, zero)


cdef extern from "_product.h" nogil:
    int64_t tiles_at_once(int64_t mr)
    void tile_f32(int64_t mr, int64_t nt, const float *a, int64_t a_off, int64_t sa_r,
                  int64_t sa_k, const float *w, int64_t w_off, int64_t ldw, int64_t w_step,
                  float *c, int64_t c_off, int64_t ldc, int64_t K, int cont)
    void tile_f64(int64_t mr, int64_t nt, const double *a, int64_t a_off, int64_t sa_r,
                  int64_t sa_k, const double *w, int64_t w_off, int64_t ldw, int64_t w_step,
                  double *c, int64_t c_off, int64_t ldc, int64_t K, int cont)

    int fg_isa_compiled(int isa)
    int fg_isa_runs_here(int isa)
    int fg_isa_fused(int isa)
    int fg_use_isa(int isa)
    int fg_isa()

cdef extern from "_sync.h" nogil:
    void barrier(int64_t *sync, int nthreads)


# fastgru.backends._layout's constants (_checks.pxd; cython_backend checks that they agree)
PROJECT_ROWS = _PROJECT_ROWS
K_BLOCK = _K_BLOCK
SUM_GROUPS = _SUM_GROUPS


# The product kernels' instruction sets (_product.h's FG_ISA_*), lowest first.
ISA_LEVELS = ("baseline", "avx2", "avx512")


def isa_compiled():
    """The instruction sets this build has product kernels for."""
    return [name for i, name in enumerate(ISA_LEVELS) if fg_isa_compiled(i)]


def isa_runs_here():
    """The compiled instruction sets this CPU can run."""
    return [name for i, name in enumerate(ISA_LEVELS) if fg_isa_runs_here(i)]


def isa():
    """The instruction set of the product kernels in use."""
    return ISA_LEVELS[fg_isa()]


def isa_fused():
    """Whether the kernels in use fuse multiply and add (one rounding per term)."""
    return bool(fg_isa_fused(fg_isa()))


def use_isa(str name):
    """Use the product kernels for ``name`` (one of isa_runs_here()) from now on.
    Call it only while no kernel runs (fastgru's backend calls it once, at import)."""
    if name not in ISA_LEVELS:
        raise ValueError(f"instruction set must be one of {ISA_LEVELS}, got {name!r}")
    if not fg_use_isa(ISA_LEVELS.index(name)):
        raise ValueError(f"this machine cannot run the {name!r} product kernels "
                         f"(it can run {isa_runs_here()})")


cdef inline Py_ssize_t _nr(floating *dummy) noexcept nogil:
    """Columns per tile: one 64-byte line."""
    if floating is float:
        return 16
    else:
        return 8


cdef inline void _tile(Py_ssize_t mr, Py_ssize_t nt, const floating *a, Py_ssize_t a_off,
                       Py_ssize_t sa_r, Py_ssize_t sa_k, const floating *w, Py_ssize_t w_off,
                       Py_ssize_t ldw, Py_ssize_t w_step, floating *c, Py_ssize_t c_off,
                       Py_ssize_t ldc, Py_ssize_t K, bint cont) noexcept nogil:
    if floating is float:
        tile_f32(mr, nt, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
    else:
        tile_f64(mr, nt, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)


cdef void _product(const floating *a, Py_ssize_t a_off, Py_ssize_t lda, Py_ssize_t m,
                   const floating *w, Py_ssize_t w_tile, Py_ssize_t n_tiles, Py_ssize_t K_all,
                   Py_ssize_t k_first, Py_ssize_t K, floating *c, Py_ssize_t ldc,
                   Py_ssize_t k_block) noexcept nogil:
    """c[i, j*NR + l] = sum_k a[a_off + i*lda + k] w[w_tile + j, k_first + k, l] for
    i < m, j < n_tiles and k < K; w is packed tile-major (tiles, K_all, NR); c is
    (m, >= n_tiles*NR) flat with row stride ldc. K is cut into blocks of k_block that
    continue the same chains; each call of _tile takes 1 or tiles_at_once(mr) tiles."""
    cdef Py_ssize_t NR = _nr(c)
    cdef Py_ssize_t step = K_all * NR
    cdef Py_ssize_t k0 = 0, kn, j, i, t, nt, w_base, full, r
    cdef Py_ssize_t k_end = K if K > 1 else 1
    if k_block <= 0:
        k_block = k_end
    while k0 < k_end:
        kn = (K if K < k0 + k_block else k0 + k_block) - k0
        w_base = (w_tile * K_all + k_first + k0) * NR
        full = m - m % 4 if m > 4 else 0   # rows in blocks of 4, each block over the
        nt = tiles_at_once(4)               # same few tiles of w while they are hot
        j = 0
        while j < n_tiles:
            t = nt if j + nt <= n_tiles else 1
            i = 0
            while i < full:
                _tile(4, t, a, a_off + i * lda + k0, lda, 1, w, w_base + j * step, NR, step,
                      c, i * ldc + j * NR, ldc, kn, k0 > 0)
                i += 4
            j += t
        r = m - full                        # the last 1..4 rows: more tiles at once if few
        nt = tiles_at_once(r)
        j = 0
        while j < n_tiles and r > 0:
            t = nt if j + nt <= n_tiles else 1
            _tile(r, t, a, a_off + full * lda + k0, lda, 1, w, w_base + j * step, NR, step,
                  c, full * ldc + j * NR, ldc, kn, k0 > 0)
            j += t
        k0 += k_block


cdef void _project(const floating *x, Py_ssize_t N, Py_ssize_t I, const floating *wp,
                   const floating *b, Py_ssize_t G, floating *xg, Py_ssize_t Gp,
                   int tid, int nthreads) noexcept nogil:
    """xg (N, Gp) := x (N, I) W_ih^T + b, rows cut into fixed pieces; wp is W_ih^T
    packed ((Gp / NR), I, NR); Gp is 3H rounded up to NR."""
    cdef Py_ssize_t pieces, lo, hi, p, r0, m, i, j
    cdef floating *row
    cdef Py_ssize_t NR = _nr(xg)
    if nthreads <= 0:
        return
    pieces = (N + _PROJECT_ROWS - 1) // _PROJECT_ROWS
    span(pieces, tid, nthreads, &lo, &hi)
    for p in range(lo, hi):
        r0 = p * _PROJECT_ROWS
        m = (N if N < r0 + _PROJECT_ROWS else r0 + _PROJECT_ROWS) - r0
        _product(x, r0 * I, I, m, wp, 0, Gp // NR, I, 0, I, xg + r0 * Gp, Gp, _K_BLOCK)
        for i in range(r0, r0 + m):
            row = xg + i * Gp
            for j in range(G):
                row[j] += b[j]


cdef void _forward(const floating *xgp, Py_ssize_t T, Py_ssize_t B, Py_ssize_t Gp,
                   const floating *wfp, const floating *b_r, const int64_t *lens,
                   bint reverse, bint reset_after, bint need_cache, Py_ssize_t rows,
                   Py_ssize_t U, Py_ssize_t H, floating *hflat, floating *rhf, floating *scrp,
                   Py_ssize_t G4, floating *outp, floating *hpp, floating *gp, floating *axp,
                   int tid, int nthreads, int64_t *syncp) noexcept nogil:
    """The recurrence. xg (T, B, Gp): the projection; wf: W_hh packed per chunk
    (_layout.pack_forward); b_r: b_hh (3H,); hbuf (2, B, H): the state,
    double-buffered (step s reads hbuf[s % 2] and writes hbuf[1 - s % 2]); rh (B, H):
    r * h for reset="before"; scratch (pieces, rows, G4 >= 4U): the piece's product
    (r, z, n) and hn_lin. out (T, B, H); when need_cache, h_prev, gates (T, B, 3H)
    and aux (hn_lin, or r * h) are filled for backward. Each array is given by its
    first element."""
    cdef Py_ssize_t chunks, row_blocks, lo, hi, tiles, s, t, cur, p, ch, r0, m, u0, nu, i, b
    cdef const floating *b_z = b_r + H
    cdef const floating *b_n = b_r + 2 * H
    cdef Py_ssize_t NR = _nr(hflat)
    cdef floating *h
    cdef floating *h_new
    cdef floating *scr
    cdef floating *row
    cdef floating *h_old
    cdef const floating *g
    cdef bint valid
    if rows <= 0 or U <= 0 or nthreads <= 0:   # nothing to do (B = 0), and no division by 0
        return
    chunks = (H + U - 1) // U
    row_blocks = (B + rows - 1) // rows
    span(chunks * row_blocks, tid, nthreads, &lo, &hi)
    tiles = U // NR
    for s in range(T):
        t = T - 1 - s if reverse else s
        cur = s % 2
        h = hflat + cur * B * H
        h_new = hflat + (1 - cur) * B * H
        for p in range(lo, hi):   # the product of the piece's rows and units, its r and z
            ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
            scr = scrp + p * rows * G4
            _product(hflat, cur * B * H + r0 * H, H, m, wfp, ch * 3 * tiles,
                     (3 if reset_after else 2) * tiles, H, 0, H, scr, G4, _K_BLOCK)
            for i in range(m):
                b = r0 + i
                g = xgp + (t * B + b) * Gp
                row = scr + i * G4   # r, z, n, hn_lin: row, row + U, row + 2U, row + 3U
                h_old = h + b * H + u0
                valid = t < lens[b]
                sigmoid_of_sum(g + u0, row, b_r + u0, nu)
                sigmoid_of_sum(g + H + u0, row + U, b_z + u0, nu)
                if reset_after:
                    if valid:
                        add_into(row + 2 * U, b_n + u0, nu)   # n holds hn_lin = h W_hn^T + b_hn
                        if need_cache:
                            copy(row + 2 * U, row + 3 * U, nu)
                        candidate_mix(g + 2 * H + u0, row, row + 2 * U, row + U, h_old,
                                      h_new + b * H + u0, outp + (t * B + b) * H + u0, nu)
                    finish_row(t, b, u0, valid, need_cache, H, row, row + U, row + 2 * U,
                               row + 3 * U, h_old, h_new, outp, hpp, gp, axp, B, nu)
                else:
                    product_of(row, h_old, rhf + b * H + u0, nu)
        if not reset_after:
            barrier(syncp, nthreads)    # the n product needs all of r * h
            for p in range(lo, hi):
                ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
                scr = scrp + p * rows * G4
                _product(rhf, r0 * H, H, m, wfp, ch * 3 * tiles + 2 * tiles, tiles, H, 0, H,
                         scr + 2 * U, G4, _K_BLOCK)
                for i in range(m):
                    b = r0 + i
                    g = xgp + (t * B + b) * Gp
                    row = scr + i * G4
                    h_old = h + b * H + u0
                    valid = t < lens[b]
                    if valid:
                        tanh_mix(g + 2 * H + u0, row + 2 * U, b_n + u0, row + U, h_old,
                                 h_new + b * H + u0, outp + (t * B + b) * H + u0, nu)
                    finish_row(t, b, u0, valid, need_cache, H, row, row + U, row + 2 * U,
                               rhf + b * H + u0, h_old, h_new, outp, hpp, gp, axp, B, nu)
        barrier(syncp, nthreads)


def project_team(const floating[:, ::1] x not None, const floating[:, :, ::1] wp not None,
                 const floating[::1] b not None, floating[:, ::1] xg not None,
                 int tid, int nthreads, int64_t[::1] sync not None):
    """xg (N, Gp) := x (N, I) W_ih^T + b (see _project); G = b's size <= Gp, a
    multiple of NR; wp (Gp / NR, I, NR)."""
    cdef Py_ssize_t sh[12]
    _check_project(_nr(<floating *> NULL), _put(sh, x.shape[0], x.shape[1]),
                   _put(sh + 3, wp.shape[0], wp.shape[1], wp.shape[2]), _put(sh + 6, b.shape[0]),
                   _put(sh + 9, xg.shape[0], xg.shape[1]), tid, nthreads, sync.shape[0])
    with nogil:
        _project(&x[0, 0], x.shape[0], x.shape[1], &wp[0, 0, 0], &b[0], b.shape[0], &xg[0, 0],
                 xg.shape[1], tid, nthreads)


def forward_team(const floating[:, :, ::1] xg not None, const floating[:, :, ::1] wf not None,
                 const floating[::1] b_hh not None, const int64_t[::1] lengths not None,
                 bint reverse, bint reset_after, bint need_cache, Py_ssize_t rows, Py_ssize_t U,
                 floating[:, :, ::1] hbuf not None, floating[:, ::1] rh not None,
                 floating[:, :, ::1] scratch not None,
                 floating[:, :, ::1] out not None, floating[:, :, ::1] h_prev not None,
                 floating[:, :, ::1] gates not None, floating[:, :, ::1] aux not None,
                 int tid, int nthreads, int64_t[::1] sync not None):
    """The recurrence (see _forward). T, B from xg, H from hbuf; rows and U as
    _layout.partition(B, H) gives them; scratch (pieces, rows, >= 4U) with pieces =
    chunks * row_blocks; h_prev, aux (T, B, H) and gates (T, B, 3H) when need_cache, else
    (0, B, H) and (0, B, 3H)."""
    cdef Py_ssize_t sh[36]
    _check_forward(_nr(<floating *> NULL), _put(sh, xg.shape[0], xg.shape[1], xg.shape[2]),
                   _put(sh + 3, wf.shape[0], wf.shape[1], wf.shape[2]),
                   _put(sh + 6, b_hh.shape[0]), &lengths[0], _put(sh + 9, lengths.shape[0]),
                   need_cache, rows, U, _put(sh + 12, hbuf.shape[0], hbuf.shape[1], hbuf.shape[2]),
                   _put(sh + 15, rh.shape[0], rh.shape[1]),
                   _put(sh + 18, scratch.shape[0], scratch.shape[1], scratch.shape[2]),
                   _put(sh + 21, out.shape[0], out.shape[1], out.shape[2]),
                   _put(sh + 24, h_prev.shape[0], h_prev.shape[1], h_prev.shape[2]),
                   _put(sh + 27, gates.shape[0], gates.shape[1], gates.shape[2]),
                   _put(sh + 30, aux.shape[0], aux.shape[1], aux.shape[2]),
                   tid, nthreads, sync.shape[0])
    with nogil:
        _forward(&xg[0, 0, 0], xg.shape[0], xg.shape[1], xg.shape[2], &wf[0, 0, 0], &b_hh[0],
                 &lengths[0], reverse, reset_after, need_cache, rows, U, hbuf.shape[2],
                 &hbuf[0, 0, 0], &rh[0, 0], &scratch[0, 0, 0], scratch.shape[2], &out[0, 0, 0],
                 &h_prev[0, 0, 0], &gates[0, 0, 0], &aux[0, 0, 0], tid, nthreads, &sync[0])


def step(const floating[:, ::1] x not None, const floating[:, ::1] h not None,
         const floating[:, :, ::1] wp_ih not None, const floating[:, :, ::1] wf not None,
         const floating[::1] b_ih not None, const floating[::1] b_hh not None,
         bint reset_after, Py_ssize_t U, floating[:, ::1] out not None):
    """One step of B rows on the calling thread: the projection and one recurrence
    step of the team kernels, run as a team of one (GRUCell). x (B, I), h (B, H);
    wp_ih, wf and U from _engine.prepare_step; out (B, H) OUT."""
    cdef Py_ssize_t B = h.shape[0], H = h.shape[1], G = 3 * H
    cdef Py_ssize_t NR = _nr(<floating *> NULL)
    cdef Py_ssize_t sh[21]
    _check_step(NR, _put(sh, x.shape[0], x.shape[1]), _put(sh + 3, B, H),
                _put(sh + 6, wp_ih.shape[0], wp_ih.shape[1], wp_ih.shape[2]),
                _put(sh + 9, wf.shape[0], wf.shape[1], wf.shape[2]), _put(sh + 12, b_ih.shape[0]),
                _put(sh + 15, b_hh.shape[0]), U, _put(sh + 18, out.shape[0], out.shape[1]))
    if B == 0:
        return
    cdef Py_ssize_t Gp = (G + NR - 1) // NR * NR
    cdef Py_ssize_t rows = (B + 3) // 4 * 4, chunks = (H + U - 1) // U
    cdef Py_ssize_t n_work = B * Gp + 3 * B * H + chunks * rows * 4 * U
    cdef Py_ssize_t b, j
    cdef int64_t sync[_SYNC]
    cdef int64_t *lens
    cdef floating *work
    cdef floating *xg
    cdef floating *hbuf
    with nogil:   # one buffer for the projection, the state, r * h and the scratch
        work = <floating *> calloc(n_work, sizeof(floating))
        lens = <int64_t *> malloc(B * sizeof(int64_t))
    if work == NULL or lens == NULL:
        free(work)
        free(lens)
        raise MemoryError()
    with nogil:
        memset(sync, 0, sizeof(sync))
        xg = work
        hbuf = xg + B * Gp
        for b in range(B):
            lens[b] = 1
            for j in range(H):
                hbuf[b * H + j] = h[b, j]
        _project(&x[0, 0], B, x.shape[1], &wp_ih[0, 0, 0], &b_ih[0], G, xg, Gp, 0, 1)
        _forward(xg, 1, B, Gp, &wf[0, 0, 0], &b_hh[0], lens, False, reset_after, False, rows, U,
                 H, hbuf, hbuf + 2 * B * H, hbuf + 3 * B * H, 4 * U, &out[0, 0], NULL, NULL,
                 NULL, 0, 1, sync)
        free(work)
        free(lens)


def backward_team(const floating[:, :, ::1] d_out not None, const floating[:, :, ::1] wb not None,
                  const int64_t[::1] lengths not None, bint reverse, bint reset_after,
                  Py_ssize_t rows, Py_ssize_t U,
                  const floating[:, :, ::1] h_prev not None,
                  const floating[:, :, ::1] gates not None,
                  const floating[:, :, ::1] aux not None,
                  floating[:, ::1] dh not None, floating[:, ::1] dh_dir not None,
                  floating[:, :, ::1] scratch not None,
                  floating[:, :, ::1] d_ih not None, floating[:, :, ::1] d_hh not None,
                  int tid, int nthreads, int64_t[::1] sync not None):
    """Backpropagation through time with the forward's pieces. T, B and 3H from
    gates; rows and U as the forward's. wb: W_hh packed per chunk
    (_layout.pack_backward); dh (B, H) holds d_h_n on entry, dh0 on exit; dh_dir
    (B, H): the direct part dh_t * z; scratch (pieces, rows, >= 2U): each piece's
    product. Writes the pre-activation gradients d_ih and d_hh (T, B, 3H; d_hh is
    d_ih for reset="before"), zero on padded steps."""
    cdef Py_ssize_t sh[36]
    _check_backward(_nr(<floating *> NULL),
                    _put(sh, d_out.shape[0], d_out.shape[1], d_out.shape[2]),
                    _put(sh + 3, wb.shape[0], wb.shape[1], wb.shape[2]), &lengths[0],
                    _put(sh + 6, lengths.shape[0]), rows, U,
                    _put(sh + 9, h_prev.shape[0], h_prev.shape[1], h_prev.shape[2]),
                    _put(sh + 12, gates.shape[0], gates.shape[1], gates.shape[2]),
                    _put(sh + 15, aux.shape[0], aux.shape[1], aux.shape[2]),
                    _put(sh + 18, dh.shape[0], dh.shape[1]),
                    _put(sh + 21, dh_dir.shape[0], dh_dir.shape[1]),
                    _put(sh + 24, scratch.shape[0], scratch.shape[1], scratch.shape[2]),
                    _put(sh + 27, d_ih.shape[0], d_ih.shape[1], d_ih.shape[2]),
                    _put(sh + 30, d_hh.shape[0], d_hh.shape[1], d_hh.shape[2]),
                    tid, nthreads, sync.shape[0])
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1], G = gates.shape[2]
    cdef Py_ssize_t H = G // 3, W2 = scratch.shape[2]
    cdef Py_ssize_t NR = _nr(<floating *> NULL)
    cdef Py_ssize_t chunks = (H + U - 1) // U, row_blocks = (B + rows - 1) // rows
    cdef Py_ssize_t lo, hi, tiles, s, t, p, ch, r0, m, u0, nu, i, b, K, row3, row1
    cdef const floating *dop = &d_out[0, 0, 0]
    cdef const floating *wbp = &wb[0, 0, 0]
    cdef const int64_t *lens = &lengths[0]
    cdef const floating *hpp = &h_prev[0, 0, 0]
    cdef const floating *gp = &gates[0, 0, 0]
    cdef const floating *axp = &aux[0, 0, 0]
    cdef floating *dhp = &dh[0, 0]
    cdef floating *ddp = &dh_dir[0, 0]
    cdef floating *d_ihf = &d_ih[0, 0, 0]
    cdef floating *d_hhf = &d_hh[0, 0, 0]
    cdef floating *scrp = &scratch[0, 0, 0]
    cdef floating *scr
    cdef int64_t *syncp = &sync[0]
    cdef const floating *g
    cdef floating *gi
    cdef floating *gh
    with nogil:
        span(chunks * row_blocks, tid, nthreads, &lo, &hi)
        tiles = U // NR
        for s in range(T):
            t = s if reverse else T - 1 - s
            for p in range(lo, hi):   # the gate gradients of this piece's units
                ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
                scr = scrp + p * rows * W2
                for i in range(m):
                    b = r0 + i
                    row3 = (t * B + b) * G
                    row1 = (t * B + b) * H + u0
                    gi = d_ihf + row3   # dr, dz, dn: gi + u0, gi + H + u0, gi + 2H + u0
                    gh = d_hhf + row3
                    if t < lens[b]:
                        g = gp + row3   # r, z, n: g + u0, g + H + u0, g + 2H + u0
                        grad_gates(dhp + b * H + u0, dop + row1, g + H + u0, g + 2 * H + u0,
                                   hpp + row1, scr + i * W2 + U, ddp + b * H + u0,
                                   gi + H + u0, gi + 2 * H + u0, nu)
                        if reset_after:
                            grad_r(gi + 2 * H + u0, axp + row1, g + u0, gi + u0, nu)
                            copy(gi + u0, gh + u0, nu)
                            copy(gi + H + u0, gh + H + u0, nu)
                            product_of(gi + 2 * H + u0, g + u0, gh + 2 * H + u0, nu)
                    else:
                        copy(dhp + b * H + u0, ddp + b * H + u0, nu)
                        zero(gi + u0, nu)
                        zero(gi + H + u0, nu)
                        zero(gi + 2 * H + u0, nu)
                        if reset_after:
                            zero(gh + u0, nu)
                            zero(gh + H + u0, nu)
                            zero(gh + 2 * H + u0, nu)
            barrier(syncp, nthreads)
            if not reset_after:   # r's gradient needs drh = dn_pre W_hn over all units
                for p in range(lo, hi):
                    ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
                    scr = scrp + p * rows * W2
                    # rows 2H..3H of each packed tile: the n gate's
                    _product(d_ihf, (t * B + r0) * G + 2 * H, G, m, wbp, ch * tiles,
                             tiles, G, 2 * H, H, scr, W2, _K_BLOCK)
                    for i in range(m):
                        b = r0 + i
                        if t < lens[b]:
                            row3 = (t * B + b) * G + u0
                            row1 = (t * B + b) * H + u0
                            grad_r(scr + i * W2, hpp + row1, gp + row3, d_ihf + row3, nu)
                            add_product(ddp + b * H + u0, scr + i * W2, gp + row3, nu)
                barrier(syncp, nthreads)
            for p in range(lo, hi):   # dh for this piece's units: direct + d W_hh
                ch, r0, m, u0, nu = piece(p, row_blocks, rows, U, B, H)
                scr = scrp + p * rows * W2
                K = G if reset_after else 2 * H
                _product(d_hhf, (t * B + r0) * G, G, m, wbp, ch * tiles, tiles, G, 0, K,
                         scr, W2, _K_BLOCK)
                for i in range(m):
                    b = r0 + i
                    if t < lens[b]:
                        sum_of(ddp + b * H + u0, scr + i * W2, dhp + b * H + u0, nu)
                    else:
                        copy(ddp + b * H + u0, dhp + b * H + u0, nu)


def dx_team(const floating[:, ::1] d_ih not None, const floating[:, :, ::1] wp not None,
            floating[:, ::1] dx not None, floating[:, :, ::1] scratch not None,
            int tid, int nthreads, int64_t[::1] sync not None):
    """dx (N, I) := d_ih (N, G) W_ih; wp is W_ih packed ((Ip / NR), G, NR);
    scratch (>= nthreads, PROJECT_ROWS, Ip) holds each thread's padded rows, Ip >= I
    a multiple of NR."""
    cdef Py_ssize_t N = d_ih.shape[0], G = d_ih.shape[1], I = dx.shape[1]
    cdef Py_ssize_t Ip = scratch.shape[2]
    cdef Py_ssize_t pieces, lo, hi, p, r0, m, i, j
    cdef Py_ssize_t NR = _nr(<floating *> NULL)
    cdef Py_ssize_t sh[12]
    _check_dx(NR, _put(sh, d_ih.shape[0], d_ih.shape[1]),
              _put(sh + 3, wp.shape[0], wp.shape[1], wp.shape[2]), _put(sh + 6, dx.shape[0], I),
              _put(sh + 9, scratch.shape[0], scratch.shape[1], Ip), tid, nthreads, sync.shape[0])
    cdef floating *sf = &scratch[tid, 0, 0]
    cdef floating *dxp = &dx[0, 0]
    with nogil:
        pieces = (N + _PROJECT_ROWS - 1) // _PROJECT_ROWS
        span(pieces, tid, nthreads, &lo, &hi)
        for p in range(lo, hi):
            r0 = p * _PROJECT_ROWS
            m = (N if N < r0 + _PROJECT_ROWS else r0 + _PROJECT_ROWS) - r0
            _product(&d_ih[0, 0], r0 * G, G, m, &wp[0, 0, 0], 0, Ip // NR, G, 0, G, sf, Ip,
                     _K_BLOCK)
            for i in range(m):
                for j in range(I):
                    dxp[(r0 + i) * I + j] = sf[i * Ip + j]


def sums_team(const floating[:, ::1] d not None, const floating[:, :, ::1] xp not None,
              const floating[:, :, ::1] xp_n not None, Py_ssize_t n_split, Py_ssize_t chunk,
              double[:, ::1] part not None, floating[:, :, ::1] tile_buf not None,
              int tid, int nthreads, int64_t[::1] sync not None):
    """Weight and bias gradients: part[c, :] (float64, (G, Ip + 1)) := sum over
    the N rows of d[n, c] * x[n, :] and of d[n, c] (the bias). x is packed
    ((Ip / NR), N, NR) with padded steps zeroed; for gate rows c >= n_split the
    second operand xp_n is used instead (reset="before": W_hn acts on r * h).
    Each chain runs over `chunk` (>= 1) rows in d's precision, the chunks added in
    float64; pieces are groups of 4 gate rows. tile_buf (>= nthreads, 4, NR)."""
    cdef Py_ssize_t N = d.shape[0], G = d.shape[1], tiles = xp.shape[0]
    cdef Py_ssize_t groups, lo, hi, q, c0, m, i, j, l, side, a, e, n0, kn, c, nn, Ip
    cdef Py_ssize_t NR = _nr(<floating *> NULL)
    cdef Py_ssize_t sh[15]
    _check_sums(NR, _put(sh, N, G), _put(sh + 3, tiles, xp.shape[1], xp.shape[2]),
                _put(sh + 6, xp_n.shape[0], xp_n.shape[1], xp_n.shape[2]), n_split, chunk,
                _put(sh + 9, part.shape[0], part.shape[1]),
                _put(sh + 12, tile_buf.shape[0], tile_buf.shape[1], tile_buf.shape[2]),
                tid, nthreads, sync.shape[0])
    cdef const floating *df = &d[0, 0]
    cdef const floating *xf
    cdef const floating *xpf = &xp[0, 0, 0]
    cdef const floating *xnf = &xp_n[0, 0, 0]
    cdef floating *bf = &tile_buf[tid, 0, 0]
    cdef double *pp = &part[0, 0]
    cdef Py_ssize_t ld = part.shape[1]
    cdef double sums[4 * _SUM_GROUPS]   # float64 bias sums of one block of gate rows
    cdef Py_ssize_t q0, q1, c_lo, c_hi
    cdef const floating *row
    with nogil:
        Ip = tiles * NR
        groups = (G + 3) // 4
        span(groups, tid, nthreads, &lo, &hi)
        for c in range(lo * 4, (G if G < hi * 4 else hi * 4)):
            for j in range(Ip + 1):
                pp[c * ld + j] = 0.0
        # chunk by chunk, a block of gate rows at a time: each tile of x (chunk x NR)
        # serves the whole block from cache. The additions into part keep their order.
        n0 = 0
        while n0 < N:
            kn = (N if N < n0 + chunk else n0 + chunk) - n0
            q0 = lo
            while q0 < hi:
                q1 = hi if hi < q0 + _SUM_GROUPS else q0 + _SUM_GROUPS
                for j in range(tiles):
                    for q in range(q0, q1):
                        c0 = q * 4
                        m = (G if G < c0 + 4 else c0 + 4) - c0
                        for side in range(2):   # a group must not straddle n_split
                            if side == 0:
                                a = c0
                                e = n_split if n_split < c0 + m else c0 + m
                            else:
                                a = n_split if n_split < c0 + m else c0 + m
                                a = c0 if c0 > a else a
                                e = c0 + m
                            if e <= a:
                                continue
                            xf = xpf if a < n_split else xnf
                            _tile(e - a, 1, df, n0 * G + a, 1, G, xf, (j * N + n0) * NR, NR, 0,
                                  bf, 0, NR, kn, False)
                            for i in range(e - a):
                                for l in range(NR):
                                    pp[(a + i) * ld + j * NR + l] += bf[i * NR + l]
                c_lo = q0 * 4
                c_hi = G if G < q1 * 4 else q1 * 4
                for c in range(c_hi - c_lo):   # the bias: one float64 chain per column and chunk
                    sums[c] = 0.0
                for nn in range(n0, n0 + kn):
                    row = df + nn * G + c_lo
                    for c in range(c_hi - c_lo):
                        sums[c] = sums[c] + row[c]
                for c in range(c_hi - c_lo):
                    pp[(c_lo + c) * ld + Ip] += sums[c]
                q0 = q1
            n0 += chunk


def math(const floating[::1] a not None, floating[::1] e not None, floating[::1] s not None,
         floating[::1] t not None):
    """e, s, t := exp(a), sigmoid(a), tanh(a), element by element, with the kernels' own
    functions (_math.pxd): what tests/test_math.py checks against NumPy and the Numba twin."""
    cdef Py_ssize_t i, n = a.shape[0]
    if e.shape[0] != n or s.shape[0] != n or t.shape[0] != n:
        raise ValueError(f"e, s and t must have a's length {n}")
    with nogil:
        for i in range(n):
            if floating is float:
                e[i] = _exp32(a[i])
            else:
                e[i] = _exp64(a[i])
            s[i] = sigmoid_(a[i])
            t[i] = tanh_(a[i])
