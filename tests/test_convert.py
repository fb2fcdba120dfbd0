"""fastgru.convert: the [h, x] notation, PyTorch, Keras and ONNX layouts, both ways.

Against the real runtimes: torch live (skipped without torch), Keras through golden arrays
made by tests/data/make_keras_golden.py (and live when Keras is installed), onnxruntime in
test_onnx.py.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastgru
from fastgru import convert

from helpers import GOLDEN_TOL, assert_close, make_gru, torch_gru_run

DATA = os.path.join(os.path.dirname(__file__), "data")

CONFIGS = [  # num_layers, bidirectional, bias
    (1, False, True), (2, False, True), (1, True, True), (2, True, True), (2, True, False)]


def inputs(rng, gru, T=6, B=3):
    L, D, H = gru.num_layers, gru.num_directions, gru.hidden_size
    shape = (B, T, gru.input_size) if gru.batch_first else (T, B, gru.input_size)
    return (rng.standard_normal(shape).astype(gru.dtype),
            (0.5 * rng.standard_normal((L * D, B, H))).astype(gru.dtype))


def assert_same_state(a, b):
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_imports_no_framework():
    code = ("import sys, fastgru, fastgru.convert, fastgru.onnx; "
            "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'keras', 'tensorflow') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_package_is_shipped():
    """fastgru.convert is a package: pyproject.toml lists packages by hand, so a new one
    missing there would import here and be absent from the wheel."""
    import tomllib
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {os.path.relpath(d, root).replace(os.sep, ".")
             for top in ("fastgru", "fastgru_ext")
             for d, _, files in os.walk(os.path.join(root, top)) if "__init__.py" in files}
    assert "fastgru.convert" in found
    assert found <= listed, sorted(found - listed)


# ----------------------------------------------------------------------------- the [h, x] notation

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_hx_inverts_from_hx_exactly(rng, dtype):
    H, I = 4, 3
    hx = {name: rng.standard_normal((H, H + I) if name[0] == "W" else (H,)).astype(dtype)
            for name in ("W_r", "W_z", "W_h", "b_r", "b_z", "b_h")}
    back = convert.to_hx(convert.from_hx(**hx), reset="before")
    assert_same_state(back, hx)


@pytest.mark.parametrize("bias", [True, False])
def test_to_hx_of_a_gru_computes_the_same(rng, dtype, bias):
    gru = make_gru(rng, dtype, reset="before", bias=bias)
    x, h0 = inputs(rng, gru)
    again = fastgru.GRU(3, 4, reset="before", dtype=dtype)
    again.load_state_dict(convert.from_hx(**convert.to_hx(gru)))
    out, h_n = gru(x, h0)
    out2, h_n2 = again(x, h0)
    assert_close(out2, out, dtype, "out via [h, x] form", GOLDEN_TOL)
    assert_close(h_n2, h_n, dtype, "h_n via [h, x] form", GOLDEN_TOL)
    cell = fastgru.GRUCell(3, 4, bias=bias, reset="before", dtype=dtype)
    cell.load_state_dict({k[:-3]: a for k, a in gru.state_dict().items()})
    assert_same_state(convert.to_hx(cell), convert.to_hx(gru))


def test_to_hx_rejects_what_has_no_hx_form(rng):
    with pytest.raises(ValueError, match='reset="before"'):
        convert.to_hx(make_gru(rng, np.float64, reset="after"))
    with pytest.raises(ValueError, match="one layer and one direction"):
        convert.to_hx(make_gru(rng, np.float64, num_layers=2, reset="before"))
    state = make_gru(rng, np.float64, reset="before").state_dict()
    with pytest.raises(ValueError, match="does not say which reset"):
        convert.to_hx(state)
    with pytest.raises(ValueError, match=r"unexpected keys \['extra'\]"):
        convert.to_hx({**state, "extra": np.zeros(3)}, reset="before")
    del state["bias_hh_l0"]
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l0'\]"):
        convert.to_hx(state, reset="before")


# ----------------------------------------------------------------------------- Keras

def keras_golden(name):
    data = dict(np.load(os.path.join(DATA, f"keras_gru_{name}.npz")))
    layers = sorted({int(k[1:].split("_")[0]) for k in data if k.startswith("w")})
    weights = [[data[f"w{k}_{i}"] for i in range(sum(f"w{k}_" in key for key in data))]
               for k in layers]
    return data, weights


@pytest.mark.parametrize("name,reset,num_layers,bidirectional", [
    ("after", "after", 1, False), ("before", "before", 1, False),
    ("bidir2_after", "after", 2, True), ("bidir2_before", "before", 2, True)])
def test_from_keras_matches_keras_golden(name, reset, num_layers, bidirectional):
    data, weights = keras_golden(name)
    gru = convert.from_keras(weights if num_layers > 1 else weights[0])
    assert (gru.reset, gru.num_layers, gru.bidirectional, gru.batch_first) == (
        reset, num_layers, bidirectional, True)
    out, h_n = gru(data["x"], data["h0"])
    assert_close(out, data["out"], np.float32, f"keras {name} out", GOLDEN_TOL)
    assert_close(h_n, data["h_n"], np.float32, f"keras {name} h_n", GOLDEN_TOL)
    assert [[w.tolist() for w in layer] for layer in convert.to_keras(gru)] == [
        [w.tolist() for w in layer] for layer in weights]   # back to Keras, bitwise


@pytest.mark.parametrize("name", ["after", "before"])
def test_keras_cell_matches_keras_golden(name):
    data, weights = keras_golden(name)
    cell = FakeKeras("GRUCell", weights[0], reset_after=name == "after")
    fast = convert.from_keras(cell)
    assert isinstance(fast, fastgru.GRUCell) and fast.reset == name
    assert_close(fast(data["x"][:, 0], data["h0"][0]), data["cell_h"], np.float32,
                 f"keras cell {name}", GOLDEN_TOL)
    assert [w.tolist() for w in convert.to_keras(fast)] == [w.tolist() for w in weights[0]]


@pytest.mark.parametrize("num_layers,bidirectional,bias", CONFIGS)
@pytest.mark.parametrize("reset", ["after", "before"])
def test_keras_round_trip(rng, dtype, num_layers, bidirectional, bias, reset):
    gru = make_gru(rng, dtype, num_layers=num_layers, bidirectional=bidirectional, bias=bias,
                   reset=reset, batch_first=True)
    weights = convert.to_keras(gru)
    D = 2 if bidirectional else 1
    assert len(weights) == num_layers and all(len(w) == D * (3 if bias else 2) for w in weights)
    kernel = weights[0][0]
    assert kernel.shape == (3, 12) and weights[0][1].shape == (4, 12)
    np.testing.assert_array_equal(kernel[:, :4], gru.weight_ih_l0.data[4:8].T)   # z first
    back = convert.from_keras(weights, reset_after=None if bias else reset == "after")
    assert back.reset == reset and back.dtype == dtype
    x, h0 = inputs(rng, gru)
    out, h_n = gru(x, h0)
    out2, h_n2 = back(x, h0)
    if reset == "after" or not bias:   # nothing folded: the same numbers
        assert_same_state(back.state_dict(), gru.state_dict())
    assert_close(out2, out, dtype, "out", GOLDEN_TOL)
    assert_close(h_n2, h_n, dtype, "h_n", GOLDEN_TOL)


class FakeKeras:
    """Stands in for a built Keras layer: what from_keras reads, nothing more."""

    def __init__(self, kind, weights, reset_after=True, go_backwards=False,
                 return_sequences=True, activation="tanh", recurrent_activation="sigmoid"):
        self.__class__ = type(kind, (FakeKeras,), {})
        self._weights, self.reset_after, self.go_backwards = weights, reset_after, go_backwards
        self.return_sequences = return_sequences
        self.activation = type("act", (), {"__name__": activation})()
        self.recurrent_activation = type("act", (), {"__name__": recurrent_activation})()

    def get_weights(self):
        return list(self._weights)


def fake_bidirectional(weights, reset_after, merge_mode="concat"):
    layer = FakeKeras("Bidirectional", weights, reset_after)
    layer.merge_mode = merge_mode
    layer.forward_layer = FakeKeras("GRU", weights[:3], reset_after)
    layer.backward_layer = FakeKeras("GRU", weights[3:], reset_after, go_backwards=True)
    return layer


def test_from_keras_layer_objects():
    data, weights = keras_golden("bidir2_before")
    gru = convert.from_keras([fake_bidirectional(w, False) for w in weights])
    assert_close(gru(data["x"], data["h0"])[0], data["out"], np.float32, "out", GOLDEN_TOL)
    data, weights = keras_golden("after")
    gru = convert.from_keras(FakeKeras("GRU", weights[0], return_sequences=False))
    assert_close(gru(data["x"], data["h0"])[1], data["h_n"], np.float32, "h_n", GOLDEN_TOL)


def test_from_keras_rejects_what_it_cannot_honour():
    _, (w,) = keras_golden("after")
    _, (wb, wb1) = keras_golden("bidir2_after")
    bad = [
        (FakeKeras("GRU", w, recurrent_activation="hard_sigmoid"), ValueError,
         "recurrent_activation='hard_sigmoid' is not supported"),
        (FakeKeras("GRU", w, activation="relu"), ValueError, "activation='relu'"),
        (FakeKeras("GRU", w, go_backwards=True), ValueError, "go_backwards"),
        ([FakeKeras("GRU", w, return_sequences=False), FakeKeras("GRU", w)], ValueError,
         "layer 0: return_sequences=False"),
        (fake_bidirectional(wb, True, merge_mode="sum"), ValueError, "merge_mode='sum'"),
        (FakeKeras("GRU", []), ValueError, "no weights yet"),
        (FakeKeras("LSTM", w), TypeError, "expected a Keras GRU"),
        (w[:1] * 5, ValueError, "got 5"),
        ([w[0], w[1]], ValueError, "pass reset_after"),
        ([w[0], w[1][:, :9], w[2]], ValueError, r"recurrent_kernel must have shape \(5, 15\)"),
        ([w[0][:, :14], w[1], w[2]], ValueError, r"kernel must have shape \(\*, 15\)"),
        ([w[0], w[1], w[2][:, :9]], ValueError, r"bias must have shape \(15,\) .* \(2, 15\)"),
        ([w[0], w[1], w[2].astype(int)], TypeError, "bias must hold real floating"),
        ([w, w], ValueError, r"layer 1: kernel must have shape \(5, 15\)"),   # I=4 can't stack
        ([wb, w], ValueError, "layer 1 has 1 direction"),
        ([wb, wb1[:2] + [wb1[2][0]] + wb1[3:5] + [wb1[5][0]]], ValueError, "mix reset_after"),
    ]
    for source, exc, match in bad:
        with pytest.raises(exc, match=match):
            convert.from_keras(source)
    with pytest.raises(ValueError, match="means reset_after=True, but reset_after=False"):
        convert.from_keras(w, reset_after=False)
    with pytest.raises(ValueError, match="has reset_after=True, but reset_after=False"):
        convert.from_keras(FakeKeras("GRU", w), reset_after=False)


def test_keras_live(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    for reset_after in (True, False):
        layers = [keras.layers.Bidirectional(keras.layers.GRU(
                      4, reset_after=reset_after, return_sequences=True)),
                  keras.layers.GRU(4, reset_after=reset_after, return_sequences=True)]
        y = x
        for layer in layers:
            layer(y)
            layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
                               for w in layer.get_weights()])
            y = np.asarray(keras.ops.convert_to_numpy(layer(y)))
        with pytest.raises(ValueError, match="layer 1 has 1 direction"):
            convert.from_keras(layers)
        gru = convert.from_keras(layers[:1])
        assert_close(gru(x)[0], np.asarray(keras.ops.convert_to_numpy(layers[0](x))),
                     np.float32, f"keras live reset_after={reset_after}", GOLDEN_TOL)
        # a right-padded mask is lengths: same h_n and valid outputs (masked ones differ)
        layer = keras.layers.GRU(4, reset_after=reset_after, return_sequences=True,
                                 return_state=True)
        layer(x)
        layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
                           for w in layer.get_weights()])
        lengths = np.array([5, 2])
        want, want_h = (np.asarray(keras.ops.convert_to_numpy(t)) for t in
                        layer(x, mask=np.arange(5)[None] < lengths[:, None]))
        out, h_n = convert.from_keras(layer)(x, None, lengths)
        assert_close(h_n[0], want_h, np.float32, "keras masked h_n", GOLDEN_TOL)
        assert_close(out[1, :2], want[1, :2], np.float32, "keras masked out", GOLDEN_TOL)


# ----------------------------------------------------------------------------- ONNX arrays

@pytest.mark.parametrize("num_layers,bidirectional,bias", CONFIGS)
@pytest.mark.parametrize("reset", ["after", "before"])
def test_onnx_round_trip_is_exact(rng, dtype, num_layers, bidirectional, bias, reset):
    gru = make_gru(rng, dtype, num_layers=num_layers, bidirectional=bidirectional, bias=bias,
                   reset=reset)
    layers = convert.to_onnx(gru)
    D, H = gru.num_directions, gru.hidden_size
    assert len(layers) == num_layers
    for k, spec in enumerate(layers):
        assert spec["W"].shape == (D, 3 * H, 3 if k == 0 else D * H)
        assert spec["R"].shape == (D, 3 * H, H)
        assert ("B" in spec) == bias and (not bias or spec["B"].shape == (D, 6 * H))
        assert spec["linear_before_reset"] == (reset == "after")
        assert spec["direction"] == ("bidirectional" if bidirectional else "forward")
    np.testing.assert_array_equal(layers[0]["R"][0, :H], gru.weight_hh_l0.data[H:2 * H])
    back = convert.from_onnx(layers)
    assert back.reset == reset and back.bias == bias and back.dtype == dtype
    assert_same_state(back.state_dict(), gru.state_dict())


def test_onnx_reverse_only_as_state_dict(rng, dtype):
    gru = make_gru(rng, dtype, bidirectional=True)
    spec = convert.to_onnx(gru)[0]
    state = convert.onnx_to_state_dict(spec["W"][1:], spec["R"][1:], spec["B"][1:],
                                       direction="reverse")
    assert list(state) == [k for k in gru.state_dict() if k.endswith("_reverse")]
    for name, arr in state.items():
        np.testing.assert_array_equal(arr, gru.state_dict()[name])
    with pytest.raises(ValueError, match="direction='reverse' GRU has no fastgru.GRU"):
        convert.from_onnx({"W": spec["W"][1:], "R": spec["R"][1:], "direction": "reverse"})


def test_from_onnx_rejects_what_it_cannot_honour(rng):
    spec = convert.to_onnx(make_gru(rng, np.float32, num_layers=2))
    one = spec[0]
    bad = [
        ({**one, "activations": ["Sigmoid", "Relu"]}, "activations=.*Relu.* not supported"),
        ({**one, "activations": ["HardSigmoid", "Tanh"]}, "HardSigmoid"),
        ({**one, "activation_alpha": [0.5]}, "activation_alpha"),
        ({**one, "activation_beta": [0.5]}, "activation_beta"),
        ({**one, "clip": 3.0}, "clip=3.0"),
        ({**one, "layout": 1}, "layout=1"),
        ({**one, "linear_before_reset": 2}, "linear_before_reset must be 0 or 1"),
        ({**one, "direction": "bidirectional"}, "direction='bidirectional' needs W and R with 2"),
        ({**one, "direction": "sideways"}, "direction must be"),
        ({**one, "hidden_size": 5}, "hidden_size=5"),
        ({**one, "Q": 1}, r"unknown keys \['Q'\]"),
        ({k: a for k, a in one.items() if k != "W"}, "missing key 'W'"),
        ({**one, "W": one["W"][:, :, :2].reshape(1, 6, 4)}, r"W must have shape \(1, 12, \*\)"),
        ({**one, "R": one["R"][:, :, :3]}, r"R must have shape \(num_directions, 3\*H, H\)"),
        ({**one, "B": one["B"][:, :23]}, r"B must have shape \(1, 24\)"),
        ([one, one], r"layer 1: W must have shape \(1, 12, 4\)"),
        ([one, {**spec[1], "linear_before_reset": 0}], "mix linear_before_reset"),
        ([], "at least one layer"),
    ]
    for source, match in bad:
        with pytest.raises(ValueError, match=match):
            convert.from_onnx(source)
    with pytest.raises(TypeError, match="W must hold real floating"):
        convert.from_onnx({**one, "W": one["W"].astype(np.int32)})
    with pytest.raises(TypeError, match="expected a dict"):
        convert.from_onnx([one["W"]])
    ok = convert.from_onnx({**one, "activations": [b"Sigmoid", b"Tanh"], "layout": 0,
                            "activation_alpha": []})
    assert ok.hidden_size == 4


# ----------------------------------------------------------------------------- PyTorch

TORCH_CONFIGS = [  # num_layers, bidirectional, batch_first, bias, packed
    (1, False, False, True, False), (2, True, False, True, True), (2, False, True, False, False),
    (3, True, True, True, True)]


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias,packed", TORCH_CONFIGS)
def test_from_torch_matches_torch(rng, dtype, num_layers, bidirectional, batch_first, bias,
                                  packed):
    torch = pytest.importorskip("torch")
    T, B, I, H = 7, 4, 3, 5
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(int(rng.integers(1 << 30)))
    module = torch.nn.GRU(I, H, num_layers=num_layers, bias=bias, batch_first=batch_first,
                          bidirectional=bidirectional, dropout=0.25 if num_layers > 1 else 0.0,
                          dtype=tdtype).eval()
    gru = convert.from_torch(module)
    assert (gru.num_layers, gru.bidirectional, gru.batch_first, gru.bias, gru.dtype,
            gru.reset, gru.dropout) == (num_layers, bidirectional, batch_first, bias, dtype,
                                        "after", module.dropout)
    D = 2 if bidirectional else 1
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=tdtype)
    h0 = torch.randn(num_layers * D, B, H, dtype=tdtype)
    lengths = torch.tensor([7, 2, 5, 1])
    with torch.no_grad():
        want, want_h = torch_gru_run(torch, module, x, h0, lengths, packed)
    out, h_n = gru(x.numpy(), h0.numpy(), lengths.numpy() if packed else None)
    assert_close(out, want.numpy(), dtype, "out vs torch", GOLDEN_TOL)
    assert_close(h_n, want_h.numpy(), dtype, "h_n vs torch", GOLDEN_TOL)

    state = convert.to_torch_state_dict(gru)
    assert all(isinstance(t, torch.Tensor) for t in state.values())
    assert list(state) == list(module.state_dict())
    for name, t in module.state_dict().items():
        assert torch.equal(state[name], t), name
    again = convert.to_torch(gru)
    assert type(again) is torch.nn.GRU and again.batch_first == batch_first
    for name, t in module.state_dict().items():
        assert torch.equal(again.state_dict()[name], t), name


@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_cell_matches_torch(rng, dtype, bias):
    torch = pytest.importorskip("torch")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(int(rng.integers(1 << 30)))
    module = torch.nn.GRUCell(3, 5, bias=bias, dtype=tdtype)
    cell = convert.from_torch(module)
    assert isinstance(cell, fastgru.GRUCell) and cell.dtype == dtype and cell.bias == bias
    x, h = torch.randn(4, 3, dtype=tdtype), torch.randn(4, 5, dtype=tdtype)
    with torch.no_grad():
        want = module(x, h)
    assert_close(cell(x.numpy(), h.numpy()), want.numpy(), dtype, "cell vs torch", GOLDEN_TOL)
    again = convert.to_torch(cell)
    with torch.no_grad():
        assert torch.equal(again(x, h), want)


def test_from_torch_options_and_errors():
    torch = pytest.importorskip("torch")
    half = torch.nn.GRU(2, 3).to(torch.float16)
    gru = convert.from_torch(half)
    assert gru.dtype == np.float32
    np.testing.assert_array_equal(gru.weight_hh_l0.data, half.weight_hh_l0.detach().float().numpy())
    assert convert.from_torch(torch.nn.GRU(2, 3), dtype="float64").dtype == np.float64
    with pytest.raises(TypeError, match="torch.nn.GRU or torch.nn.GRUCell, got .*LSTM"):
        convert.from_torch(torch.nn.LSTM(2, 3))
    with pytest.raises(TypeError, match="got fastgru.nn.gru.GRU"):
        convert.from_torch(fastgru.GRU(2, 3))
    before = fastgru.GRU(2, 3, reset="before")
    for fn in (convert.to_torch_state_dict, convert.to_torch):
        with pytest.raises(ValueError, match='reset="before"'):
            fn(before)
    with pytest.raises(TypeError, match="fastgru GRU or GRUCell"):
        convert.to_torch_state_dict(half)
