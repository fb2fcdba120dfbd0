"""The GRU / GRUCell layers: layouts, stacking, dropout, state dicts, gradients end to end."""
import numpy as np
import pytest

import fastgru
from fastgru.nn.module import own_slot

from helpers import assert_close, central_difference, make_gru
from tolerances import FINITE_DIFFERENCES


def test_parameters_follow_torch_names_and_order():
    gru = fastgru.GRU(3, 4, num_layers=2, bidirectional=True)
    names = [n for n, _ in gru.named_parameters()]
    assert names[:8] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                         "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                         "bias_hh_l0_reverse"]
    assert gru.weight_ih_l1.shape == (12, 8)
    assert len(gru.parameters()) == 16
    assert all(p.dtype == np.float32 for p in gru.parameters())
    bound = 1 / np.sqrt(4)
    assert all(np.abs(p.data).max() <= bound for p in gru.parameters())
    assert len(fastgru.GRU(3, 4, bias=False).parameters()) == 2


def test_seed_makes_init_reproducible():
    a, b = fastgru.GRU(3, 4, seed=7), fastgru.GRU(3, 4, seed=7)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x, y, err_msg=k)
    c = fastgru.GRU(3, 4, seed=8)
    assert not np.array_equal(a.weight_hh_l0.data, c.weight_hh_l0.data)


