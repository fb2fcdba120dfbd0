"""The twin kernels stay in step: the Numba backend and the C extension give the same bits,
forward and every gradient, on the shapes that take each path of the engine (one piece,
several row blocks and unit chunks, K beyond K_BLOCK, padding, both directions, both
reset variants), the GRUCell step and the Linear layer.

Both compute each product element as one chain of fused multiply-adds in the same order
(Numba's llvm.fma is exact fused arithmetic with or without FMA hardware), and the gate
math with the same functions. Where the C kernels in use do not fuse (the baseline x86-64
variant, FASTGRU_ISA=baseline), the bits differ by design and the test is skipped.
"""
import pytest

import fastgru

from helpers import random_problem, upstream

pytest.importorskip("numba")
cython_backend = pytest.importorskip("fastgru.backends.cython_backend",
                                     reason="the Cython extension is not built")
pytestmark = pytest.mark.skipif(
    not cython_backend.isa_info()["fused_multiply_add"],
    reason="the C kernels in use multiply then add; Numba's fuse: the bits differ by design")

SHAPES = [(5, 3, 4, 6), (7, 40, 8, 80), (3, 2, 300, 65), (4, 9, 5, 33)]


def both(fn):
    results = {}
    for name in ("numba", "cython"):
        with fastgru.backend(name):
            results[name] = fn()
    return results["numba"], results["cython"]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_forward_and_backward(dtype, rng, shape, reset, reverse):
    T, B, I, H = shape
    p = random_problem(rng, T, B, I, H, dtype, lengths=True)
    d_out, d_h_n = upstream(rng, T, B, H, dtype)

    def run():
        out, h_n, cache = fastgru.gru_forward(reset=reset, reverse=reverse, need_cache=True, **p)
        return (out, h_n) + fastgru.gru_backward(d_out, d_h_n, cache)

    for i, (a, b) in enumerate(zip(*both(run))):
        assert a.tobytes() == b.tobytes(), f"result {i} differs between numba and cython"


@pytest.mark.parametrize("B", [1, 3, 7])
def test_cell_step_and_linear(dtype, rng, B):
    cell = fastgru.GRUCell(16, 64, dtype=dtype, seed=1)
    lin = fastgru.nn.Linear(64, 5, dtype=dtype, seed=2)
    x = rng.standard_normal((B, 16)).astype(dtype)
    h = rng.standard_normal((B, 64)).astype(dtype)
    a, b = both(lambda: lin(cell(x, h)))
    assert a.tobytes() == b.tobytes()
