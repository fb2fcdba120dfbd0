"""PyTorch: torch.nn.GRU and GRUCell in and out (torch's layout is fastgru's own).

torch is imported only when a torch object is passed, or a torch object is asked for.
"""
from collections import OrderedDict

import numpy as np

from .. import _validate as v
from ..nn import GRU, GRUCell, parameter_names
from ._layout import check_layer

__all__ = ["from_torch", "to_torch_state_dict", "to_torch"]


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
        state = {name: numpy_of(name) for name in parameter_names(bias=bias)}
        cell = GRUCell(module.input_size, module.hidden_size, bias=bias, reset="after",
                       dtype=v.compute_dtype(state.values(), dtype), seed=0)
        cell.load_state_dict(state)
        return cell
    if getattr(module, "proj_size", 0):
        raise ValueError(f"proj_size={module.proj_size} (projected hidden state) has no fastgru "
                         "equivalent")
    D = 2 if module.bidirectional else 1
    names = [name for k in range(module.num_layers) for d in range(D)
             for name in parameter_names(k, bool(d), bias)]
    state = {name: numpy_of(name) for name in names}
    dt = v.compute_dtype(state.values(), dtype)
    gru = GRU(module.input_size, module.hidden_size, num_layers=module.num_layers, bias=bias,
              batch_first=module.batch_first, dropout=float(module.dropout),
              bidirectional=module.bidirectional, reset="after", dtype=dt, seed=0)
    gru.load_state_dict(state)
    return gru


def _check_torch_compatible(module, what):
    check_layer(module, what)
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
