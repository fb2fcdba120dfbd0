"""ONNX: a GRU node's arrays and attributes, and ONNX files, in and out.

Arrays (``from_onnx``, ``to_onnx``, ``onnx_to_state_dict``): gate order z, r, h;
W (D, 3H, I), R (D, 3H, H), B (D, 6H) = [Wb; Rb]; linear_before_reset 0 (reset="before")
or 1 (reset="after"); direction forward, reverse or bidirectional.

Files (``export``, ``load``; public as ``fastgru.onnx``) need the ``onnx`` package
(``pip install onnx``), imported on first use. An exported graph has inputs
``input`` (T, B, I), or (B, T, I) for a batch_first GRU, optionally ``h0`` (L*D, B, H) and
``lengths`` (B,) int32 (ONNX's sequence_lens), and outputs ``output`` (T, B, D*H)
(batch_first: (B, T, D*H)) and ``h_n`` (L*D, B, H): the names, layouts and semantics of
``gru(x, h0, lengths)``. Each layer is one ONNX GRU node; Transpose and Reshape nodes turn
its Y (T, D, B, H) into the next layer's (T, B, D*H).
"""
import os
from collections.abc import Mapping

import numpy as np

from .. import _validate as v
from ..nn import GRU, GRUCell
from ._layout import build_gru, direction_state, names_by_layer, single_reset, swap_rz

__all__ = ["from_onnx", "to_onnx", "onnx_to_state_dict", "export", "load"]

DEFAULT_OPSET = 14   # GRU's last change before opset 22 (layout; bfloat16 there is not needed)

# Ops that exporters put between stacked GRU nodes (Y (T, D, B, H) -> (T, B, D*H)).
_RESHAPING_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Flatten")

# --------------------------------------------------------------------------- arrays

