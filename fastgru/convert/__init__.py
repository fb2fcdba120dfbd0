"""Weight layouts in and out of fastgru's (PyTorch's) layout, one module per format.

fastgru stores weights as torch.nn.GRU does: gate order r, z, n; weight_ih (3H, I),
weight_hh (3H, H), bias_ih and bias_hh (3H,) (names: ``fastgru.nn.parameter_names``).
The formats:

* ``pytorch``: ``from_torch``, ``to_torch_state_dict``, ``to_torch``;
* ``keras``: GRU, Bidirectional(GRU) and GRUCell, ``from_keras``, ``to_keras``;
* ``onnx``: a GRU node's arrays (``from_onnx``, ``to_onnx``, ``onnx_to_state_dict``) and
  ONNX files (``export``, ``load``, also public as ``fastgru.onnx``);
* ``hx``: the [h, x] notation, one (H, H + I) matrix per gate acting on [h, x], with z in
  the opposite sense (h' = z * n + (1 - z) * h): ``from_hx``, ``to_hx``.

Every mapping moves numbers without arithmetic (gate permutation, transpose, negation),
so it is exact, except where a layout has one bias where fastgru has two: ``to_hx`` and
``to_keras`` of a reset="before" layer store b_ih + b_hh, which costs that one rounding.
No framework is imported until one of its objects is passed or asked for.
"""
from .._warn import warn
from .hx import from_hx, to_hx
from .keras import from_keras, to_keras
from .onnx import from_onnx, onnx_to_state_dict, to_onnx
from .pytorch import from_torch, to_torch, to_torch_state_dict

__all__ = ["from_hx", "to_hx", "from_torch", "to_torch_state_dict", "to_torch",
           "from_keras", "to_keras", "from_onnx", "to_onnx", "onnx_to_state_dict"]


def from_seed(W_r, W_z, W_h, b_r, b_z, b_h):
    """Deprecated name of ``from_hx`` (the [h, x] notation was called the "seed" form)."""
    warn("fastgru.convert.from_seed is now fastgru.convert.from_hx (same arguments and "
         "result): the [h, x] notation", DeprecationWarning)
    return from_hx(W_r, W_z, W_h, b_r, b_z, b_h)


def to_seed(source, reset=None):
    """Deprecated name of ``to_hx`` (the [h, x] notation was called the "seed" form)."""
    warn("fastgru.convert.to_seed is now fastgru.convert.to_hx (same arguments and "
         "result): the [h, x] notation", DeprecationWarning)
    return to_hx(source, reset)
