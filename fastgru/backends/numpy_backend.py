"""NumPy reference backend: the GRU equations, one line each. The oracle.

For one layer and one direction, input x_t (B, I) and state h (B, H), with
PyTorch's gate order r, z, n::

    r  = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
    z  = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
    reset="after":   hn_lin = h W_hn^T + b_hn           n = tanh(x W_in^T + b_in + r * hn_lin)
    reset="before":  rh = r * h                          n = tanh(x W_in^T + b_in + rh W_hn^T + b_hn)
    h' = (1 - z) * n + z * h

Steps with t >= lengths[b] are skipped: the state is frozen and the output is 0.
The reverse direction walks t = T-1 .. 0, so it starts at step lengths[b] - 1.

Every backend exposes ``forward``, ``backward`` and ``step`` as ``contract.py``
names them. Kernels trust their inputs (validated in ``fastgru.functional``) and
write into the arrays they are given.
"""
import numpy as np

from .contract import Layer

# Non-finite inputs propagate as IEEE arithmetic makes them (as in torch, and in the
# compiled backends); exp overflowing to inf for a large pre-activation is how sigmoid
# reaches 0, not an error. NumPy's warnings for these would only be noise.
quiet = np.errstate(over="ignore", invalid="ignore")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def split_gates(m, H):
    """Split stacked (..., 3H) rows into the r, z, n parts."""
    return m[..., :H], m[..., H:2 * H], m[..., 2 * H:]


def time_order(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


@quiet
def forward(layer, h0, out, h_n, saved=None):
    """One GRU layer over a sequence (the contract: ``contract.py``)."""
    x, w_ih, w_hh, b_ih, b_hh, lengths, reverse, reset_after = layer
    T = x.shape[0]
    H = h0.shape[1]
    W_ir, W_iz, W_in = split_gates(w_ih.T, H)
    W_hr, W_hz, W_hn = split_gates(w_hh.T, H)
    b_ir, b_iz, b_in = split_gates(b_ih, H)
    b_hr, b_hz, b_hn = split_gates(b_hh, H)
    h = h0.copy()
    for t in time_order(T, reverse):
        x_t = x[t]
        valid = (t < lengths)[:, None]
        r = sigmoid(x_t @ W_ir + b_ir + h @ W_hr + b_hr)
        z = sigmoid(x_t @ W_iz + b_iz + h @ W_hz + b_hz)
        if reset_after:
            hn_lin = h @ W_hn + b_hn
            n = np.tanh(x_t @ W_in + b_in + r * hn_lin)
            kept = hn_lin
        else:
            rh = r * h
            n = np.tanh(x_t @ W_in + b_in + rh @ W_hn + b_hn)
            kept = rh
        h_new = (1 - z) * n + z * h
        if saved is not None:
            saved.h_prev[t] = h
            saved.gates[t] = np.concatenate([r, z, n], axis=1)
            saved.aux[t] = kept
        out[t] = np.where(valid, h_new, 0)
        h = np.where(valid, h_new, h)
    h_n[...] = h


@quiet
def backward(layer, saved, d_out, d_h_n, grads):
    """Backpropagation through time for one layer (the contract: ``contract.py``)."""
    x, w_ih, w_hh, _, _, lengths, reverse, reset_after = layer
    h_prev, gates, aux = saved
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = grads
    T = x.shape[0]
    H = d_h_n.shape[1]
    W_hn = w_hh[2 * H:]
    dh = d_h_n.copy()
    dw_ih[...] = 0
    dw_hh[...] = 0
    db_ih[...] = 0
    db_hh[...] = 0
    for t in reversed(time_order(T, reverse)):
        valid = (t < lengths)[:, None]
        h = h_prev[t]
        r, z, n = split_gates(gates[t], H)
        dh_t = dh + np.where(valid, d_out[t], 0)
        dn = dh_t * (1 - z)
        dz = dh_t * (h - n)
        dn_pre = dn * (1 - n * n)
        dz_pre = dz * z * (1 - z)
        if reset_after:
            hn_lin = aux[t]
            dhn = dn_pre * r
            dr = dn_pre * hn_lin
            dr_pre = dr * r * (1 - r)
        else:
            dhn = dn_pre
            drh = dn_pre @ W_hn
            dr = drh * h
            dr_pre = dr * r * (1 - r)
        d_ih = np.where(valid, np.concatenate([dr_pre, dz_pre, dn_pre], axis=1), 0)
        d_hh = np.where(valid, np.concatenate([dr_pre, dz_pre, dhn], axis=1), 0)
        dx[t] = np.where(valid, d_ih @ w_ih, 0)
        # padded rows take no part, even when they hold NaN (0 * NaN would be NaN)
        x_t, h, rh = (np.where(valid, a, 0) for a in (x[t], h, aux[t]))
        dw_ih += d_ih.T @ x_t
        db_ih += d_ih.sum(axis=0)
        db_hh += d_hh.sum(axis=0)
        if reset_after:
            dw_hh += d_hh.T @ h
            dh_prev = dh_t * z + d_hh @ w_hh
        else:
            dw_hh[:2 * H] += d_hh[:, :2 * H].T @ h
            dw_hh[2 * H:] += d_hh[:, 2 * H:].T @ rh
            dh_prev = dh_t * z + drh * r + d_hh[:, :2 * H] @ w_hh[:2 * H]
        dh = np.where(valid, dh_prev, dh)
    dh0[...] = dh


@quiet
def step(x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out, prepared=None):
    """One step (GRUCell): x (B, I), h (B, H) IN; out (B, H) OUT, the next state.
    ``prepared`` (the compiled backends' packed weights) is not used here."""
    B, H = h.shape
    forward(Layer(x[None], w_ih, w_hh, b_ih, b_hh, np.ones(B, np.int64), False, reset_after),
            h, np.empty((1, B, H), h.dtype), out)


def linear(x, w, b, out):
    """A Linear layer (``nn.Linear``): x (N, I), w (O, I), b (O,) IN; out (N, O) OUT,
    out = x w^T + b."""
    out[...] = x @ w.T + b
