"""scikit-learn estimators over sequences: ``GRURegressor`` and ``GRUClassifier``.

Each wraps a ``fastgru.nn.GRUModel`` (a GRU read out by a Linear layer on its last step)
trained with Adam on mini-batches, with ``MLPRegressor``'s hyperparameter names and defaults
where the meaning is the same. Needs scikit-learn (``pip install scikit-learn``, or from a
checkout ``pip install -e ".[sklearn]"``); ``import fastgru`` does not import it.

X is (n_samples, T, n_features_per_step), or (n_samples, T) for univariate sequences
(a row of a 2-D X is one sequence of T scalars). As scikit-learn requires of every
estimator, predict takes the shape of X that fit saw (T included); for sequences of other
lengths, call the fitted module ``model_`` directly.
"""
import numbers
import time

import numpy as np

try:
    import sklearn  # noqa: F401
except ImportError as exc:
    raise ImportError("fastgru.sklearn needs scikit-learn: pip install scikit-learn (or, from a "
                      f"fastgru checkout, pip install -e \".[sklearn]\"); {exc}") from exc
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _validate as v
from ._warn import warn
from .nn import GRUModel, cross_entropy, mse_loss
from .optim import Adam

__all__ = ["GRURegressor", "GRUClassifier"]

_PARAMS_DOC = """
    Parameters
    ----------
    hidden_size : int, default=100
        Units of the GRU (MLPRegressor's hidden layer size, 100).
    num_layers : int, default=1
        Stacked GRU layers.
    bidirectional : bool, default=False
        Read each sequence both ways; the readout sees both directions' last outputs.
    reset : {"after", "before"}, default="after"
        Where the reset gate applies (see ``fastgru.GRU``).
    dropout : float in [0, 1), default=0.0
        Dropout between GRU layers, during fit only.
    dtype : {"float64", "float32"}, default="float64"
        The dtype the estimator computes in and predicts in; X and y are cast to it
        (float64 as MLPRegressor on float64 data; float32 is faster).
    alpha : float >= 0, default=0.0001
        L2 penalty on the weights (not the biases), added to the loss as
        0.5 * alpha * sum(w**2) / batch, as MLPRegressor.
    batch_size : int or "auto", default="auto"
        Sequences per mini-batch; "auto" is min(200, n_samples).
    learning_rate_init : float > 0, default=0.001
        Adam's step size.
    max_iter : int, default=200
        Most epochs (passes over the data).
    shuffle : bool, default=True
        Shuffle the sequences before each epoch.
    random_state : int, RandomState instance or None, default=None
        Initial weights, shuffling, the validation split and dropout. An int gives
        bitwise the same model on every fit (the engine is deterministic).
    tol : float >= 0, default=1e-4
        Improvement below which an epoch counts as no progress (loss, or validation score
        with early_stopping).
    verbose : bool or int, default=False
        Print each epoch's loss (and validation score) to stdout, as MLPRegressor.
    warm_start : bool, default=False
        Continue from the previous fit's weights (a new Adam); else every fit starts fresh.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for the classifier), stop
        when its score has not improved by ``tol`` for ``n_iter_no_change`` epochs, and keep
        the best epoch's weights.
    validation_fraction : float in (0, 1), default=0.1
    beta_1, beta_2 : floats in [0, 1), default=0.9, 0.999
        Adam's decay rates.
    epsilon : float > 0, default=1e-8
        Adam's epsilon.
    n_iter_no_change : int, default=10
        Epochs without progress before stopping.

    Attributes
    ----------
    model_ : fastgru.nn.GRUModel, the fitted torch-style module
    loss_curve_ : list of float, each epoch's mean training loss (penalty included)
    best_loss_ : float or None (None with early_stopping)
    validation_scores_ : list of float or None, each epoch's validation score
    best_validation_score_ : float or None
    n_iter_ : int, epochs run;  t_ : int, training sequences seen
    n_features_in_ : int, T (X.shape[1]) as fit saw it
    input_size_ : int, features per step (1 for a 2-D X)
"""


def _check_number(value, name, kind, low, high=None, low_open=False, high_open=True):
    """value as int or float within [low, high] (ends open where said), else a clear error."""
    ok_type = numbers.Integral if kind is int else numbers.Real
    if isinstance(value, bool) or not isinstance(value, ok_type):
        raise TypeError(f"{name} must be {'an int' if kind is int else 'a number'}, "
                        f"got {type(value).__name__} {value!r}")
    if (value < low or (low_open and value == low)
            or (high is not None and (value > high or (high_open and value == high)))):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low}, {'inf' if high is None else high}{hi}, "
                         f"got {value!r}")
    return kind(value)


