"""fastgru.onnx: exported graphs run in onnxruntime, and GRU nodes load back (both skipped
without onnx and onnxruntime)."""
import numpy as np
import pytest

import fastgru
from fastgru import convert

from helpers import GOLDEN_TOL, assert_close, make_gru

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
fastgru_onnx = pytest.importorskip("fastgru.onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F32 = np.dtype(np.float32)


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("feeds", ["x", "x h0", "x lengths", "x h0 lengths"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (1, True), (2, False), (2, True)])
@pytest.mark.parametrize("reset", ["after", "before"])
def test_export_matches_onnxruntime(rng, reset, num_layers, bidirectional, batch_first, feeds):
    T, B = 7, 4
    gru = make_gru(rng, F32, hidden_size=5, num_layers=num_layers,
                   bidirectional=bidirectional, reset=reset, batch_first=batch_first)
    model = fastgru_onnx.export(gru, h0="h0" in feeds, lengths="lengths" in feeds)
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3)).astype(F32)
    h0 = (0.5 * rng.standard_normal((num_layers * gru.num_directions, B, 5))).astype(F32)
    lengths = np.array([7, 3, 0, 1], np.int32)   # 0: the state stays h0, the output 0
    feed = {"input": x}
    if "h0" in feeds:
        feed["h0"] = h0
    if "lengths" in feeds:
        feed["lengths"] = lengths
    got_out, got_h_n = session(model).run(["output", "h_n"], feed)
    out, h_n = gru(x, feed.get("h0"), feed.get("lengths"))
    what = f"onnxruntime {reset} L={num_layers} bi={bidirectional} {feeds}"
    assert_close(got_out, out, F32, what + " output", GOLDEN_TOL)
    assert_close(got_h_n, h_n, F32, what + " h_n", GOLDEN_TOL)


@pytest.mark.parametrize("reset", ["after", "before"])
def test_export_float64_matches_onnx_reference(rng, reset):
    from onnx.reference import ReferenceEvaluator  # onnxruntime's GRU runs float32 only
    gru = make_gru(rng, np.float64, hidden_size=5, num_layers=2, bidirectional=True,
                   reset=reset)
    model = fastgru_onnx.export(gru, h0=True)
    x = rng.standard_normal((6, 3, 3))
    h0 = 0.5 * rng.standard_normal((4, 3, 5))
    got_out, got_h_n = ReferenceEvaluator(model).run(None, {"input": x, "h0": h0})
    out, h_n = gru(x, h0)
    assert_close(got_out, out, np.float64, "onnx reference output", GOLDEN_TOL)
    assert_close(got_h_n, h_n, np.float64, "onnx reference h_n", GOLDEN_TOL)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reset", ["after", "before"])
def test_export_then_load_is_exact(rng, tmp_path, reset, bias):
    gru = fastgru.GRU(3, 4, num_layers=2, bidirectional=True, bias=bias, reset=reset,
                      batch_first=True, seed=int(rng.integers(1 << 30)))
    path = tmp_path / "gru.onnx"
    fastgru_onnx.export(gru, path, lengths=True)
    for source in (path, str(path), path.read_bytes(), onnx.load(str(path))):
        back = fastgru_onnx.load(source, batch_first=True)
        assert (back.reset, back.bias, back.num_layers, back.bidirectional) == (
            reset, bias, 2, True)
        for name, arr in gru.state_dict().items():
            np.testing.assert_array_equal(back.state_dict()[name], arr, err_msg=name)


def gru_node_model(W, R, B=None, inputs=("X", "W", "R", "B", "sequence_lens", "initial_h"),
                   extra_nodes=(), **attrs):
    """A one-GRU-node model built with onnx.helper; W, R (and B as a Constant node) fixed."""
    D, H = R.shape[0], R.shape[2]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    nodes = list(extra_nodes)
    if B is not None:
        nodes.append(helper.make_node("Constant", [], ["B"], value=numpy_helper.from_array(B)))
    names = [n if (n != "B" or B is not None) else "" for n in inputs]
    nodes.append(helper.make_node("GRU", names, ["Y", "Y_h"], name="the_gru", hidden_size=H,
                                  **attrs))
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", W.shape[2]]),
         helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]),
         helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [D, "B", H])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", D, "B", H]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [D, "B", H])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def random_onnx_arrays(rng, D, I=3, H=4):
    return (rng.uniform(-0.7, 0.7, (D, 3 * H, I)).astype(F32),
            rng.uniform(-0.7, 0.7, (D, 3 * H, H)).astype(F32),
            rng.uniform(-0.7, 0.7, (D, 6 * H)).astype(F32))


