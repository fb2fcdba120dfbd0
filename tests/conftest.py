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
    """Run the test on one backend, restoring the previous choice afterwards."""
    before = fastgru.get_backend()
    fastgru.set_backend(request.param)
    try:
        yield request.param
    finally:
        fastgru.set_backend(before)


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
    import contextlib

    @contextlib.contextmanager
    def use():
        before = fastgru.get_backend()
        fastgru.set_backend("numpy")
        try:
            yield
        finally:
            fastgru.set_backend(before)
    return use
