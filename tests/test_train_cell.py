"""GRUCell training through a user-written loop over steps: each step's input is computed
from the previous state by a Linear, so both layers' last-in-first-out records are used.
Gradients against torch.nn.GRUCell autograd (reset="after") and finite differences
(reset="before", which torch lacks), on every backend."""
import pickle
import threading

import numpy as np
import pytest

from fastgru.nn import GRUCell, Linear

from helpers import assert_close, central_difference
from tolerances import FINITE_DIFFERENCES

T, B, I, H = 6, 3, 4, 5


def make_loop(rng, reset="after", bias=True, batch=B, dtype="float64"):
    cell = GRUCell(I, H, bias=bias, reset=reset, dtype=dtype, seed=int(rng.integers(1 << 30)))
    lin = Linear(H, I, dtype=dtype, seed=int(rng.integers(1 << 30)))
    shape = (batch,) if batch else ()
    x0 = rng.standard_normal(shape + (I,))
    h0 = 0.5 * rng.standard_normal(shape + (H,))
    weights = rng.standard_normal((T,) + shape + (H,))   # loss = sum_t <weights[t], h_t>
    return cell, lin, x0, h0, weights


def loop_forward(cell, lin, x0, h0, train):
    """h_t = cell(x_t, h_{t-1}), x_{t+1} = lin(h_t): the decoder-like loop under test."""
    x, h, states = x0, h0, []
    for t in range(T):
        h = cell.forward(x, h, train=train)
        states.append(h)
        if t < T - 1:
            x = lin.forward(h, train=train)
    return states


def loop_backward(cell, lin, weights):
    """The loop's backward, last step first; returns (dx0, dh0)."""
    dh_later = np.zeros_like(weights[0])
    dx_later = None
    for t in reversed(range(T)):
        dh = weights[t] + dh_later
        if t < T - 1:
            dh = dh + lin.backward(dx_later)
        dx_later, dh_later = cell.backward(dh)
    return dx_later, dh_later


def loss_of(cell, lin, x0, h0, weights):
    states = loop_forward(cell, lin, x0, h0, train=False)
    return sum(float(np.sum(w * s)) for w, s in zip(weights, states))


def fastgru_grads(cell, lin, x0, h0, weights):
    cell.zero_grad()
    lin.zero_grad()
    loop_forward(cell, lin, x0, h0, train=True)
    dx0, dh0 = loop_backward(cell, lin, weights)
    grads = {"x0": dx0, "h0": dh0}
    grads.update({f"cell.{n}": p.grad.copy() for n, p in cell.named_parameters()})
    grads.update({f"lin.{n}": p.grad.copy() for n, p in lin.named_parameters()})
    return grads


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch", [B, 1, None], ids=["batched", "B1", "unbatched"])
def test_cell_loop_gradients_match_torch_autograd(backend, rng, bias, batch):
    torch = pytest.importorskip("torch")
    cell, lin, x0, h0, weights = make_loop(rng, bias=bias, batch=batch)
    ours = fastgru_grads(cell, lin, x0, h0, weights)

    t_cell = torch.nn.GRUCell(I, H, bias=bias).double()
    t_lin = torch.nn.Linear(H, I).double()
    with torch.no_grad():
        for module, mine in ((t_cell, cell), (t_lin, lin)):
            for name, param in module.named_parameters():
                param.copy_(torch.from_numpy(getattr(mine, name).data))
    tx0 = torch.tensor(x0, requires_grad=True)
    th0 = torch.tensor(h0, requires_grad=True)
    x, h, loss = tx0, th0, 0
    for t in range(T):
        h = t_cell(x, h)
        loss = loss + (torch.from_numpy(weights[t]) * h).sum()
        if t < T - 1:
            x = t_lin(h)
    loss.backward()
    want = {"x0": tx0.grad, "h0": th0.grad}
    want.update({f"cell.{n}": p.grad for n, p in t_cell.named_parameters()})
    want.update({f"lin.{n}": p.grad for n, p in t_lin.named_parameters()})
    assert sorted(ours) == sorted(want)
    worst = 0.0
    for name, ref in want.items():
        ref = ref.numpy()
        scale = max(1.0, float(np.abs(ref).max()))
        err = float(np.abs(ours[name] - ref).max())
        assert ours[name].shape == ref.shape, name
        assert err <= 1e-10 * scale, f"{name}: max abs diff {err:.3g} vs torch (scale {scale:.3g})"
        worst = max(worst, err / scale)
    print(f"GRUCell loop vs torch autograd, {backend}: max scaled error {worst:.3g}")


@pytest.mark.parametrize("reset", ["before", "after"])
def test_cell_loop_gradients_match_finite_differences(backend, rng, reset):
    cell, lin, x0, h0, weights = make_loop(rng, reset=reset, batch=2)
    ours = fastgru_grads(cell, lin, x0, h0, weights)
    arrays = {"x0": (x0, None), "h0": (h0, None)}
    arrays.update({f"cell.{n}": (p.data, p) for n, p in cell.named_parameters()})
    arrays.update({f"lin.{n}": (p.data, p) for n, p in lin.named_parameters()})
    for name, (array, param) in arrays.items():
        # .data edited in place: changed() tells the cell its packed copy is stale
        num = central_difference(lambda: loss_of(cell, lin, x0, h0, weights), array,
                                 touched=None if param is None else param.changed)
        rel = np.abs(ours[name] - num).max() / max(1e-3, np.abs(num).max())
        assert rel <= FINITE_DIFFERENCES, f"{name} ({reset}): relative error {rel:.3g}"


