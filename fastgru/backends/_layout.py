"""The engine's plan, shared by both compiled backends: how a step is cut into
pieces, and the packed weight layouts the product kernels read.

A step of the recurrence is split over hidden units and, for big batches, over
batch rows. A *piece* is (row block, unit chunk): the rows [r0, r0 + R) and the
units [u0, u0 + U) of h; it computes the r, z and n pre-activations of its units
(the product of its rows of h with its 3U columns of W_hh^T), then their gate
math, so the gate math follows the product in the same thread, on data still in
cache. Pieces are numbered chunk-major (p = chunk * row_blocks + block) and a
team's thread takes a contiguous range of them, the same range every step: its
slice of W_hh stays in its own cache. All of it depends on (B, H) alone; the
thread count only decides who computes which piece, never a result.

Packed weights are "tile-major": a (K, N) matrix becomes (N / NR, K, NR), so the
product kernels read each tile's K rows of NR columns (one 64-byte line each)
one after the other. NR = 64 / itemsize (16 float32, 8 float64); N is padded
with zero columns.
"""
import numpy as np

LINE = 64
# Rows of a product the kernels do at once; a row block is a multiple of it.
MR = 4
# Float32 weight gradients: sums over the T*B rows are formed in float32 over
# chunks of this many rows, then added in float64 (one float32 chain over all
# rows drifts by ~sqrt(T*B) ulp).
SUM_ROWS = 512
# Groups of 4 gate rows that a weight-gradient pass takes together over one chunk of
# rows: the chunk's tile of x is read once for all of them.
SUM_GROUPS = 16
# Rows per projection piece (the input projection and dx are cut by rows).
PROJECT_ROWS = 64
# K rows per block of the projection's product: a tile's K x NR weights stay in L1
# (measured on one core, 512 x 512 x 1536 float32: 73 GFLOP/s, OpenBLAS 89).
K_BLOCK = 256


def _round_up(n, m):
    return max(m, -(-n // m) * m)


def nr_of(dtype):
    return LINE // np.dtype(dtype).itemsize


# The flops per thread per barrier below which another thread does not pay (measured:
# stream (1000, 1, 16, 64) step 25 kflop: 1 thread; small (100, 16, 32, 64) 400 kflop: 2).
# A step is cut into one piece per this many flops, up to 16 (a 16-core machine's worth);
# fastgru._threads.team_size sizes a team by the same rule.
PIECE_FLOPS = 150_000
MAX_PIECES = 16


def partition(B, H, dtype=np.float32):
    """How one recurrence step of a (B, H) layer is cut (documented internal API,
    used by tests and bench/scaling.py): {"pieces", "row_blocks", "rows", "chunks",
    "units"}.

    Pieces are wanted where a step has the work for them: 16 at 2.4 MFLOP a step
    and more (medium, large, wide, smallbatch, manyshort), fewer below. Longer unit
    chunks make longer gate loops (U = 64: 1.7 ns a unit, 16: 6 ns) and rows reuse
    the chunk's weights, so U is the largest of 64, 32, 16 (or all of a small H)
    that still gives the pieces wanted with blocks of at least 4 rows.
    """
    nr = nr_of(dtype)
    want = max(1, min(MAX_PIECES, 6 * B * H * H // PIECE_FLOPS))
    max_blocks = -(-B // MR)
    whole = _round_up(H, nr)
    for U in (64, 32, 16):
        U = min(_round_up(U, nr), whole)
        chunks = -(-H // U)
        if chunks * max_blocks >= want:
            break
    row_blocks = min(max_blocks, -(-want // chunks))
    rows = _round_up(-(-B // row_blocks), MR)
    row_blocks = -(-B // rows)
    return {"pieces": chunks * row_blocks, "row_blocks": row_blocks, "rows": rows,
            "chunks": chunks, "units": U}


def pack(m, nr):
    """(K, N) -> (ceil(N / nr), K, nr) tile-major, zero-padded columns."""
    K, N = m.shape
    tiles = -(-N // nr)
    out = np.zeros((tiles, K, nr), m.dtype)
    full = N // nr
    if full:
        out[:full] = m[:, :full * nr].reshape(K, full, nr).transpose(1, 0, 2)
    if N % nr:
        out[full, :, :N % nr] = m[:, full * nr:]
    return out


def pack_forward(w_hh, U, nr):
    """W_hh (3H, H) for the forward step: per chunk, its 3U columns of W_hh^T
    (r, z, n of its units, zero past H) packed: (chunks * 3U / nr, H, nr)."""
    G, H = w_hh.shape
    chunks = -(-H // U)
    wide = np.zeros((3, chunks * U, H), w_hh.dtype)
    wide[:, :H] = w_hh.reshape(3, H, H)
    tiles = wide.reshape(3, chunks, U // nr, nr, H).transpose(1, 0, 2, 4, 3)
    return np.ascontiguousarray(tiles).reshape(chunks * 3 * (U // nr), H, nr)


def pack_backward(w_hh, U, nr):
    """W_hh (3H, H) for the backward step: per chunk, its U columns (units) over
    all 3H rows, packed: (chunks * U / nr, 3H, nr)."""
    G, H = w_hh.shape
    chunks = -(-H // U)
    wide = np.zeros((G, chunks * U), w_hh.dtype)
    wide[:, :H] = w_hh
    return pack(wide, nr)
