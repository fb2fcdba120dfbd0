"""Saving and loading weights (.npz, never pickle): round trips and clear errors."""
import os

import numpy as np
import pytest

import fastgru
from fastgru.nn import GRU, GRUModel, Linear


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)
        assert sa[name].dtype == sb[name].dtype, name


@pytest.mark.parametrize("make", [
    lambda dt, seed: GRUModel(1, 6, 2, num_layers=2, dtype=dt, seed=seed),
    lambda dt, seed: GRU(3, 4, bidirectional=True, dtype=dt, seed=seed),
    lambda dt, seed: Linear(3, 2, dtype=dt, seed=seed),
], ids=["regressor", "gru", "linear"])
def test_round_trip(tmp_path, dtype, make):
    saved = make(dtype, 0)
    path = tmp_path / "model.npz"
    assert fastgru.save_weights(saved, path) == str(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask   # as open() would, not mkstemp's 0600
    loaded = fastgru.load_weights(make(dtype, 1), path)
    _assert_same_weights(loaded, saved)
    # the file is a plain .npz: NumPy reads it without pickle
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == set(saved.state_dict()) | {"__fastgru__"}


def test_trained_model_predicts_the_same_after_loading(tmp_path):
    x = np.random.default_rng(0).standard_normal((4, 5, 1)).astype(np.float32)
    model = GRUModel(1, 8, seed=0)
    model.fit(x, np.ones(4, np.float32), epochs=3)
    fastgru.save_weights(model, tmp_path / "w.npz")
    again = fastgru.load_weights(GRUModel(1, 8, seed=1), tmp_path / "w.npz")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_a_plain_savez_of_the_state_dict_loads(tmp_path):
    model = Linear(3, 2, dtype="float64", seed=0)
    np.savez(tmp_path / "plain.npz", **model.state_dict())
    _assert_same_weights(fastgru.load_weights(Linear(3, 2, dtype="float64", seed=1),
                                              tmp_path / "plain.npz"), model)


def test_save_writes_exactly_the_given_path(tmp_path):
    fastgru.save_weights(Linear(2, 2), tmp_path / "weights")     # no ".npz" appended
    assert [p.name for p in tmp_path.iterdir()] == ["weights"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file at"):
        fastgru.load_weights(Linear(2, 2), tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fastgru.load_weights(Linear(2, 2), tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 30])
def test_truncated_file(tmp_path, keep):
    model = GRUModel(1, 16, seed=0)
    path = tmp_path / "w.npz"
    fastgru.save_weights(model, path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)] if keep < 1 else data[:keep])
    before = model.state_dict()
    with pytest.raises(ValueError, match="not .*readable .npz|truncated|not an .npz"):
        fastgru.load_weights(model, path)
    _assert_unchanged(model, before)


def _assert_unchanged(model, before):
    for name, arr in model.state_dict().items():
        np.testing.assert_array_equal(arr, before[name], err_msg=name)


@pytest.mark.parametrize("content, match", [
    (b"hello, I am a text file\n", "not an .npz"),
    (b"", "is empty"),
], ids=["text", "empty"])
def test_foreign_file(tmp_path, content, match):
    path = tmp_path / "foreign.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        fastgru.load_weights(Linear(2, 2), path)


def test_npy_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        fastgru.load_weights(Linear(2, 2), tmp_path / "a.npy")


def test_pickled_object_array_is_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", weight=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="weight is an object \\(pickled\\) array"):
        fastgru.load_weights(Linear(2, 2), tmp_path / "obj.npz")


def test_other_model_names_the_keys(tmp_path):
    fastgru.save_weights(Linear(2, 2), tmp_path / "lin.npz")
    model = GRUModel(1, 4)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"does not hold this model's weights: missing "
                                         r"\['gru.weight_ih_l0'.*unexpected \['weight', 'bias'\]"
                                         r".*saved from:\nLinear\(2, 2"):
        fastgru.load_weights(model, tmp_path / "lin.npz")
    _assert_unchanged(model, before)
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(ValueError, match="missing .*unexpected \\['something'\\]"):
        fastgru.load_weights(Linear(2, 2), tmp_path / "other.npz")


def test_wrong_shapes(tmp_path):
    fastgru.save_weights(GRUModel(1, 20), tmp_path / "h20.npz")
    model = GRUModel(1, 50)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"gru.weight_ih_l0 has shape \(60, 1\), but the "
                                         r"model's is \(150, 1\)"):
        fastgru.load_weights(model, tmp_path / "h20.npz")
    _assert_unchanged(model, before)


def test_integer_arrays_and_other_formats(tmp_path):
    np.savez(tmp_path / "int.npz", weight=np.zeros((2, 2), np.int64), bias=np.zeros(2))
    with pytest.raises(ValueError, match="weight holds int64 values"):
        fastgru.load_weights(Linear(2, 2), tmp_path / "int.npz")
    np.savez(tmp_path / "v9.npz", __fastgru__=np.array("fastgru-weights-9\nLinear"),
             **Linear(2, 2).state_dict())
    with pytest.raises(ValueError, match="format 'fastgru-weights-9'"):
        fastgru.load_weights(Linear(2, 2), tmp_path / "v9.npz")


def test_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="fastgru module"):
        fastgru.save_weights({"weight": np.zeros(2)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="fastgru module"):
        fastgru.load_weights(None, tmp_path / "x.npz")
