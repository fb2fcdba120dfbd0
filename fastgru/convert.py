"""Weight layouts in and out of fastgru's (PyTorch's) layout.

fastgru stores weights as torch.nn.GRU does: gate order r, z, n; weight_ih (3H, I),
weight_hh (3H, H), bias_ih and bias_hh (3H,). This module maps that layout to and from:

* the seed article's notation: ``from_seed``, ``to_seed``;
* PyTorch: ``from_torch``, ``to_torch_state_dict``, ``to_torch``;
* Keras GRU, Bidirectional(GRU) and GRUCell: ``from_keras``, ``to_keras``. Gate order z, r, h;
  kernel (I, 3H), recurrent_kernel (H, 3H); bias (3H,) with reset_after=False (our
  reset="before") or (2, 3H) with reset_after=True (reset="after");
* ONNX GRU: ``from_onnx``, ``to_onnx``, ``onnx_to_state_dict``. Gate order z, r, h;
  W (D, 3H, I), R (D, 3H, H), B (D, 6H) = [Wb; Rb]; linear_before_reset 0 (reset="before")
  or 1 (reset="after"); direction forward, reverse or bidirectional.

Every mapping moves numbers without arithmetic (gate permutation, transpose, negation),
so it is exact, except where a layout has one bias where fastgru has two: ``to_seed`` and
``to_keras`` of a reset="before" layer store b_ih + b_hh, which costs that one rounding.
All three foreign layouts use fastgru's sense of z: h' = (1 - z) * n + z * h.
"""
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from . import _validate as v
from .nn import GRU, GRUCell

__all__ = ["from_seed", "to_seed", "from_torch", "to_torch_state_dict", "to_torch",
           "from_keras", "to_keras", "from_onnx", "to_onnx", "onnx_to_state_dict"]


def _swap_rz(a, axis=0):
    """Gate order r, z, n <-> z, r, h along ``axis`` (a swap, so its own inverse)."""
    first, second, third = np.split(a, 3, axis=axis)
    return np.ascontiguousarray(np.concatenate([second, first, third], axis=axis))


