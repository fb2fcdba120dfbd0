"""Implementation names, and which operations each has. Imports nothing heavy.

The parent process of ``python -m bench`` works with names only: every implementation
(fastgru's backends and the peers) is imported and timed in a child process of its own.
"""
import importlib.metadata
import importlib.util

from .grid import FORWARD_BACKWARD

FASTGRU_IMPLS = ("fastgru-numba", "fastgru-cython", "fastgru-numpy")
PEER_IMPLS = ("torch", "onnxruntime", "openvino", "jax")
IMPLS = FASTGRU_IMPLS + PEER_IMPLS
INFERENCE_ONLY = ("onnxruntime", "openvino")        # no backward pass
SHORT = {"fastgru-numba": "numba", "fastgru-cython": "cython", "fastgru-numpy": "numpy",
         "torch": "torch", "onnxruntime": "ORT", "openvino": "OV", "jax": "JAX"}
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}   # max abs error / max(1, max abs expected)

# The module each implementation needs (its absence is a skip, found without importing it).
MODULE = {"fastgru-numba": "fastgru", "fastgru-cython": "fastgru", "fastgru-numpy": "fastgru",
          "torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino", "jax": "jax"}


def is_peer(impl):
    return impl in PEER_IMPLS


def impls_for(op):
    """The implementations that have ``op`` (ONNX Runtime and OpenVINO have no backward pass)."""
    return tuple(i for i in IMPLS if not (op == FORWARD_BACKWARD and i in INFERENCE_ONLY))


def installed(impl):
    """None if ``impl``'s library can be found (not imported), else why not."""
    module = MODULE[impl]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError) as exc:
        return f"{module} cannot be found ({type(exc).__name__}: {exc})"
    if not found:
        extra = {"onnxruntime": " (and onnx)"}.get(impl, "")
        return f"{module} is not installed (pip install {module}{extra})"
    return None


def fastgru_backend_missing(backends, name):
    """None if fastgru backend ``name`` imports here, else the registry's reason (what is
    missing and how to get it), given ``fastgru.backends``."""
    try:
        backends.load(name)
    except ImportError as exc:
        return str(exc)
    return None


# a child's code: {backend: None, or why it is missing} for each fastgru backend
FASTGRU_BACKENDS_CHILD = (
    "import json\n"
    "from fastgru import backends\n"
    "from bench.names import fastgru_backend_missing\n"
    "print(json.dumps({n: fastgru_backend_missing(backends, n) for n in backends.NAMES}))\n")


VERSIONED = ("fastgru", "numpy", "numba", "scipy", "torch", "onnxruntime", "onnx", "openvino",
             "jax", "jaxlib", "threadpoolctl", "pytest-benchmark")


def versions():
    """Installed versions of fastgru and the peers (None where missing), importing nothing."""
    out = {}
    for dist in VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out
