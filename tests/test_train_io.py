"""Saving and loading weights (.npz, never pickle): round trips and clear errors."""
import os
import re
import stat
import tracemalloc

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


@pytest.mark.parametrize("marker, match", [
    (np.array("fastgru-weights-1"), r"__fastgru__ entry is damaged"),
    (np.array(["fastgru-weights-1\nLinear", "x"]), r"__fastgru__ entry must be a short text, got "
                                                   r"an array of shape \(2,\)"),
    (np.array(3.0), r"__fastgru__ entry must be a short text"),
])
@pytest.mark.parametrize("names_match", [True, False])
def test_damaged_marker_is_named(tmp_path, marker, match, names_match):
    state = Linear(2, 2).state_dict()
    if not names_match:
        state["extra"] = np.zeros(2)
    np.savez(tmp_path / "m.npz", __fastgru__=marker, **state)
    with pytest.raises(ValueError, match=re.escape(repr(str(tmp_path / "m.npz"))) + ".*" + match):
        fastgru.load_weights(Linear(2, 2), tmp_path / "m.npz")


@pytest.mark.parametrize("extra", ["unexpected", "oversized"])
def test_nothing_unexpected_is_inflated(tmp_path, extra):
    """A small compressed file may hold a huge array: names, shapes and dtypes are checked
    from the headers, and an array that does not belong is never inflated."""
    model = Linear(2, 2)
    state = model.state_dict()
    huge = np.zeros(1 << 24, np.float32)                     # 64 MiB, about 64 KiB compressed
    if extra == "unexpected":
        state["junk"] = huge
    else:
        state["weight"] = huge.reshape(4096, 4096)
    np.savez_compressed(tmp_path / "bomb.npz", **state)
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="junk" if extra == "unexpected" else r"\(4096, 4096\)"):
            fastgru.load_weights(model, tmp_path / "bomb.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB allocated while refusing the file"


def test_save_keeps_an_existing_files_mode(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    fastgru.save_weights(Linear(2, 2), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    fastgru.save_weights(Linear(2, 2), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_new_file_gets_the_umask_without_touching_it(tmp_path, monkeypatch):
    """The umask is read by setting it, which races with other threads creating files:
    save_weights must leave it alone and let the kernel apply it."""
    old = os.umask(0o027)
    try:
        def no_umask(mask):
            raise AssertionError("save_weights changed the process umask")
        monkeypatch.setattr(os, "umask", no_umask)
        fastgru.save_weights(Linear(2, 2), tmp_path / "new.npz")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.npz").stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["new.npz"]   # no temporary file left


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "w.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    model = Linear(2, 2, seed=3)
    fastgru.save_weights(model, link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    loaded = fastgru.load_weights(Linear(2, 2), target)
    np.testing.assert_array_equal(loaded.weight.data, model.weight.data)
