"""ONNX files in and out: export a fastgru GRU, load the GRU nodes of a model.

Needs the ``onnx`` package (``pip install onnx``), imported on first use, not by
``import fastgru.onnx``. The implementation, and the graph's inputs and outputs, are in
``fastgru.convert.onnx``, beside the mapping of a GRU node's arrays
(``fastgru.convert.to_onnx``, ``from_onnx``).
"""
from .convert.onnx import DEFAULT_OPSET, export, load

__all__ = ["export", "load", "DEFAULT_OPSET"]
