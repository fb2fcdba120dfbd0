"""Losses: each returns the loss and its gradient with respect to the prediction."""
import numpy as np

from .. import _validate as v


def mse_loss(pred, target):
    """Mean squared error, as torch.nn.functional.mse_loss (reduction="mean").

    Parameters
    ----------
    pred : float array, any shape; float32 or float64 (another float dtype is cast to float32)
    target : float array of the same shape (cast to pred's dtype)

    Returns
    -------
    loss : NumPy scalar of pred's dtype, mean((pred - target)**2); ``loss.item()`` is a float
    dpred : array like pred, d loss / d pred = 2 (pred - target) / pred.size
    """
    pred_arr = v._to_numpy(pred)
    dt = pred_arr.dtype if pred_arr.dtype in v.FLOAT_DTYPES else np.dtype(np.float32)
    pred_arr = v.float_array(pred_arr, "pred", dt)
    target = v.float_array(target, "target", dt)
    if target.shape != pred_arr.shape:
        raise ValueError(f"target must have the shape of pred {pred_arr.shape}, got {target.shape} "
                         "(no broadcasting: reshape one of them, e.g. y.reshape(-1, 1))")
    if pred_arr.size == 0:
        raise ValueError("mse_loss of empty arrays is undefined (pred has size 0)")
    diff = pred_arr - target
    loss = np.mean(diff * diff, dtype=dt)
    dpred = diff * dt.type(2.0 / pred_arr.size)
    return dt.type(loss), dpred


def cross_entropy(logits, target):
    """Mean cross-entropy of class scores, as torch.nn.functional.cross_entropy (reduction="mean").

    Parameters
    ----------
    logits : (N, C) float array, unnormalised class scores; float32 or float64
    target : (N,) integer class indices in [0, C)

    Returns
    -------
    loss : NumPy scalar of logits' dtype, mean(-log softmax(logits)[n, target[n]])
    dlogits : (N, C), d loss / d logits = (softmax(logits) - onehot(target)) / N
    """
    logits_arr = v._to_numpy(logits)
    dt = logits_arr.dtype if logits_arr.dtype in v.FLOAT_DTYPES else np.dtype(np.float32)
    logits_arr = v.float_array(logits_arr, "logits", dt, ndim=2)
    N, C = logits_arr.shape
    target = v._to_numpy(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.shape != (N,):
        raise ValueError(f"target must have shape ({N},) (one class index per row of logits), "
                         f"got {target.shape}")
    if N == 0:
        raise ValueError("cross_entropy of empty arrays is undefined (logits has 0 rows)")
    if target.min() < 0 or target.max() >= C:
        raise ValueError(f"target must lie in [0, {C}) (the number of classes), "
                         f"got values from {target.min()} to {target.max()}")
    shifted = logits_arr - logits_arr.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(N)
    loss = -np.mean(log_prob[rows, target], dtype=dt)
    dlogits = np.exp(log_prob)
    dlogits[rows, target] -= 1
    dlogits *= dt.type(1.0 / N)
    return dt.type(loss), dlogits
