import os

import numpy as np
import pytest

import fastgru
from fastgru import backends


def _backends_under_test():
    """FASTGRU_BACKEND pins one backend (e.g. to run the suite on one); else all here."""
    pinned = os.environ.get("FASTGRU_BACKEND", "auto")
    return [pinned] if pinned in backends.NAMES else fastgru.available_backends()


BACKENDS = _backends_under_test()
DTYPES = [np.float64, np.float32]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test on one backend (in the test's thread; the choice ends with the test)."""
    with fastgru.backend(request.param):
        yield request.param


@pytest.fixture(params=DTYPES, ids=["f64", "f32"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng(request):
    import zlib
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def reference():
    """Compute with the NumPy reference inside a with-block."""

    return lambda: fastgru.backend("numpy")