def _layer_names(k, reverse=False):
    suffix = f"_l{k}" + ("_reverse" if reverse else "")
    return [name + suffix for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def _build_gru(state, input_size, hidden_size, num_layers, bidirectional, reset, batch_first,
               dtype, dropout=0.0):
    """A fastgru.GRU holding ``state``; bias=True unless ``state`` has no bias at all."""
    bias = any(name.startswith("bias") for name in state)
    H, D = hidden_size, 2 if bidirectional else 1
    if bias:   # a layer of a stack without bias gets zeros, which is the same function
        for k in range(num_layers):
            for d in range(D):
                for name in _layer_names(k, bool(d))[2:]:
                    state.setdefault(name, np.zeros(3 * H, dtype))
    gru = GRU(input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
              dropout=dropout, bidirectional=bidirectional, reset=reset, dtype=dtype, seed=0)
    gru.load_state_dict(state)
    return gru


# --------------------------------------------------------------------------- the seed article

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


def _single_direction(source, reset, what):
    """(w_ih, w_hh, b_ih or None, b_hh or None, reset) of a one-layer, one-direction source."""
    if isinstance(source, GRU):
        if source.num_layers != 1 or source.bidirectional:
            raise ValueError(f"{what} needs a GRU with one layer and one direction, got {source!r}")
        state, suffix, reset = source.state_dict(), "_l0", source.reset
    elif isinstance(source, GRUCell):
        state, suffix, reset = source.state_dict(), "", source.reset
    elif isinstance(source, Mapping):
        if reset is None:
            raise ValueError(f"{what}: a state dict does not say which reset variant it computes; "
                             'pass reset="before" or reset="after"')
        reset = v.reset_mode(reset)
        state = source
        suffix = "_l0" if "weight_ih_l0" in state else ""
    else:
        raise TypeError(f"{what} expects a fastgru GRU, GRUCell or state dict, "
                        f"got {type(source).__name__}")
    names = [name + suffix for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
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


def to_seed(source, reset=None):
    """The seed article's (W_r, W_z, W_h, b_r, b_z, b_h) from a reset="before" layer.

    ``source`` is a fastgru GRU (one layer, one direction) or GRUCell, or a state dict of
    one (``weight_ih_l0``... or ``weight_ih``...), for which ``reset="before"`` must be
    passed to say what it computes. Returns a dict: W_r, W_z, W_h of shape (H, H + I),
    acting on [h, x], and b_r, b_z, b_h of shape (H,); ``from_seed(**to_seed(g))`` gives
    back the same function.

    The article has one bias per gate where fastgru has two. In reset="before" every bias
    is added outside the products with r, so they fold: b_r = b_ir + b_hr,
    b_z = -(b_iz + b_hz) (the article's z is 1 - ours), b_h = b_in + b_hn. That sum is the
    one rounding here; ``to_seed(from_seed(...))`` is bitwise exact (bias_hh is zero there).
    A reset="after" layer has no seed form (r scales W_hn h + b_hn), so it is a ValueError.
    """
    w_ih, w_hh, b_ih, b_hh, reset = _single_direction(source, reset, "to_seed")
    if reset != "before":
        raise ValueError('to_seed needs a reset="before" layer: the article applies r before '
                         'W_hn (h~ = tanh(W_h [r * h, x] + b_h)); a reset="after" layer computes '
                         "r * (W_hn h + b_hn), which no seed-form weights reproduce")
    H = w_hh.shape[1]
    if b_ih is None:
        b_ih = b_hh = np.zeros(3 * H, w_hh.dtype)
    b = b_ih + b_hh
    gates = [slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)]
    W = [np.concatenate([w_hh[g], w_ih[g]], axis=1) for g in gates]
    return {"W_r": W[0], "W_z": -W[1], "W_h": W[2],
            "b_r": b[gates[0]].copy(), "b_z": -b[gates[1]], "b_h": b[gates[2]].copy()}


# --------------------------------------------------------------------------- PyTorch

def _torch_module(obj):
    """The torch module if ``obj`` is a torch object (importing torch only then), else None."""
    if not any(cls.__module__.split(".")[0] == "torch" for cls in type(obj).__mro__):
        return None
    import torch
    return torch


def from_torch(module, dtype=None):
    """A fastgru GRU or GRUCell with the configuration and weights of a torch.nn.GRU/GRUCell.

    ``dtype`` defaults to float64 for a float64 module, else float32 (half-precision weights
    are widened). torch is imported only because ``module`` is a torch object. The result is
    reset="after", as torch computes; dropout (between layers, training only) is copied.
    """
    torch = _torch_module(module)
    if torch is None or not isinstance(module, (torch.nn.GRU, torch.nn.GRUCell)):
        raise TypeError("from_torch expects a torch.nn.GRU or torch.nn.GRUCell, "
                        f"got {type(module).__module__}.{type(module).__name__}")

    def numpy_of(name):
        t = getattr(module, name).detach().cpu()   # getattr also resolves parametrizations
        if t.dtype not in (torch.float32, torch.float64):
            t = t.to(torch.float32)   # float16 and bfloat16 widen exactly
        return t.numpy()

    bias = bool(module.bias)
    if isinstance(module, torch.nn.GRUCell):
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else [])
        state = {name: numpy_of(name) for name in names}
        cell = GRUCell(module.input_size, module.hidden_size, bias=bias, reset="after",
                       dtype=v.compute_dtype(state.values(), dtype), seed=0)
        cell.load_state_dict(state)
        return cell
    if getattr(module, "proj_size", 0):
        raise ValueError(f"proj_size={module.proj_size} (projected hidden state) has no fastgru "
                         "equivalent")
    D = 2 if module.bidirectional else 1
    names = [name for k in range(module.num_layers) for d in range(D)
             for name in _layer_names(k, bool(d))[:4 if bias else 2]]
    state = {name: numpy_of(name) for name in names}
    dt = v.compute_dtype(state.values(), dtype)
    gru = GRU(module.input_size, module.hidden_size, num_layers=module.num_layers, bias=bias,
              batch_first=module.batch_first, dropout=float(module.dropout),
              bidirectional=module.bidirectional, reset="after", dtype=dt, seed=0)
    gru.load_state_dict(state)
    return gru


