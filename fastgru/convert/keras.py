"""Keras: GRU, Bidirectional(GRU) and GRUCell layers, or their weight lists, in and out.

Keras orders the gates z, r, h; kernel (I, 3H), recurrent_kernel (H, 3H); bias (3H,) with
reset_after=False (fastgru's reset="before") or (2, 3H) with reset_after=True
(reset="after"). Keras itself is never imported: a layer is read through ``get_weights``.
"""
import numpy as np

from .. import _validate as v
from ..nn import GRUCell
from ._layout import build_gru, direction_state, names_by_layer, single_reset, swap_rz

__all__ = ["from_keras", "to_keras"]

def _is_keras(obj, *names):
    return hasattr(obj, "get_weights") and type(obj).__name__ in names


def _activation_name(fn):
    return getattr(fn, "__name__", str(fn))


def _keras_gru_weights(layer, where):
    """A Keras GRU or GRUCell layer's weight list, after checking it computes what fastgru does."""
    for attr, expected in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        name = _activation_name(getattr(layer, attr))
        if name != expected:
            raise ValueError(f"{where}: {attr}={name!r} is not supported; fastgru computes "
                             f"{attr}={expected!r}")
    if getattr(layer, "time_major", False):
        raise ValueError(f"{where}: time_major=True is not supported; convert its weights "
                         "(layer.get_weights()) and call the GRU with batch_first=False")
    weights = layer.get_weights()
    if not weights:
        raise ValueError(f"{where}: the Keras layer has no weights yet; build it first "
                         "(call it on an input, or layer.build(input_shape))")
    return weights, bool(layer.reset_after)


def _keras_layer_entry(item, index, last):
    """One stacked layer: list of (weights, reset_after or None, where) per direction."""
    where = f"layer {index}"
    if _is_keras(item, "GRU"):
        if item.go_backwards:
            raise ValueError(f"{where}: a go_backwards=True GRU alone (reverse-only, outputs in "
                             "reversed time order) has no fastgru.GRU equivalent; wrap it in "
                             "Bidirectional or convert its arrays with from_keras(weights)")
        if not last and not item.return_sequences:
            raise ValueError(f"{where}: return_sequences=False, so it cannot feed the next layer")
        weights, reset_after = _keras_gru_weights(item, where)
        return [(weights, reset_after, where)]
    if _is_keras(item, "Bidirectional"):
        if item.merge_mode != "concat":
            raise ValueError(f"{where}: Bidirectional(merge_mode={item.merge_mode!r}) is not "
                             "supported; fastgru concatenates the two directions ('concat')")
        fw, bw = item.forward_layer, item.backward_layer
        if not (_is_keras(fw, "GRU") and _is_keras(bw, "GRU")):
            raise TypeError(f"{where}: Bidirectional must wrap GRU layers, got "
                            f"{type(fw).__name__} and {type(bw).__name__}")
        if fw.go_backwards or not bw.go_backwards:
            raise ValueError(f"{where}: Bidirectional's forward layer must have "
                             "go_backwards=False and its backward layer go_backwards=True")
        if not last and not fw.return_sequences:
            raise ValueError(f"{where}: return_sequences=False, so it cannot feed the next layer")
        return [(*_keras_gru_weights(fw, where + " forward"), where + " forward"),
                (*_keras_gru_weights(bw, where + " backward"), where + " backward")]
    if isinstance(item, (list, tuple)):
        if len(item) in (2, 3):
            return [(list(item), None, where)]
        if len(item) in (4, 6):
            half = len(item) // 2
            return [(list(item[:half]), None, where + " forward"),
                    (list(item[half:]), None, where + " backward")]
        raise ValueError(f"{where}: a Keras weight list has 3 arrays [kernel, recurrent_kernel, "
                         "bias] (2 without bias), or twice that for Bidirectional; "
                         f"got {len(item)}")
    raise TypeError(f"{where}: expected a Keras GRU or Bidirectional(GRU) layer or a weight "
                    f"list, got {type(item).__name__}")


def _keras_direction(weights, reset_after, where, dt):
    """(weight_ih, weight_hh, bias_ih, bias_hh or None, reset, I, H) of one Keras direction."""
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) == 3 else None
    recurrent = v.float_array(recurrent, f"{where}: recurrent_kernel", dt, ndim=2)
    H = recurrent.shape[0]
    recurrent = v.float_array(recurrent, f"{where}: recurrent_kernel", dt, shape=(H, 3 * H))
    kernel = v.float_array(kernel, f"{where}: kernel", dt, shape=(None, 3 * H))
    if bias is None:
        if reset_after is None:
            raise ValueError(f"{where}: without a bias the weights do not say whether the layer "
                             "had reset_after=True or False; pass reset_after")
        reset = "after" if reset_after else "before"
        return swap_rz(kernel.T), swap_rz(recurrent.T), None, None, reset, kernel.shape[0], H
    bias = v.float_array(bias, f"{where}: bias", dt, ndim=(1, 2))
    if bias.shape == (2, 3 * H):
        reset, b_ih, b_hh = "after", swap_rz(bias[0]), swap_rz(bias[1])
    elif bias.shape == (3 * H,):
        reset, b_ih, b_hh = "before", swap_rz(bias), np.zeros(3 * H, dt)
    else:
        raise ValueError(f"{where}: bias must have shape ({3 * H},) (reset_after=False) or "
                         f"(2, {3 * H}) (reset_after=True), got {bias.shape}")
    if reset_after is not None and (reset == "after") != bool(reset_after):
        raise ValueError(f"{where}: bias of shape {bias.shape} means reset_after="
                         f"{reset == 'after'}, but reset_after={reset_after} was given")
    return swap_rz(kernel.T), swap_rz(recurrent.T), b_ih, b_hh, reset, kernel.shape[0], H


