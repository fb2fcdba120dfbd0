"""Whether Numba can keep fastgru's compiled kernels on disk: ``CACHE``, decided once.

Numba looks for a writable place beside the source (``__pycache__``) or in the user's
cache directory (``NUMBA_CACHE_DIR``, else under the home directory). Where it finds
none (a read-only install in a locked-down container), every ``cache=True`` decorator
raises ``RuntimeError: cannot cache function ...: no locator available``. fastgru then
compiles without the cache, with one warning: each new process compiles again.
"""
from numba import njit

from .._warn import warn


def _probe():
    return 0


def _cache_works():
    """Decorating with cache=True finds a cache place, or raises, at once. The probe
    lives beside the kernels, so the answer holds for them."""
    try:
        njit(cache=True)(_probe)
    except RuntimeError as exc:
        if "no locator available" not in str(exc):
            raise
        warn(
            f"fastgru: Numba finds no writable cache directory ({exc}); the kernels are "
            "compiled without a cache, again in every new process. Set NUMBA_CACHE_DIR "
            "to a writable folder to keep them.", RuntimeWarning)
        return False
    return True


CACHE = _cache_works()
