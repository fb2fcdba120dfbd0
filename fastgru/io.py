"""Save and load a model's weights as a NumPy ``.npz`` archive (no pickle).

The archive holds one array per state-dict entry (``gru.weight_ih_l0``, ``fc.bias``, ...)
and a ``__fastgru__`` marker (format version and the model's repr). Any ``.npz`` of exactly
the model's state-dict names loads too, e.g. one written by ``np.savez(path, **state_dict)``.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from typing import TypeVar

import numpy as np

from .nn.module import Module

M = TypeVar("M", bound=Module)

FORMAT = "fastgru-weights-1"
_MARKER = "__fastgru__"


def _check_module(model):
    if not isinstance(model, Module):
        raise TypeError("model must be a fastgru module (GRU, Linear, GRURegressor, ...), "
                        f"got {type(model).__name__}")


def save_weights(model: Module, path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """Write ``model.state_dict()`` to ``path`` (written as given; ``.npz`` is the convention).

    The file is written whole or not at all (a temporary file, then renamed).
    Returns the path.
    """
    _check_module(model)
    path = os.fspath(path)
    state = model.state_dict()
    if _MARKER in state:
        raise ValueError(f"a parameter may not be named {_MARKER!r}")
    marker = np.array(f"{FORMAT}\n{model!r}")   # a unicode array: no pickle needed
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastgru-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_MARKER: marker}, **state)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _read(path):
    """{name: array} from an .npz; a ValueError that says what is wrong for anything else."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weights file at {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory, not a weights file (.npz)")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty, not a weights file (.npz)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (EOFError, ValueError) as exc:
        if "pickle" in str(exc):   # NumPy's guess for a file that is neither .npz nor .npy
            raise ValueError(f"{path!r} is not an .npz weights archive (it is neither a zip "
                             "archive nor a .npy array)") from None
        raise ValueError(f"{path!r} is not an .npz weights archive ({exc})") from None
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path!r} is not a readable .npz archive (truncated or corrupt: "
                         f"{exc})") from None
    except OSError as exc:
        raise OSError(f"cannot read weights from {path!r}: {exc}") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} is a single .npy array, not an .npz weights archive")
    with archive:
        arrays = {}
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise ValueError(f"{path!r}: {name} is an object (pickled) array; weights "
                                     "files hold numbers only and fastgru never unpickles") from None
                raise ValueError(f"{path!r}: cannot read {name}: {exc}") from None
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise ValueError(f"{path!r} is not a readable .npz archive (truncated or "
                                 f"corrupt at {name}: {exc})") from None
    return arrays


def load_weights(model: M, path: str | os.PathLike[str]) -> M:
    """Load weights written by ``save_weights`` into ``model`` (in place); returns the model.

    Raises FileNotFoundError for a missing file; ValueError for a file that is not an .npz,
    is truncated, was written for another model (names differ) or has other shapes.
    Nothing is changed in the model unless every array fits.
    """
    _check_module(model)
    path = os.fspath(path)
    arrays = _read(path)
    marker = arrays.pop(_MARKER, None)
    if marker is not None:
        fmt = str(marker).split("\n", 1)[0]
        if fmt != FORMAT:
            raise ValueError(f"{path!r} is in weights format {fmt!r}; this fastgru reads {FORMAT!r}")
    expected = dict(model.named_parameters())
    missing = [k for k in expected if k not in arrays]
    unexpected = [k for k in arrays if k not in expected]
    if missing or unexpected:
        saved_for = ("" if marker is None else
                     f" It was saved from:\n{str(marker).split(chr(10), 1)[1]}")
        raise ValueError(f"{path!r} does not hold this model's weights: missing {missing}, "
                         f"unexpected {unexpected}.{saved_for}")
    for name, param in expected.items():
        arr = arrays[name]
        if arr.shape != param.shape:
            raise ValueError(f"{path!r}: {name} has shape {arr.shape}, but the model's is "
                             f"{param.shape} (was it saved from a model of other sizes?)")
        if arr.dtype.kind != "f":
            raise ValueError(f"{path!r}: {name} holds {arr.dtype} values, expected floats")
    model.load_state_dict(arrays)
    return model
