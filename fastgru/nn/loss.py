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
