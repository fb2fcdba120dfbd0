"""What both compiled backends do around their team kernels: allocate, pack the
weights (``_layout``), size the team (``fastgru._threads``) and run the kernels.

A backend provides five team kernels with the same names, arguments and
meaning (``Kernels``); the Numba ones are in ``numba_backend``, the C ones in
``fastgru_ext._gru``. Each is called as ``kernel(*args, tid, nthreads, sync)``.
"""
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .. import _threads
from . import _layout
from .contract import Saved


class Kernels(NamedTuple):
    project: Callable    # (x, wp, b, xg)
    forward: Callable    # (xg, wf, b_hh, lengths, reverse, reset_after, need_cache, rows, U, hbuf, rh,
    #                       scratch, out, h_prev, gates, aux)
    backward: Callable   # (d_out, wb, lengths, reverse, reset_after, rows, U, h_prev, gates, aux,
    #                       dh, dh_dir, scratch, d_ih, d_hh)
    dx: Callable         # (d_ih, wp, dx, scratch)
    sums: Callable       # (d, xp, xp_n, n_split, chunk, part, tile_buf)
    step: Callable       # (x, h, wp_ih, wf, b_ih, b_hh, reset_after, U, out): serial, no team


def entry_points(k):
    """forward, backward and step of ``contract.py``, on kernels k."""
    def fwd(*args):
        return forward(k, *args)

    def bwd(*args):
        return backward(k, *args)

    def stp(*args):
        return step(k, *args)
    fwd.__doc__ = "forward of ``contract.py``."
    bwd.__doc__ = "backward of ``contract.py``."
    stp.__doc__ = "step of ``contract.py``."
    return fwd, bwd, stp


def _rows(a):
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2])


def _masked_rows(a, valid):
    """(T*B, n) copy of a (T, B, n) with the rows of padded steps (valid False) zeroed."""
    return _rows(np.where(valid[:, :, None], a, 0).astype(a.dtype, copy=False))


