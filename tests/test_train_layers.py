"""Training pieces: Linear, mse_loss and GRUModel against naive loops, finite differences
and torch (live, skipped without it)."""
import numpy as np
import pytest

import fastgru
from fastgru.demo import sine_windows
from fastgru.nn import GRUModel, Linear, mse_loss

from helpers import assert_close, central_difference


def naive_linear(x, w, b):
    """y[n, o] = sum_i x[n, i] w[o, i] + b[o], one sample and one output at a time."""
    y = np.zeros((x.shape[0], w.shape[0]))
    for n in range(x.shape[0]):
        for o in range(w.shape[0]):
            y[n, o] = sum(x[n, i] * w[o, i] for i in range(w.shape[1])) + (b[o] if b is not None else 0)
    return y


def rel_err(actual, expected):
    return np.abs(actual - expected).max() / max(1e-12, np.abs(expected).max())


# ---------------------------------------------------------------- Linear

def test_linear_init_is_torch_like():
    layer = Linear(64, 3, seed=0)
    assert layer.weight.shape == (3, 64) and layer.bias.shape == (3,)
    assert layer.weight.dtype == np.float32
    bound = 1 / np.sqrt(64)
    for p in layer.parameters():
        assert np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.5 * bound
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert list(layer.state_dict()) == ["weight", "bias"]
    np.testing.assert_array_equal(Linear(64, 3, seed=0).weight.data, layer.weight.data)
    assert [n for n, _ in Linear(4, 2, bias=False).named_parameters()] == ["weight"]


@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_matches_naive(dtype, rng, bias):
    layer = Linear(5, 3, bias=bias, dtype=dtype, seed=1)
    x = rng.standard_normal((4, 5)).astype(dtype)
    expected = naive_linear(x.astype(np.float64), layer.weight.data.astype(np.float64),
                            layer.bias.data.astype(np.float64) if bias else None)
    assert_close(layer(x), expected.astype(dtype), dtype, "Linear forward")
    assert_close(layer.forward(x, train=True), expected.astype(dtype), dtype, "Linear forward")


def test_linear_takes_any_leading_dims(rng):
    layer = Linear(5, 3, dtype="float64", seed=1)
    x = rng.standard_normal((2, 4, 5))
    y = layer.forward(x)
    assert y.shape == (2, 4, 3)
    dy = rng.standard_normal((2, 4, 3))
    dx = layer.backward(dy)
    np.testing.assert_allclose(y.reshape(8, 3), layer(x.reshape(8, 5)), rtol=1e-15)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, dy @ layer.weight.data, rtol=1e-14)
    assert Linear(5, 3, seed=0)(np.ones(5)).shape == (3,)


@pytest.mark.parametrize("name", ["x", "weight", "bias"])
def test_linear_gradients_match_finite_differences(rng, name):
    layer = Linear(4, 3, dtype="float64", seed=2)
    x = rng.standard_normal((5, 4))
    upstream = rng.standard_normal((5, 3))   # loss = sum(upstream * y)
    layer.forward(x)
    dx = layer.backward(upstream)
    analytic = {"x": dx, "weight": layer.weight.grad, "bias": layer.bias.grad}[name]
    target = {"x": x, "weight": layer.weight.data, "bias": layer.bias.data}[name]
    numeric = central_difference(lambda: float(np.sum(upstream * layer(x))), target)
    assert rel_err(analytic, numeric) <= 1e-6, name


def test_linear_backward_accumulates_and_keeps_a_copy_of_x(rng):
    layer = Linear(3, 2, dtype="float64", seed=0)
    x = rng.standard_normal((4, 3))
    dy = rng.standard_normal((4, 2))
    layer.forward(x)
    x_before = x.copy()
    x[...] = 99.0    # changing the caller's x must not change the gradient
    layer.backward(dy)
    first = layer.weight.grad.copy()
    np.testing.assert_allclose(first, dy.T @ x_before, rtol=1e-14)
    layer.forward(x_before)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * first, rtol=1e-14)
    np.testing.assert_allclose(layer.bias.grad, 2 * dy.sum(0), rtol=1e-14)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_linear_errors():
    layer = Linear(3, 2)
    with pytest.raises(ValueError, match="needs a preceding forward"):
        layer.backward(np.ones((1, 2), np.float32))
    layer(np.ones((1, 3), np.float32))   # inference keeps nothing
    with pytest.raises(ValueError, match="needs a preceding forward"):
        layer.backward(np.ones((1, 2), np.float32))
    layer.forward(np.ones((1, 3), np.float32))
    layer(np.zeros((1, 3), np.float32))  # ... and leaves the train forward's tape alone
    layer.backward(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="one per backward"):
        layer.backward(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="3 features"):
        layer(np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="integer"):
        layer(np.ones((2, 3), np.int64))
    layer.forward(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 2\)"):
        layer.backward(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 2)
    with pytest.raises(TypeError, match="dtype"):
        Linear(2, 2, dtype="int32")


