"""fastgru: a fast CPU GRU layer (forward and backward) with Numba, Cython and NumPy backends.

Importing fastgru compiles nothing; a backend is imported, and its kernels compiled
(and cached), on first use.
"""
from . import convert, nn
from .backends import available_backends, get_backend, set_backend
from .functional import GRUCache, gru_backward, gru_forward
from .nn import GRU, GRUCell
from . import optim
from .io import load_weights, save_weights

__version__ = "0.1.0"

__all__ = ["GRU", "GRUCell", "GRUCache", "gru_forward", "gru_backward", "available_backends",
           "get_backend", "set_backend", "nn", "convert", "__version__",
           "optim", "save_weights", "load_weights"]
