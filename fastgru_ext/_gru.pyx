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
(or both do not fuse) multiply and add. The gate math uses ``_math.pxd``, the same functions as
``fastgru.backends._numba_math``, in the same order of operations.

Each kernel checks its call before it starts (a wrong call raises, it does not
crash): a wrong dtype, a non-contiguous or read-only output or None raises when the
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

import numpy as np

from ._math cimport _exp32, _exp64, sigmoid_, tanh_


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


# fastgru.backends._layout's constants (cython_backend checks that they agree)
PROJECT_ROWS = 64
K_BLOCK = 256
SUM_GROUPS = 16
cdef enum:
    _PROJECT_ROWS = 64
    _K_BLOCK = 256
    _SUM_GROUPS = 16


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


cdef inline void _span(Py_ssize_t n, int tid, int nthreads, Py_ssize_t *lo,
                       Py_ssize_t *hi) noexcept nogil:
    """The contiguous share [lo, hi) of n items of thread tid."""
    lo[0] = n * tid // nthreads
    hi[0] = n * (tid + 1) // nthreads


cdef enum:
    _MR = 4       # _layout.MR: rows of a tile; a row block is at most B rounded up to it
    _SYNC = 16    # int64 values of a team's sync (_sync.h)


# ---- checks: integer comparisons on the calling thread; a message only on failure ----

cdef tuple _dims(const Py_ssize_t *shape, int ndim):
    return tuple([shape[k] for k in range(ndim)])


cdef int _wrong(str name, const Py_ssize_t *shape, int ndim, tuple want, str what) except -1:
    """Raise: name must have shape want (what: where it comes from), got its shape."""
    raise ValueError(f"{name} must have shape ({', '.join(map(str, want))})"
                     f"{' ' + what if what else ''}, got {_dims(shape, ndim)}")


