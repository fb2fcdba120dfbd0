"""Bitwise reproducibility: the same call twice; 1, 2 and 3 threads (fastgru's own thread
count, 3 in a fresh process); a sequence alone or inside a batch; 8 Python threads at once."""
import json
import threading
import zlib

import numpy as np
import pytest

import fastgru

from helpers import GRAD_NAMES, random_problem, run_script, upstream

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels

RESULT_NAMES = ("out", "h_n") + GRAD_NAMES


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


def compiled_only(backend):
    if backend == "numpy":
        pytest.skip("the NumPy reference follows NumPy's BLAS and has no threads of fastgru's")
    return backend


# Shapes where the split of the work really changes with the thread count: a wide layer at a
# small batch (split over hidden units), a wide one at a large batch (hidden units and batch
# rows), and a tall input projection / weight gradient (T * B = 4096 rows).
THREAD_SHAPES = {"H768-B4": (3, 4, 16, 768), "H512-B64": (2, 64, 16, 512),
                 "tall-T64-B64": (64, 64, 32, 64)}
THREAD_CASES = [f"{shape}-{reset}-{dtype}" for shape in THREAD_SHAPES
                for reset in ("after", "before") for dtype in ("float32", "float64")]


def thread_case(name):
    """(problem, reset, d_out, d_h_n) of a case, the same bits in every process."""
    shape, reset, dtype = name.rsplit("-", 2)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    T, B, I, H = THREAD_SHAPES[shape]
    p = random_problem(rng, T, B, I, H, np.dtype(dtype), lengths=True)
    d_out, d_h_n = upstream(rng, T, B, H, np.dtype(dtype))
    return p, reset, d_out, d_h_n


def case_results(p, reset, d_out, d_h_n):
    out, h_n, cache = fastgru.gru_forward(reset=reset, need_cache=True, **p)
    return (out, h_n) + tuple(fastgru.gru_backward(d_out, d_h_n, cache))


THREE_THREADS_SCRIPT = """
import fastgru
fastgru.set_num_threads(3)            # the first thing: before any computation
import json, sys
import numpy as np
backend, folder = sys.argv[1], sys.argv[2]
fastgru.set_backend(backend)
with open(folder + "/cases.json") as f:
    names = json.load(f)
for name in names:
    p = dict(np.load(f"{folder}/{name}-in.npz"))
    reset, d_out, d_h_n = str(p.pop("reset")), p.pop("d_out"), p.pop("d_h_n")
    out, h_n, cache = fastgru.gru_forward(reset=reset, need_cache=True, **p)
    results = (out, h_n) + tuple(fastgru.gru_backward(d_out, d_h_n, cache))
    np.savez(f"{folder}/{name}-out.npz", *results)
print(json.dumps({"threads": fastgru.get_num_threads(), "cases": len(names)}))
"""

_three_thread_runs = {}


def three_thread_results(backend, name, tmp_path_factory):
    """The case's results computed by a fresh process set to 3 threads before anything else
    (one process per backend computes every case, once per session)."""
    if backend not in _three_thread_runs:
        folder = tmp_path_factory.mktemp(f"three-threads-{backend}")
        for case in THREAD_CASES:
            p, reset, d_out, d_h_n = thread_case(case)
            np.savez(folder / f"{case}-in.npz", reset=np.array(reset), d_out=d_out,
                     d_h_n=d_h_n, **p)
        with open(folder / "cases.json", "w") as f:
            json.dump(THREAD_CASES, f)
        try:
            report = run_script(THREE_THREADS_SCRIPT, folder, args=(backend, str(folder)))
            assert report == {"threads": 3, "cases": len(THREAD_CASES)}, report
            _three_thread_runs[backend] = (True, folder)
        except (Exception, pytest.fail.Exception) as exc:
            _three_thread_runs[backend] = (False, str(exc))
    ok, value = _three_thread_runs[backend]
    if not ok:
        pytest.fail(f"[the 3-thread process for {backend}, run once]\n{value}", pytrace=False)
    with np.load(value / f"{name}-out.npz") as f:
        return [f[f"arr_{i}"] for i in range(len(RESULT_NAMES))]


