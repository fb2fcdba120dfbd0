"""The hostile-input fuzzer: every public entry point, given anything, returns a result or
raises TypeError/ValueError (never another exception, a crash or a hang), and never
modifies its inputs. Bounded: a fixed number of examples per test, no deadline."""
import copy
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgru

FUZZ = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
CLEAR = (TypeError, ValueError)

special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 1e-310, 3.0])
dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8,
                          np.bool_, np.complex128, object])


@st.composite
def arrays(draw, shape=None):
    """An array of any dtype (or a nested list, a scalar, None, a string) of a shape near
    ``shape``, with special values sprinkled in."""
    kind = draw(st.sampled_from(["array"] * 6 + ["list", "scalar", "none", "str"]))
    if kind == "none":
        return None
    if kind == "str":
        return draw(st.sampled_from(["x", "", "1.0"]))
    if kind == "scalar":
        return draw(special)
    if shape is None or draw(st.integers(0, 3)) == 0:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    a = np.asarray(draw(st.lists(special, min_size=1, max_size=4)) * (1 + int(np.prod(shape))))
    a = a[:int(np.prod(shape))].reshape(shape)
    dt = draw(dtypes)
    with np.errstate(all="ignore"):
        a = a.astype(dt) if dt is not object else a.astype(object)
    return a.tolist() if kind == "list" else a


def frozen(a):
    return copy.deepcopy(a)


def unchanged(before, after):
    if isinstance(before, np.ndarray):
        same = before.tobytes() == after.tobytes() if before.dtype != object else \
            repr(before.tolist()) == repr(after.tolist())
        return before.dtype == after.dtype and before.shape == after.shape and same
    return repr(before) == repr(after)


@FUZZ
@given(x=arrays((4, 2, 3)), h0=arrays((1, 2, 5)), lengths=arrays((2,)),
       batch_first=st.booleans(), train=st.booleans())
def test_gru_calls(backend, x, h0, lengths, batch_first, train):
    gru = fastgru.GRU(3, 5, batch_first=batch_first, seed=0)
    given_ = [frozen(a) for a in (x, h0, lengths)]
    try:
        out, h_n = gru.forward(x, h0, lengths, train=train)
    except CLEAR:
        pass
    else:
        assert out.shape[-1] == 5 and h_n.shape[-1] == 5
        if train:
            try:
                gru.backward(np.ones_like(out))
            except CLEAR:
                pass
    for before, after in zip(given_, (x, h0, lengths)):
        assert unchanged(before, after)


@FUZZ
@given(x=arrays((3, 2, 2)), h0=arrays((2, 4)), w_ih=arrays((12, 2)), w_hh=arrays((12, 4)),
       b_ih=arrays((12,)), b_hh=arrays((12,)), d_out=arrays((3, 2, 4)), d_h_n=arrays((2, 4)),
       reset=st.sampled_from(["after", "before", "x", None]), reverse=st.sampled_from([True, 0]))
def test_functional_calls(backend, x, h0, w_ih, w_hh, b_ih, b_hh, d_out, d_h_n, reset, reverse):
    args = (x, h0, w_ih, w_hh, b_ih, b_hh, d_out, d_h_n)
    given_ = [frozen(a) for a in args]
    try:
        out, h_n, cache = fastgru.gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, reset=reset,
                                              reverse=reverse, need_cache=True)
        fastgru.gru_backward(d_out, d_h_n, cache)
    except CLEAR:
        pass
    for before, after in zip(given_, args):
        assert unchanged(before, after)


@FUZZ
@given(x=arrays((2, 3)), h=arrays((2, 4)))
def test_cell_calls(backend, x, h):
    cell = fastgru.GRUCell(3, 4, seed=0)
    given_ = [frozen(a) for a in (x, h)]
    try:
        cell(x, h)
    except CLEAR:
        pass
    for before, after in zip(given_, (x, h)):
        assert unchanged(before, after)


@FUZZ
@given(kwargs=st.fixed_dictionaries({}, optional={
    name: st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.floats(allow_nan=True),
                    st.text(max_size=3), st.sampled_from(["float32", "float64", "after"]))
    for name in ("num_layers", "bias", "batch_first", "dropout", "bidirectional", "reset",
                 "dtype", "seed")}), sizes=st.tuples(st.integers(-1, 4), st.integers(-1, 4)))
def test_gru_constructor(kwargs, sizes):
    try:
        gru = fastgru.GRU(*sizes, **kwargs)
    except CLEAR:
        return
    out, _ = gru(np.zeros((2, 1, gru.input_size), gru.dtype))
    assert np.isfinite(out).all()


def _damaged(data, edits):
    data = bytearray(data)
    for pos, value in edits:
        if data:
            data[pos % len(data)] = value
    return bytes(data)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 4000)))
def test_damaged_weights_files(tmp_path_factory, edits, cut):
    folder = tmp_path_factory.mktemp("w")
    model = fastgru.GRU(3, 4, seed=0)
    buf = io.BytesIO()
    np.savez(buf, __fastgru__=np.array(f"fastgru-weights-1\n{model!r}"), **model.state_dict())
    data = _damaged(buf.getvalue()[:cut], edits)
    (folder / "w.npz").write_bytes(data)
    before = model.state_dict()
    try:
        fastgru.load_weights(model, folder / "w.npz")
    except CLEAR:
        for name, a in model.state_dict().items():   # nothing half-written
            np.testing.assert_array_equal(a, before[name])


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 3000)))
def test_damaged_onnx_models(edits, cut):
    pytest.importorskip("onnx")
    from fastgru import onnx as fastgru_onnx
    data = fastgru_onnx.export(fastgru.GRU(3, 4, seed=0)).SerializeToString()
    try:
        gru = fastgru_onnx.load(_damaged(data[:cut], edits))
    except CLEAR:
        return
    gru(np.zeros((2, 1, gru.input_size), gru.dtype))