def _shape_of(X):
    """X's shape where it has one without a conversion (arrays, sparse matrices, frames, lists
    at their first axis), for checks worded more clearly than scikit-learn's own; else None
    (validate_data then says what is wrong)."""
    if hasattr(X, "shape"):
        return tuple(X.shape)
    if isinstance(X, (list, tuple)) and len(X) == 0:
        return (0,)
    return None


class _GRUEstimator(BaseEstimator):
    """What the regressor and classifier share: parameters, validation, the fit loop."""

    _classifier = False

    def __init__(self, hidden_size=100, num_layers=1, bidirectional=False, reset="after",
                 dropout=0.0, dtype="float64", alpha=0.0001, batch_size="auto",
                 learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.reset = reset
        self.dropout = dropout
        self.dtype = dtype
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # ---- validation, once, at fit / predict

    def _checked_params(self):
        """The hyperparameters checked (scikit-learn checks in fit, never in __init__)."""
        v.positive_int(self.hidden_size, "hidden_size")
        v.positive_int(self.num_layers, "num_layers")
        for name in ("bidirectional", "shuffle", "warm_start", "early_stopping"):
            v.flag(getattr(self, name), name)
        v.reset_mode(self.reset)
        v.dropout_rate(self.dropout)
        v.as_dtype(self.dtype)
        _check_number(self.alpha, "alpha", float, 0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            v.positive_int(self.batch_size, 'batch_size (an int > 0 or "auto")')
        _check_number(self.learning_rate_init, "learning_rate_init", float, 0.0, low_open=True)
        v.positive_int(self.max_iter, "max_iter")
        _check_number(self.tol, "tol", float, 0.0)
        if not isinstance(self.verbose, (bool, np.bool_)):
            _check_number(self.verbose, "verbose (a bool or an int >= 0)", int, 0)
        _check_number(self.validation_fraction, "validation_fraction", float, 0.0, 1.0,
                      low_open=True)
        _check_number(self.beta_1, "beta_1", float, 0.0, 1.0)
        _check_number(self.beta_2, "beta_2", float, 0.0, 1.0)
        _check_number(self.epsilon, "epsilon", float, 0.0, low_open=True)
        v.positive_int(self.n_iter_no_change, "n_iter_no_change")

    def _sequences(self, X, y=None, reset=True):
        """X checked as scikit-learn does (NaN/inf, sparse, empty, complex, strings refused;
        integers cast) and brought to (n, T, I) in the compute dtype; y checked with it."""
        dt = v.as_dtype(self.dtype)
        regressor = not self._classifier
        shape = _shape_of(X)
        if shape is not None and len(shape) >= 1 and shape[0] == 0:
            raise ValueError("X must hold at least one sequence (n_samples >= 1), "
                             f"got shape {shape}")
        if not reset and shape is not None and len(shape) >= 2 and shape[1] != self.n_features_in_:
            raise ValueError(f"X has {shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input: X.shape[1] is the number "
                             "of steps T, and predict takes sequences of the length fit saw (for "
                             "other lengths, call the fitted module model_.predict)")
        kwargs = dict(reset=reset, allow_nd=True, dtype=[np.float64, np.float32])
        if y is None and not reset:
            X = validate_data(self, X, **kwargs)
        else:
            X, y = validate_data(self, X, y, multi_output=regressor, y_numeric=regressor,
                                 **kwargs)
        if X.ndim > 3:
            raise ValueError("X must be (n_samples, T) or (n_samples, T, n_features), "
                             f"got {X.ndim}-D with shape {X.shape}")
        X = X[:, :, None] if X.ndim == 2 else X
        if reset:
            self.input_size_ = X.shape[2]
        elif X.shape[2] != self.input_size_:
            raise ValueError(f"X has {X.shape[2]} features per step, but "
                             f"{type(self).__name__} is expecting {self.input_size_} features "
                             "per step as input")
        return np.ascontiguousarray(X, dtype=dt), y

    # ---- fitting

    def fit(self, X, y):
        """Train on sequences X, (n_samples, T, I) or (n_samples, T), and targets y.

        Starts from new weights unless warm_start is set and the estimator is fitted.
        Returns self.
        """
        self._checked_params()
        warm = self.warm_start and hasattr(self, "model_")
        X, y = self._sequences(X, y, reset=not warm)
        target, n_out = self._targets(y, warm)
        rs = check_random_state(self.random_state)
        model_seed, split_seed, shuffle_seed = rs.randint(np.iinfo(np.int32).max, size=3)
        if not warm:
            self.model_ = GRUModel(self.input_size_, self.hidden_size, n_out, self.num_layers,
                                   self.dropout, self.bidirectional, self.reset, self.dtype,
                                   seed=int(model_seed))
        X_val = y_val = None
        if self.early_stopping:
            stratify = target if self._classifier else None
            X, X_val, target, y_val = train_test_split(
                X, target, test_size=self.validation_fraction, random_state=int(split_seed),
                stratify=stratify)
        self._train(X, target, X_val, y_val, np.random.default_rng(int(shuffle_seed)))
        return self

    def _train(self, X, target, X_val, y_val, rng):
        n = X.shape[0]
        batch = min(200, n) if self.batch_size == "auto" else min(self.batch_size, n)
        model = self.model_
        optimizer = Adam(model.parameters(), lr=self.learning_rate_init,
                         betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        self.loss_curve_, self.t_, self.n_iter_ = [], 0, 0
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None
        self.best_loss_ = None if self.early_stopping else np.inf
        best_state, no_progress = None, 0
        for epoch in range(1, self.max_iter + 1):
            start = time.perf_counter()
            loss = model.train_epoch(X, target, self._loss, optimizer, batch, rng,
                                     self.shuffle, self.alpha)
            self.n_iter_, self.t_ = epoch, self.t_ + n
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {epoch}, loss = {loss:.8f} ({time.perf_counter() - start:.2f} s)")
            if self.early_stopping:
                score = self._score_on(X_val, y_val)
                self.validation_scores_.append(score)
                if self.verbose:
                    print(f"Validation score: {score:.6f}")
                progress = score > self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_state = model.state_dict()
            else:
                progress = loss < self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, loss)
            no_progress = 0 if progress else no_progress + 1
            if no_progress > self.n_iter_no_change:
                if self.verbose:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol:f} for "
                          f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                break
        else:
            warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                 "and the optimization hasn't converged yet.", ConvergenceWarning)
        if best_state is not None:
            model.load_state_dict(best_state)

    def _outputs(self, X):
        """The fitted module's outputs (n_samples, n_out) for a checked X."""
        check_is_fitted(self, "model_")
        X, _ = self._sequences(X, reset=False)
        return self.model_.predict(X)