def test_batch_first_and_unbatched_layouts(backend, rng):
    gru = make_gru(rng, scale=0.5, input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    x = rng.standard_normal((6, 2, 3))
    h0 = rng.standard_normal((4, 2, 4))
    out, h_n = gru(x, h0)
    assert out.shape == (6, 2, 8) and h_n.shape == (4, 2, 4)
    gru_bf = make_gru(rng, scale=0.5, input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                      batch_first=True)
    gru_bf.load_state_dict(gru.state_dict())
    out_bf, h_n_bf = gru_bf(x.transpose(1, 0, 2), h0)
    np.testing.assert_array_equal(out_bf, out.transpose(1, 0, 2))
    np.testing.assert_array_equal(h_n_bf, h_n)
    out_u, h_n_u = gru(x[:, 1], h0[:, 1])
    np.testing.assert_allclose(out_u, out[:, 1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(h_n_u, h_n[:, 1], rtol=0, atol=1e-13)
    out0, _ = gru(x)
    np.testing.assert_array_equal(out0, gru(x, np.zeros((4, 2, 4)))[0])


def test_other_float_dtypes_are_cast(backend, rng):
    gru = make_gru(rng, "float32", scale=0.5, input_size=3, hidden_size=4)
    x = rng.standard_normal((5, 2, 3))
    out16, _ = gru(x.astype(np.float16))
    out32, _ = gru(x.astype(np.float16).astype(np.float32))
    assert out16.dtype == np.float32
    np.testing.assert_array_equal(out16, out32)
    assert gru(x)[0].dtype == np.float32


def loss_of(gru, x, h0, lengths, d_out, d_h_n):
    out, h_n = gru(x, h0, lengths=lengths)
    return float(np.sum(out * d_out) + np.sum(h_n * d_h_n))


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_stacked_bidirectional_gradients_vs_finite_differences(backend, rng, reset, batch_first):
    T, B, I, H = 4, 2, 2, 3
    gru = make_gru(rng, scale=0.5, input_size=I, hidden_size=H, num_layers=2, bidirectional=True,
                   reset=reset, batch_first=batch_first)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    h0 = 0.5 * rng.standard_normal((4, B, H))
    lengths = np.array([4, 2])
    out, h_n = gru.forward(x, h0, lengths=lengths)
    d_out, d_h_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    gru.zero_grad()
    dx, dh0 = gru.backward(d_out, d_h_n)

    def numeric(array):
        return central_difference(lambda: loss_of(gru, x, h0, lengths, d_out, d_h_n), array)

    checks = [("dx", dx, x), ("dh0", dh0, h0)] + [
        (name, p.grad, p.data) for name, p in gru.named_parameters()]
    for name, analytic, array in checks:
        num = numeric(array)
        rel = np.abs(analytic - num).max() / max(1e-3, np.abs(num).max())
        assert rel <= FINITE_DIFFERENCES, f"{name}: relative error {rel:.3g}"


def test_backward_accumulates_and_zero_grad_clears(backend, rng):
    gru = make_gru(rng, scale=0.5, input_size=2, hidden_size=3)
    x = rng.standard_normal((3, 2, 2))
    out, _ = gru.forward(x)
    d = rng.standard_normal(out.shape)
    gru.backward(d)
    first = [p.grad.copy() for p in gru.parameters()]
    gru.forward(x)
    gru.backward(d)
    for p, g in zip(gru.parameters(), first):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-14, atol=1e-15)
    gru.zero_grad()
    assert all(not p.grad.any() for p in gru.parameters())


@pytest.mark.parametrize("bidirectional", [False, True])
def test_reused_tape_arrays_change_nothing(backend, rng, bidirectional):
    """A train forward after a backward reuses the consumed caches' arrays: results
    must match a fresh layer's, for a new shape, the same shape, and after the caller
    changes its x; nothing returned earlier may change."""
    def run(gru, x, d):
        gru.zero_grad()
        out, h_n = gru.forward(x)
        dx, dh0 = gru.backward(d)
        return [out, h_n, dx, dh0] + [p.grad.copy() for p in gru.parameters()]

    gru = make_gru(rng, scale=0.5, input_size=3, hidden_size=4, num_layers=2, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    first_x = rng.standard_normal((5, 2, 3))
    first = run(gru, first_x, rng.standard_normal((5, 2, 4 * D)))
    kept = [a.copy() for a in first]
    for T, B in [(5, 2), (7, 3), (7, 3)]:
        x = rng.standard_normal((T, B, 3))
        d = rng.standard_normal((T, B, 4 * D))
        gru.forward(x)          # the backward below must use this x, not the caller's later one
        x_before = x.copy()
        x[...] = 0
        fresh = make_gru(rng, scale=0.5, input_size=3, hidden_size=4, num_layers=2,
                         bidirectional=bidirectional)
        fresh.load_state_dict(gru.state_dict())
        fresh.forward(x_before)
        gru.zero_grad()
        want = fresh.backward(d)
        got = gru.backward(d)
        for a, b in zip(got + tuple(p.grad for p in gru.parameters()),
                        want + tuple(p.grad for p in fresh.parameters())):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b)


def test_dropout_only_in_train_and_seeded(backend, rng):
    x = rng.standard_normal((5, 3, 2))
    a = fastgru.GRU(2, 6, num_layers=3, dropout=0.5, dtype="float64", seed=3)
    b = fastgru.GRU(2, 6, num_layers=3, dropout=0.5, dtype="float64", seed=3)
    plain = fastgru.GRU(2, 6, num_layers=3, dtype="float64", seed=3)
    np.testing.assert_array_equal(a(x)[0], plain(x)[0])          # inference: no dropout
    train_a, train_b = a.forward(x)[0], b.forward(x)[0]
    np.testing.assert_array_equal(train_a, train_b)               # same seed, same masks
    assert not np.allclose(train_a, plain(x)[0])                  # dropout did something
    assert not np.array_equal(a.forward(x)[0], train_a)           # fresh masks each call
    # the backward pass goes through the same mask as the forward
    out, _ = a.forward(x)
    d = rng.standard_normal(out.shape)
    dx, _ = a.backward(d)
    assert np.all(np.isfinite(dx))


def test_dropout_gradient_uses_forward_mask(rng):
    gru = fastgru.GRU(2, 3, num_layers=2, dropout=0.4, dtype="float64", seed=5)
    x = rng.standard_normal((3, 2, 2))
    out, h_n = gru.forward(x)
    d_out = rng.standard_normal(out.shape)
    mask = own_slot(gru._tapes)[1][1]   # this thread's tape: (caches, masks, ...)
    dx, _ = gru.backward(d_out)
    # with the mask frozen, the layered computation is differentiable: compare to FD
    def f(xx):
        o1, _, _ = fastgru.gru_forward(xx, None, gru.weight_ih_l0.data, gru.weight_hh_l0.data,
                                       gru.bias_ih_l0.data, gru.bias_hh_l0.data)
        o2, _, _ = fastgru.gru_forward(o1 * mask, None, gru.weight_ih_l1.data,
                                       gru.weight_hh_l1.data, gru.bias_ih_l1.data,
                                       gru.bias_hh_l1.data)
        return np.sum(o2 * d_out)

    num = central_difference(lambda: f(x), x)
    np.testing.assert_allclose(dx, num, rtol=0, atol=1e-7)


def test_state_dict_round_trip_and_array_likes(rng):
    a = fastgru.GRU(3, 4, num_layers=2, seed=1)
    b = fastgru.GRU(3, 4, num_layers=2, seed=2)
    b.load_state_dict({k: v.tolist() for k, v in a.state_dict().items()})  # plain lists work
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    sd = a.state_dict()
    sd["weight_ih_l0"][...] = 0            # state_dict returns copies
    assert a.weight_ih_l0.data.any()


def test_load_state_dict_takes_torch_tensors(rng):
    torch = pytest.importorskip("torch")
    tg = torch.nn.GRU(3, 4, num_layers=2)
    g = fastgru.GRU(3, 4, num_layers=2)
    g.load_state_dict(tg.state_dict())
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    with torch.inference_mode():
        want = tg(torch.from_numpy(x))[0].numpy()
    assert_close(g(x)[0], want, np.float32, "out", {np.dtype(np.float32): 1e-5})
    g.load_state_dict(dict(tg.named_parameters()))       # tensors that require grad


@pytest.mark.parametrize("reset", ["after", "before"])
def test_cell_matches_one_step_of_gru(backend, rng, reset):
    cell = fastgru.GRUCell(3, 5, reset=reset, dtype="float64", seed=4)
    gru = fastgru.GRU(3, 5, reset=reset, dtype="float64")
    gru.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = rng.standard_normal((2, 3))
    h = rng.standard_normal((2, 5))
    _, want = gru(x[None], h[None])
    assert_close(cell(x, h), want[0], np.float64, "cell step")
    assert_close(cell(x[0], h[0]), want[0, 0], np.float64, "unbatched cell step")
    np.testing.assert_array_equal(cell(x), cell(x, np.zeros((2, 5))))
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih",
                                                       "bias_hh"]


def test_layers_pickle_and_deepcopy_mid_training(rng):
    """Checkpointing mid-training: after a train forward (tape held) and after a
    backward (spent caches kept for reuse), copies must work and compute the same."""
    import copy
    import pickle
    gru = make_gru(rng, scale=0.5, input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    x = rng.standard_normal((5, 2, 3))
    out, _ = gru.forward(x)
    for stage in ("taped", "spent"):
        for clone in (pickle.loads(pickle.dumps(gru)), copy.deepcopy(gru)):
            np.testing.assert_array_equal(clone(x)[0], gru(x)[0])
        if stage == "taped":
            gru.backward(np.ones_like(out))
