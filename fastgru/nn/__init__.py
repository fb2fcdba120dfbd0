"""Layers and training pieces."""
from .gru import GRU, GRUCell
from .module import Module, Parameter

__all__ = ["GRU", "GRUCell", "Module", "Parameter"]