def test_train_step_gives_the_inference_state(backend, rng, dtype):
    cell = GRUCell(I, H, dtype=dtype, seed=1)
    x = rng.standard_normal((B, I)).astype(dtype)
    h = rng.standard_normal((B, H)).astype(dtype)
    assert_close(cell.forward(x, h, train=True), cell(x, h), dtype, "train step state")
    assert_close(cell.forward(x[0], None, train=True), cell(x[0]), dtype, "unbatched, h=None")
    assert len(cell._records[threading.get_ident()][1]) == 2
    cell.clear()
    with pytest.raises(ValueError, match="train=True"):
        cell.backward(np.ones((B, H), dtype))


def test_records_are_last_in_first_out_and_inputs_private(rng):
    """Backwards pop the steps in reverse order; changing x and h after a forward changes
    nothing; each backward equals a lone step's."""
    cell = GRUCell(I, H, dtype="float64", seed=2)
    xs = [rng.standard_normal((B, I)) for _ in range(3)]
    hs = [rng.standard_normal((B, H)) for _ in range(3)]
    ds = [rng.standard_normal((B, H)) for _ in range(3)]
    alone = []
    for x, h, d in zip(xs, hs, ds):
        cell.zero_grad()
        cell.forward(x, h, train=True)
        alone.append(cell.backward(d) + (cell.weight_hh.grad.copy(),))
    cell.zero_grad()
    for x, h in zip(xs, hs):
        cell.forward(x, h, train=True)
    for a in xs + hs:
        a[...] = 7.0
    total = np.zeros_like(cell.weight_hh.grad)
    for k in reversed(range(3)):
        dx, dh = cell.backward(ds[k])
        np.testing.assert_array_equal(dx, alone[k][0])
        np.testing.assert_array_equal(dh, alone[k][1])
        total += alone[k][2]
    np.testing.assert_allclose(cell.weight_hh.grad, total, rtol=1e-14, atol=1e-15)


def test_linear_records_are_last_in_first_out(rng):
    lin = Linear(3, 2, dtype="float64", seed=0)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    lin.forward(x1)
    lin.forward(x2)
    d2, d1 = rng.standard_normal((5, 2)), rng.standard_normal((4, 2))
    np.testing.assert_allclose(lin.backward(d2), d2 @ lin.weight.data, rtol=1e-14)
    np.testing.assert_allclose(lin.weight.grad, d2.T @ x2, rtol=1e-14)
    with pytest.raises(ValueError, match=r"dy must have shape \(4, 2\)"):
        lin.backward(d2)                  # the next record is x1's: (4, 2)
    lin.backward(d1)                      # a bad call consumed nothing
    np.testing.assert_allclose(lin.weight.grad, d2.T @ x2 + d1.T @ x1, rtol=1e-14)
    with pytest.raises(ValueError, match="train=True"):
        lin.backward(d1)
    lin.forward(x1)
    lin.zero_grad()                       # drops the unused record too
    with pytest.raises(ValueError, match="train=True"):
        lin.backward(d1)


def test_cell_backward_errors_are_clear(rng):
    cell = GRUCell(I, H, seed=0)
    with pytest.raises(ValueError, match=r"backward\(\) needs a preceding forward"):
        cell.backward(np.ones((B, H), np.float32))
    cell(np.ones((B, I), np.float32))     # inference records nothing
    with pytest.raises(ValueError, match="record nothing"):
        cell.backward(np.ones((B, H), np.float32))
    cell.forward(np.ones((B, I), np.float32), train=True)
    with pytest.raises(ValueError, match=r"dh_next must have shape \(3, 5\), got \(3, 4\)"):
        cell.backward(np.ones((B, H - 1), np.float32))
    with pytest.raises(TypeError, match="dh_next must hold real floating-point"):
        cell.backward(np.ones((B, H), np.int64))
    dx, dh = cell.backward(np.ones((B, H), np.float32))   # the record survived the bad calls
    assert dx.shape == (B, I) and dh.shape == (B, H) and dx.dtype == np.float32
    cell.forward(np.ones(I, np.float32), train=True)
    with pytest.raises(ValueError, match=r"dh_next must have shape \(5,\)"):
        cell.backward(np.ones((1, H), np.float32))


def test_records_are_per_thread_and_not_pickled(rng):
    cell = GRUCell(I, H, dtype="float64", seed=3)
    x, h, d = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    cell.forward(x, h, train=True)
    copy = pickle.loads(pickle.dumps(cell))
    with pytest.raises(ValueError, match="train=True"):
        copy.backward(d)
    errors = []

    def other():
        try:
            cell.backward(d)
        except ValueError as exc:
            errors.append(exc)
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(errors) == 1          # the other thread recorded nothing
    cell.backward(d)                 # this thread's record is still there