cdef inline Py_ssize_t _round_up(Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """As _layout._round_up: n rounded up to a multiple of m, and at least m."""
    n = (n + m - 1) // m * m
    return n if n > m else m


cdef inline int _expect1(str name, const Py_ssize_t *s, Py_ssize_t a, str what) except -1:
    if s[0] != a:
        _wrong(name, s, 1, (a,), what)
    return 0


cdef inline int _expect2(str name, const Py_ssize_t *s, Py_ssize_t a, Py_ssize_t b,
                         str what) except -1:
    if s[0] != a or s[1] != b:
        _wrong(name, s, 2, (a, b), what)
    return 0


cdef inline int _expect3(str name, const Py_ssize_t *s, Py_ssize_t a, Py_ssize_t b,
                         Py_ssize_t c, str what) except -1:
    if s[0] != a or s[1] != b or s[2] != c:
        _wrong(name, s, 3, (a, b, c), what)
    return 0


cdef inline int _check_team(int tid, int nthreads, Py_ssize_t n_sync) except -1:
    if nthreads < 1 or tid < 0 or tid >= nthreads:
        raise ValueError(f"tid must be in [0, nthreads) with nthreads >= 1, "
                         f"got tid={tid}, nthreads={nthreads}")
    if n_sync < _SYNC:
        raise ValueError(f"sync must have shape (>= {_SYNC},) (fastgru._threads.new_sync), "
                         f"got ({n_sync},)")
    return 0


cdef inline int _check_plan(Py_ssize_t rows, Py_ssize_t U, Py_ssize_t B, Py_ssize_t H,
                            Py_ssize_t NR) except -1:
    """rows and U as _layout.partition makes them (which bounds every offset)."""
    if rows < 1 or rows > _round_up(B, _MR):
        raise ValueError(f"rows must be in [1, {_round_up(B, _MR)}] (B={B} rounded up to a "
                         f"multiple of {_MR}), got {rows}")
    if U < NR or U % NR != 0 or U > _round_up(H, NR):
        raise ValueError(f"U must be a multiple of {NR} in [{NR}, {_round_up(H, NR)}] "
                         f"(H={H} rounded up to a multiple of {NR}), got {U}")
    return 0


cdef int _check_lengths(const int64_t *lens, const Py_ssize_t *shape, Py_ssize_t B,
                        Py_ssize_t T) except -1:
    cdef Py_ssize_t b
    _expect1("lengths", shape, B, "(B,)")
    for b in range(B):
        if lens[b] < 0 or lens[b] > T:
            raise ValueError(f"lengths must be in [0, T] = [0, {T}], got lengths[{b}] = {lens[b]}")
    return 0


# One check per kernel, on the shapes and scalars (not fused: one copy of the code);
# each argument is named as the kernel's and is its shape. The kernels pass copies of
# the shapes (_put): with a memoryview's own shape addressed, gcc copies the
# memoryviews through calls to memcpy (measured on project_team: +400 instructions a
# call instead of +160, under callgrind).

cdef inline const Py_ssize_t *_put(Py_ssize_t *dst, Py_ssize_t a, Py_ssize_t b=0,
                                   Py_ssize_t c=0) noexcept nogil:
    """dst[:3] := a, b, c; returns dst."""
    dst[0] = a
    dst[1] = b
    dst[2] = c
    return dst


cdef int _check_project(Py_ssize_t NR, const Py_ssize_t *x, const Py_ssize_t *wp,
                        const Py_ssize_t *b, const Py_ssize_t *xg,
                        int tid, int nthreads, Py_ssize_t n_sync) except -1:
    cdef Py_ssize_t N = x[0], I = x[1], G = b[0], Gp = xg[1]
    _check_team(tid, nthreads, n_sync)
    if xg[0] != N or Gp % NR != 0 or Gp < G:
        _wrong("xg", xg, 2, (N, "Gp"), f"with Gp >= {G} (b's size) a multiple of {NR} "
                                       f"(N: x's rows)")
    _expect3("wp", wp, Gp // NR, I, NR, "(Gp / NR, I, NR): W_ih^T packed by _layout.pack")
    return 0


cdef int _check_forward(Py_ssize_t NR, const Py_ssize_t *xg, const Py_ssize_t *wf,
                        const Py_ssize_t *b_hh, const int64_t *lens, const Py_ssize_t *lengths,
                        bint keep, Py_ssize_t rows, Py_ssize_t U, const Py_ssize_t *hbuf,
                        const Py_ssize_t *rh, const Py_ssize_t *scratch, const Py_ssize_t *out,
                        const Py_ssize_t *h_prev, const Py_ssize_t *gates, const Py_ssize_t *aux,
                        int tid, int nthreads, Py_ssize_t n_sync) except -1:
    cdef Py_ssize_t T = xg[0], B = xg[1], Gp = xg[2], H = hbuf[2]
    cdef Py_ssize_t chunks, pieces, kept
    _check_team(tid, nthreads, n_sync)
    _check_plan(rows, U, B, H, NR)
    chunks = (H + U - 1) // U
    pieces = chunks * ((B + rows - 1) // rows)
    if Gp % NR != 0 or Gp < 3 * H:
        _wrong("xg", xg, 3, (T, B, "Gp"),
               f"with Gp >= 3H = {3 * H} a multiple of {NR} (H: hbuf's last dimension)")
    _expect3("wf", wf, chunks * 3 * (U // NR), H, NR,
             "(chunks * 3U / NR, H, NR): W_hh packed by _layout.pack_forward")
    _expect1("b_hh", b_hh, 3 * H, "(3H,)")
    _check_lengths(lens, lengths, B, T)
    _expect3("hbuf", hbuf, 2, B, H, "(2, B, H)")
    _expect2("rh", rh, B, H, "(B, H)")
    if scratch[0] != pieces or scratch[1] != rows or scratch[2] < 3 * U:
        _wrong("scratch", scratch, 3, (pieces, rows, f">= {3 * U}"), "(pieces, rows, >= 3U)")
    _expect3("out", out, T, B, H, "(T, B, H)")
    kept = T if keep else 0
    _expect3("h_prev", h_prev, kept, B, H, "(T, B, H) when keep, else (0, B, H)")
    _expect3("gates", gates, kept, B, 3 * H, "(T, B, 3H) when keep, else (0, B, 3H)")
    _expect3("aux", aux, kept, B, H, "(T, B, H) when keep, else (0, B, H)")
    return 0


cdef int _check_backward(Py_ssize_t NR, const Py_ssize_t *d_out, const Py_ssize_t *wb,
                         const int64_t *lens, const Py_ssize_t *lengths,
                         Py_ssize_t rows, Py_ssize_t U, const Py_ssize_t *h_prev,
                         const Py_ssize_t *gates, const Py_ssize_t *aux, const Py_ssize_t *dh,
                         const Py_ssize_t *dh_dir, const Py_ssize_t *scratch,
                         const Py_ssize_t *d_ih, const Py_ssize_t *d_hh,
                         int tid, int nthreads, Py_ssize_t n_sync) except -1:
    cdef Py_ssize_t T = gates[0], B = gates[1], G = gates[2], H = gates[2] // 3
    cdef Py_ssize_t chunks, pieces
    _check_team(tid, nthreads, n_sync)
    if G % 3 != 0:
        _wrong("gates", gates, 3, (T, B, "3H"), "")
    _check_plan(rows, U, B, H, NR)
    chunks = (H + U - 1) // U
    pieces = chunks * ((B + rows - 1) // rows)
    _expect3("d_out", d_out, T, B, H, "(T, B, H)")
    _expect3("wb", wb, chunks * (U // NR), G, NR,
             "(chunks * U / NR, 3H, NR): W_hh packed by _layout.pack_backward")
    _check_lengths(lens, lengths, B, T)
    _expect3("h_prev", h_prev, T, B, H, "(T, B, H)")
    _expect3("aux", aux, T, B, H, "(T, B, H)")
    _expect2("dh", dh, B, H, "(B, H)")
    _expect2("dh_dir", dh_dir, B, H, "(B, H)")
    if scratch[0] != pieces or scratch[1] != rows or scratch[2] < U:
        _wrong("scratch", scratch, 3, (pieces, rows, f">= {U}"), "(pieces, rows, >= U)")
    _expect3("d_ih", d_ih, T, B, G, "(T, B, 3H)")
    _expect3("d_hh", d_hh, T, B, G, "(T, B, 3H)")
    return 0


cdef int _check_dx(Py_ssize_t NR, const Py_ssize_t *d_ih, const Py_ssize_t *wp,
                   const Py_ssize_t *dx, const Py_ssize_t *scratch,
                   int tid, int nthreads, Py_ssize_t n_sync) except -1:
    cdef Py_ssize_t N = d_ih[0], G = d_ih[1], I = dx[1], Ip = scratch[2]
    _check_team(tid, nthreads, n_sync)
    if dx[0] != N:
        _wrong("dx", dx, 2, (N, "I"), "(N: d_ih's rows)")
    if scratch[0] < nthreads or scratch[1] != _PROJECT_ROWS or Ip % NR != 0 or Ip < I:
        _wrong("scratch", scratch, 3, (f">= {nthreads}", _PROJECT_ROWS, "Ip"),
               f"with Ip >= I = {I} a multiple of {NR} (nthreads, PROJECT_ROWS, Ip)")
    _expect3("wp", wp, Ip // NR, G, NR, "(Ip / NR, 3H, NR): W_ih packed by _layout.pack")
    return 0


cdef int _check_sums(Py_ssize_t NR, const Py_ssize_t *d, const Py_ssize_t *xp,
                     const Py_ssize_t *xp_n, Py_ssize_t n_split, Py_ssize_t chunk,
                     const Py_ssize_t *part, const Py_ssize_t *tile_buf,
                     int tid, int nthreads, Py_ssize_t n_sync) except -1:
    cdef Py_ssize_t N = d[0], G = d[1], tiles = xp[0]
    _check_team(tid, nthreads, n_sync)
    _expect3("xp", xp, tiles, N, NR, "(Ip / NR, N, NR): x packed by _layout.pack (N: d's rows)")
    _expect3("xp_n", xp_n, tiles, N, NR, "(as xp)")
    if n_split < 0 or n_split > G:
        raise ValueError(f"n_split must be in [0, G] = [0, {G}] (G: d's columns), got {n_split}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    _expect2("part", part, G, tiles * NR + 1, "(G, Ip + 1)")
    if tile_buf[0] < nthreads or tile_buf[1] != 4 or tile_buf[2] != NR:
        _wrong("tile_buf", tile_buf, 3, (f">= {nthreads}", 4, NR), "(nthreads, 4, NR)")
    return 0


cdef int _check_step(Py_ssize_t NR, const Py_ssize_t *x, const Py_ssize_t *h,
                     const Py_ssize_t *wp_ih, const Py_ssize_t *wf, const Py_ssize_t *b_ih,
                     const Py_ssize_t *b_hh, Py_ssize_t U, const Py_ssize_t *out) except -1:
    cdef Py_ssize_t B = h[0], H = h[1], G = 3 * h[1]
    if x[0] != B:
        _wrong("x", x, 2, (B, "I"), "(B: h's rows)")
    if U < NR or U % NR != 0 or U > _round_up(H, NR):
        raise ValueError(f"U must be a multiple of {NR} in [{NR}, {_round_up(H, NR)}] "
                         f"(H={H} rounded up to a multiple of {NR}), got {U}")
    _expect3("wp_ih", wp_ih, (G + NR - 1) // NR, x[1], NR,
             "(3H / NR rounded up, I, NR): W_ih^T packed by _layout.pack")
    _expect3("wf", wf, (H + U - 1) // U * 3 * (U // NR), H, NR,
             "(chunks * 3U / NR, H, NR): W_hh packed by _layout.pack_forward")
    _expect1("b_ih", b_ih, G, "(3H,)")
    _expect1("b_hh", b_hh, G, "(3H,)")
    _expect2("out", out, B, H, "(B, H)")
    return 0


cdef void _product(const floating *a, Py_ssize_t a_off, Py_ssize_t lda, Py_ssize_t m,
                   const floating *w, Py_ssize_t w_tile, Py_ssize_t n_tiles, Py_ssize_t K_all,
                   Py_ssize_t k_first, Py_ssize_t K, floating *c, Py_ssize_t ldc,
                   Py_ssize_t k_block) noexcept nogil:
    """c[i, j*NR + l] = sum_k a[a_off + i*lda + k] w[w_tile + j, k_first + k, l] for
    i < m, j < n_tiles and k < K; w is packed tile-major (tiles, K_all, NR); c is
    (m, >= n_tiles*NR) flat with row stride ldc. K is cut into blocks of k_block that
    continue the same chains; one or two rows take several tiles at once."""
    cdef Py_ssize_t NR = _nr(c)
    cdef Py_ssize_t step = K_all * NR
    cdef Py_ssize_t k0 = 0, kn, j, i, t, nt, w_base
    cdef Py_ssize_t k_end = K if K > 1 else 1
    if k_block <= 0:
        k_block = k_end
    while k0 < k_end:
        kn = (K if K < k0 + k_block else k0 + k_block) - k0
        w_base = (w_tile * K_all + k_first + k0) * NR
        if m <= 2:
            nt = tiles_at_once(m)
            j = 0
            while j < n_tiles:
                t = nt if j + nt <= n_tiles else 1
                _tile(m, t, a, a_off + k0, lda, 1, w, w_base + j * step, NR, step,
                      c, j * NR, ldc, kn, k0 > 0)
                j += t
        else:
            for j in range(n_tiles):
                i = 0
                while i < m:
                    _tile(4 if m - i > 4 else m - i, 1, a, a_off + i * lda + k0, lda, 1, w,
                          w_base + j * step, NR, step, c, i * ldc + j * NR, ldc, kn, k0 > 0)
                    i += 4
        k0 += k_block


cdef void _project(const floating[:, ::1] x, const floating[:, :, ::1] wp,
                   const floating[::1] b, floating[:, ::1] xg,
                   int tid, int nthreads, int64_t[::1] sync) noexcept:
    """xg (N, Gp) := x (N, I) W_ih^T + b, rows cut into fixed pieces; wp is W_ih^T
    packed ((Gp / NR), I, NR); Gp is 3H rounded up to NR."""
    cdef Py_ssize_t N = x.shape[0], I = x.shape[1], G = b.shape[0], Gp = xg.shape[1]
    cdef Py_ssize_t pieces, lo, hi, p, r0, m, i, j
    cdef floating *xgp = &xg[0, 0]
    cdef floating *row
    cdef Py_ssize_t NR = _nr(xgp)
    if nthreads <= 0:
        return
    with nogil:
        pieces = (N + _PROJECT_ROWS - 1) // _PROJECT_ROWS
        _span(pieces, tid, nthreads, &lo, &hi)
        for p in range(lo, hi):
            r0 = p * _PROJECT_ROWS
            m = (N if N < r0 + _PROJECT_ROWS else r0 + _PROJECT_ROWS) - r0
            _product(&x[0, 0], r0 * I, I, m, &wp[0, 0, 0], 0, Gp // NR, I, 0, I,
                     xgp + r0 * Gp, Gp, _K_BLOCK)
            for i in range(r0, r0 + m):
                row = xgp + i * Gp
                for j in range(G):
                    row[j] += b[j]


cdef void _forward(const floating[:, :, ::1] xg, const floating[:, :, ::1] wf,
                   const floating[::1] b_hh, const int64_t[::1] lengths,
                   bint reverse, bint reset_after, bint keep, Py_ssize_t rows, Py_ssize_t U,
                   floating[:, :, ::1] hbuf, floating[:, ::1] rh, floating[:, :, ::1] scratch,
                   floating[:, :, ::1] out, floating[:, :, ::1] h_prev,
                   floating[:, :, ::1] gates, floating[:, :, ::1] aux,
                   int tid, int nthreads, int64_t[::1] sync) noexcept:
    """The recurrence. xg (T, B, Gp): the projection; wf: W_hh packed per chunk
    (_layout.pack_forward); hbuf (2, B, H): the state, double-buffered (step s reads
    hbuf[s % 2] and writes hbuf[1 - s % 2]); rh (B, H): r * h for reset="before";
    scratch (pieces, rows, 3U). out (T, B, H); when keep, h_prev, gates (T, B, 3H)
    and aux (hn_lin, or r * h) are filled for backward."""
    cdef Py_ssize_t T = xg.shape[0], B = xg.shape[1], Gp = xg.shape[2]
    cdef Py_ssize_t H = hbuf.shape[2]
    cdef Py_ssize_t chunks, row_blocks, lo, hi, tiles, s, t, cur, p, ch, r0, m, u0, nu
    cdef Py_ssize_t i, j, b, U3 = 3 * U
    cdef const floating *xgp = &xg[0, 0, 0]
    cdef const floating *wfp = &wf[0, 0, 0]
    cdef const floating *bh = &b_hh[0]
    cdef const int64_t *lens = &lengths[0]
    cdef floating *hflat = &hbuf[0, 0, 0]
    cdef floating *rhf = &rh[0, 0]
    cdef floating *scrp = &scratch[0, 0, 0]
    cdef floating *outp = &out[0, 0, 0]
    cdef floating *hpp = &h_prev[0, 0, 0]
    cdef floating *gp = &gates[0, 0, 0]
    cdef floating *axp = &aux[0, 0, 0]
    cdef int64_t *syncp = &sync[0]
    cdef Py_ssize_t NR = _nr(hflat)
    cdef floating *h
    cdef floating *h_new
    cdef floating *sf
    cdef floating *hh
    cdef floating *hr
    cdef floating *hw
    cdef floating *o
    cdef floating *gk
    cdef floating *ak
    cdef floating *hk
    cdef floating *rhr
    cdef const floating *g
    cdef floating z, n, v, one = 1
    if rows <= 0 or U <= 0 or nthreads <= 0:   # nothing to do (B = 0), and no division by 0
        return
    with nogil:
        chunks = (H + U - 1) // U
        row_blocks = (B + rows - 1) // rows
        _span(chunks * row_blocks, tid, nthreads, &lo, &hi)
        tiles = U // NR
        for s in range(T):
            t = T - 1 - s if reverse else s
            cur = s % 2
            h = hflat + cur * B * H
            h_new = hflat + (1 - cur) * B * H
            for p in range(lo, hi):
                ch = p // row_blocks
                r0 = (p % row_blocks) * rows
                m = (B if B < r0 + rows else r0 + rows) - r0
                u0 = ch * U
                nu = (H if H < u0 + U else u0 + U) - u0
                sf = scrp + p * rows * U3
                _product(hflat, cur * B * H + r0 * H, H, m, wfp, ch * 3 * tiles,
                         3 * tiles if reset_after else 2 * tiles, H, 0, H, sf, U3, _K_BLOCK)
                for i in range(m):
                    b = r0 + i
                    g = xgp + (t * B + b) * Gp
                    hh = sf + i * U3
                    hr = h + b * H + u0
                    for j in range(nu):
                        hh[j] = sigmoid_(g[u0 + j] + hh[j] + bh[u0 + j])
                    for j in range(nu):
                        hh[U + j] = sigmoid_(g[H + u0 + j] + hh[U + j] + bh[H + u0 + j])
                    if reset_after:
                        for j in range(nu):
                            hh[2 * U + j] = hh[2 * U + j] + bh[2 * H + u0 + j]
                        hw = h_new + b * H + u0
                        o = outp + (t * B + b) * H + u0
                        if t < lens[b]:
                            if keep:
                                gk = gp + (t * B + b) * 3 * H + u0
                                ak = axp + (t * B + b) * H + u0
                                for j in range(nu):
                                    z = hh[U + j]
                                    n = tanh_(g[2 * H + u0 + j] + hh[j] * hh[2 * U + j])
                                    v = (one - z) * n + z * hr[j]
                                    hw[j] = v
                                    o[j] = v
                                    gk[j] = hh[j]
                                    gk[H + j] = z
                                    gk[2 * H + j] = n
                                    ak[j] = hh[2 * U + j]
                            else:
                                for j in range(nu):
                                    z = hh[U + j]
                                    n = tanh_(g[2 * H + u0 + j] + hh[j] * hh[2 * U + j])
                                    v = (one - z) * n + z * hr[j]
                                    hw[j] = v
                                    o[j] = v
                        else:   # past the end: state frozen, output 0
                            for j in range(nu):
                                hw[j] = hr[j]
                                o[j] = 0
                            if keep:
                                gk = gp + (t * B + b) * 3 * H + u0
                                ak = axp + (t * B + b) * H + u0
                                for j in range(nu):
                                    gk[j] = 0
                                    gk[H + j] = 0
                                    gk[2 * H + j] = 0
                                    ak[j] = 0
                        if keep:
                            hk = hpp + (t * B + b) * H + u0
                            for j in range(nu):
                                hk[j] = hr[j]
                    else:
                        rhr = rhf + b * H + u0
                        for j in range(nu):
                            rhr[j] = hh[j] * hr[j]
            if not reset_after:
                barrier(syncp, nthreads)    # the n product needs all of r * h
                for p in range(lo, hi):
                    ch = p // row_blocks
                    r0 = (p % row_blocks) * rows
                    m = (B if B < r0 + rows else r0 + rows) - r0
                    u0 = ch * U
                    nu = (H if H < u0 + U else u0 + U) - u0
                    sf = scrp + p * rows * U3
                    _product(rhf, r0 * H, H, m, wfp, ch * 3 * tiles + 2 * tiles, tiles, H, 0, H,
                             sf + 2 * U, U3, _K_BLOCK)
                    for i in range(m):
                        b = r0 + i
                        g = xgp + (t * B + b) * Gp
                        hh = sf + i * U3
                        hr = h + b * H + u0
                        hw = h_new + b * H + u0
                        o = outp + (t * B + b) * H + u0
                        if t < lens[b]:
                            if keep:
                                gk = gp + (t * B + b) * 3 * H + u0
                                ak = axp + (t * B + b) * H + u0
                                rhr = rhf + b * H + u0
                                for j in range(nu):
                                    z = hh[U + j]
                                    n = tanh_(g[2 * H + u0 + j] + hh[2 * U + j]
                                              + bh[2 * H + u0 + j])
                                    v = (one - z) * n + z * hr[j]
                                    hw[j] = v
                                    o[j] = v
                                    gk[j] = hh[j]
                                    gk[H + j] = z
                                    gk[2 * H + j] = n
                                    ak[j] = rhr[j]
                            else:
                                for j in range(nu):
                                    z = hh[U + j]
                                    n = tanh_(g[2 * H + u0 + j] + hh[2 * U + j]
                                              + bh[2 * H + u0 + j])
                                    v = (one - z) * n + z * hr[j]
                                    hw[j] = v
                                    o[j] = v
                        else:
                            for j in range(nu):
                                hw[j] = hr[j]
                                o[j] = 0
                            if keep:
                                gk = gp + (t * B + b) * 3 * H + u0
                                ak = axp + (t * B + b) * H + u0
                                for j in range(nu):
                                    gk[j] = 0
                                    gk[H + j] = 0
                                    gk[2 * H + j] = 0
                                    ak[j] = 0
                        if keep:
                            hk = hpp + (t * B + b) * H + u0
                            for j in range(nu):
                                hk[j] = hr[j]
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
    _project(x, wp, b, xg, tid, nthreads, sync)


def forward_team(const floating[:, :, ::1] xg not None, const floating[:, :, ::1] wf not None,
                 const floating[::1] b_hh not None, const int64_t[::1] lengths not None,
                 bint reverse, bint reset_after, bint keep, Py_ssize_t rows, Py_ssize_t U,
                 floating[:, :, ::1] hbuf not None, floating[:, ::1] rh not None,
                 floating[:, :, ::1] scratch not None,
                 floating[:, :, ::1] out not None, floating[:, :, ::1] h_prev not None,
                 floating[:, :, ::1] gates not None, floating[:, :, ::1] aux not None,
                 int tid, int nthreads, int64_t[::1] sync not None):
    """The recurrence (see _forward). T, B from xg, H from hbuf; rows and U as
    _layout.partition(B, H) gives them; scratch (pieces, rows, >= 3U) with pieces =
    chunks * row_blocks; h_prev, aux (T, B, H) and gates (T, B, 3H) when keep, else
    (0, B, H) and (0, B, 3H)."""
    cdef Py_ssize_t sh[36]
    _check_forward(_nr(<floating *> NULL), _put(sh, xg.shape[0], xg.shape[1], xg.shape[2]),
                   _put(sh + 3, wf.shape[0], wf.shape[1], wf.shape[2]),
                   _put(sh + 6, b_hh.shape[0]), &lengths[0], _put(sh + 9, lengths.shape[0]),
                   keep, rows, U, _put(sh + 12, hbuf.shape[0], hbuf.shape[1], hbuf.shape[2]),
                   _put(sh + 15, rh.shape[0], rh.shape[1]),
                   _put(sh + 18, scratch.shape[0], scratch.shape[1], scratch.shape[2]),
                   _put(sh + 21, out.shape[0], out.shape[1], out.shape[2]),
                   _put(sh + 24, h_prev.shape[0], h_prev.shape[1], h_prev.shape[2]),
                   _put(sh + 27, gates.shape[0], gates.shape[1], gates.shape[2]),
                   _put(sh + 30, aux.shape[0], aux.shape[1], aux.shape[2]),
                   tid, nthreads, sync.shape[0])
    _forward(xg, wf, b_hh, lengths, reverse, reset_after, keep, rows, U, hbuf, rh, scratch,
             out, h_prev, gates, aux, tid, nthreads, sync)


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
    dt = np.float32 if NR == 16 else np.float64
    cdef int64_t[::1] sync = np.zeros(16, np.int64)
    cdef floating[:, :, ::1] xg = np.empty((1, B, Gp), dt)
    cdef floating[:, :, ::1] hbuf = np.empty((2, B, H), dt)
    hbuf[0, :, :] = h
    cdef floating[:, :, ::1] none = np.empty((0, B, H), dt)
    cdef floating[:, :, ::1] no_gates = np.empty((0, B, G), dt)
    cdef floating[:, ::1] rh = np.zeros((B, H), dt)
    cdef floating[:, :, ::1] scratch = np.zeros((chunks, rows, 3 * U), dt)
    cdef floating[:, :, ::1] out3 = np.asarray(out).reshape(1, B, H)
    cdef int64_t[::1] lengths = np.ones(B, np.int64)
    _project(x, wp_ih, b_ih, xg[0], 0, 1, sync)
    _forward(xg, wf, b_hh, lengths, False, reset_after, False, rows, U,
             hbuf, rh, scratch, out3, none, no_gates, none, 0, 1, sync)


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
    (B, H): the direct part dh_t * z; scratch (pieces, rows, >= U): each piece's
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
    cdef Py_ssize_t H = G // 3
    cdef Py_ssize_t NR = _nr(<floating *> NULL)
    cdef Py_ssize_t chunks = (H + U - 1) // U, row_blocks = (B + rows - 1) // rows
    cdef Py_ssize_t lo, hi, tiles, s, t, p, ch, r0, m, u0, nu
    cdef Py_ssize_t i, j, b, K, row3, row1
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
    cdef floating *sf
    cdef int64_t *syncp = &sync[0]
    cdef const floating *gk
    cdef const floating *hk
    cdef const floating *ak
    cdef const floating *dok
    cdef floating *dhr
    cdef floating *ddr
    cdef floating *di
    cdef floating *dd
    cdef floating r, z, n, dh_t, dn, dz, dr, drh, one = 1
    with nogil:
        _span(chunks * row_blocks, tid, nthreads, &lo, &hi)
        tiles = U // NR
        for s in range(T):
            t = s if reverse else T - 1 - s
            for p in range(lo, hi):   # the gate gradients of this piece's units
                ch = p // row_blocks
                r0 = (p % row_blocks) * rows
                m = (B if B < r0 + rows else r0 + rows) - r0
                u0 = ch * U
                nu = (H if H < u0 + U else u0 + U) - u0
                for b in range(r0, r0 + m):
                    row3 = (t * B + b) * G + u0
                    row1 = (t * B + b) * H + u0
                    gk = gp + row3
                    hk = hpp + row1
                    ak = axp + row1
                    dok = dop + row1
                    dhr = dhp + b * H + u0
                    ddr = ddp + b * H + u0
                    di = d_ihf + row3
                    dd = d_hhf + row3
                    if t < lens[b]:
                        if reset_after:
                            for j in range(nu):
                                r = gk[j]
                                z = gk[H + j]
                                n = gk[2 * H + j]
                                dh_t = dhr[j] + dok[j]
                                dn = dh_t * (one - z) * (one - n * n)
                                dz = dh_t * (hk[j] - n) * z * (one - z)
                                ddr[j] = dh_t * z
                                di[H + j] = dz
                                di[2 * H + j] = dn
                                dr = dn * ak[j] * r * (one - r)
                                di[j] = dr
                                dd[j] = dr
                                dd[H + j] = dz
                                dd[2 * H + j] = dn * r
                        else:
                            for j in range(nu):
                                z = gk[H + j]
                                n = gk[2 * H + j]
                                dh_t = dhr[j] + dok[j]
                                dn = dh_t * (one - z) * (one - n * n)
                                dz = dh_t * (hk[j] - n) * z * (one - z)
                                ddr[j] = dh_t * z
                                di[H + j] = dz
                                di[2 * H + j] = dn
                    else:
                        for j in range(nu):
                            ddr[j] = dhr[j]
                            di[j] = 0
                            di[H + j] = 0
                            di[2 * H + j] = 0
                            dd[j] = 0
                            dd[H + j] = 0
                            dd[2 * H + j] = 0
            barrier(syncp, nthreads)
            if not reset_after:   # r's gradient needs drh = dn_pre W_hn over all units
                for p in range(lo, hi):
                    ch = p // row_blocks
                    r0 = (p % row_blocks) * rows
                    m = (B if B < r0 + rows else r0 + rows) - r0
                    u0 = ch * U
                    nu = (H if H < u0 + U else u0 + U) - u0
                    sf = scrp + p * rows * U
                    # rows 2H..3H of each packed tile: the n gate's
                    _product(d_ihf, (t * B + r0) * G + 2 * H, G, m, wbp, ch * tiles,
                             tiles, G, 2 * H, H, sf, U, _K_BLOCK)
                    for i in range(m):
                        b = r0 + i
                        if t < lens[b]:
                            row3 = (t * B + b) * G + u0
                            row1 = (t * B + b) * H + u0
                            gk = gp + row3
                            hk = hpp + row1
                            di = d_ihf + row3
                            ddr = ddp + b * H + u0
                            for j in range(nu):
                                r = gk[j]
                                drh = sf[i * U + j]
                                di[j] = drh * hk[j] * r * (one - r)
                                ddr[j] += drh * r
                barrier(syncp, nthreads)
            K = G if reset_after else 2 * H
            for p in range(lo, hi):   # dh for this piece's units: direct + d W_hh
                ch = p // row_blocks
                r0 = (p % row_blocks) * rows
                m = (B if B < r0 + rows else r0 + rows) - r0
                u0 = ch * U
                nu = (H if H < u0 + U else u0 + U) - u0
                sf = scrp + p * rows * U
                _product(d_hhf, (t * B + r0) * G, G, m, wbp, ch * tiles, tiles, G, 0, K,
                         sf, U, _K_BLOCK)
                for i in range(m):
                    b = r0 + i
                    dhr = dhp + b * H + u0
                    ddr = ddp + b * H + u0
                    if t < lens[b]:
                        for j in range(nu):
                            dhr[j] = ddr[j] + sf[i * U + j]
                    else:
                        for j in range(nu):
                            dhr[j] = ddr[j]


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
        _span(pieces, tid, nthreads, &lo, &hi)
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
        _span(groups, tid, nthreads, &lo, &hi)
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
