"""The [h, x] notation: one (H, H + I) matrix per gate acting on the concatenation [h, x].

Written this way (the notation of the article that ``python -m fastgru demo`` follows)::

    r = sigmoid(W_r [h, x] + b_r)        z = sigmoid(W_z [h, x] + b_z)
    n = tanh(W_h [r * h, x] + b_h)       h' = z * n + (1 - z) * h

Three matrices W_r, W_z, W_h of shape (H, H + I), their first H columns acting on h and
the last I on x; one bias per gate, (H,); r applied to h before the product (fastgru's
reset="before"); and z in the opposite sense to fastgru's (and torch's, Keras's, ONNX's)
h' = (1 - z) * n + z * h. Since sigmoid(-a) = 1 - sigmoid(a), the z gate's weights and
bias change sign on the way in and out; nothing else is arithmetic.
"""
from collections.abc import Mapping

import numpy as np

from .. import _validate as v
from ..nn import GRU, GRUCell, parameter_names

__all__ = ["from_hx", "to_hx"]


def _hx_arrays(W_r, W_z, W_h, b_r, b_z, b_h):
    W = [v._to_numpy(w) for w in (W_r, W_z, W_h)]
    dt = np.result_type(*W, np.float32)
    W = [v.float_array(w, name, dt, ndim=2) for w, name in zip(W, ("W_r", "W_z", "W_h"))]
    H, cols = W[0].shape
    if cols <= H:
        raise ValueError(f"W_r must have shape (H, H + I) with I >= 1 (it acts on [h, x]), "
                         f"got {W[0].shape}")
    W = [v.float_array(w, name, dt, shape=(H, cols)) for w, name in zip(W, ("W_r", "W_z", "W_h"))]
    b = [v.float_array(x, name, dt, shape=(H,)) for x, name in zip((b_r, b_z, b_h),
                                                                    ("b_r", "b_z", "b_h"))]
    return W, b, H


def from_hx(W_r, W_z, W_h, b_r, b_z, b_h):
    """State dict for ``GRU(I, H, reset="before")`` from the [h, x] notation.

    W_r, W_z, W_h (H, H + I) act on [h, x]; b_r, b_z, b_h are (H,); h' = z * n + (1 - z) * h
    (see the module docstring). Its z is 1 - ours, and sigmoid(-a) = 1 - sigmoid(a), so the
    z gate's weights and bias are negated. All biases go to bias_ih; bias_hh is zero.
    """
    (W_r, W_z, W_h), (b_r, b_z, b_h), H = _hx_arrays(W_r, W_z, W_h, b_r, b_z, b_h)
    w_ih = np.concatenate([W_r[:, H:], -W_z[:, H:], W_h[:, H:]])
    w_hh = np.concatenate([W_r[:, :H], -W_z[:, :H], W_h[:, :H]])
    b_ih = np.concatenate([b_r, -b_z, b_h])
    return dict(zip(parameter_names(0), (w_ih, w_hh, b_ih, np.zeros(3 * H, W_r.dtype))))


def _single_direction(source, reset, what):
    """(w_ih, w_hh, b_ih or None, b_hh or None, reset) of a one-layer, one-direction source."""
    if isinstance(source, GRU):
        if source.num_layers != 1 or source.bidirectional:
            raise ValueError(f"{what} needs a GRU with one layer and one direction, got {source!r}")
        state, layer, reset = source.state_dict(), 0, source.reset
    elif isinstance(source, GRUCell):
        state, layer, reset = source.state_dict(), None, source.reset
    elif isinstance(source, Mapping):
        if reset is None:
            raise ValueError(f"{what}: a state dict does not say which reset variant it computes; "
                             'pass reset="before" or reset="after"')
        reset = v.reset_mode(reset)
        state = source
        layer = 0 if parameter_names(0)[0] in state else None
    else:
        raise TypeError(f"{what} expects a fastgru GRU, GRUCell or state dict, "
                        f"got {type(source).__name__}")
    names = parameter_names(layer)
    has_bias = names[2] in state or names[3] in state
    expected = names if has_bias else names[:2]
    unexpected = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state]
    if missing or unexpected:
        raise ValueError(f"{what}: missing keys {missing}, unexpected keys {unexpected}; "
                         f"expected exactly {expected}")
    w_hh = v._to_numpy(state[names[1]])
    dt = v.compute_dtype([state[k] for k in expected], None)
    w_hh = v.float_array(w_hh, names[1], dt, ndim=2)
    H = w_hh.shape[1]
    w_hh = v.float_array(w_hh, names[1], dt, shape=(3 * H, H))
    w_ih = v.float_array(state[names[0]], names[0], dt, shape=(3 * H, None))
    b_ih = b_hh = None
    if has_bias:
        b_ih = v.float_array(state[names[2]], names[2], dt, shape=(3 * H,))
        b_hh = v.float_array(state[names[3]], names[3], dt, shape=(3 * H,))
    return w_ih, w_hh, b_ih, b_hh, reset


def to_hx(source, reset=None):
    """The [h, x] notation's (W_r, W_z, W_h, b_r, b_z, b_h) from a reset="before" layer.

    ``source`` is a fastgru GRU (one layer, one direction) or GRUCell, or a state dict of
    one (``weight_ih_l0``... or ``weight_ih``...), for which ``reset="before"`` must be
    passed to say what it computes. Returns a dict: W_r, W_z, W_h of shape (H, H + I),
    acting on [h, x], and b_r, b_z, b_h of shape (H,); ``from_hx(**to_hx(g))`` gives
    back the same function.

    The notation has one bias per gate where fastgru has two. In reset="before" every bias
    is added outside the products with r, so they fold: b_r = b_ir + b_hr,
    b_z = -(b_iz + b_hz) (the notation's z is 1 - ours), b_h = b_in + b_hn. That sum is the
    one rounding here; ``to_hx(from_hx(...))`` is bitwise exact (bias_hh is zero there).
    A reset="after" layer has no [h, x] form (r scales W_hn h + b_hn), so it is a ValueError.
    """
    w_ih, w_hh, b_ih, b_hh, reset = _single_direction(source, reset, "to_hx")
    if reset != "before":
        raise ValueError('to_hx needs a reset="before" layer: the [h, x] notation applies r '
                         'before W_hn (n = tanh(W_h [r * h, x] + b_h)); a reset="after" layer '
                         "computes r * (W_hn h + b_hn), which no [h, x] weights reproduce")
    H = w_hh.shape[1]
    if b_ih is None:
        b_ih = b_hh = np.zeros(3 * H, w_hh.dtype)
    b = b_ih + b_hh
    gates = [slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)]
    W = [np.concatenate([w_hh[g], w_ih[g]], axis=1) for g in gates]
    return {"W_r": W[0], "W_z": -W[1], "W_h": W[2],
            "b_r": b[gates[0]].copy(), "b_z": -b[gates[1]], "b_h": b[gates[2]].copy()}
