"""The seed article's training run: fastgru's per-epoch losses equal PyTorch's.

From the same initial weights (torch.manual_seed(0), copied from torch), 50 epochs of full-batch
Adam (lr=0.01) on the article's sine windows. Checked against the committed golden losses
(tests/data/train_golden.npz, made by tests/data/make_train_golden.py), and live when torch
is installed.
"""
import functools
import importlib.util
import os

import numpy as np
import pytest

import fastgru
from fastgru.demo import sine_windows

from tolerances import TRAINING_LOSS as LOSS_RTOL

DATA = os.path.join(os.path.dirname(__file__), "data")


def _golden_module():
    spec = importlib.util.spec_from_file_location(
        "make_train_golden", os.path.join(DATA, "make_train_golden.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden_script = _golden_module()


@pytest.fixture(scope="module")
def golden():
    with np.load(os.path.join(DATA, "train_golden.npz"), allow_pickle=False) as g:
        return {k: g[k] for k in g.files}


def _init(golden):
    return {k[len("init/"):]: v for k, v in golden.items() if k.startswith("init/")}


def train_fastgru(init, dtype, epochs=50):
    """The article's loop, written with fastgru's pieces; returns the per-epoch losses."""
    trainX, trainY, _, _ = golden_script.article_data()
    model = fastgru.nn.GRUModel(1, 50, 1, dtype=dtype)
    model.load_state_dict(init)
    optimizer = fastgru.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        outputs = model.forward(trainX)
        loss, d_outputs = fastgru.nn.mse_loss(outputs, trainY)
        model.backward(d_outputs)
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses)


def assert_losses_match(actual, expected, dtype):
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    rel = np.abs(actual - expected) / np.abs(expected)
    worst = int(rel.argmax())
    assert rel.max() <= LOSS_RTOL[np.dtype(dtype)], (
        f"epoch {worst + 1}: loss {actual[worst]!r} vs torch {expected[worst]!r}, relative "
        f"difference {rel.max():.3g} > {LOSS_RTOL[np.dtype(dtype)]:g} ({np.dtype(dtype)})")


def test_article_data_matches_demo_data():
    trainX, trainY, testX, testY = golden_script.article_data()
    series, x_train, y_train, x_test, y_test = sine_windows()
    assert series.shape == (1000,)
    assert trainX.shape == (692, 10, 1) and testX.shape == (297, 10, 1)
    np.testing.assert_array_equal(x_train, trainX[:, :, 0])
    np.testing.assert_array_equal(y_train, trainY[:, 0])
    np.testing.assert_array_equal(x_test, testX[:, :, 0])
    np.testing.assert_array_equal(y_test, testY[:, 0])


def test_golden_file_is_the_article_run(golden):
    init = _init(golden)
    assert sorted(init) == ["fc.bias", "fc.weight", "gru.bias_hh_l0", "gru.bias_ih_l0",
                            "gru.weight_hh_l0", "gru.weight_ih_l0"]
    for dt in ("float32", "float64"):
        losses = golden[f"losses_{dt}"]
        assert losses.shape == (50,)
        assert losses[-1] < 0.01 * losses[0]     # it trained


def test_losses_match_torch_golden(backend, dtype, golden):
    losses = train_fastgru(_init(golden), dtype)
    assert_losses_match(losses, golden[f"losses_{dtype.name}"], dtype)


@functools.cache
def _torch_run(dtype_name):
    """(initial weights, per-epoch losses) of the live torch run, once per dtype."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the golden script; also fast on a busy machine
    try:
        init = golden_script.initial_state()
        return init, golden_script.train_torch(dtype_name, init)
    finally:
        torch.set_num_threads(threads)


def test_losses_match_torch_live(dtype):
    """On the backend in use (FASTGRU_BACKEND, else auto); the golden test covers each backend."""
    pytest.importorskip("torch")
    init, expected = _torch_run(dtype.name)
    assert_losses_match(train_fastgru(init, dtype), expected, dtype)


def test_golden_matches_torch_live(dtype, golden):
    """The committed losses are still what this torch computes (else: rerun the script)."""
    pytest.importorskip("torch")
    init, expected = _torch_run(dtype.name)
    for name, arr in _init(golden).items():
        np.testing.assert_array_equal(init[name], arr, err_msg=f"initial {name}")
    assert_losses_match(golden[f"losses_{dtype.name}"], expected, dtype)


def test_fit_gives_the_same_losses_as_the_loop(golden):
    trainX, trainY, _, _ = golden_script.article_data()
    model = fastgru.nn.GRUModel(1, 50, 1, dtype="float64")
    model.load_state_dict(_init(golden))
    model.fit(trainX, trainY, epochs=50, lr=0.01)
    assert_losses_match(np.array(model.history_), golden["losses_float64"], np.float64)


def test_torch_state_dict_loads_as_it_is():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    class GRUModel(torch.nn.Module):   # the article's model
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(1, 50, batch_first=True)
            self.fc = torch.nn.Linear(50, 1)

        def forward(self, x):
            out, _ = self.gru(x)
            return self.fc(out[:, -1, :])

    theirs = GRUModel().double()
    ours = fastgru.nn.GRUModel(1, 50, 1, dtype="float64")
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((7, 10, 1))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours.predict(x), expected, rtol=0, atol=1e-12)
