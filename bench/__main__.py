"""``python -m bench``: the report runner (see bench/README.md and ``--help``).

This process imports no implementation and sets no thread count: each implementation is
timed in a fresh child process (``bench/child.py``) that sets the thread count before
importing anything (JAX can only be limited by the CPU affinity, set before its import).
"""
import sys

from . import report

sys.exit(report.main())
