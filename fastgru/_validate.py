"""Input checks and casts, done once at the API boundary. Kernels trust what passes."""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype) -> np.dtype:
    """The compute dtype: float32 or float64, given as a name, type or dtype."""
    if dtype is None:  # np.dtype(None) would silently be float64
        raise TypeError("dtype must be float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def compute_dtype(arrays, dtype=None) -> np.dtype:
    """``dtype`` if given, else float64 when any array is a float of 64 bits or more,
    else float32 (float16 and integers included: those are cast or refused later)."""
    if dtype is not None:
        return as_dtype(dtype)
    return np.dtype(np.float64 if any(_is_wide(a) for a in arrays) else np.float32)


def _is_wide(a):
    """a is a float array of 64 bits or more (what is not an array is left to float_array)."""
    if a is None:
        return False
    try:
        dt = _to_numpy(a).dtype
    except (TypeError, ValueError):
        return False
    return dt.kind == "f" and dt.itemsize >= 8


def _to_numpy(a, name="input"):
    """np.asarray that also takes framework tensors (detached, on the CPU) without importing
    them; bfloat16, which NumPy lacks, becomes float32 (exactly). A ValueError naming
    ``name`` for what cannot become an array (a ragged list, a tensor without data)."""
    if type(a) is np.ndarray:
        return a
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach()
        if getattr(a, "is_meta", False):
            raise ValueError(f"{name} is a tensor on the 'meta' device, which holds no values")
        a = a.cpu()
        if str(getattr(a, "dtype", "")) == "torch.bfloat16":
            a = a.float()
    try:
        return np.asarray(a)
    except ValueError as exc:   # NumPy's words for a ragged nesting
        raise ValueError(f"{name} must be an array of numbers (a NumPy array, a tensor, or "
                         f"nested lists of equal lengths), got a {type(a).__name__} that "
                         f"is not one: {exc}") from None


def float_array(a, name, dtype, shape=None, ndim=None, copy=False) -> np.ndarray:
    """Check that ``a`` is a real floating array and return it C-contiguous in ``dtype``.

    ``shape`` is a tuple with None for any size; ``ndim`` an int or a tuple of allowed
    ndims. Never returns the caller's own array when ``copy`` is set.
    """
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    arr = _to_numpy(a, name)
    kind = arr.dtype.kind
    if kind not in "f":
        what = {"i": "integer", "u": "unsigned integer", "b": "boolean", "c": "complex",
                "O": "object"}.get(kind, str(arr.dtype))
        raise TypeError(f"{name} must hold real floating-point numbers, got {what} dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            expect = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {expect}, got {arr.ndim}-D with shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        if arr.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, arr.shape)):
            dims = ["*" if s is None else str(s) for s in shape]
            expect = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
            raise ValueError(f"{name} must have shape {expect}, got {arr.shape}")
    if copy:
        return np.array(arr, dtype=dtype, order="C", copy=True)
    return np.ascontiguousarray(arr, dtype=dtype)


def lengths_array(lengths, batch, steps) -> np.ndarray:
    """Validate per-sequence lengths: (B,) integers in [0, T]. None means all T."""
    if lengths is None:
        return np.full(batch, steps, dtype=np.int64)
    arr = _to_numpy(lengths, "lengths")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (one per sequence), got {arr.shape}")
    if batch and (arr.min() < 0 or arr.max() > steps):
        raise ValueError(f"lengths must lie in [0, {steps}] (the number of steps), "
                         f"got values from {arr.min()} to {arr.max()}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def positive_int(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return int(value)


def seed(value, name="seed") -> int | np.random.SeedSequence | np.random.Generator | None:
    """A random seed: None, an int >= 0, or a np.random.SeedSequence or Generator."""
    if value is None or isinstance(value, (np.random.SeedSequence, np.random.Generator)):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None, an int >= 0 or a np.random.SeedSequence, "
                        f"got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value}")
    return int(value)


def flag(value, name) -> bool:
    """A real bool (or NumPy bool): "no" or 0.5 must not pass as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def reset_mode(reset) -> str:
    if reset not in ("after", "before"):
        raise ValueError(f'reset must be "after" or "before", got {reset!r}')
    return reset


def dropout_rate(p) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout must be a number in [0, 1), got {type(p).__name__} {p!r}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {p}")
    return float(p)
