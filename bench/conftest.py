"""pytest-benchmark options for the bench suite: ``--bench-threads N``, ``--bench-quick``.

The thread count is set in ``pytest_configure``, before the suite imports NumPy, Numba,
PyTorch or JAX (JAX is limited through the process's CPU affinity, see bench/threads.py).
"""
from bench import threads


def pytest_addoption(parser):
    group = parser.getgroup("fastgru bench")
    group.addoption("--bench-threads", type=int, default=None,
                    help="threads for every implementation (default: all available cores)")
    group.addoption("--bench-quick", action="store_true",
                    help="the small --quick grid of `python -m bench` instead of the full one")


def pytest_configure(config):
    threads.configure(config.getoption("--bench-threads"))


def pytest_report_header(config):
    return f"fastgru bench: {threads.count()} threads for every implementation"


def pytest_generate_tests(metafunc):
    """``case``: the grid's sequence cases; ``cell_case``: its GRUCell cases."""
    from bench import grid
    cases = grid.QUICK if metafunc.config.getoption("--bench-quick") else grid.GRID
    for name, cell in (("case", False), ("cell_case", True)):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, [c for c in cases if c.cell == cell], ids=lambda c: c.name)
