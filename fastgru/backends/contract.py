"""The backend contract, named: what a backend's forward and backward read and write.

Every backend module (``reference``, ``numba_backend``, ``cython_backend``) has

    forward(layer: Layer, h0, out, h_n, saved: Saved | None) -> None
        h0 (B, H) IN; out (T, B, H), h_n (B, H) OUT; ``saved`` OUT when given (a
        training forward), None for inference.
    backward(layer: Layer, saved: Saved, d_out, d_h_n, grads: Grads) -> None
        d_out (T, B, H), d_h_n (B, H) IN: the loss gradients at forward's outputs;
        ``grads`` OUT, overwritten (not accumulated).
    step(x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out, prepared=None) -> None
        one step of a few rows (GRUCell).

Backends trust what they are given: ``fastgru.functional`` validates once, at the
public boundary (``nn.GRU`` validates its inputs once for all its layers), and
T, B > 0 there. All arrays are C-contiguous, in one float dtype.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Layer(NamedTuple):
    """One layer in one direction: IN to forward and backward."""
    x: np.ndarray          # (T, B, I)
    w_ih: np.ndarray       # (3H, I), gate rows r, z, n
    w_hh: np.ndarray       # (3H, H)
    b_ih: np.ndarray       # (3H,), zeros for a layer without bias
    b_hh: np.ndarray       # (3H,)
    lengths: np.ndarray    # (B,) int64, each in [0, T]: steps at or past lengths[b] are padding
    reverse: bool          # walk t = T-1 .. 0 (each sequence from its own last step)
    reset_after: bool      # reset="after" (torch's); False: reset="before"


class Saved(NamedTuple):
    """What a training forward keeps for backward: OUT of forward, IN to backward."""
    h_prev: np.ndarray     # (T, B, H) the state entering each step
    gates: np.ndarray      # (T, B, 3H) r, z, n after their activations
    aux: np.ndarray        # (T, B, H) hn_lin (reset="after") or r * h (reset="before")


class Grads(NamedTuple):
    """OUT of backward: the gradients at the layer's inputs and parameters."""
    dx: np.ndarray         # (T, B, I), 0 at padded steps
    dh0: np.ndarray        # (B, H)
    dw_ih: np.ndarray      # (3H, I)
    dw_hh: np.ndarray      # (3H, H)
    db_ih: np.ndarray      # (3H,)
    db_hh: np.ndarray      # (3H,)


def shapes(layer: Layer) -> tuple[int, int, int, int]:
    """(T, B, I, H) of a layer."""
    T, B, I = layer.x.shape
    return T, B, I, layer.w_hh.shape[1]
