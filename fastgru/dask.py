"""Inference on Dask arrays: ``fastgru.dask.predict(model, X)``.

Needs dask and distributed (``pip install "dask[array]" distributed``, or from a checkout
``pip install -e ".[dask]"``); ``import fastgru`` does not import it.

What is distributed: inference, one task per chunk of sequences, on whatever scheduler is
active (a ``distributed.Client`` on a cluster, else dask's local threads); and, through
joblib's Dask backend, the fits of a hyperparameter search (see the README). What is not:
training one model, which runs on one machine (fastgru's threads).

The model travels once: it is one key of the graph, which each task reads, so a worker
receives the weights once, however many chunks it computes. The engine is batch-invariant
(numba and cython backends): a sequence's results are the same bits in any chunk, so the
Dask result equals the in-memory call bitwise. Workers use their own backend choice
(FASTGRU_BACKEND, else numba, else cython) and thread count.
"""
import sys

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:
    raise ImportError("fastgru.dask needs dask: pip install \"dask[array]\" distributed (or, "
                      f"from a fastgru checkout, pip install -e \".[dask]\"); {exc}") from exc

from .nn import GRU, GRUModel

__all__ = ["predict"]


def _gru_out(block, gru):
    return gru(block)[0]


def _predict(block, model):
    return model.predict(block)


def predict(model, X):
    """Apply a fitted model to a Dask array of sequences, blockwise; returns a Dask array.

    Parameters
    ----------
    model : one of
        - a fitted ``fastgru.sklearn.GRURegressor`` / ``GRUClassifier``: X is
          (n_samples, T) or (n_samples, T, I); the result is ``model.predict`` of it,
          (n_samples,) or (n_samples, n_outputs);
        - a ``fastgru.nn.GRUModel``: X (n_samples, T, I) or (n_samples, T); the result is
          (n_samples, output_size);
        - a ``fastgru.GRU``: X (T, B, I), or (B, T, I) with batch_first; the result is the
          GRU's ``out``, (T, B, D*H) or (B, T, D*H), samples on the same axis as in X.
    X : dask.array.Array, chunked along the samples axis as you like; chunks along the
        other axes are joined (rechunked) so that each block holds whole sequences.

    Nothing is computed until you call ``.compute()`` (or ``dask.compute`` / ``persist``)
    on the result; then each chunk runs as one task on the active scheduler.
    """
    if not isinstance(X, da.Array):
        raise TypeError(f"X must be a dask.array.Array, got {type(X).__name__} "
                        "(for a NumPy array, call the model directly)")
    if isinstance(model, GRU):
        return _map_gru(model, X)
    if isinstance(model, GRUModel):
        return _map_samples(model, X, model.dtype, (model.output_size,), model.input_size)
    if _is_estimator(model):
        return _map_estimator(model, X)
    raise TypeError("model must be a fitted fastgru.sklearn estimator, a fastgru.nn.GRUModel "
                    f"or a fastgru.GRU, got {type(model).__name__}")


def _is_estimator(model):
    sk = sys.modules.get("fastgru.sklearn")   # loaded if any estimator exists
    return sk is not None and isinstance(model, (sk.GRURegressor, sk.GRUClassifier))


def _whole_sequences(X, sample_axis):
    """X with one chunk along every axis but the samples'."""
    return X.rechunk({axis: -1 for axis in range(X.ndim) if axis != sample_axis})


def _check_ndim(X, allowed, what):
    if X.ndim not in allowed:
        expect = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"X must be {expect} ({what}), got {X.ndim}-D with shape {X.shape}")


def _map_gru(gru, X):
    _check_ndim(X, (3,), "(B, T, I) with batch_first, else (T, B, I)")
    if X.shape[2] != gru.input_size:
        raise ValueError(f"X must have {gru.input_size} features (input_size) in its last "
                         f"dimension, got shape {X.shape}")
    X = _whole_sequences(X, 0 if gru.batch_first else 1)
    width = gru.num_directions * gru.hidden_size
    return da.map_blocks(_gru_out, X, dask.delayed(gru, pure=True), dtype=gru.dtype,
                         chunks=X.chunks[:2] + ((width,),), meta=np.empty((0, 0, 0), gru.dtype))


def _map_samples(model, X, dtype, out_shape, input_size):
    """model.predict over the samples axis 0 of X (n, T) or (n, T, I): out (n,) + out_shape."""
    _check_ndim(X, (2, 3), "(n_samples, T) or (n_samples, T, I)")
    if (X.shape[2] if X.ndim == 3 else 1) != input_size:
        raise ValueError(f"X must have {input_size} features per step, got shape {X.shape}"
                         " (a 2-D X is (n_samples, T) with one feature per step)")
    X = _whole_sequences(X, 0)
    out_ndim = 1 + len(out_shape)
    dropped = list(range(out_ndim, X.ndim))   # (n, T, I) -> (n, k) drops I; -> (n,) T and I
    return da.map_blocks(_predict, X, dask.delayed(model, pure=True), dtype=dtype,
                         chunks=(X.chunks[0],) + tuple((n,) for n in out_shape),
                         drop_axis=dropped, meta=np.empty((0,) * out_ndim, dtype))


def _map_estimator(est, X):
    from sklearn.utils.validation import check_is_fitted
    check_is_fitted(est)
    if X.ndim >= 2 and X.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} steps (X.shape[1]), but the estimator was fitted "
                         f"on {est.n_features_in_}")
    if hasattr(est, "classes_"):
        return _map_samples(est, X, est.classes_.dtype, (), est.input_size_)
    out_shape = () if est.n_outputs_ == 1 else (est.n_outputs_,)
    return _map_samples(est, X, np.dtype(est.dtype), out_shape, est.input_size_)
