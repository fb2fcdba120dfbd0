"""Every gradient against central finite differences, float64, both reset variants."""
import numpy as np
import pytest

import fastgru

from helpers import central_difference, random_problem, upstream
from tolerances import FINITE_DIFFERENCES

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels

WRT = {"x": 0, "h0": 1, "w_ih": 2, "w_hh": 3, "b_ih": 4, "b_hh": 5}


def loss(p, reset, reverse, d_out, d_h_n):
    out, h_n, _ = fastgru.gru_forward(reset=reset, reverse=reverse, **p)
    return float(np.sum(out * d_out) + np.sum(h_n * d_h_n))


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("reverse,with_lengths", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("wrt", list(WRT))
def test_gradient_matches_finite_differences(backend, rng, reset, reverse, with_lengths, wrt):
    T, B, I, H = 4, 3, 2, 3
    p = random_problem(rng, T, B, I, H, np.float64, lengths=with_lengths)
    if with_lengths:
        p["lengths"] = np.array([4, 1, 3])
    d_out, d_h_n = upstream(rng, T, B, H, np.float64)
    _, _, cache = fastgru.gru_forward(reset=reset, reverse=reverse, need_cache=True, **p)
    analytic = fastgru.gru_backward(d_out, d_h_n, cache)[WRT[wrt]]
    numeric = central_difference(lambda: loss(p, reset, reverse, d_out, d_h_n), p[wrt])
    rel = np.abs(analytic - numeric).max() / max(1e-3, np.abs(numeric).max())
    assert rel <= FINITE_DIFFERENCES, f"d{wrt}: relative error {rel:.3g} vs finite differences"
    assert np.abs(numeric).max() > 0 or wrt in ("x",), f"d{wrt} is identically zero"