def _check_torch_compatible(module, what):
    if not isinstance(module, (GRU, GRUCell)):
        raise TypeError(f"{what} expects a fastgru GRU or GRUCell, got {type(module).__name__}")
    if module.reset != "after":
        raise ValueError(f'{what}: torch computes reset="after"; this layer is reset="before" '
                         "(r * h before W_hn), which torch.nn.GRU cannot represent")


def to_torch_state_dict(module):
    """{name: torch.Tensor} for ``torch.nn.GRU/GRUCell.load_state_dict`` (reset="after" only)."""
    _check_torch_compatible(module, "to_torch_state_dict")
    import torch
    return OrderedDict((name, torch.from_numpy(arr)) for name, arr in module.state_dict().items())


def to_torch(module):
    """A torch.nn.GRU or torch.nn.GRUCell with the configuration and weights of ``module``."""
    _check_torch_compatible(module, "to_torch")
    import torch
    dt = torch.float64 if module.dtype == np.float64 else torch.float32
    if isinstance(module, GRUCell):
        out = torch.nn.GRUCell(module.input_size, module.hidden_size, bias=module.bias, dtype=dt)
    else:
        out = torch.nn.GRU(module.input_size, module.hidden_size, num_layers=module.num_layers,
                           bias=module.bias, batch_first=module.batch_first,
                           dropout=module.dropout, bidirectional=module.bidirectional, dtype=dt)
    out.load_state_dict(to_torch_state_dict(module))
    return out


# --------------------------------------------------------------------------- Keras

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
        return _swap_rz(kernel.T), _swap_rz(recurrent.T), None, None, reset, kernel.shape[0], H
    bias = v.float_array(bias, f"{where}: bias", dt, ndim=(1, 2))
    if bias.shape == (2, 3 * H):
        reset, b_ih, b_hh = "after", _swap_rz(bias[0]), _swap_rz(bias[1])
    elif bias.shape == (3 * H,):
        reset, b_ih, b_hh = "before", _swap_rz(bias), np.zeros(3 * H, dt)
    else:
        raise ValueError(f"{where}: bias must have shape ({3 * H},) (reset_after=False) or "
                         f"(2, {3 * H}) (reset_after=True), got {bias.shape}")
    if reset_after is not None and (reset == "after") != bool(reset_after):
        raise ValueError(f"{where}: bias of shape {bias.shape} means reset_after="
                         f"{reset == 'after'}, but reset_after={reset_after} was given")
    return _swap_rz(kernel.T), _swap_rz(recurrent.T), b_ih, b_hh, reset, kernel.shape[0], H


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
        state = {"weight_ih": w_ih, "weight_hh": w_hh}
        if b_ih is not None:
            state.update(bias_ih=b_ih, bias_hh=b_hh)
        cell.load_state_dict(state)
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
            names = _layer_names(k, bool(d))
            state[names[0]], state[names[1]] = w_ih, w_hh
            if b_ih is not None:
                state[names[2]], state[names[3]] = b_ih, b_hh
    if len(resets) > 1:
        raise ValueError("the layers mix reset_after=True and reset_after=False; a fastgru GRU "
                         "has one reset variant")
    return _build_gru(state, input_size, hidden_size, len(layers), D == 2, resets.pop(),
                      batch_first, dt)


