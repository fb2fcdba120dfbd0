"""fastgru: a fast CPU GRU layer (forward and backward) with Numba, Cython and NumPy backends.

Importing fastgru compiles nothing; a backend is imported, and its kernels compiled
(and cached), on first use.
"""
from . import convert, nn, optim
from ._config import show_config
from ._threads import get_num_threads, set_num_threads, threads
from .backends import available_backends, backend, get_backend, set_backend
from .functional import GRUCache, gru_backward, gru_forward
from .io import load_weights, save_weights
from .nn import GRU, GRUCell

__version__ = "0.1.0"

# the optional integrations, imported on first use: `import fastgru` imports neither
# scikit-learn nor dask
_EXTRAS = ("sklearn", "dask")


def __getattr__(name):
    if name in _EXTRAS:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["GRU", "GRUCell", "GRUCache", "gru_forward", "gru_backward", "available_backends",
           "get_backend", "set_backend", "backend", "nn", "convert", "__version__",
           "optim", "save_weights", "load_weights", "set_num_threads", "get_num_threads",
           "threads", "show_config"]
