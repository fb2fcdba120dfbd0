"""Layers and training pieces."""
from .gru import GRU, GRUCell
from .linear import Linear
from .loss import mse_loss
from .module import Module, Parameter
from .regressor import GRURegressor

__all__ = ["GRU", "GRUCell", "Module", "Parameter", "Linear", "mse_loss", "GRURegressor"]
