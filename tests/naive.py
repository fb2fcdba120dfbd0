"""A deliberately naive GRU: one sample, one step, one scalar at a time, float64.

It checks the NumPy reference, which then checks the compiled backends.
"""
import math


def _sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a))


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, reset="after", lengths=None, reverse=False):
    """x (T, B, I), h0 (B, H) as nested lists or arrays; returns out (T, B, H), h_n (B, H) lists."""
    T, B = len(x), len(x[0]) if len(x) else 0
    H = len(h0[0])
    I = len(w_ih[0])
    out = [[[0.0] * H for _ in range(B)] for _ in range(T)]
    h_n = []
    for b in range(B):
        n_steps = T if lengths is None else int(lengths[b])
        steps = range(n_steps - 1, -1, -1) if reverse else range(n_steps)
        h = [float(v) for v in h0[b]]
        for t in steps:
            xt = x[t][b]

            def lin(w, bias, row, vec, size):
                return sum(float(w[row][k]) * float(vec[k]) for k in range(size)) + float(bias[row])

            r = [_sigmoid(lin(w_ih, b_ih, j, xt, I) + lin(w_hh, b_hh, j, h, H)) for j in range(H)]
            z = [_sigmoid(lin(w_ih, b_ih, H + j, xt, I) + lin(w_hh, b_hh, H + j, h, H))
                 for j in range(H)]
            if reset == "after":
                n = [math.tanh(lin(w_ih, b_ih, 2 * H + j, xt, I)
                               + r[j] * lin(w_hh, b_hh, 2 * H + j, h, H)) for j in range(H)]
            else:
                rh = [r[k] * h[k] for k in range(H)]
                n = [math.tanh(lin(w_ih, b_ih, 2 * H + j, xt, I) + lin(w_hh, b_hh, 2 * H + j, rh, H))
                     for j in range(H)]
            h = [(1.0 - z[j]) * n[j] + z[j] * h[j] for j in range(H)]
            out[t][b] = list(h)
        h_n.append(h)
    return out, h_n