_ONNX_KEYS = ("W", "R", "B", "direction", "linear_before_reset", "hidden_size", "activations",
              "activation_alpha", "activation_beta", "clip", "layout")


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _check_onnx_attributes(spec, D, where):
    """Reject what fastgru cannot honour; return (direction, reset)."""
    unknown = [key for key in spec if key not in _ONNX_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; an ONNX GRU has {list(_ONNX_KEYS)}")
    direction = _text(spec.get("direction") or ("bidirectional" if D == 2 else "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"{where}: direction must be 'forward', 'reverse' or 'bidirectional', "
                         f"got {direction!r}")
    if (direction == "bidirectional") != (D == 2):
        raise ValueError(f"{where}: direction={direction!r} needs W and R with "
                         f"{2 if direction == 'bidirectional' else 1} in their first dimension, "
                         f"got {D}")
    activations = spec.get("activations")
    if activations is not None and len(activations) > 0:
        names = [_text(a).lower() for a in activations]
        if names != ["sigmoid", "tanh"] * D:
            raise ValueError(f"{where}: activations={[_text(a) for a in activations]} are not "
                             f"supported; fastgru computes {['Sigmoid', 'Tanh'] * D}")
    for key in ("activation_alpha", "activation_beta"):
        if spec.get(key) is not None and len(spec[key]) > 0:
            raise ValueError(f"{where}: {key}={list(spec[key])} is not supported (fastgru's "
                             "Sigmoid and Tanh take no parameters)")
    if spec.get("clip") is not None:
        raise ValueError(f"{where}: clip={spec['clip']} (cell-input clipping) is not supported")
    if spec.get("layout") not in (None, 0):
        raise ValueError(f"{where}: layout={spec['layout']} (batch-major X and Y) is not "
                         "supported; only layout=0 (X (T, B, I)) is")
    lbr = spec.get("linear_before_reset")
    lbr = 0 if lbr is None else lbr
    if lbr not in (0, 1):
        raise ValueError(f"{where}: linear_before_reset must be 0 or 1, got {lbr!r}")
    return direction, "after" if lbr else "before"


def _onnx_layer(spec, k, where, dtype):
    """(state, direction, reset, I, H) of one ONNX GRU given as a dict of arrays and attributes."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where}: expected a dict with keys W, R and optionally B and the GRU "
                        f"attributes, got {type(spec).__name__}")
    for key in ("W", "R"):
        if key not in spec:
            raise ValueError(f"{where}: missing key {key!r}")
    dt = v.compute_dtype([v._to_numpy(spec[key]) for key in ("W", "R", "B") if key in spec], dtype)
    R = v.float_array(spec["R"], f"{where}: R", dt, ndim=3)
    D, H = R.shape[0], R.shape[2]
    if D not in (1, 2) or R.shape != (D, 3 * H, H):
        raise ValueError(f"{where}: R must have shape (num_directions, 3*H, H) with "
                         f"num_directions 1 or 2, got {R.shape}")
    direction, reset = _check_onnx_attributes(spec, D, where)
    if spec.get("hidden_size") is not None and spec["hidden_size"] != H:
        raise ValueError(f"{where}: hidden_size={spec['hidden_size']} but R has shape {R.shape}, "
                         f"so H={H}")
    W = v.float_array(spec["W"], f"{where}: W", dt, shape=(D, 3 * H, None))
    B = spec.get("B")
    B = None if B is None else v.float_array(B, f"{where}: B", dt, shape=(D, 6 * H))
    reverse = [direction == "reverse"] if D == 1 else [False, True]
    state = {}
    for d, rev in enumerate(reverse):
        biases = () if B is None else (swap_rz(B[d, :3 * H]), swap_rz(B[d, 3 * H:]))
        state.update(direction_state(k, rev, swap_rz(W[d]), swap_rz(R[d]), *biases))
    return state, direction, reset, W.shape[2], H


def onnx_to_state_dict(W, R, B=None, *, direction=None, layer=0, dtype=None):
    """fastgru parameter names and arrays for one ONNX GRU layer given as arrays.

    W (D, 3H, I), R (D, 3H, H), B (D, 6H) or None; ``direction`` defaults to "forward"
    (D=1) or "bidirectional" (D=2). Keys are ``weight_ih_l{layer}``..., with ``_reverse``
    for the backward direction, so a direction="reverse" GRU (which fastgru.GRU cannot hold)
    gives only ``*_reverse`` keys: run it with ``fastgru.gru_forward(..., reverse=True)``.
    """
    spec = {"W": W, "R": R, "B": B, "direction": direction}
    return _onnx_layer(spec, layer, f"layer {layer}", dtype)[0]


def from_onnx(layers, *, dtype=None, batch_first=False):
    """A fastgru GRU from ONNX GRU layers, each a dict of its inputs and attributes.

    ``layers`` is one dict, or a list of them (stacked: layer k+1 reads layer k's Y as
    (T, B, D*H)), with keys W (D, 3H, I), R (D, 3H, H), optional B (D, 6H) and the
    attributes ``linear_before_reset`` (0: reset="before", default; 1: reset="after"),
    ``direction``, ``hidden_size``, ``activations`` (only Sigmoid, Tanh), ``layout`` (only 0);
    ``clip`` and ``activation_alpha/beta`` are rejected. Other keys are an error.
    """
    specs = [layers] if isinstance(layers, Mapping) else list(layers)
    if not specs:
        raise ValueError("from_onnx needs at least one layer")
    state, resets, D0 = {}, set(), None
    input_size = hidden_size = None
    for k, spec in enumerate(specs):
        where = f"layer {k}"
        part, direction, reset, I, H = _onnx_layer(spec, k, where, dtype)
        D = 2 if direction == "bidirectional" else 1
        if direction == "reverse":
            raise ValueError(f"{where}: a direction='reverse' GRU has no fastgru.GRU equivalent; "
                             "use convert.onnx_to_state_dict and "
                             "fastgru.gru_forward(..., reverse=True)")
        if k == 0:
            D0, input_size, hidden_size = D, I, H
        elif (D, I, H) != (D0, hidden_size * D0, hidden_size):
            raise ValueError(f"{where}: W must have shape ({D0}, {3 * hidden_size}, "
                             f"{hidden_size * D0}) to stack on layer 0, got "
                             f"({D}, {3 * H}, {I})")
        state.update(part)
        resets.add(reset)
    reset = single_reset(resets, "linear_before_reset 0 and 1")
    dt = next(iter(state.values())).dtype
    return build_gru(state, input_size, hidden_size, len(specs), D0 == 2, reset, batch_first, dt)


def _onnx_layer_of(state, names_per_direction, reset):
    """One ONNX GRU layer's arrays and attributes from fastgru's state dict."""
    def stacked(index):
        return np.stack([swap_rz(state[names[index]]) for names in names_per_direction])

    spec = {"W": stacked(0), "R": stacked(1)}
    H = spec["R"].shape[2]
    if len(names_per_direction[0]) == 4:
        spec["B"] = np.concatenate([stacked(2), stacked(3)], axis=1)
    spec["direction"] = "bidirectional" if len(names_per_direction) == 2 else "forward"
    spec["hidden_size"] = H
    spec["linear_before_reset"] = int(reset == "after")
    return spec


def to_onnx(module):
    """ONNX GRU inputs and attributes from a fastgru GRU (a list, one dict per layer) or GRUCell.

    Each dict has W (D, 3H, I), R (D, 3H, H), B (D, 6H) (absent when bias=False),
    ``direction``, ``hidden_size`` and ``linear_before_reset``; ``from_onnx`` takes it back.
    """
    layers = names_by_layer(module, "to_onnx")
    state = module.state_dict()
    specs = [_onnx_layer_of(state, directions, module.reset) for directions in layers]
    return specs[0] if isinstance(module, GRUCell) else specs


# --------------------------------------------------------------------------- files

def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("fastgru.onnx needs the onnx package: pip install onnx") from exc
    return onnx


def _model(gru, opset, h0, lengths):
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.DOUBLE if gru.dtype == np.float64 else TensorProto.FLOAT
    L, D, H = gru.num_layers, gru.num_directions, gru.hidden_size
    x_shape = ["batch", "time", gru.input_size] if gru.batch_first else ["time", "batch",
                                                                          gru.input_size]
    y_shape = ["batch", "time", D * H] if gru.batch_first else ["time", "batch", D * H]
    inputs = [helper.make_tensor_value_info("input", elem, x_shape)]
    if h0:
        inputs.append(helper.make_tensor_value_info("h0", elem, [L * D, "batch", H]))
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]))
    outputs = [helper.make_tensor_value_info("output", elem, y_shape),
               helper.make_tensor_value_info("h_n", elem, [L * D, "batch", H])]
    nodes, inits = [], [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "flat_shape")]
    if h0:
        inits.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    layer_in = "input"
    if gru.batch_first:
        nodes.append(helper.make_node("Transpose", ["input"], ["input_tm"], perm=[1, 0, 2]))
        layer_in = "input_tm"
    h_n_parts = []
    for k, spec in enumerate(to_onnx(gru)):
        for key in ("W", "R", "B"):
            if key in spec:
                inits.append(numpy_helper.from_array(spec[key], f"{key}_l{k}"))
        h0_k = ""
        if h0:
            inits += [numpy_helper.from_array(np.array([k * D], np.int64), f"h0_start_l{k}"),
                      numpy_helper.from_array(np.array([(k + 1) * D], np.int64), f"h0_end_l{k}")]
            nodes.append(helper.make_node("Slice", ["h0", f"h0_start_l{k}", f"h0_end_l{k}",
                                                    "axis0"], [f"h0_l{k}"]))
            h0_k = f"h0_l{k}"
        nodes.append(helper.make_node(
            "GRU", [layer_in, f"W_l{k}", f"R_l{k}", f"B_l{k}" if "B" in spec else "",
                    "lengths" if lengths else "", h0_k],
            [f"Y_l{k}", f"Y_h_l{k}"], name=f"gru_l{k}", hidden_size=H,
            direction=spec["direction"], linear_before_reset=spec["linear_before_reset"]))
        nodes += [helper.make_node("Transpose", [f"Y_l{k}"], [f"Y_tbdh_l{k}"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", [f"Y_tbdh_l{k}", "flat_shape"], [f"out_l{k}"])]
        layer_in = f"out_l{k}"
        h_n_parts.append(f"Y_h_l{k}")
    if gru.batch_first:
        nodes.append(helper.make_node("Transpose", [layer_in], ["output"], perm=[1, 0, 2]))
    else:
        nodes.append(helper.make_node("Identity", [layer_in], ["output"]))
    if h0 and lengths:
        # onnxruntime gives Y_h = 0 for a sequence of length 0; fastgru (nothing ran) gives h0
        inits += [numpy_helper.from_array(np.array(0, np.int32), "zero_length"),
                  numpy_helper.from_array(np.array([0, 2], np.int64), "axes_0_2")]
        nodes += [helper.make_node("Concat", h_n_parts, ["h_n_ran"], axis=0),
                  helper.make_node("Equal", ["lengths", "zero_length"], ["empty"]),
                  helper.make_node("Unsqueeze", ["empty", "axes_0_2"], ["empty_1b1"]),
                  helper.make_node("Where", ["empty_1b1", "h0", "h_n_ran"], ["h_n"])]
    else:
        nodes.append(helper.make_node("Concat", h_n_parts, ["h_n"], axis=0))
    graph = helper.make_graph(nodes, "fastgru_gru", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastgru")
    onnx.checker.check_model(model)
    return model


def export(gru, path=None, *, h0=False, lengths=False, opset=DEFAULT_OPSET):
    """Write ``gru`` (a fastgru.GRU) as an ONNX model; return the ModelProto.

    ``h0`` and ``lengths`` add the graph inputs ``h0`` and ``lengths`` (ONNX runtimes need
    every graph input fed, so they are opt-in). Steps at or past ``lengths[b]`` give output 0
    and the reverse direction starts at step lengths[b]-1, as in fastgru; a sequence of
    length 0 keeps its h0 as h_n (a Where node: onnxruntime's GRU alone gives 0 there).
    ``path`` None only returns the model. A float64 GRU exports as DOUBLE, which
    onnxruntime's CPU GRU does not run (onnx.reference does).

    The graph's time and batch sizes are symbolic ("time", "batch"). OpenVINO (seen with
    2026.4) ignores a GRU's sequence_lens when they are: for ``lengths=True`` in OpenVINO,
    set them to fixed values (each ``dim`` of the graph's inputs and outputs whose
    ``dim_param`` is "time" or "batch" gets a ``dim_value``), as ``bench/peers.py`` does.
    """
    if not isinstance(gru, GRU):
        raise TypeError(f"export expects a fastgru.GRU, got {type(gru).__name__} "
                        "(a GRUCell is a GRU run for one step: use convert.to_onnx for its arrays)")
    if int(opset) < 13:
        raise ValueError(f"opset must be >= 13 (Slice and Unsqueeze take axes as inputs), "
                         f"got {opset}")
    model = _model(gru, int(opset), bool(h0), bool(lengths))
    if path is not None:
        _onnx().save(model, str(path))
    return model


def _constants(graph):
    """{name: TensorProto} of the graph's initializers and Constant node outputs; each is
    turned into an array only when a GRU node reads it, so that a damaged tensor the GRU
    does not use cannot block loading."""
    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = attr.t
    return values


def _array(tensor, label, what):
    from onnx import numpy_helper
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:   # onnx raises ValueError, TypeError or protobuf errors here
        raise ValueError(f"{label}: {what} cannot be read as an array "
                         f"({type(exc).__name__}: {exc})") from None


def _read_model(onnx, model):
    """(ModelProto, words for where it came from) from a path, bytes or a ModelProto."""
    if isinstance(model, onnx.ModelProto):
        return model, "the model"
    if isinstance(model, (bytes, bytearray, memoryview)):
        source, where = bytes(model), "the bytes given"
    elif isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no ONNX model file at {source!r}")
        where = repr(source)
    else:
        raise TypeError("model must be a path, bytes or an onnx.ModelProto, "
                        f"got {type(model).__name__} {model!r:.80}")
    try:   # a path through onnx.load: with the tensors kept beside the file, if any
        parsed = (onnx.load_model_from_string(source) if isinstance(source, bytes)
                  else onnx.load(source))
    except Exception as exc:   # protobuf's DecodeError, or onnx's own for external data
        raise ValueError(f"{where} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not parsed.HasField("graph"):
        raise ValueError(f"{where} is not an ONNX model (it holds no graph)")
    return parsed, where


def _reads_y_of(graph, name, previous):
    """Whether tensor ``name`` is GRU node ``previous``'s Y, through reshaping ops only."""
    producers = {out: node for node in graph.node for out in node.output}
    seen = 0
    while name in producers and seen < 32:
        node = producers[name]
        if node == previous:
            return node.output[0] == name
        if node.op_type not in _RESHAPING_OPS:
            return False
        name, seen = node.input[0], seen + 1
    return False


def load(model, *, nodes=None, dtype=None, batch_first=False):
    """A fastgru.GRU from the GRU nodes of an ONNX model (a path, bytes or ModelProto).

    The top-level graph's GRU nodes, in graph order (or those named in ``nodes``), become the
    layers of one stack; each must read the previous one's Y through reshaping ops only
    (Transpose, Reshape, Squeeze, ...), as exporters write a stacked GRU. W, R and B must be
    initializers or Constants. Attributes fastgru cannot honour (activations other than
    Sigmoid/Tanh, activation_alpha/beta, clip, layout=1, direction="reverse") are an error.
    ``batch_first`` sets the returned GRU's layout; the nodes themselves are time-major.
    One difference stays: for a sequence of length 0, onnxruntime's GRU gives Y_h = 0 and
    fastgru gives h0 (nothing ran).
    """
    onnx = _onnx()
    from onnx import helper

    model, where = _read_model(onnx, model)
    graph = model.graph
    grus = [node for node in graph.node if node.op_type == "GRU" and node.domain in ("", "ai.onnx")]
    if nodes is not None:
        by_name = {node.name: node for node in grus}
        missing = [name for name in nodes if name not in by_name]
        if missing:
            raise ValueError(f"no GRU node named {missing}; the model's GRU nodes are "
                             f"{list(by_name)}")
        grus = [by_name[name] for name in nodes]
    if not grus:
        raise ValueError(f"{where} has no GRU node in its top-level graph")
    constants = _constants(graph)
    layers = []
    for k, node in enumerate(grus):
        label = f"GRU node {node.name or k!r}"
        if k > 0 and not _reads_y_of(graph, node.input[0], grus[k - 1]):
            raise ValueError(f"{label} does not read the output Y of the GRU node before it, so "
                             "they are not one stack; choose the nodes with nodes=[...]")
        spec = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
        for i, key in ((1, "W"), (2, "R"), (3, "B")):
            name = node.input[i] if len(node.input) > i else ""
            if not name:
                continue
            if name not in constants:
                raise ValueError(f"{label}: input {key} ({name!r}) is computed at run time; "
                                 "fastgru needs it as an initializer or Constant (fold "
                                 "constants first, e.g. with onnxruntime's graph optimizer)")
            spec[key] = _array(constants[name], label, f"input {key} ({name!r})")
        h0_name = node.input[5] if len(node.input) > 5 else ""
        if h0_name in constants and np.any(_array(constants[h0_name], label, "initial_h")):
            raise ValueError(f"{label}: initial_h ({h0_name!r}) is a constant, non-zero state; "
                             "a fastgru.GRU takes h0 per call, so it would be dropped here "
                             "(remove that input from the node and pass the state as h0)")
        if "R" not in spec:
            raise ValueError(f"{label}: has no input R")
        # checked here too, so that an error names the node rather than a layer index
        _check_onnx_attributes(spec, np.shape(spec["R"])[0], label)
        layers.append(spec)
    return from_onnx(layers, dtype=dtype, batch_first=batch_first)
