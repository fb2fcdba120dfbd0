"""Cython backend: the adapter to the compiled kernels in ``fastgru_ext``.

The same split of the work as the Numba backend: the input projection and the
weight gradients are large GEMMs in NumPy (``_blas``); the recurrence runs in
``fastgru_ext._gru``, whose OpenMP threads each walk a block of batch rows
through all T steps. All of it runs under ``_blas.exclusive()``: BLAS held to one
thread, so that it does not fight the OpenMP threads, and results do not depend
on the thread count.

The kernels' thread count: ``fastgru_ext._gru.set_num_threads(n)`` (None for
OpenMP's default); it never changes the results.
"""
import numpy as np

from . import _blas

with _blas.openmp_loading():   # the extension links libgomp: it loads here
    from fastgru_ext import _gru


def forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after,
            out, h_n, h_prev, gates, aux):
    """Same contract as ``reference.forward``."""
    def recurrence(xg, rows):
        _gru.forward_steps(xg, h0, w_hh, b_hh, lengths, reverse, reset_after, rows,
                           _blas.tall_product(w_hh.shape[1], rows), out, h_n, h_prev, aux)
    _blas.forward_frame(x, w_ih, b_ih, gates, h_prev.shape[0] == x.shape[0], recurrence)


def step(x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out):
    """Same contract as ``reference.step``: one serial step (GRUCell), with BLAS at
    one thread (its results would otherwise follow BLAS's thread count)."""
    with _blas.exclusive():
        _gru.step(x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out)


def backward(d_out, d_h_n, x, w_ih, w_hh, lengths, reverse, reset_after,
             h_prev, gates, aux, dx, dh0, dw_ih, dw_hh, db_ih, db_hh):
    """Same contract as ``reference.backward``."""
    def recurrence(d_ih, d_hh, rows):
        _gru.backward_steps(d_out, d_h_n, w_hh, lengths, reverse, reset_after, rows,
                            _blas.tall_product(w_hh.shape[1], rows),
                            h_prev, gates, aux, d_ih, d_hh, dh0)
    _blas.backward_frame(x, w_ih, h_prev, gates, aux, reset_after,
                         (dx, dw_ih, dw_hh, db_ih, db_hh), recurrence)
