"""What every converter shares: fastgru's (torch's) layout, and building a GRU from it.

fastgru stores weights as torch.nn.GRU does: gate order r, z, n; weight_ih (3H, I),
weight_hh (3H, H), bias_ih and bias_hh (3H,), named by ``fastgru.nn.parameter_names``.
Keras and ONNX order the gates z, r, h (``swap_rz``). The names here are the package's
own (used by its format modules), not fastgru's public API.
"""
import numpy as np

from ..nn import GRU, GRUCell, parameter_names


def swap_rz(a, axis=0):
    """Gate order r, z, n <-> z, r, h along ``axis`` (a swap, so its own inverse)."""
    first, second, third = np.split(a, 3, axis=axis)
    return np.ascontiguousarray(np.concatenate([second, first, third], axis=axis))


def direction_state(layer, reverse, w_ih, w_hh, b_ih=None, b_hh=None):
    """{parameter name: array} of one direction of one layer (``layer`` None: a GRUCell's
    names); without ``b_ih`` only the two weights."""
    arrays = [w_ih, w_hh] + ([] if b_ih is None else [b_ih, b_hh])
    return dict(zip(parameter_names(layer, reverse), arrays))


def check_layer(module, what):
    """TypeError unless ``module`` is a fastgru GRU or GRUCell."""
    if not isinstance(module, (GRU, GRUCell)):
        raise TypeError(f"{what} expects a fastgru GRU or GRUCell, got {type(module).__name__}")


def names_by_layer(module, what):
    """[[names of each direction] for each layer] of a fastgru GRU; [[names]] for a GRUCell."""
    check_layer(module, what)
    if isinstance(module, GRUCell):
        return [[parameter_names(bias=module.bias)]]
    return [[parameter_names(k, bool(d), module.bias) for d in range(module.num_directions)]
            for k in range(module.num_layers)]


def single_reset(resets, mixed):
    """The one reset variant in the set ``resets`` of a stack's layers; ``mixed`` says, in the
    format's words, which two were found."""
    if len(resets) > 1:
        raise ValueError(f"the layers mix {mixed}; a fastgru GRU has one reset variant")
    return next(iter(resets))


def build_gru(state, input_size, hidden_size, num_layers, bidirectional, reset, batch_first,
              dtype, dropout=0.0):
    """A fastgru.GRU holding ``state``; bias=True unless ``state`` has no bias at all."""
    bias = any(name.startswith("bias") for name in state)
    H, D = hidden_size, 2 if bidirectional else 1
    if bias:   # a layer of a stack without bias gets zeros, which is the same function
        for k in range(num_layers):
            for d in range(D):
                for name in parameter_names(k, bool(d))[2:]:
                    state.setdefault(name, np.zeros(3 * H, dtype))
    gru = GRU(input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
              dropout=dropout, bidirectional=bidirectional, reset=reset, dtype=dtype, seed=0)
    gru.load_state_dict(state)
    return gru
