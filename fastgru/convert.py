"""Weight layouts in and out of fastgru's (PyTorch's) layout.

fastgru stores weights as torch.nn.GRU does: gate order r, z, n; weight_ih (3H, I),
weight_hh (3H, H), bias_ih and bias_hh (3H,).
"""
import numpy as np

from . import _validate as v


def _seed_arrays(W_r, W_z, W_h, b_r, b_z, b_h):
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


def from_seed(W_r, W_z, W_h, b_r, b_z, b_h):
    """State dict for ``GRU(I, H, reset="before")`` from the seed article's notation.

    The article computes, with each W of shape (H, H + I) acting on [h, x]::

        r = sigmoid(W_r [h, x] + b_r)        z = sigmoid(W_z [h, x] + b_z)
        h~ = tanh(W_h [r * h, x] + b_h)      h' = (1 - z) * h + z * h~

    Its z is 1 - ours, and sigmoid(-a) = 1 - sigmoid(a), so the z gate's weights and
    bias are negated. All biases go to bias_ih; bias_hh is zero.
    """
    (W_r, W_z, W_h), (b_r, b_z, b_h), H = _seed_arrays(W_r, W_z, W_h, b_r, b_z, b_h)
    return {
        "weight_ih_l0": np.concatenate([W_r[:, H:], -W_z[:, H:], W_h[:, H:]]),
        "weight_hh_l0": np.concatenate([W_r[:, :H], -W_z[:, :H], W_h[:, :H]]),
        "bias_ih_l0": np.concatenate([b_r, -b_z, b_h]),
        "bias_hh_l0": np.zeros(3 * H, W_r.dtype),
    }
