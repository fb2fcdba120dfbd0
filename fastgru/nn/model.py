"""GRUModel: a GRU read out by a Linear layer on its last step (the seed article's model).

A torch-style module (forward / backward / an optimizer, and a small ``fit``); the
scikit-learn estimators in ``fastgru.sklearn`` wrap it. It used to be called
``fastgru.nn.GRURegressor``; that name still works, with a DeprecationWarning.
"""
import numpy as np

from .. import _validate as v
from .gru import GRU
from .linear import Linear
from .loss import mse_loss
from .module import TAPE_MISSING, Module


class GRUModel(Module):
    """Sequence-to-value regression: ``fc(gru(x)[:, -1, :])``, trained with MSE.

    The seed article's ``GRUModel`` in one line, with torch's parameter names
    (``gru.weight_ih_l0``, ..., ``fc.weight``, ``fc.bias``), so the state dict of the article's
    torch model loads as it is. Used like a torch module (``forward`` / ``backward`` and an
    optimizer), or trained by its own ``fit``. For scikit-learn's API (``get_params``,
    ``clone``, pipelines, searches) use ``fastgru.sklearn.GRURegressor`` / ``GRUClassifier``,
    which wrap this module.

    x is batch-first: (B, T, input_size), or (B, T) when input_size is 1. The output is
    (B, output_size).

    Parameters
    ----------
    input_size, hidden_size, output_size : ints
    num_layers, dropout, bidirectional, reset : as for ``fastgru.GRU``
    dtype : "float32" or "float64"
    seed : int or None, for the initial weights (torch's distributions, NumPy's generator)
    """

    def __init__(self, input_size=1, hidden_size=50, output_size=1, num_layers=1, dropout=0.0,
                 bidirectional=False, reset="after", dtype="float32", seed=None):
        super().__init__(dtype)
        seed = v.seed(seed)
        if not isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
            seed = np.random.SeedSequence(seed)
        gru_seed, fc_seed = seed.spawn(2)
        self.gru = GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                       dropout=dropout, bidirectional=bidirectional, reset=reset, dtype=dtype,
                       seed=gru_seed)
        self.fc = Linear(self.gru.num_directions * self.gru.hidden_size, output_size, dtype=dtype,
                         seed=fc_seed)
        self.input_size, self.hidden_size = self.gru.input_size, self.gru.hidden_size
        self.output_size = self.fc.out_features
        for prefix, layer in (("gru", self.gru), ("fc", self.fc)):
            for name, param in layer.named_parameters():   # shared, not copied
                self._params[f"{prefix}.{name}"] = param
        self._x_shape = None
        self.history_ = []

    def __repr__(self):
        return f"GRUModel(\n  (gru): {self.gru!r}\n  (fc): {self.fc!r}\n)"

    def _input(self, x):
        x = v.float_array(x, "x", self.dtype, ndim=(2, 3))
        if x.ndim == 2:
            if self.input_size != 1:
                raise ValueError(f"x must be (batch, steps, {self.input_size}); a 2-D x "
                                 f"(batch, steps) is only taken when input_size is 1, got {x.shape}")
            x = x[:, :, None]
        if x.shape[1] == 0:
            raise ValueError(f"x must have at least one time step, got shape {x.shape}")
        return x

    def __call__(self, x):
        """Inference: (B, output_size), keeping nothing for backward."""
        return self.forward(x, train=False)

    def forward(self, x, train=True):
        """Predict (B, output_size) from x (B, T, input_size). With train=True (dropout active),
        backward() can follow."""
        x = self._input(x)
        out, _ = self.gru.forward(x, train=train)
        if train:   # one tape, as the GRU's: a new train forward replaces the last
            self._x_shape = (x.shape, out.shape)
            self.fc.clear()
        return self.fc.forward(out[:, -1, :], train=train)

    def backward(self, dy):
        """Backpropagate dy (B, output_size), accumulating into every Parameter's .grad.

        Returns dx (B, T, input_size).
        """
        if self._x_shape is None:
            raise ValueError(TAPE_MISSING)
        x_shape, out_shape = self._x_shape
        d_last = self.fc.backward(dy)
        d_out = np.zeros(out_shape, self.dtype)
        d_out[:, -1, :] = d_last
        dx, _ = self.gru.backward(d_out)
        self._x_shape = None
        return dx

    def predict(self, x):
        """Inference on x (B, T, input_size) or (B, T): (B, output_size)."""
        return self.forward(x, train=False)

    def _targets(self, y, batch):
        y = v.float_array(y, "y", self.dtype, ndim=(1, 2))
        if y.ndim == 1 and self.output_size == 1:
            y = y[:, None]
        if y.shape != (batch, self.output_size):
            raise ValueError(f"y must have shape ({batch}, {self.output_size}) (one row of "
                             f"output_size values per sequence in x), got {y.shape}")
        return y

    def fit(self, x, y, epochs=50, lr=None, batch_size=None, optimizer=None, shuffle=True,
            seed=None, callback=None):
        """Train with MSE from the current weights; returns self.

        Parameters
        ----------
        x : (B, T, input_size) or (B, T);  y : (B, output_size) or (B,)
        epochs : passes over the data
        lr : learning rate of the default optimizer, Adam (default 0.01, the article's)
        batch_size : None for full batch (the article's), else mini-batches
        optimizer : a ``fastgru.optim`` optimizer over ``self.parameters()``, in place of Adam;
            pass one to keep its state across fit calls
        shuffle, seed : mini-batch order, reshuffled each epoch from ``seed``
        callback : called as ``callback(epoch, loss)`` after each epoch (epoch from 1)

        Each epoch's mean training loss (for full batch: the loss before that epoch's step,
        as the article prints) is appended to ``self.history_``.
        """
        from ..optim import Adam, Optimizer  # optim imports nn: import on use

        x = self._input(x)
        if x.shape[0] == 0:
            raise ValueError(f"x must hold at least one sequence to fit on, got shape {x.shape}")
        y = self._targets(y, x.shape[0])
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        if optimizer is None:
            optimizer = Adam(self.parameters(), lr=0.01 if lr is None else lr)
        elif not isinstance(optimizer, Optimizer):
            raise TypeError("optimizer must be a fastgru.optim optimizer (e.g. "
                            f"fastgru.optim.Adam(model.parameters())), got {type(optimizer).__name__}")
        elif lr is not None:
            raise ValueError("pass lr or optimizer, not both (set the learning rate on the optimizer)")
        B = x.shape[0]
        batch_size = B if batch_size is None else min(v.positive_int(batch_size, "batch_size"), B)
        rng = np.random.default_rng(v.seed(seed))
        for epoch in range(1, epochs + 1):
            self.history_.append(self.train_epoch(x, y, mse_loss, optimizer, batch_size, rng,
                                                  shuffle))
            if callback is not None:
                callback(epoch, self.history_[-1])
        return self

    def train_epoch(self, x, y, loss_fn, optimizer, batch_size, rng, shuffle=True, alpha=0.0):
        """One pass over validated (x, y) in mini-batches; returns the mean loss per sequence.

        x (B, T, input_size) and y in this model's dtype; ``loss_fn(pred, y_batch)`` returns
        (loss, d_pred); ``batch_size`` in [1, B]; ``rng`` a NumPy Generator, drawn from only
        when shuffling. ``alpha`` > 0 adds scikit-learn's L2 penalty on the weights (not the
        biases), 0.5 * alpha * sum(w**2) / batch, to each batch's loss and gradient.
        A full batch (batch_size == B) reports the loss before its step, as the article.
        """
        B = x.shape[0]
        order = rng.permutation(B) if shuffle and batch_size < B else np.arange(B)
        weights = [p for name, p in self.named_parameters() if "weight" in name] if alpha else []
        total = 0.0
        for lo in range(0, B, batch_size):
            idx = order[lo:lo + batch_size]
            xb, yb = (x, y) if batch_size == B else (x[idx], y[idx])
            optimizer.zero_grad()
            loss, d_pred = loss_fn(self.forward(xb, train=True), yb)
            self.backward(d_pred)
            loss = float(loss)
            for p in weights:
                p.grad += (alpha / len(idx)) * p.data
                loss += 0.5 * alpha * float(np.vdot(p.data, p.data)) / len(idx)
            optimizer.step()
            total += loss * len(idx)
        return total / B
