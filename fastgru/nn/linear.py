"""Linear layer: y = x W^T + b, with a hand-written backward."""
import numpy as np

from .. import _validate as v
from .. import backends
from .module import TAPE_MISSING, Module, grad_lock, last_record, pop_record, push_record


class Linear(Module):
    """A fully connected layer with torch.nn.Linear's parameters and initialisation.

    Parameters: ``weight`` (out_features, in_features) and ``bias`` (out_features,), both
    ~ U(-1/sqrt(in_features), 1/sqrt(in_features)) as in torch.

    Input (..., in_features); output (..., out_features). ``layer(x)`` is inference;
    ``forward(x, train=True)`` records x so that ``backward(dy)`` can follow. Records form
    a stack per thread: a layer used at several steps of a loop takes its backwards in the
    reverse order (the last forward first); ``clear()`` or ``zero_grad()`` drops the rest.
    """

    _RECORDS = ("_records",)

    def __init__(self, in_features, out_features, bias=True, dtype="float32", seed=None):
        super().__init__(dtype)
        self.in_features = v.positive_int(in_features, "in_features")
        self.out_features = v.positive_int(out_features, "out_features")
        bias = v.flag(bias, "bias")
        rng = np.random.default_rng(v.seed(seed))
        bound = 1.0 / np.sqrt(self.in_features)
        self._add("weight", rng.uniform(-bound, bound, size=(self.out_features, self.in_features)))
        if bias:
            self._add("bias", rng.uniform(-bound, bound, size=self.out_features))
        else:
            self.bias = None   # as torch: layer.bias is the Parameter, or None
        self._records = {}   # per calling thread: the x of its train forwards, last on top

    def __repr__(self):
        return (f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None}, "
                f"dtype={self.dtype.name!r})")

    def __call__(self, x):
        """Inference: x (..., in_features) -> (..., out_features), keeping nothing."""
        return self.forward(x, train=False)

    def _input(self, x):
        x = v.float_array(x, "x", self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have {self.in_features} features (in_features) in its last "
                             f"dimension, got shape {x.shape}")
        return x

    def forward(self, x, train=True):
        """y = x W^T + b for x (..., in_features). With train=True, backward() can follow."""
        train = v.flag(train, "train")
        x = self._input(x)
        x2 = x.reshape(-1, self.in_features)
        y = np.empty((x2.shape[0], self.out_features), self.dtype)
        b = self.bias.data if self.bias is not None else np.zeros(self.out_features, self.dtype)
        # the compiled backends compute each row on its own: batch-invariant, as the GRU
        backends.current().linear(x2, self.weight.data, b, y)
        # a private copy: the caller may change x before backward
        if train:
            push_record(self._records, (x2.copy(), x.shape))
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def backward(self, dy):
        """Backpropagate dy (..., out_features) through this thread's latest train forward
        not yet backpropagated (last in, first out).

        Accumulates dW = dy^T x and db = sum(dy) into the Parameters' .grad and returns
        dx (..., in_features) = dy W.
        """
        tape = last_record(self._records)
        if tape is None:
            raise ValueError(TAPE_MISSING)
        x2, x_shape = tape
        dy = v.float_array(dy, "dy", self.dtype, shape=x_shape[:-1] + (self.out_features,))
        pop_record(self._records)   # as torch: a second backward needs a new forward
        dy2 = dy.reshape(-1, self.out_features)
        with grad_lock:
            self.weight.grad += dy2.T @ x2
            if self.bias is not None:
                self.bias.grad += dy2.sum(axis=0)
        return (dy2 @ self.weight.data).reshape(x_shape)
