"""The [h, x] notation (the article's four equations), implemented literally, against
convert.from_hx + GRU(reset="before"); and the notation's deprecated "seed" names."""
import numpy as np
import pytest

import fastgru

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels

def sigma(a):
    return 1 / (1 + np.exp(-a))


def article_gru(xs, h, W_r, W_z, W_h, b_r, b_z, b_h):
    """r_t = σ(W_r·[h_{t-1}, x_t] + b_r); z_t = σ(W_z·[h_{t-1}, x_t] + b_z);
    h̄_t = tanh(W_h·[r_t * h_{t-1}, x_t] + b_h); h_t = (1 - z_t) * h_{t-1} + z_t * h̄_t"""
    outs = []
    for x in xs:
        r = sigma(W_r @ np.concatenate([h, x]) + b_r)
        z = sigma(W_z @ np.concatenate([h, x]) + b_z)
        h_bar = np.tanh(W_h @ np.concatenate([r * h, x]) + b_h)
        h = (1 - z) * h + z * h_bar
        outs.append(h)
    return np.array(outs), h


@pytest.mark.parametrize("I,H", [(1, 50), (3, 4), (1, 1)])
def test_from_hx_matches_article_equations(backend, rng, I, H):
    T = 10
    W_r, W_z, W_h = (rng.standard_normal((H, H + I)) * 0.4 for _ in range(3))
    b_r, b_z, b_h = (rng.standard_normal(H) * 0.3 for _ in range(3))
    xs = rng.standard_normal((T, I))
    h0 = rng.standard_normal(H) * 0.5
    want_out, want_h = article_gru(xs, h0, W_r, W_z, W_h, b_r, b_z, b_h)
    gru = fastgru.GRU(I, H, reset="before", dtype="float64")
    gru.load_state_dict(fastgru.convert.from_hx(W_r, W_z, W_h, b_r, b_z, b_h))
    out, h_n = gru(xs, h0[None, :])            # unbatched (T, I)
    np.testing.assert_allclose(out, want_out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n[0], want_h, rtol=0, atol=1e-12)


def test_from_hx_rejects_bad_shapes():
    W = np.zeros((4, 6))
    b = np.zeros(4)
    with pytest.raises(ValueError, match=r"W_z must have shape \(4, 6\)"):
        fastgru.convert.from_hx(W, np.zeros((4, 5)), W, b, b, b)
    with pytest.raises(ValueError, match="H \\+ I"):
        fastgru.convert.from_hx(np.zeros((4, 4)), W, W, b, b, b)
    with pytest.raises(ValueError, match=r"b_h must have shape \(4,\)"):
        fastgru.convert.from_hx(W, W, W, b, b, np.zeros(3))


def test_the_old_seed_names_warn_and_give_the_same(rng):
    H, I = 4, 3
    W = [rng.standard_normal((H, H + I)) for _ in range(3)]
    b = [rng.standard_normal(H) for _ in range(3)]
    with pytest.warns(DeprecationWarning, match="from_seed is now fastgru.convert.from_hx") as rec:
        old = fastgru.convert.from_seed(*W, *b)
    assert rec[0].filename == __file__          # points at the caller's line
    new = fastgru.convert.from_hx(*W, *b)
    assert list(old) == list(new)
    for name in new:
        np.testing.assert_array_equal(old[name], new[name], err_msg=name)
    with pytest.warns(DeprecationWarning, match="to_seed is now fastgru.convert.to_hx") as rec:
        old = fastgru.convert.to_seed(new, reset="before")
    assert rec[0].filename == __file__
    new = fastgru.convert.to_hx(new, reset="before")
    assert list(old) == list(new)
    for name in new:
        np.testing.assert_array_equal(old[name], new[name], err_msg=name)
