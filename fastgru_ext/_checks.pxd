# The C kernels' checks of their calls (see _gru.pyx's docstring): integer
# comparisons on the calling thread, a message only on failure. Each kernel's check
# takes the kernel's arguments by name, an array by a copy of its shape (_put).
from libc.stdint cimport int64_t


# fastgru.backends._layout's constants (cython_backend checks that they agree)
cdef enum:
    _PROJECT_ROWS = 64
    _K_BLOCK = 256
    _SUM_GROUPS = 16

cdef enum:
    _MR = 4       # _layout.MR: rows of a tile; a row block is at most B rounded up to it
    _SYNC = 16    # int64 values of a team's sync (_sync.h)


# ---- checks: integer comparisons on the calling thread; a message only on failure ----

cdef inline tuple _dims(const Py_ssize_t *shape, int ndim):
    return tuple([shape[k] for k in range(ndim)])


cdef inline int _wrong(str name, const Py_ssize_t *shape, int ndim, tuple want, str what) except -1:
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


cdef inline int _check_lengths(const int64_t *lens, const Py_ssize_t *shape, Py_ssize_t B,
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


cdef inline int _check_project(Py_ssize_t NR, const Py_ssize_t *x, const Py_ssize_t *wp,
                               const Py_ssize_t *b, const Py_ssize_t *xg,
                               int tid, int nthreads, Py_ssize_t n_sync) except -1:
    cdef Py_ssize_t N = x[0], I = x[1], G = b[0], Gp = xg[1]
    _check_team(tid, nthreads, n_sync)
    if xg[0] != N or Gp % NR != 0 or Gp < G:
        _wrong("xg", xg, 2, (N, "Gp"), f"with Gp >= {G} (b's size) a multiple of {NR} "
                                       f"(N: x's rows)")
    _expect3("wp", wp, Gp // NR, I, NR, "(Gp / NR, I, NR): W_ih^T packed by _layout.pack")
    return 0


cdef inline int _check_forward(Py_ssize_t NR, const Py_ssize_t *xg, const Py_ssize_t *wf,
                               const Py_ssize_t *b_hh, const int64_t *lens, const Py_ssize_t *lengths,
                               bint need_cache, Py_ssize_t rows, Py_ssize_t U, const Py_ssize_t *hbuf,
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
    if scratch[0] != pieces or scratch[1] != rows or scratch[2] < 4 * U:
        _wrong("scratch", scratch, 3, (pieces, rows, f">= {4 * U}"), "(pieces, rows, >= 4U)")
    _expect3("out", out, T, B, H, "(T, B, H)")
    kept = T if need_cache else 0
    _expect3("h_prev", h_prev, kept, B, H, "(T, B, H) when need_cache, else (0, B, H)")
    _expect3("gates", gates, kept, B, 3 * H, "(T, B, 3H) when need_cache, else (0, B, 3H)")
    _expect3("aux", aux, kept, B, H, "(T, B, H) when need_cache, else (0, B, H)")
    return 0


cdef inline int _check_backward(Py_ssize_t NR, const Py_ssize_t *d_out, const Py_ssize_t *wb,
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
    if scratch[0] != pieces or scratch[1] != rows or scratch[2] < 2 * U:
        _wrong("scratch", scratch, 3, (pieces, rows, f">= {2 * U}"), "(pieces, rows, >= 2U)")
    _expect3("d_ih", d_ih, T, B, G, "(T, B, 3H)")
    _expect3("d_hh", d_hh, T, B, G, "(T, B, 3H)")
    return 0


cdef inline int _check_dx(Py_ssize_t NR, const Py_ssize_t *d_ih, const Py_ssize_t *wp,
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


cdef inline int _check_sums(Py_ssize_t NR, const Py_ssize_t *d, const Py_ssize_t *xp,
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


cdef inline int _check_step(Py_ssize_t NR, const Py_ssize_t *x, const Py_ssize_t *h,
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