class GRURegressor(RegressorMixin, _GRUEstimator):
    __doc__ = ("""Sequence regression with a GRU: predicts y from each sequence of X.

    Trained on the squared error 0.5 * mean((y - prediction)**2) (MLPRegressor's loss) with
    Adam. y is (n_samples,) or (n_samples, n_outputs); predictions are (n_samples,) when y had
    one column, as MLPRegressor, in ``dtype``. ``score`` is R^2.
    """ + _PARAMS_DOC + """    n_outputs_ : int, columns of y
    """)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y, warm):
        y = np.asarray(y, dtype=v.as_dtype(self.dtype))
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        if warm and y.shape[1] != self.n_outputs_:
            raise ValueError(f"warm_start needs y with the {self.n_outputs_} outputs of the "
                             f"previous fit, got {y.shape[1]}")
        self.n_outputs_ = y.shape[1]
        return np.ascontiguousarray(y), y.shape[1]

    @staticmethod
    def _loss(pred, target):
        loss, d_pred = mse_loss(pred, target)
        return loss / 2, d_pred / 2

    def _score_on(self, X, target):
        from sklearn.metrics import r2_score
        return r2_score(target, self.model_.predict(X))

    def predict(self, X):
        """Predictions (n_samples,) or (n_samples, n_outputs), in ``dtype``."""
        out = self._outputs(X)
        return out.ravel() if out.shape[1] == 1 else out


class GRUClassifier(ClassifierMixin, _GRUEstimator):
    __doc__ = ("""Sequence classification with a GRU: predicts a class label per sequence of X.

    The readout gives one score per class; trained on the cross-entropy of their softmax
    with Adam. y holds class labels (any type ``numpy.unique`` orders); ``predict_proba``
    gives the softmax, ``score`` the accuracy.
    """ + _PARAMS_DOC + """    classes_ : array, the class labels in sorted order
    """)

    _classifier = True

    def _targets(self, y, warm):
        check_classification_targets(y)
        classes, index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in y; "
                             f"got 1 class: {classes.tolist()}")
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError("warm_start can only be used where y has the same classes as in "
                             f"the previous call to fit: {self.classes_.tolist()}, "
                             f"got {classes.tolist()}")
        self.classes_ = classes
        return index.astype(np.int64), len(classes)

    _loss = staticmethod(cross_entropy)

    def _score_on(self, X, target):
        return float(np.mean(self.model_.predict(X).argmax(axis=1) == target))

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in the order of classes_."""
        scores = self._outputs(X)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """log of predict_proba."""
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """Class labels (n_samples,), from classes_."""
        scores = self._outputs(X)   # first: unfitted is a NotFittedError
        return self.classes_[scores.argmax(axis=1)]