def from_keras(source, *, reset_after=None, dtype=None, batch_first=True):
    """A fastgru GRU (or GRUCell) computing what a Keras GRU computes.

    ``source`` is a built Keras ``GRU``, ``Bidirectional(GRU)`` (merge_mode="concat") or
    ``GRUCell`` layer; or a weight list as ``layer.get_weights()`` gives it
    ([kernel (I, 3H), recurrent_kernel (H, 3H), bias], forward then backward for
    Bidirectional); or a list of those, stacked, which becomes a multi-layer GRU.
    The reset variant comes from the bias shape: (2, 3H) is reset_after=True (reset="after"),
    (3H,) is reset_after=False (reset="before"); pass ``reset_after`` for weights without bias.
    Keras is batch-major, hence ``batch_first=True`` by default. Keras itself is not imported.
    A right-padded Keras mask is ``lengths`` here: h_n and the valid steps' outputs agree,
    but at masked steps fastgru outputs 0 where a Keras GRU repeats its previous output.
    """
    if _is_keras(source, "GRUCell"):
        weights, layer_reset_after = _keras_gru_weights(source, "GRUCell")
        dt = v.compute_dtype(weights, dtype)
        w_ih, w_hh, b_ih, b_hh, reset, I, H = _keras_direction(weights, layer_reset_after,
                                                               "GRUCell", dt)
        cell = GRUCell(I, H, bias=b_ih is not None, reset=reset, dtype=dt, seed=0)
        cell.load_state_dict(direction_state(None, False, w_ih, w_hh, b_ih, b_hh))
        return cell
    stacked = isinstance(source, (list, tuple)) and len(source) > 0 and all(
        isinstance(item, (list, tuple)) or hasattr(item, "get_weights") for item in source)
    items = list(source) if stacked else [source]
    layers = [_keras_layer_entry(item, k, k == len(items) - 1) for k, item in enumerate(items)]
    all_arrays = [w for layer in layers for weights, _, _ in layer for w in weights]
    dt = v.compute_dtype([v._to_numpy(a) for a in all_arrays], dtype)
    state, resets = {}, set()
    D = len(layers[0])
    input_size = hidden_size = None
    for k, layer in enumerate(layers):
        if len(layer) != D:
            raise ValueError(f"layer {k} has {len(layer)} direction(s) but layer 0 has {D}; "
                             "fastgru stacks layers with the same number of directions")
        for d, (weights, layer_reset_after, where) in enumerate(layer):
            if None not in (reset_after, layer_reset_after) and reset_after != layer_reset_after:
                raise ValueError(f"{where}: the layer has reset_after={layer_reset_after}, but "
                                 f"reset_after={reset_after} was given")
            given = reset_after if layer_reset_after is None else layer_reset_after
            w_ih, w_hh, b_ih, b_hh, reset, I, H = _keras_direction(weights, given, where, dt)
            hidden_size = H if hidden_size is None else hidden_size
            expected_in = (I if input_size is None else input_size) if k == 0 else hidden_size * D
            input_size = I if input_size is None else input_size
            if H != hidden_size or I != expected_in:
                raise ValueError(f"{where}: kernel must have shape ({expected_in}, "
                                 f"{3 * hidden_size}) and recurrent_kernel ({hidden_size}, "
                                 f"{3 * hidden_size}) to stack, got ({I}, {3 * H}) and "
                                 f"({H}, {3 * H})")
            resets.add(reset)
            state.update(direction_state(k, bool(d), w_ih, w_hh, b_ih, b_hh))
    reset = single_reset(resets, "reset_after=True and reset_after=False")
    return build_gru(state, input_size, hidden_size, len(layers), D == 2, reset, batch_first, dt)


def _keras_weights_of(state, names, reset):
    """[kernel, recurrent_kernel(, bias)] of one direction from fastgru's state dict."""
    w_ih, w_hh, *biases = (state[name] for name in names)
    weights = [swap_rz(w_ih).T.copy(), swap_rz(w_hh).T.copy()]
    if biases:
        b_ih, b_hh = biases
        if reset == "after":
            weights.append(np.stack([swap_rz(b_ih), swap_rz(b_hh)]))
        else:   # every bias is outside the products with r, so the two fold into one
            weights.append(swap_rz(b_ih + b_hh))
    return weights


def to_keras(module):
    """Keras weight lists for ``layer.set_weights``, from a fastgru GRU or GRUCell.

    For a GRU: one list per layer, [kernel (I, 3H), recurrent_kernel (H, 3H), bias], with
    the backward direction's three following for a bidirectional GRU (the order of
    ``Bidirectional.get_weights()``). For a GRUCell: one such list. Build the Keras layers with
    ``reset_after=(module.reset == "after")`` and ``use_bias=module.bias``. A reset="before"
    layer's bias (3H,) is bias_ih + bias_hh (Keras has one bias there; this sum is the one
    rounding); reset="after" gives bias (2, 3H) = [input bias; recurrent bias].
    """
    layers = names_by_layer(module, "to_keras")
    state = module.state_dict()
    lists = [[w for names in directions for w in _keras_weights_of(state, names, module.reset)]
             for directions in layers]
    return lists[0] if isinstance(module, GRUCell) else lists