@pytest.mark.parametrize("linear_before_reset", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_load_a_helper_built_model_matches_onnxruntime(rng, direction, linear_before_reset):
    D = 2 if direction == "bidirectional" else 1
    W, R, B = random_onnx_arrays(rng, D)
    model = gru_node_model(W, R, B, direction=direction, activations=["Sigmoid", "Tanh"] * D,
                           linear_before_reset=linear_before_reset)
    onnx.checker.check_model(model)
    x = rng.standard_normal((6, 3, 3)).astype(F32)
    h0 = (0.5 * rng.standard_normal((D, 3, 4))).astype(F32)
    lengths = np.array([6, 2, 4], np.int32)
    Y, Y_h = session(model).run(None, {"X": x, "initial_h": h0, "sequence_lens": lengths})
    gru = fastgru_onnx.load(model)
    assert gru.reset == ("after" if linear_before_reset else "before")
    out, h_n = gru(x, h0, lengths)
    T, Bt = x.shape[:2]
    assert_close(out, Y.transpose(0, 2, 1, 3).reshape(T, Bt, D * 4), F32, "Y", GOLDEN_TOL)
    assert_close(h_n, Y_h, F32, "Y_h", GOLDEN_TOL)


@pytest.mark.parametrize("linear_before_reset", [0, 1])
def test_reverse_only_node_matches_onnxruntime(rng, linear_before_reset):
    W, R, B = random_onnx_arrays(rng, 1)
    model = gru_node_model(W, R, B, direction="reverse", linear_before_reset=linear_before_reset)
    x = rng.standard_normal((6, 3, 3)).astype(F32)
    h0 = (0.5 * rng.standard_normal((1, 3, 4))).astype(F32)
    lengths = np.array([6, 2, 4], np.int32)   # the reverse pass starts at lengths[b] - 1
    Y, Y_h = session(model).run(None, {"X": x, "initial_h": h0, "sequence_lens": lengths})
    with pytest.raises(ValueError, match="direction='reverse' GRU has no fastgru.GRU"):
        fastgru_onnx.load(model)
    state = convert.onnx_to_state_dict(W, R, B, direction="reverse")
    out, h_n, _ = fastgru.gru_forward(
        x, h0[0], state["weight_ih_l0_reverse"], state["weight_hh_l0_reverse"],
        state["bias_ih_l0_reverse"], state["bias_hh_l0_reverse"],
        reset="after" if linear_before_reset else "before", lengths=lengths, reverse=True)
    assert_close(out, Y[:, 0], F32, "reverse Y", GOLDEN_TOL)
    assert_close(h_n, Y_h[0], F32, "reverse Y_h", GOLDEN_TOL)


def test_load_rejects_what_it_cannot_honour(rng):
    W, R, B = random_onnx_arrays(rng, 1)
    bad = [
        (dict(activations=["Sigmoid", "Relu"]), "GRU node 'the_gru': activations=.*Relu"),
        (dict(activations=["HardSigmoid", "Tanh"], activation_alpha=[0.2],
              activation_beta=[0.5]), "HardSigmoid"),
        (dict(activation_alpha=[0.2]), "activation_alpha"),
        (dict(clip=2.0), "clip=2.0"),
        (dict(layout=1), "layout=1"),
        (dict(linear_before_reset=3), "linear_before_reset must be 0 or 1"),
    ]
    for attrs, match in bad:
        with pytest.raises(ValueError, match=match):
            fastgru_onnx.load(gru_node_model(W, R, B, **attrs))
    with pytest.raises(ValueError, match="input W .* is computed at run time"):
        fastgru_onnx.load(gru_node_model(
            W, R, B, inputs=("X", "W2", "R", "B"),
            extra_nodes=[helper.make_node("Neg", ["W"], ["W2"])]))
    with_state = gru_node_model(W, R, B, inputs=("X", "W", "R", "B", "", "H0"))
    with_state.graph.initializer.append(numpy_helper.from_array(np.ones((1, 2, 4), F32), "H0"))
    with pytest.raises(ValueError, match="initial_h .* is a constant, non-zero state"):
        fastgru_onnx.load(with_state)
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="no GRU node"):
        fastgru_onnx.load(helper.make_model(graph))
    with pytest.raises(TypeError, match="expects a fastgru.GRU"):
        fastgru_onnx.export(fastgru.GRUCell(2, 3))
    with pytest.raises(ValueError, match="opset must be >= 13"):
        fastgru_onnx.export(fastgru.GRU(2, 3), opset=11)


