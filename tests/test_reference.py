"""The naive scalar loop checks the NumPy reference in float64."""
import numpy as np
import pytest

import fastgru

import naive
from helpers import random_problem

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("T,B,I,H", [(5, 3, 2, 4), (1, 1, 1, 1), (4, 2, 3, 1)])
def test_reference_matches_naive_loop(rng, reference, reset, reverse, with_lengths, T, B, I, H):
    p = random_problem(rng, T, B, I, H, np.float64, lengths=with_lengths)
    with reference():
        out, h_n, _ = fastgru.gru_forward(reset=reset, reverse=reverse, **p)
    want_out, want_h_n = naive.gru_forward(reset=reset, reverse=reverse, **p)
    np.testing.assert_allclose(out, np.array(want_out), rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n, np.array(want_h_n), rtol=0, atol=1e-12)