def test_linear_matches_torch_live(dtype, rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Linear(6, 4).to(getattr(torch, dtype.name))
    ours = Linear(6, 4, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    x = rng.standard_normal((5, 6)).astype(dtype)
    dy = rng.standard_normal((5, 4)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    y = ours.forward(x)
    dx = ours.backward(dy)
    assert_close(y, yt.detach().numpy(), dtype, "Linear forward")
    assert_close(dx, xt.grad.numpy(), dtype, "Linear dx")
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), dtype, "Linear dW")
    assert_close(ours.bias.grad, theirs.bias.grad.numpy(), dtype, "Linear db")


# ---------------------------------------------------------------- mse_loss

def test_mse_loss_by_hand():
    pred = np.array([[1.0], [2.0], [4.0]])
    target = np.array([[1.0], [0.0], [1.0]])
    loss, dpred = mse_loss(pred, target)
    assert loss == pytest.approx((0 + 4 + 9) / 3, rel=1e-15)
    np.testing.assert_allclose(dpred, [[0.0], [4 / 3], [6 / 3]], rtol=1e-15)
    assert loss.dtype == np.float64 and isinstance(loss.item(), float)


def test_mse_loss_dtype_and_gradient(dtype, rng):
    pred = rng.standard_normal((7, 2)).astype(dtype)
    target = rng.standard_normal((7, 2))   # float64 target is cast to pred's dtype
    loss, dpred = mse_loss(pred, target)
    assert loss.dtype == dtype and dpred.dtype == dtype and dpred.shape == pred.shape
    if dtype == np.float64:
        numeric = central_difference(lambda: float(mse_loss(pred, target)[0]), pred)
        assert rel_err(dpred, numeric) <= 1e-6


def test_mse_loss_matches_torch_live(dtype, rng):
    torch = pytest.importorskip("torch")
    pred = rng.standard_normal((9, 3)).astype(dtype)
    target = rng.standard_normal((9, 3)).astype(dtype)
    pt = torch.tensor(pred, requires_grad=True)
    lt = torch.nn.functional.mse_loss(pt, torch.tensor(target))
    lt.backward()
    loss, dpred = mse_loss(pred, target)
    assert_close(np.asarray(loss), lt.detach().numpy(), dtype, "mse loss")
    assert_close(dpred, pt.grad.numpy(), dtype, "mse dpred")


def test_mse_loss_errors():
    with pytest.raises(ValueError, match=r"shape of pred \(3, 1\), got \(3,\)"):
        mse_loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="size 0"):
        mse_loss(np.zeros((0, 1)), np.zeros((0, 1)))
    with pytest.raises(TypeError, match="integer"):
        mse_loss(np.zeros(3, np.int64), np.zeros(3))


# ---------------------------------------------------------------- GRUModel

def test_regressor_parameters_are_the_layers_own():
    model = GRUModel(2, 8, 3, seed=0)
    assert [n for n, _ in model.named_parameters()] == [
        "gru.weight_ih_l0", "gru.weight_hh_l0", "gru.bias_ih_l0", "gru.bias_hh_l0",
        "fc.weight", "fc.bias"]
    assert model.parameters()[0] is model.gru.weight_ih_l0
    assert model.parameters()[-1] is model.fc.bias
    assert model.fc.weight.shape == (3, 8)
    state = model.state_dict()
    state["fc.bias"] = np.array([1.0, 2.0, 3.0])
    model.load_state_dict(state)
    np.testing.assert_array_equal(model.fc.bias.data, [1, 2, 3])
    assert "GRUModel" in repr(model) and "Linear(8, 3" in repr(model)
    assert GRUModel(1, 4, bidirectional=True).fc.in_features == 8


def test_regressor_seed_is_reproducible():
    a, b, c = GRUModel(seed=3), GRUModel(seed=3), GRUModel(seed=4)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
        assert not np.array_equal(pa.data, pc.data), name


def test_regressor_forward_is_linear_of_last_step(backend, dtype, rng):
    model = GRUModel(2, 5, 3, dtype=dtype, seed=0)
    x = rng.standard_normal((4, 6, 2)).astype(dtype)
    out, _ = model.gru(x)
    assert_close(model.predict(x), model.fc(out[:, -1, :]), dtype, "regressor forward")
    assert_close(model(x), model.forward(x, train=True), dtype, "regressor forward")
    x1 = x[:, :, :1]
    assert model.__class__(1, 5, 3, dtype=dtype, seed=0).predict(x1[:, :, 0]).shape == (4, 3)


@pytest.mark.parametrize("options", [{}, {"num_layers": 2}, {"bidirectional": True},
                                     {"reset": "before"}], ids=["l1", "l2", "bidir", "before"])
def test_regressor_gradients_match_finite_differences(backend, rng, options):
    model = GRUModel(2, 3, 2, dtype="float64", seed=5, **options)
    x = rng.standard_normal((3, 4, 2))
    y = rng.standard_normal((3, 2))
    loss, d = mse_loss(model.forward(x), y)
    dx = model.backward(d)

    def f():
        return float(mse_loss(model(x), y)[0])

    for name, p in model.named_parameters():
        assert rel_err(p.grad, central_difference(f, p.data)) <= 1e-6, name
    assert rel_err(dx, central_difference(f, x)) <= 1e-6, "dx"