def test_load_picks_stacked_nodes_only(rng):
    """Two GRU nodes side by side (both reading X) are not a stack; nodes= picks one."""
    W, R, B = random_onnx_arrays(rng, 1)
    model = gru_node_model(W, R, B, inputs=("X", "W", "R", "B"))
    second = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y2", "Y_h2"], name="other",
                              hidden_size=4)
    model.graph.node.append(second)
    with pytest.raises(ValueError, match="does not read the output Y of the GRU node before"):
        fastgru_onnx.load(model)
    with pytest.raises(ValueError, match=r"no GRU node named \['nope'\]"):
        fastgru_onnx.load(model, nodes=["nope"])
    gru = fastgru_onnx.load(model, nodes=["other"])
    np.testing.assert_array_equal(gru.weight_ih_l0.data, convert.onnx_to_state_dict(
        W, R, B)["weight_ih_l0"])


@pytest.mark.parametrize("num_layers,bidirectional", [(2, False), (2, True)])
def test_load_torch_exported_model(rng, tmp_path, num_layers, bidirectional):
    """A stacked nn.GRU through torch.onnx.export (TorchScript exporter) loads and matches."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(int(rng.integers(1 << 30)))
    module = torch.nn.GRU(3, 4, num_layers=num_layers, bidirectional=bidirectional).eval()
    x = torch.randn(6, 2, 3)
    path = tmp_path / "torch_gru.onnx"
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), str(path), dynamo=False)
    except Exception as exc:   # the exporter's own dependencies vary between torch releases
        pytest.skip(f"torch.onnx.export failed here: {exc}")
    gru = fastgru_onnx.load(path)
    with torch.no_grad():
        want, want_h = module(x)
    out, h_n = gru(x.numpy())
    assert_close(out, want.numpy(), F32, "out vs torch via onnx", GOLDEN_TOL)
    assert_close(h_n, want_h.numpy(), F32, "h_n vs torch via onnx", GOLDEN_TOL)


@pytest.mark.parametrize("model, err, match", [
    (None, TypeError, r"model must be a path, bytes or an onnx.ModelProto, got NoneType"),
    (5, TypeError, r"model must be a path, bytes or an onnx.ModelProto, got int 5"),
    (b"\x07" * 100, ValueError, r"the bytes given is not an ONNX model \(DecodeError"),
], ids=["None", "int", "garbage"])
def test_load_names_what_it_was_given(model, err, match):
    with pytest.raises(err, match=match):
        fastgru_onnx.load(model)


def test_load_names_the_file(tmp_path):
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(1).bytes(1000))
    with pytest.raises(ValueError, match=r"random.onnx' is not an ONNX model"):
        fastgru_onnx.load(path)
    with pytest.raises(FileNotFoundError, match=r"no ONNX model file at .*nope.onnx"):
        fastgru_onnx.load(tmp_path / "nope.onnx")
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"random.onnx' is not an ONNX model \(it holds no graph"):
        fastgru_onnx.load(path)


def test_a_broken_unrelated_initializer_does_not_block_loading(rng, tmp_path):
    gru = make_gru(rng, F32, hidden_size=5)
    model = fastgru_onnx.export(gru)
    broken = numpy_helper.from_array(np.zeros(4, np.float32), "unrelated")
    broken.raw_data = b"\x00" * 7                       # 7 bytes cannot be 4 floats
    model.graph.initializer.append(broken)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    loaded = fastgru_onnx.load(path)
    x = rng.standard_normal((4, 2, 3)).astype(F32)
    np.testing.assert_array_equal(loaded(x)[0], gru(x)[0])
    # the same damage in a tensor the GRU reads is named
    w = next(t for t in model.graph.initializer if t.name == "W_l0")
    w.ClearField("float_data")
    w.raw_data = b"\x00" * 7
    with pytest.raises(ValueError, match=r"input W \('W_l0'\) cannot be read as an array"):
        fastgru_onnx.load(model)