@pytest.mark.parametrize("name", THREAD_CASES)
def test_one_two_three_threads_bitwise_equal(backend, name, tmp_path_factory):
    """Forward and every gradient are bitwise the same with 1 and 2 threads (this process,
    fastgru.threads(n)) and 3 threads (a fresh process set to 3 before anything else)."""
    compiled_only(backend)
    case = thread_case(name)
    with fastgru.threads(1):
        one = case_results(*case)
    with fastgru.threads(2):
        two = case_results(*case)
    three = three_thread_results(backend, name, tmp_path_factory)
    for what, a, b, c in zip(RESULT_NAMES, one, two, three):
        np.testing.assert_array_equal(b, a, err_msg=f"{what}: 2 threads vs 1")
        np.testing.assert_array_equal(c, a, err_msg=f"{what}: 3 threads vs 1")


@pytest.mark.parametrize("B, H", [(4, 768), (64, 512)])
def test_partition_splits_the_wide_steps(B, H):
    """fastgru.backends.partition(B, H) says how one step is split; at the shapes of the
    thread-count test above the step is really split, so that test compares splits."""
    with fastgru.threads(3):
        part = fastgru.backends.partition(B, H)
    assert isinstance(part, dict), part
    pieces = part["pieces"]
    assert type(pieces) is int and pieces >= 2, f"partition({B}, {H}) = {part}"
    with fastgru.threads(1):
        assert fastgru.backends.partition(1, 8)["pieces"] >= 1


@pytest.mark.parametrize("reset", ["after", "before"])
def test_batch_invariance(backend, dtype, rng, reset):
    """Batch invariance (adopted with fastgru's own product kernels): a sequence's out and
    h_n are bitwise the same computed alone (B=1), as row 2 of a batch of 4, and as row
    37 of a batch of 64 (OpenBLAS's bits for a row depended on the number of rows)."""
    compiled_only(backend)
    p = random_problem(rng, 4, 64, 32, 256, dtype)
    j = 37

    def rows(idx):
        q = dict(p, x=p["x"][:, idx], h0=p["h0"][idx])
        out, h_n, _ = fastgru.gru_forward(reset=reset, **q)
        return out, h_n

    out64, h64 = rows(np.arange(64))
    out4, h4 = rows(np.array([0, 1, j, 3]))
    out1, h1 = rows(np.array([j]))
    np.testing.assert_array_equal(out4[:, 2], out64[:, j], err_msg="out: batch of 4 vs 64")
    np.testing.assert_array_equal(h4[2], h64[j], err_msg="h_n: batch of 4 vs 64")
    np.testing.assert_array_equal(out1[:, 0], out64[:, j], err_msg="out: alone vs batch of 64")
    np.testing.assert_array_equal(h1[0], h64[j], err_msg="h_n: alone vs batch of 64")


@pytest.mark.parametrize("layer, shape", [
    (dict(input_size=4, hidden_size=16, num_layers=2, bidirectional=True), (20, 5, 4)),
    (dict(input_size=16, hidden_size=512), (3, 32, 16)),     # big enough for the thread pool
], ids=["small", "pooled"])
def test_eight_python_threads_match_serial(backend, rng, layer, shape):
    """Eight Python threads doing inference on one shared layer at once get the serial bits
    (on the pooled case, eight callers share fastgru's thread pool)."""
    if backend == "numpy" and layer["hidden_size"] > 16:
        pytest.skip("the pool is the compiled backends'; the NumPy reference is slow here")
    gru = fastgru.GRU(**layer, seed=0)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(8)]
    serial = [gru(x) for x in xs]
    results = [None] * 8
    errors = []
    barrier = threading.Barrier(8)

    def work(i):
        try:
            barrier.wait()
            with fastgru.backend(backend):   # a thread's backend is its own: name it
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
    threadpool_limits = pytest.importorskip("threadpoolctl").threadpool_limits
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

