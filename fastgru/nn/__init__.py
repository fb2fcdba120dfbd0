"""Layers and training pieces."""
import warnings

from .gru import GRU, GRUCell, parameter_names
from .linear import Linear
from .loss import cross_entropy, mse_loss
from .model import GRUModel
from .module import Module, Parameter

__all__ = ["GRU", "GRUCell", "Module", "Parameter", "Linear", "mse_loss", "cross_entropy",
           "GRUModel", "parameter_names"]


def __getattr__(name):
    # the torch-style module's old name; fastgru.sklearn.GRURegressor is the estimator now
    if name == "GRURegressor":
        warnings.warn("fastgru.nn.GRURegressor is now fastgru.nn.GRUModel (same constructor); "
                      "the scikit-learn estimator is fastgru.sklearn.GRURegressor",
                      DeprecationWarning, stacklevel=2)
        return GRUModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
