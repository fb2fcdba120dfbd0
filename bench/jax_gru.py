"""A GRU in JAX over ``jax.lax.scan``, with torch's parameters (gate order r, z, n).

The input projection of all steps is one matmul before the scan, as in fastgru and
PyTorch; only ``h W_hh^T`` is inside it. Layers, directions and lengths follow torch.nn.GRU
and fastgru: past a sequence's length the state is frozen and the output is 0.
Only imported when JAX is installed.
"""
import jax
import jax.numpy as jnp

from fastgru.nn import parameter_names  # torch's names; fastgru's Python only, no kernel

jax.config.update("jax_enable_x64", True)   # for the float64 case; float32 inputs stay float32


def _layer(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, reset_after):
    """x (T, B, I), h0 (B, H), mask (T, B, 1) bool or None -> out (T, B, H), h_n (B, H)."""
    H = w_hh.shape[1]
    xg = x @ w_ih.T + b_ih
    w_rz, w_n = w_hh[:2 * H], w_hh[2 * H:]
    b_rz, b_n = b_hh[:2 * H], b_hh[2 * H:]

    def step(h, inputs):
        g, m = inputs
        if reset_after:
            hh = h @ w_hh.T + b_hh
            r = jax.nn.sigmoid(g[:, :H] + hh[:, :H])
            z = jax.nn.sigmoid(g[:, H:2 * H] + hh[:, H:2 * H])
            n = jnp.tanh(g[:, 2 * H:] + r * hh[:, 2 * H:])
        else:
            hrz = h @ w_rz.T + b_rz
            r = jax.nn.sigmoid(g[:, :H] + hrz[:, :H])
            z = jax.nn.sigmoid(g[:, H:2 * H] + hrz[:, H:])
            n = jnp.tanh(g[:, 2 * H:] + (r * h) @ w_n.T + b_n)
        h_new = (1 - z) * n + z * h
        if m is None:
            return h_new, h_new
        h_new = jnp.where(m, h_new, h)
        return h_new, jnp.where(m, h_new, 0)

    h_n, out = jax.lax.scan(step, h0, (xg, mask), reverse=reverse)
    return out, h_n


def gru(params, x, h0, mask, num_layers, bidirectional, reset_after):
    """torch.nn.GRU's forward: x (T, B, I), h0 (L*D, B, H) -> out (T, B, D*H), h_n (L*D, B, H)."""
    D = 2 if bidirectional else 1
    layer_in, h_n = x, []
    for k in range(num_layers):
        outs = []
        for d in range(D):
            weights = [params[name] for name in parameter_names(k, bool(d))]
            out, h = _layer(layer_in, h0[k * D + d], *weights, mask, bool(d), reset_after)
            outs.append(out)
            h_n.append(h)
        layer_in = outs[0] if D == 1 else jnp.concatenate(outs, axis=2)
    return layer_in, jnp.stack(h_n)


def cell(params, x, h, reset_after):
    """torch.nn.GRUCell: x (B, I), h (B, H) -> h' (B, H)."""
    weights = [params[name] for name in parameter_names()]
    _, h_n = _layer(x[None], h, *weights, None, False, reset_after)
    return h_n
