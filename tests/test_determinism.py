"""Bitwise reproducibility: the same call twice, 1 vs 2 threads, and 8 Python threads at once."""
import threading

import numpy as np
import pytest

import fastgru
from helpers import random_problem, upstream


def forward_backward(p, reset):
    T, B, _ = p["x"].shape
    H = p["w_hh"].shape[1]
    out, h_n, cache = fastgru.gru_forward(reset=reset, need_cache=True, **p)
    d_out, d_h_n = upstream(np.random.default_rng(1), T, B, H, p["x"].dtype)
    return (out, h_n) + fastgru.gru_backward(d_out, d_h_n, cache)


@pytest.mark.parametrize("reset", ["after", "before"])
def test_repeated_calls_bitwise_equal(backend, dtype, rng, reset):
    p = random_problem(rng, 9, 13, 5, 7, dtype, lengths=True)
    first = forward_backward(p, reset)
    for _ in range(2):
        for a, b in zip(forward_backward(p, reset), first):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("reset", ["after", "before"])
def test_scratch_reused_across_shapes_and_released(backend, dtype, rng, reset):
    """The compiled backends keep scratch arrays between calls: a smaller call, a
    larger one and a call after release_workspace() must each match a first call."""
    from fastgru.backends._blas import release_workspace
    small, large = (random_problem(rng, *shape, dtype, lengths=True)
                    for shape in [(4, 3, 2, 5), (9, 13, 5, 7)])
    want = [forward_backward(p, reset) for p in (large, small)]
    for p, w in [(small, want[1]), (large, want[0]), (small, want[1])]:
        for a, b in zip(forward_backward(p, reset), w):
            np.testing.assert_array_equal(a, b)
    release_workspace()
    for a, b in zip(forward_backward(large, reset), want[0]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("shape", [(8, 37, 6, 9), (3, 40, 2, 256)], ids=["small", "big-H"])
def test_one_vs_two_numba_threads_bitwise_equal(dtype, rng, reset, shape):
    numba = pytest.importorskip("numba")
    if "numba" not in fastgru.available_backends():
        pytest.skip("numba backend not available")
    before_backend, before_threads = fastgru.get_backend(), numba.get_num_threads()
    p = random_problem(rng, *shape, dtype, lengths=True)
    try:
        fastgru.set_backend("numba")
        results = []
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n)
            results.append(forward_backward(p, reset))
    finally:
        numba.set_num_threads(before_threads)
        fastgru.set_backend(before_backend)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_eight_python_threads_match_serial(backend, rng):
    gru = fastgru.GRU(4, 16, num_layers=2, bidirectional=True, seed=0)
    xs = [rng.standard_normal((20, 5, 4)).astype(np.float32) for _ in range(8)]
    serial = [gru(x) for x in xs]
    results = [None] * 8
    errors = []
    barrier = threading.Barrier(8)

    def work(i):
        try:
            barrier.wait()
            for _ in range(3):
                results[i] = gru(xs[i])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a thread hung"
    for (out, h_n), (want_out, want_h_n) in zip(results, serial):
        np.testing.assert_array_equal(out, want_out)
        np.testing.assert_array_equal(h_n, want_h_n)


@pytest.mark.parametrize("reset", ["after", "before"])
def test_one_vs_two_blas_threads_bitwise_equal(backend, rng, reset):
    """Big enough that BLAS would split its products differently with 2 threads."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    p = random_problem(rng, 30, 40, 33, 24, np.float32, lengths=True)
    results = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
            results.append(forward_backward(p, reset))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_cell_step_independent_of_blas_threads(backend, rng):
    """GRUCell's products are big enough here for BLAS to use threads if allowed:
    the step must give the same bits with BLAS at 1 and at 2 threads. (Not asked of
    the NumPy reference: it multiplies with NumPy's BLAS as the process set it.)"""
    from threadpoolctl import threadpool_limits
    if backend == "numpy":
        pytest.skip("the NumPy reference uses BLAS as configured")
    cell = fastgru.GRUCell(484, 64, seed=1)
    x = rng.standard_normal((33, 484)).astype(np.float32)
    h = rng.standard_normal((33, 64)).astype(np.float32)
    with threadpool_limits(1):
        one = cell(x, h)
    with threadpool_limits(2):
        two = cell(x, h)
    np.testing.assert_array_equal(one, two)


def test_an_ignored_blas_limit_is_reported(tmp_path):
    """Where BLAS ignores the one-thread limit from a worker thread (OpenBLAS 0.3.30+
    after the main thread set a count), fastgru says so once, instead of silently
    giving main-thread-dependent bits; where the limit holds, it says nothing."""
    import subprocess
    import sys
    code = """if True:
        import threading, warnings, numpy as np, fastgru
        from threadpoolctl import ThreadpoolController
        from fastgru.backends import _blas
        x = np.zeros((3, 2, 4), np.float32)
        gru = fastgru.GRU(4, 8)
        gru(x)                       # the main thread sets (and restores) BLAS's count
        libs = _blas._blas_libraries()
        if all(lib.get_num_threads() == 1 for lib in libs):
            print("single-threaded BLAS: nothing to check"); raise SystemExit
        def probe():
            for lib in libs:
                lib.set_num_threads(1)
            ignored.append(any(lib.get_num_threads() != 1 for lib in libs))
            for lib in libs:
                lib.set_num_threads(2)
        def work():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                gru(x)
                gru(x)
            got.extend(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning))
        ignored, got = [], []
        for fn in (probe, work):
            t = threading.Thread(target=fn); t.start(); t.join()
        print("ignored" if ignored[0] else "honoured", len(got), got[:1])
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    if out.startswith("ignored"):
        assert " 1 " in out and "OPENBLAS_NUM_THREADS=1" in out, out
    elif out.startswith("honoured"):
        assert " 0 " in out, out
    else:
        assert "nothing to check" in out, out
