"""Save and load a model's weights as a NumPy ``.npz`` archive (no pickle).

The archive holds one array per state-dict entry (``gru.weight_ih_l0``, ``fc.bias``, ...)
and a ``__fastgru__`` marker (format version and the model's repr). Any ``.npz`` of exactly
the model's state-dict names loads too, e.g. one written by ``np.savez(path, **state_dict)``.
"""
from __future__ import annotations

import os
import secrets
import stat
import zipfile
import zlib
from typing import TypeVar

import numpy as np

from .nn.module import Module

M = TypeVar("M", bound=Module)

FORMAT = "fastgru-weights-1"
_MARKER = "__fastgru__"
_MARKER_BYTES = 1 << 20   # the marker holds the format and the model's repr: small
_NPY_MAGIC = b"\x93NUMPY"


def _check_module(model):
    if not isinstance(model, Module):
        raise TypeError("model must be a fastgru module (GRU, Linear, GRUModel, ...), "
                        f"got {type(model).__name__}")


def save_weights(model: Module, path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """Write ``model.state_dict()`` to ``path`` (written as given; ``.npz`` is the convention).

    The file is written whole or not at all: a temporary file beside it, then renamed over
    it. An existing file keeps its permission bits; a new one gets the ones any new file
    gets (0666 less the umask). A symbolic link stays a link: the file it points to is
    replaced. Returns the path.
    """
    _check_module(model)
    path = os.fspath(path)
    state = model.state_dict()
    if _MARKER in state:
        raise ValueError(f"a parameter may not be named {_MARKER!r}")
    marker = np.array(f"{FORMAT}\n{model!r}")   # a unicode array: no pickle needed
    target = os.path.realpath(path)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = _new_file(os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_MARKER: marker}, **state)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _new_file(folder):
    """(fd, path) of a new file in folder, created with mode 0666 so that the kernel
    applies the umask (mkstemp's 0600 would outlive the rename; reading the umask
    means setting it, which races with other threads)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".fastgru-{secrets.token_hex(8)}.npz.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _open(path):
    """The .npz at path as a ZipFile; a ValueError that says what is wrong for anything else."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weights file at {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory, not a weights file (.npz)")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty, not a weights file (.npz)")
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        if magic == _NPY_MAGIC:
            raise ValueError(f"{path!r} is a single .npy array, not an .npz weights archive") \
                from None
        if not magic.startswith(b"PK"):
            raise ValueError(f"{path!r} is not an .npz weights archive (it is neither a zip "
                             "archive nor a .npy array)") from None
        raise ValueError(f"{path!r} is not a readable .npz archive (truncated or corrupt: "
                         f"{exc})") from None
    except OSError as exc:
        raise OSError(f"cannot read weights from {path!r}: {exc}") from exc


_CORRUPT = (zipfile.BadZipFile, EOFError, zlib.error, ValueError, OSError)


def _headers(archive, path):
    """{name: (shape, dtype)} from each member's .npy header, inflating no array."""
    headers = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name == info.filename:
            raise ValueError(f"{path!r}: member {info.filename!r} is not a .npy array; "
                             "a weights archive holds arrays only")
        try:
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = {(1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read is None:
                    raise ValueError(f".npy format version {version}")
                shape, _, dtype = read(f)
        except _CORRUPT as exc:
            raise ValueError(f"{path!r} is not a readable .npz archive (truncated or "
                             f"corrupt at {name}: {exc})") from None
        if dtype.hasobject:
            raise ValueError(f"{path!r}: {name} is an object (pickled) array; weights "
                             "files hold numbers only and fastgru never unpickles")
        headers[name] = (shape, dtype)
    return headers


def _inflate(archive, path, name):
    try:
        with archive.open(name + ".npy") as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except _CORRUPT as exc:
        raise ValueError(f"{path!r} is not a readable .npz archive (truncated or "
                         f"corrupt at {name}: {exc})") from None


def _marker(archive, path, header):
    """(format, what it was saved from) from the marker member, or (None, None)."""
    if header is None:
        return None, None
    shape, dtype = header
    if shape != () or dtype.kind != "U" or dtype.itemsize > _MARKER_BYTES:
        raise ValueError(f"{path!r}: its {_MARKER} entry must be a short text, got an array "
                         f"of shape {shape} and dtype {dtype}")
    text = str(_inflate(archive, path, _MARKER)[()])
    fmt, newline, saved_from = text.partition("\n")
    if fmt != FORMAT:
        raise ValueError(f"{path!r} is in weights format {fmt[:80]!r}; this fastgru reads "
                         f"{FORMAT!r}")
    if not newline:
        raise ValueError(f"{path!r}: its {_MARKER} entry is damaged: it names the format but "
                         "not the model it was saved from (save_weights writes both)")
    return fmt, saved_from


def load_weights(model: M, path: str | os.PathLike[str]) -> M:
    """Load weights written by ``save_weights`` into ``model`` (in place); returns the model.

    Raises FileNotFoundError for a missing file; ValueError for a file that is not an .npz,
    is truncated, was written for another model (names differ) or has other shapes.
    Names, shapes and dtypes are checked from the arrays' headers before any array is
    read, so an unexpected or oversized member costs nothing. Nothing is changed in the
    model unless every array fits.
    """
    _check_module(model)
    path = os.fspath(path)
    with _open(path) as archive:
        headers = _headers(archive, path)
        _, saved_from = _marker(archive, path, headers.pop(_MARKER, None))
        expected = dict(model.named_parameters())
        missing = [k for k in expected if k not in headers]
        unexpected = [k for k in headers if k not in expected]
        if missing or unexpected:
            origin = "" if saved_from is None else f" It was saved from:\n{saved_from}"
            raise ValueError(f"{path!r} does not hold this model's weights: missing {missing}, "
                             f"unexpected {unexpected}.{origin}")
        for name, param in expected.items():
            shape, dtype = headers[name]
            if shape != param.shape:
                raise ValueError(f"{path!r}: {name} has shape {shape}, but the model's is "
                                 f"{param.shape} (was it saved from a model of other sizes?)")
            if dtype.kind != "f":
                raise ValueError(f"{path!r}: {name} holds {dtype} values, expected floats")
        arrays = {name: _inflate(archive, path, name) for name in expected}
    model.load_state_dict(arrays)
    return model
