"""One GRU layer, one direction: validate, allocate, dispatch to the backend.

This is the kernels' public face; ``fastgru.nn.GRU`` composes layers and
directions from it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _validate as v
from . import backends
from .backends import contract
from .backends.contract import Grads, Layer, Saved


class GRUCache(NamedTuple):
    """What ``gru_backward`` needs from ``gru_forward``; treat it as opaque."""
    backend: str           # the backend's name (a module would not pickle)
    layer: Layer           # the layer as forward ran it (x and the weights: private copies)
    saved: Saved           # what forward kept: h_prev, gates, aux


def gru_forward(x: ArrayLike, h0: ArrayLike | None, w_ih: ArrayLike, w_hh: ArrayLike,
                b_ih: ArrayLike | None, b_hh: ArrayLike | None, reset: str = "after",
                lengths: ArrayLike | None = None, reverse: bool = False,
                need_cache: bool = False, dtype: DTypeLike | None = None,
                ) -> tuple[np.ndarray, np.ndarray, GRUCache | None]:
    """Run one GRU layer in one direction over a time-major sequence.

    Parameters
    ----------
    x : (T, B, I) float array
    h0 : (B, H) float array, or None for zeros
    w_ih : (3H, I), w_hh : (3H, H); gate order r, z, n
    b_ih, b_hh : (3H,) or None for no bias
    reset : "after" (PyTorch) or "before" (Cho et al., the seed article)
    lengths : (B,) ints in [0, T], or None for all T
    reverse : walk t = T-1 .. 0 (each sequence starting at its own last step)
    need_cache : keep what ``gru_backward`` needs
    dtype : float32 or float64; default float64 if any input is, else float32

    Returns
    -------
    out : (T, B, H), h_n : (B, H), cache : GRUCache or None
    """
    dt = v.compute_dtype((x, h0, w_ih, w_hh, b_ih, b_hh), dtype)
    reset_after = v.reset_mode(reset) == "after"
    need_cache = v.flag(need_cache, "need_cache")
    x = v.float_array(x, "x", dt, ndim=3)
    T, B, I = x.shape
    w_hh = v.float_array(w_hh, "w_hh", dt, ndim=2)
    G, H = w_hh.shape
    if G != 3 * H or H == 0:
        raise ValueError(f"w_hh must have shape (3*H, H) with H > 0, got {w_hh.shape}")
    w_ih = v.float_array(w_ih, "w_ih", dt, shape=(G, None))
    if w_ih.shape[1] != I:
        raise ValueError(f"x has {I} features but w_ih has shape {w_ih.shape}, expected ({G}, {I})")
    b_ih = np.zeros(G, dt) if b_ih is None else v.float_array(b_ih, "b_ih", dt, shape=(G,))
    b_hh = np.zeros(G, dt) if b_hh is None else v.float_array(b_hh, "b_hh", dt, shape=(G,))
    h0 = np.zeros((B, H), dt) if h0 is None else v.float_array(h0, "h0", dt, shape=(B, H))
    layer = Layer(x, w_ih, w_hh, b_ih, b_hh, v.lengths_array(lengths, B, T),
                  v.flag(reverse, "reverse"), reset_after)
    return run_forward(layer, h0, need_cache)


def run_forward(layer: Layer, h0: np.ndarray, need_cache: bool = False,
                reuse: GRUCache | None = None,
                ) -> tuple[np.ndarray, np.ndarray, GRUCache | None]:
    """gru_forward on a layer validated already (``nn.GRU`` validates its inputs once for
    all its layers): allocate, dispatch to the backend in use, keep the cache.

    ``reuse``: a GRUCache that backward has consumed and nothing else reads; the new cache
    takes over its arrays where shapes and dtype match. Fresh multi-MiB arrays cost a page
    fault per page on first touch (4 ms per 8 MiB measured here), every training step."""
    T, B, I, H = contract.shapes(layer)
    dt = layer.x.dtype
    out = np.empty((T, B, H), dt)
    h_n = np.empty((B, H), dt)
    saved = None
    if need_cache:
        # the cache keeps private copies: the caller may change its arrays before backward
        old = reuse.layer if reuse is not None else None
        layer = layer._replace(x=_recycled(old and old.x, layer.x.shape, dt, layer.x),
                               w_ih=layer.w_ih.copy(), w_hh=layer.w_hh.copy())
        spare = reuse.saved if reuse is not None else None
        saved = Saved(_recycled(spare and spare.h_prev, (T, B, H), dt),
                      _recycled(spare and spare.gates, (T, B, 3 * H), dt),
                      _recycled(spare and spare.aux, (T, B, H), dt))
    name = backends.get_backend()
    if T == 0 or B == 0:
        out[...] = 0
        h_n[...] = h0
    else:
        backends.load(name).forward(layer, h0, out, h_n, saved)
    cache = None if saved is None else GRUCache(name, layer, saved)
    return out, h_n, cache


def _recycled(spare, shape, dtype, value=None) -> np.ndarray:
    """spare if it has this shape and dtype, else a new array; filled with value if given."""
    if spare is None or spare.shape != shape or spare.dtype != dtype:
        return np.empty(shape, dtype) if value is None else np.array(value, dtype, copy=True)
    if value is not None:
        spare[...] = value
    return spare


def _check_cache(cache: GRUCache) -> None:
    """The kernels trust the cache's arrays: a cache edited since gru_forward made it
    (cut, replaced, retyped) is refused here, at O(B) cost, before any is read."""
    if not isinstance(cache, GRUCache) or not isinstance(cache.layer, Layer) \
            or not isinstance(cache.saved, Saved):
        raise TypeError("cache must be the GRUCache returned by gru_forward(..., need_cache=True), "
                        f"got {type(cache).__name__}")
    layer, saved = cache.layer, cache.saved
    arrays = {"x": layer.x, "w_ih": layer.w_ih, "w_hh": layer.w_hh, "b_ih": layer.b_ih,
              "b_hh": layer.b_hh, **saved._asdict()}
    for k, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype not in v.FLOAT_DTYPES \
                or not a.flags.c_contiguous:
            view = isinstance(a, np.ndarray) and not a.flags.c_contiguous
            raise ValueError(f"cache.{k} must be the C-contiguous float array gru_forward kept, "
                             f"got {type(a).__name__} {getattr(a, 'dtype', '')}"
                             f"{' (a strided view)' if view else ''}: was the cache edited?")
    x = arrays["x"]
    if x.ndim != 3 or arrays["w_hh"].ndim != 2:
        raise ValueError("cache.x or cache.w_hh has the wrong number of dimensions: "
                         "was the cache edited?")
    T, B, I = x.shape
    G, H = arrays["w_hh"].shape
    want = {"w_ih": (G, I), "w_hh": (3 * H, H), "b_ih": (G,), "b_hh": (G,), "h_prev": (T, B, H),
            "gates": (T, B, G), "aux": (T, B, H)}
    for k, shape in want.items():
        if arrays[k].shape != shape or arrays[k].dtype != x.dtype:
            raise ValueError(f"cache.{k} has shape {arrays[k].shape} and dtype {arrays[k].dtype}; "
                             f"a cache of x {x.shape} {x.dtype} holds {shape} {x.dtype}: "
                             "was the cache edited, or made without need_cache=True?")
    lengths = layer.lengths
    if not isinstance(lengths, np.ndarray) or lengths.dtype != np.int64 \
            or lengths.shape != (B,) or not lengths.flags.c_contiguous \
            or (B and (lengths.min() < 0 or lengths.max() > T)):
        raise ValueError(f"cache.lengths must be the ({B},) int64 array of values in [0, {T}] "
                         "gru_forward kept: was the cache edited?")
    if not all(isinstance(f, (bool, np.bool_)) for f in (layer.reverse, layer.reset_after)):
        raise ValueError("cache.reverse and cache.reset_after must be bools: was the cache edited?")
    if cache.backend not in backends.NAMES:
        raise ValueError(f"cache.backend must be one of {backends.NAMES}, got {cache.backend!r}")


def gru_backward(d_out: ArrayLike | None, d_h_n: ArrayLike | None, cache: GRUCache,
                 ) -> tuple[np.ndarray, ...]:
    """Gradients of one layer, given the loss gradients at its outputs.

    Parameters
    ----------
    d_out : (T, B, H) or None for zeros;  d_h_n : (B, H) or None for zeros
    cache : the GRUCache from ``gru_forward(..., need_cache=True)``

    Returns
    -------
    dx (T, B, I), dh0 (B, H), dw_ih (3H, I), dw_hh (3H, H), db_ih (3H,), db_hh (3H,)
    """
    _check_cache(cache)
    T, B, _, H = contract.shapes(cache.layer)
    dt = cache.layer.x.dtype
    d_out = np.zeros((T, B, H), dt) if d_out is None else v.float_array(
        d_out, "d_out", dt, shape=(T, B, H))
    d_h_n = np.zeros((B, H), dt) if d_h_n is None else v.float_array(
        d_h_n, "d_h_n", dt, shape=(B, H))
    return run_backward(cache, d_out, d_h_n)


def run_backward(cache: GRUCache, d_out: np.ndarray, d_h_n: np.ndarray) -> tuple[np.ndarray, ...]:
    """gru_backward on a cache and gradients known to be right (``nn``'s own): d_out
    (T, B, H) and d_h_n (B, H), C-contiguous, in the cache's dtype."""
    T, B, I, H = contract.shapes(cache.layer)
    dt = cache.layer.x.dtype
    G = 3 * H
    grads = Grads(np.empty((T, B, I), dt), np.empty((B, H), dt), np.empty((G, I), dt),
                  np.empty((G, H), dt), np.empty(G, dt), np.empty(G, dt))
    if T == 0 or B == 0:
        for a in grads:
            a[...] = 0
        grads.dh0[...] = d_h_n
    else:
        backends.load(cache.backend).backward(cache.layer, cache.saved, d_out, d_h_n, grads)
    return tuple(grads)
