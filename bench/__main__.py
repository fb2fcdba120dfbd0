"""``python -m bench``: the report runner (see bench/README.md and ``--help``).

The thread count is fixed here, before NumPy, Numba, PyTorch or JAX are imported:
JAX can only be limited by the process's CPU affinity, set before its import.
"""
import argparse
import sys

from . import threads

_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--threads", type=int, default=None)
threads.configure(_pre.parse_known_args()[0].threads)

from . import report  # noqa: E402  (after configure, on purpose)

sys.exit(report.main())