def test_regressor_fit_learns_and_records_history(backend):
    _, x, y, _, _ = sine_windows()
    model = GRUModel(1, 8, seed=0)
    seen = []
    assert model.fit(x, y, epochs=30, lr=0.05, callback=lambda e, l: seen.append((e, l))) is model
    assert [e for e, _ in seen] == list(range(1, 31))
    assert [l for _, l in seen] == model.history_
    assert model.history_[-1] < 0.2 * model.history_[0]
    model.fit(x, y, epochs=2, lr=0.05)       # trains on from the current weights
    assert len(model.history_) == 32


def test_regressor_fit_mini_batches_and_custom_optimizer(rng):
    _, x, y, _, _ = sine_windows()
    model = GRUModel(1, 8, dtype="float64", seed=0)
    opt = fastgru.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.fit(x, y, epochs=5, batch_size=64, optimizer=opt, seed=0)
    assert len(model.history_) == 5 and model.history_[-1] < model.history_[0]
    again = GRUModel(1, 8, dtype="float64", seed=0)
    again.fit(x, y, epochs=5, batch_size=64,
              optimizer=fastgru.optim.SGD(again.parameters(), lr=0.1, momentum=0.9), seed=0)
    assert again.history_ == model.history_


def test_regressor_errors():
    model = GRUModel(2, 4, 1)
    with pytest.raises(ValueError, match="needs a preceding forward"):
        model.backward(np.ones((1, 1), np.float32))
    with pytest.raises(ValueError, match="only taken when input_size is 1"):
        model.predict(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match="2 features"):
        model.predict(np.ones((3, 5, 3), np.float32))
    with pytest.raises(ValueError, match="at least one time step"):
        model.predict(np.ones((3, 0, 2), np.float32))
    x = np.ones((3, 5, 2), np.float32)
    with pytest.raises(ValueError, match=r"y must have shape \(3, 1\)"):
        model.fit(x, np.ones(4, np.float32), epochs=1)
    with pytest.raises(ValueError, match="lr or optimizer, not both"):
        model.fit(x, np.ones(3, np.float32), epochs=1, lr=0.1,
                  optimizer=fastgru.optim.Adam(model.parameters()))
    with pytest.raises(TypeError, match="fastgru.optim optimizer"):
        model.fit(x, np.ones(3, np.float32), optimizer="adam")
    with pytest.raises(ValueError, match="epochs"):
        model.fit(x, np.ones(3, np.float32), epochs=-1)
    with pytest.raises(ValueError, match=r"x must hold at least one sequence to fit on, "
                                         r"got shape \(0, 5, 2\)"):
        model.fit(np.ones((0, 5, 2), np.float32), np.ones(0, np.float32), epochs=1)
    assert model.predict(np.ones((0, 5, 2), np.float32)).shape == (0, 1)   # inference may


def test_old_name_warns_and_is_the_model():
    with pytest.warns(DeprecationWarning, match="fastgru.nn.GRUModel"):
        from fastgru.nn import GRURegressor
    assert GRURegressor is GRUModel
    with pytest.warns(DeprecationWarning, match="fastgru.sklearn.GRURegressor"):
        assert fastgru.nn.GRURegressor is GRUModel
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        fastgru.nn.Nothing  # noqa: B018  (the attribute access is the test)


def test_cross_entropy_matches_a_naive_loop(rng):
    from fastgru.nn import cross_entropy
    logits = 3 * rng.standard_normal((6, 4))
    target = rng.integers(0, 4, 6)
    loss, d = cross_entropy(logits, target)
    naive = np.mean([np.log(np.exp(row).sum()) - row[k] for row, k in zip(logits, target)])
    np.testing.assert_allclose(loss, naive, rtol=1e-14)
    num = central_difference(lambda: cross_entropy(logits, target)[0], logits)
    np.testing.assert_allclose(d, num, rtol=0, atol=1e-8)
    assert cross_entropy(logits.astype(np.float32), target)[1].dtype == np.float32
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        cross_entropy(logits, target.astype(float))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 4\)"):
        cross_entropy(logits, target + 4)
    with pytest.raises(ValueError, match=r"target must have shape \(6,\)"):
        cross_entropy(logits, target[:3])


def test_linear_rows_are_batch_and_thread_invariant(backend, dtype, rng):
    """A row's output is the same bits alone, in any batch, with any thread count (what
    chunked and distributed inference rely on); BLAS's x @ W.T is not (seen in float64)."""
    if backend == "numpy":
        pytest.skip("the NumPy reference computes x @ W.T with NumPy's BLAS")
    layer = Linear(37, 5, dtype=dtype, seed=0)
    x = rng.standard_normal((300, 37)).astype(dtype)
    full = layer(x)
    for rows in (slice(0, 1), slice(7, 70), slice(100, 101), slice(0, 299)):
        np.testing.assert_array_equal(layer(x[rows]), full[rows])
    with fastgru.threads(1):
        np.testing.assert_array_equal(layer(x), full)
    w, b = (p.data.astype(np.float64) for p in (layer.weight, layer.bias))
    assert_close(full, x.astype(np.float64) @ w.T + b, dtype, "Linear forward")
