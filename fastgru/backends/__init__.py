"""Backend registry: neutral names to implementations, imported on first use.

Each backend module has ``forward`` and ``backward`` with the signatures of
``fastgru.backends.contract``. Nothing is imported or compiled until a backend
is asked for, so ``import fastgru`` stays cheap.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
from types import ModuleType

from .._scoped import scoped
from .._warn import warn
from ._layout import partition  # noqa: F401  (documented internal: how a step is cut)

NAMES = ("numba", "cython", "numpy")
_MODULES = {
    "numba": "fastgru.backends.numba_backend",
    "cython": "fastgru.backends.cython_backend",
    "numpy": "fastgru.backends.numpy_backend",
}
_HOW_TO_GET = {
    "numba": "pip install numba",
    # fastgru is installed from a checkout (it is not on PyPI); the build needs a C compiler
    "cython": "build it: pip install -e . in the fastgru checkout, with a C compiler",
}
_loaded: dict[str, ModuleType] = {}
_failures: dict[str, ImportError] = {}
_current: str | None = None  # the process-wide choice (set_backend, FASTGRU_BACKEND)
_local = threading.local()   # .name: a `with backend(...)` block's choice, per thread


class BackendUnavailable(ImportError):
    """A backend was asked for by name but cannot be imported here."""


def _try_load(name):
    if name in _loaded:
        return _loaded[name]
    if name in _failures:
        return None
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as exc:
        _failures[name] = exc
        return None
    _loaded[name] = module
    return module


def _check_name(name, allow_auto=False):
    names = NAMES + (("auto",) if allow_auto else ())
    if name not in names:
        raise ValueError(f"backend must be one of {', '.join(map(repr, names))}, got {name!r}")


def load(name: str) -> ModuleType:
    """The module of backend ``name``; BackendUnavailable if it cannot be imported."""
    _check_name(name)
    module = _try_load(name)
    if module is None:
        raise BackendUnavailable(
            f"fastgru backend {name!r} is not available: {_failures[name]}"
            + (f" (to get it: {_HOW_TO_GET[name]})" if name in _HOW_TO_GET else ""))
    return module


def available_backends() -> list[str]:
    """Names of the backends that import here, fastest first."""
    return [name for name in NAMES if _try_load(name) is not None]


def _auto():
    for name in NAMES:
        if _try_load(name) is not None:
            break
    skipped = NAMES[:NAMES.index(name)]
    if skipped:
        why = "; ".join(f"{n}: {_failures[n]} (to get it: {_HOW_TO_GET[n]})" for n in skipped)
        warn(f"fastgru: falling back to the {name!r} backend ({why})", RuntimeWarning)
    return name


def _choose(name):
    """Resolve "auto", or check that the named backend imports (BackendUnavailable if not)."""
    if name == "auto":
        return _auto()
    load(name)
    return name


def get_backend() -> str:
    """The name of the backend in use in this thread: the innermost ``with backend(...)``
    block's, else set_backend's choice, else FASTGRU_BACKEND, else auto."""
    global _current
    name = getattr(_local, "name", None)
    if name is not None:
        return name
    if _current is None:
        requested = os.environ.get("FASTGRU_BACKEND", "auto").strip().lower() or "auto"
        _check_name(requested, allow_auto=True)
        _current = _choose(requested)
    return _current


def set_backend(name: str) -> None:
    """Use backend ``name`` ("numba", "cython", "numpy" or "auto") from now on."""
    global _current
    _check_name(name, allow_auto=True)
    _current = _choose(name)


def backend(name: str) -> contextlib.AbstractContextManager[str]:
    """``with fastgru.backend("numpy"):`` uses backend ``name`` inside the block, in the
    calling thread only (other threads keep theirs), and restores the previous choice on
    leaving, however the block ends. Blocks nest. BackendUnavailable if it cannot load.

    Calls made inside the block use the backend the block names, even set_backend's:
    set_backend changes the process-wide choice, which applies again after the block.
    """
    _check_name(name, allow_auto=True)
    return scoped(_local, "name", _choose(name))


def current() -> ModuleType:
    """The module of the backend in use (called per GRUCell step: keep it cheap)."""
    name = getattr(_local, "name", None) or _current
    if name is not None:   # set only to a backend that loaded
        return _loaded[name]
    return load(get_backend())
