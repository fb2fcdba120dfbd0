"""Property tests: random shapes and values, backend against the reference."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgru

from helpers import GRAD_NAMES, assert_close

shapes = st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(1, 5), st.integers(1, 8))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), reset=st.sampled_from(["after", "before"]),
       reverse=st.booleans(), use_lengths=st.booleans(), scale=st.floats(0.05, 2.0),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_backend_matches_reference_on_random_problems(shape, seed, reset, reverse, use_lengths,
                                                      scale, dtype):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    p = dict(x=rng.uniform(-scale, scale, (T, B, I)), h0=rng.uniform(-1, 1, (B, H)),
             w_ih=rng.uniform(-scale, scale, (3 * H, I)), w_hh=rng.uniform(-scale, scale, (3 * H, H)),
             b_ih=rng.uniform(-scale, scale, 3 * H), b_hh=rng.uniform(-scale, scale, 3 * H),
             lengths=rng.integers(0, T + 1, B) if use_lengths else None)
    p = {k: v.astype(dtype) if k != "lengths" and v is not None else v for k, v in p.items()}
    d_out, d_h_n = rng.standard_normal((T, B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    results = {}
    before = fastgru.get_backend()
    try:
        for name in {before, "numpy"}:
            fastgru.set_backend(name)
            out, h_n, cache = fastgru.gru_forward(reset=reset, reverse=reverse, need_cache=True, **p)
            results[name] = (out, h_n) + fastgru.gru_backward(d_out, d_h_n, cache)
    finally:
        fastgru.set_backend(before)
    for what, a, b in zip(("out", "h_n") + GRAD_NAMES, results[before], results["numpy"]):
        assert_close(a, b, dtype, what)
