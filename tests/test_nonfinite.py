"""Non-finite numbers propagate as in torch.nn.GRU, on every backend.

Each result element (outputs and every gradient) is NaN, +inf or -inf exactly where
torch (float64, autograd) gives one for the same input; the NumPy reference is the
oracle for what torch lacks (reset="before") and for float32.
"""
import warnings

import numpy as np
import pytest

import fastgru
from fastgru.functional import gru_backward, gru_forward

POISON = [np.nan, np.inf, -np.inf, 1e300, -1e300]


def kinds(a):
    """0 finite, 1 NaN, 2 +inf, 3 -inf, element by element."""
    a = np.asarray(a, np.float64)
    return np.select([np.isnan(a), np.isposinf(a), np.isneginf(a)], [1, 2, 3], 0)


def assert_same_kinds(got, want, what):
    bad = np.argwhere(kinds(got) != kinds(want))
    if len(bad):
        i = tuple(bad[0])
        raise AssertionError(f"{what}: {len(bad)} elements differ in kind, first at {i}: "
                             f"got {got[i]!r}, expected {want[i]!r}")


def poisoned(rng, arrays):
    """Copies of arrays with one or two elements replaced by NaN, +-inf or +-1e300."""
    arrays = {k: np.array(a, copy=True) for k, a in arrays.items()}
    names = sorted(arrays)
    for _ in range(rng.integers(1, 3)):
        flat = arrays[names[rng.integers(len(names))]].reshape(-1)
        flat[rng.integers(flat.size)] = POISON[rng.integers(len(POISON))]
    return arrays


def run(gru, x, h0, d_out, d_h_n, lengths=None):
    gru.zero_grad()
    out, h_n = gru.forward(x, h0, lengths=lengths)
    dx, dh0 = gru.backward(d_out, d_h_n)
    results = {"out": out, "h_n": h_n, "dx": dx, "dh0": dh0}
    results.update({f"grad {k}": p.grad for k, p in gru.named_parameters()})
    return results


def test_poisoned_inputs_match_torch(backend, rng):
    torch = pytest.importorskip("torch")
    T, B, I, H = 4, 3, 3, 4
    for trial in range(60):
        state = {k: rng.normal(0, 0.5, v.shape) for k, v in
                 fastgru.GRU(I, H, dtype="float64").state_dict().items()}
        data = poisoned(rng, {"x": rng.standard_normal((T, B, I)),
                              "h0": rng.standard_normal((1, B, H)), **state})
        x, h0 = data.pop("x"), data.pop("h0")
        lengths = [4, 2, 3] if trial % 2 else None
        tg = torch.nn.GRU(I, H).double()
        tg.load_state_dict({k: torch.tensor(v) for k, v in data.items()})
        tx = torch.tensor(x, requires_grad=True)
        th = torch.tensor(h0, requires_grad=True)
        if lengths:
            pack = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths),
                                                           enforce_sorted=False)
            packed, t_hn = tg(pack, th)
            t_out = torch.nn.utils.rnn.pad_packed_sequence(packed, total_length=T)[0]
        else:
            t_out, t_hn = tg(tx, th)
        d_out = rng.standard_normal((T, B, H))
        d_h_n = rng.standard_normal((1, B, H))
        ((t_out * torch.tensor(d_out)).sum() + (t_hn * torch.tensor(d_h_n)).sum()).backward()
        want = {"out": t_out.detach().numpy(), "h_n": t_hn.detach().numpy(),
                "dx": tx.grad.numpy(), "dh0": th.grad.numpy()}
        want.update({f"grad {k}": p.grad.numpy() for k, p in tg.named_parameters()})
        gru = fastgru.GRU(I, H, dtype="float64")
        gru.load_state_dict(data)
        got = run(gru, x, h0, d_out, d_h_n, lengths)
        for k in want:
            assert_same_kinds(got[k], want[k], f"trial {trial}, {k}")


@pytest.mark.parametrize("reset", ["after", "before"])
def test_poisoned_inputs_match_the_reference(backend, rng, dtype, reset, reference):
    """The kinds of every result equal the NumPy reference's; finite values agree."""
    T, B, I, H = 4, 3, 3, 5
    for trial in range(40):
        gru = fastgru.GRU(I, H, reset=reset, dtype=dtype, seed=trial)
        data = poisoned(rng, {"x": rng.standard_normal((T, B, I)),
                              "h0": rng.standard_normal((1, B, H)), **gru.state_dict()})
        x, h0 = data.pop("x").astype(dtype), data.pop("h0").astype(dtype)
        gru.load_state_dict(data)
        d_out = rng.standard_normal((T, B, H)).astype(dtype)
        d_h_n = rng.standard_normal((1, B, H)).astype(dtype)
        got = run(gru, x, h0, d_out, d_h_n)
        with reference():
            want = run(gru, x, h0, d_out, d_h_n)
        for k in want:
            assert_same_kinds(got[k], want[k], f"trial {trial}, {k}")


def test_infinite_h0_saturates_exactly(backend):
    """sigmoid(-inf) is 0, not the 1.6e-38 a clamped exp gives, so r * hn_lin is
    0 * -inf = NaN, as in torch (a clamped exp gave n = -1 and h_n = -inf)."""
    w_hh = np.array([[1.0], [-1.0], [1.0]])     # r = sigmoid(h), z = sigmoid(-h), hn_lin = h
    out, h_n, _ = gru_forward(np.zeros((1, 1, 1)), np.array([[-np.inf]]), np.zeros((3, 1)),
                              w_hh, None, None, dtype=np.float64)
    assert np.isnan(h_n).all() and np.isnan(out).all()


def test_length_zero_sequence_ignores_nan_weights(backend, dtype):
    """A sequence of length 0 runs no step: its dh0 is d_h_n whatever the weights hold."""
    T, B, I, H = 3, 2, 2, 4
    rng = np.random.default_rng(3)
    w_hh = rng.standard_normal((3 * H, H)).astype(dtype)
    w_hh[1, 2] = np.nan
    _, _, cache = gru_forward(rng.standard_normal((T, B, I)), None,
                              rng.standard_normal((3 * H, I)), w_hh, None, None,
                              lengths=[0, 3], need_cache=True, dtype=dtype)
    d_h_n = rng.standard_normal((B, H)).astype(dtype)
    dx, dh0, *_ = gru_backward(rng.standard_normal((T, B, H)), d_h_n, cache)
    np.testing.assert_array_equal(dh0[0], d_h_n[0])
    np.testing.assert_array_equal(dx[:, 0], 0)


def test_no_numpy_warnings_for_large_preactivations(backend):
    gru = fastgru.GRU(2, 3, dtype="float64", seed=0)
    x = np.full((5, 1, 2), 1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = gru.forward(x)
        gru.backward(np.ones_like(out))
        fastgru.GRUCell(2, 3, dtype="float64", seed=0)(x[0], None)
    assert np.isfinite(out).all()
