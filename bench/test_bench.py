"""The pytest-benchmark suite: ``pytest bench/ --benchmark-only`` (see bench/README.md).

One benchmark function per operation, parametrized over implementations (fastgru backends
and peers) and grid cases, grouped by case. Each result is checked against fastgru's NumPy
reference before it is timed; a missing peer or unsupported combination is a skip.
"""
import pytest

from bench import grid, peers

# ``case`` and ``cell_case`` are parametrized by bench/conftest.py (full or --bench-quick grid).


def _bench(benchmark, impl, case, op):
    try:
        runner = peers.prepare(impl, case, op)
    except peers.Unsupported as exc:
        pytest.skip(f"{impl}: {exc}")
    benchmark.group = f"{case.describe()} {op}"
    benchmark.extra_info.update(impl=impl, case=case.name, op=op, max_err=runner.max_err,
                                gemm_gflop=grid.gemm_flops(case, op) / 1e9)
    if runner.compile_s is not None:
        benchmark.extra_info["compile_s"] = runner.compile_s
    runner.activate()
    with runner.context():
        benchmark(runner.fn)


@pytest.mark.parametrize("impl", peers.impls_for(grid.FORWARD))
def test_forward(benchmark, case, impl):
    _bench(benchmark, impl, case, grid.FORWARD)


@pytest.mark.parametrize("impl", peers.impls_for(grid.FORWARD_BACKWARD))
def test_forward_backward(benchmark, case, impl):
    _bench(benchmark, impl, case, grid.FORWARD_BACKWARD)


@pytest.mark.parametrize("impl", peers.impls_for(grid.STEP))
def test_cell_step(benchmark, cell_case, impl):
    _bench(benchmark, impl, cell_case, grid.STEP)