def forward(k, layer, h0, out, h_n, saved=None):
    """forward of ``contract.py``."""
    x, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after = layer
    T, B, I = x.shape
    G, H = w_hh.shape
    dt = x.dtype
    nr = _layout.nr_of(dt)
    need_cache = saved is not None
    if saved is None:   # the kernels write nothing into arrays of zero steps
        saved = Saved(np.empty((0, B, H), dt), np.empty((0, B, G), dt), np.empty((0, B, H), dt))
    h_prev, gates, aux = saved
    Gp = -(-G // nr) * nr
    xg = np.empty((T, B, Gp), dt)
    n_rows = T * B
    _threads.run(k.project, (_rows(x), _layout.pack(np.ascontiguousarray(w_ih.T), nr),
                                 b_ih, _rows(xg)),
                 _threads.team_size(-(-n_rows // _layout.PROJECT_ROWS), 2 * n_rows * G * I))
    plan = _layout.partition(B, H, dt)
    rows, U = plan["rows"], plan["units"]
    n = _threads.team_size(plan["pieces"], 2 * B * G * H)
    hbuf = np.empty((2, B, H), dt)
    hbuf[0] = h0
    rh = np.zeros((B, H), dt)
    scratch = np.zeros((plan["pieces"], rows, 4 * U), dt)
    _threads.run(k.forward, (xg, _layout.pack_forward(w_hh, U, nr), b_hh, lengths, reverse,
                                 reset_after, need_cache, rows, U, hbuf, rh, scratch,
                                 out, h_prev, gates, aux), n)
    h_n[...] = hbuf[T % 2]


def backward(k, layer, saved, d_out, d_h_n, grads):
    """backward of ``contract.py``."""
    x, w_ih, w_hh, _, _, lengths, reverse, reset_after = layer
    h_prev, gates, aux = saved
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = grads
    T, B, I = x.shape
    G, H = w_hh.shape
    dt = x.dtype
    nr = _layout.nr_of(dt)
    plan = _layout.partition(B, H, dt)
    rows, U = plan["rows"], plan["units"]
    n = _threads.team_size(plan["pieces"], 2 * B * G * H)
    d_ih = np.empty((T, B, G), dt)
    d_hh = np.empty((T, B, G), dt) if reset_after else d_ih
    dh = np.array(d_h_n, dt)
    dh_dir = np.empty((B, H), dt)
    _threads.run(k.backward, (d_out, _layout.pack_backward(w_hh, U, nr), lengths, reverse,
                                  reset_after, rows, U, h_prev, gates, aux, dh, dh_dir,
                                  np.zeros((plan["pieces"], rows, 2 * U), dt), d_ih, d_hh), n)
    dh0[...] = dh
    n_rows = T * B
    Ip = -(-I // nr) * nr
    pieces = -(-n_rows // _layout.PROJECT_ROWS)
    m = _threads.team_size(pieces, 2 * n_rows * G * I)
    _threads.run(k.dx, (_rows(d_ih), _layout.pack(w_ih, nr), _rows(dx),
                            np.zeros((m, _layout.PROJECT_ROWS, Ip), dt)), m)
    valid = np.arange(T)[:, None] < lengths[None, :]   # (T, B): False at padded steps
    if not valid.all():   # padded steps: 0, even where W_ih holds inf or NaN (0 * inf)
        dx[~valid] = 0
    chunk = _layout.SUM_ROWS if dt == np.float32 else n_rows
    groups = -(-G // 4)
    m = _threads.team_size(groups, 2 * n_rows * G * (I + H))
    bufs = np.zeros((m, 4, nr), dt)
    xp = _layout.pack(_masked_rows(x, valid), nr)
    part_ih = np.empty((G, xp.shape[0] * nr + 1))
    _threads.run(k.sums, (_rows(d_ih), xp, xp, G, chunk, part_ih, bufs), m)
    hp = _layout.pack(_masked_rows(h_prev, valid), nr)
    hn = hp if reset_after else _layout.pack(_masked_rows(aux, valid), nr)
    part_hh = np.empty((G, hp.shape[0] * nr + 1))
    _threads.run(k.sums, (_rows(d_hh), hp, hn,
                              G if reset_after else 2 * H, chunk, part_hh, bufs), m)
    dw_ih[...] = part_ih[:, :I]
    db_ih[...] = part_ih[:, -1]
    dw_hh[...] = part_hh[:, :H]
    db_hh[...] = part_hh[:, -1]


def prepare_step(w_ih, w_hh, dtype):
    """The packed weights a GRUCell step reads: (W_ih^T packed, W_hh packed, U)."""
    nr = _layout.nr_of(dtype)
    U = _layout.partition(1, w_hh.shape[1], dtype)["units"]   # batch-independent for B <= 4
    return (_layout.pack(np.ascontiguousarray(w_ih.T), nr), _layout.pack_forward(w_hh, U, nr), U)


def step(k, x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out, prepared=None):
    """step of ``contract.py``: one step of a few rows, serial, on the
    calling thread. ``prepared`` is prepare_step's result for these weights, which a
    GRUCell keeps while its parameters' versions stay the same."""
    wp_ih, wf, U = prepared if prepared is not None else prepare_step(w_ih, w_hh, x.dtype)
    k.step(x, h, wp_ih, wf, b_ih, b_hh, reset_after, U, out)


def linear(k, x, w, b, out):
    """out (N, O) := x (N, I) w^T + b, for ``nn.Linear``: the projection kernel, each row on
    its own, so a row's result is the same bits in any batch and with any thread count
    (a BLAS product's bits depend on both)."""
    N, I = x.shape
    O = w.shape[0]
    if N == 0:
        return
    nr = _layout.nr_of(x.dtype)
    y = np.empty((N, -(-O // nr) * nr), x.dtype)
    _threads.run(k.project, (x, _layout.pack(np.ascontiguousarray(w.T), nr), b, y),
                 _threads.team_size(-(-N // _layout.PROJECT_ROWS), 2 * N * O * I))
    out[...] = y[:, :O]