def _keras_weights_of(module, suffix_names):
    w_ih, w_hh, b_ih, b_hh = (module._params.get(name) for name in suffix_names)
    weights = [_swap_rz(w_ih.data).T.copy(), _swap_rz(w_hh.data).T.copy()]
    if b_ih is not None:
        if module.reset == "after":
            weights.append(np.stack([_swap_rz(b_ih.data), _swap_rz(b_hh.data)]))
        else:   # every bias is outside the products with r, so the two fold into one
            weights.append(_swap_rz(b_ih.data + b_hh.data))
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
    if isinstance(module, GRUCell):
        return _keras_weights_of(module, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"])
    if not isinstance(module, GRU):
        raise TypeError(f"to_keras expects a fastgru GRU or GRUCell, got {type(module).__name__}")
    return [[w for d in range(module.num_directions)
             for w in _keras_weights_of(module, _layer_names(k, bool(d)))]
            for k in range(module.num_layers)]


# --------------------------------------------------------------------------- ONNX

_ONNX_KEYS = ("W", "R", "B", "direction", "linear_before_reset", "hidden_size", "activations",
              "activation_alpha", "activation_beta", "clip", "layout")


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _check_onnx_attributes(spec, D, where):
    """Reject what fastgru cannot honour; return (direction, reset)."""
    unknown = [key for key in spec if key not in _ONNX_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; an ONNX GRU has {list(_ONNX_KEYS)}")
    direction = _text(spec.get("direction") or ("bidirectional" if D == 2 else "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"{where}: direction must be 'forward', 'reverse' or 'bidirectional', "
                         f"got {direction!r}")
    if (direction == "bidirectional") != (D == 2):
        raise ValueError(f"{where}: direction={direction!r} needs W and R with "
                         f"{2 if direction == 'bidirectional' else 1} in their first dimension, "
                         f"got {D}")
    activations = spec.get("activations")
    if activations is not None and len(activations) > 0:
        names = [_text(a).lower() for a in activations]
        if names != ["sigmoid", "tanh"] * D:
            raise ValueError(f"{where}: activations={[_text(a) for a in activations]} are not "
                             f"supported; fastgru computes {['Sigmoid', 'Tanh'] * D}")
    for key in ("activation_alpha", "activation_beta"):
        if spec.get(key) is not None and len(spec[key]) > 0:
            raise ValueError(f"{where}: {key}={list(spec[key])} is not supported (fastgru's "
                             "Sigmoid and Tanh take no parameters)")
    if spec.get("clip") is not None:
        raise ValueError(f"{where}: clip={spec['clip']} (cell-input clipping) is not supported")
    if spec.get("layout") not in (None, 0):
        raise ValueError(f"{where}: layout={spec['layout']} (batch-major X and Y) is not "
                         "supported; only layout=0 (X (T, B, I)) is")
    lbr = spec.get("linear_before_reset")
    lbr = 0 if lbr is None else lbr
    if lbr not in (0, 1):
        raise ValueError(f"{where}: linear_before_reset must be 0 or 1, got {lbr!r}")
    return direction, "after" if lbr else "before"


def _onnx_layer(spec, k, where, dtype):
    """(state, direction, reset, I, H) of one ONNX GRU given as a dict of arrays and attributes."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where}: expected a dict with keys W, R and optionally B and the GRU "
                        f"attributes, got {type(spec).__name__}")
    for key in ("W", "R"):
        if key not in spec:
            raise ValueError(f"{where}: missing key {key!r}")
    dt = v.compute_dtype([v._to_numpy(spec[key]) for key in ("W", "R", "B") if key in spec], dtype)
    R = v.float_array(spec["R"], f"{where}: R", dt, ndim=3)
    D, H = R.shape[0], R.shape[2]
    if D not in (1, 2) or R.shape != (D, 3 * H, H):
        raise ValueError(f"{where}: R must have shape (num_directions, 3*H, H) with "
                         f"num_directions 1 or 2, got {R.shape}")
    direction, reset = _check_onnx_attributes(spec, D, where)
    if spec.get("hidden_size") is not None and spec["hidden_size"] != H:
        raise ValueError(f"{where}: hidden_size={spec['hidden_size']} but R has shape {R.shape}, "
                         f"so H={H}")
    W = v.float_array(spec["W"], f"{where}: W", dt, shape=(D, 3 * H, None))
    B = spec.get("B")
    B = None if B is None else v.float_array(B, f"{where}: B", dt, shape=(D, 6 * H))
    reverse = [direction == "reverse"] if D == 1 else [False, True]
    state = {}
    for d, rev in enumerate(reverse):
        names = _layer_names(k, rev)
        state[names[0]], state[names[1]] = _swap_rz(W[d]), _swap_rz(R[d])
        if B is not None:
            state[names[2]], state[names[3]] = _swap_rz(B[d, :3 * H]), _swap_rz(B[d, 3 * H:])
    return state, direction, reset, W.shape[2], H


def onnx_to_state_dict(W, R, B=None, *, direction=None, layer=0, dtype=None):
    """fastgru parameter names and arrays for one ONNX GRU layer given as arrays.

    W (D, 3H, I), R (D, 3H, H), B (D, 6H) or None; ``direction`` defaults to "forward"
    (D=1) or "bidirectional" (D=2). Keys are ``weight_ih_l{layer}``..., with ``_reverse``
    for the backward direction, so a direction="reverse" GRU (which fastgru.GRU cannot hold)
    gives only ``*_reverse`` keys: run it with ``fastgru.gru_forward(..., reverse=True)``.
    """
    spec = {"W": W, "R": R, "B": B, "direction": direction}
    return _onnx_layer(spec, layer, f"layer {layer}", dtype)[0]


def from_onnx(layers, *, dtype=None, batch_first=False):
    """A fastgru GRU from ONNX GRU layers, each a dict of its inputs and attributes.

    ``layers`` is one dict, or a list of them (stacked: layer k+1 reads layer k's Y as
    (T, B, D*H)), with keys W (D, 3H, I), R (D, 3H, H), optional B (D, 6H) and the
    attributes ``linear_before_reset`` (0: reset="before", default; 1: reset="after"),
    ``direction``, ``hidden_size``, ``activations`` (only Sigmoid, Tanh), ``layout`` (only 0);
    ``clip`` and ``activation_alpha/beta`` are rejected. Other keys are an error.
    """
    specs = [layers] if isinstance(layers, Mapping) else list(layers)
    if not specs:
        raise ValueError("from_onnx needs at least one layer")
    state, resets, D0 = {}, set(), None
    input_size = hidden_size = None
    for k, spec in enumerate(specs):
        where = f"layer {k}"
        part, direction, reset, I, H = _onnx_layer(spec, k, where, dtype)
        D = 2 if direction == "bidirectional" else 1
        if direction == "reverse":
            raise ValueError(f"{where}: a direction='reverse' GRU has no fastgru.GRU equivalent; "
                             "use convert.onnx_to_state_dict and "
                             "fastgru.gru_forward(..., reverse=True)")
        if k == 0:
            D0, input_size, hidden_size = D, I, H
        elif (D, I, H) != (D0, hidden_size * D0, hidden_size):
            raise ValueError(f"{where}: W must have shape ({D0}, {3 * hidden_size}, "
                             f"{hidden_size * D0}) to stack on layer 0, got "
                             f"({D}, {3 * H}, {I})")
        state.update(part)
        resets.add(reset)
    if len(resets) > 1:
        raise ValueError("the layers mix linear_before_reset 0 and 1; a fastgru GRU has one "
                         "reset variant")
    dt = next(iter(state.values())).dtype
    return _build_gru(state, input_size, hidden_size, len(specs), D0 == 2, resets.pop(),
                      batch_first, dt)


def _onnx_layer_of(module, names_per_direction):
    H = module.hidden_size
    p = module._params
    spec = {"W": np.stack([_swap_rz(p[names[0]].data) for names in names_per_direction]),
            "R": np.stack([_swap_rz(p[names[1]].data) for names in names_per_direction])}
    if module.bias:
        spec["B"] = np.stack([np.concatenate([_swap_rz(p[names[2]].data),
                                              _swap_rz(p[names[3]].data)])
                              for names in names_per_direction])
    spec["direction"] = "bidirectional" if len(names_per_direction) == 2 else "forward"
    spec["hidden_size"] = H
    spec["linear_before_reset"] = int(module.reset == "after")
    return spec


def to_onnx(module):
    """ONNX GRU inputs and attributes from a fastgru GRU (a list, one dict per layer) or GRUCell.

    Each dict has W (D, 3H, I), R (D, 3H, H), B (D, 6H) (absent when bias=False),
    ``direction``, ``hidden_size`` and ``linear_before_reset``; ``from_onnx`` takes it back.
    """
    if isinstance(module, GRUCell):
        return _onnx_layer_of(module, [["weight_ih", "weight_hh", "bias_ih", "bias_hh"]])
    if not isinstance(module, GRU):
        raise TypeError(f"to_onnx expects a fastgru GRU or GRUCell, got {type(module).__name__}")
    return [_onnx_layer_of(module, [_layer_names(k, bool(d))
                                    for d in range(module.num_directions)])
            for k in range(module.num_layers)]
