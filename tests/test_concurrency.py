"""Calls from several Python threads at once (DESIGN.md, "A good guest").

Calls on different layers run concurrently (no process-wide lock), and every result is
bitwise the serial one. Training one layer from two threads either works or says so at once
with a RuntimeError; it never hands one thread the other's gradients.
(Eight threads of inference on one shared layer: test_determinism.py.)
"""
import threading
import time

import numpy as np
import pytest

import fastgru


def compiled_only(backend):
    if backend == "numpy":
        pytest.skip("the compiled backends' property")
    return backend


def start_all(targets, timeout=120):
    """Run the callables in threads, each on the caller's backend (a thread's backend is
    its own); return the exceptions they raised, fail if one hangs."""
    errors = []
    name = fastgru.get_backend()

    def wrap(fn):
        def run():
            try:
                with fastgru.backend(name):
                    fn()
            except BaseException as exc:  # pragma: no cover - reported by the caller
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a thread hung (> {timeout} s)"
    return errors


def test_calls_on_different_layers_overlap(backend, rng):
    """Thread A runs one long forward (>= ~0.5 s); thread B, started once A's call has begun,
    runs a small layer's forward over and over. B must finish calls while A's is still
    running (a process-wide lock would make B wait for A), and every result must be the
    serial one, bit for bit."""
    compiled_only(backend)
    long_gru = fastgru.GRU(32, 256, seed=0)
    short_gru = fastgru.GRU(8, 32, seed=1)
    x_short = rng.standard_normal((5, 2, 8)).astype(np.float32)
    long_gru(x_short[:, :, :1].repeat(32, axis=2))      # compile / warm both
    want_short = short_gru(x_short)

    # size A's call: at least ~0.5 s serially on this machine
    T, x_long = 1000, None
    for _ in range(4):
        x_long = rng.standard_normal((T, 4, 32)).astype(np.float32)
        t0 = time.perf_counter()
        want_long = long_gru(x_long)
        took = time.perf_counter() - t0
        if took >= 0.5 or T >= 200_000:
            break
        T = min(200_000, int(T * min(20.0, 0.6 / max(took, 1e-3))) + 1)
    assert took >= 0.25, f"could not size the long call (T={T}: {took:.3f} s)"

    begun, a_done = threading.Event(), threading.Event()
    stamps, b_calls, got = {}, [], {}

    def run_a():
        try:
            stamps["a_start"] = time.perf_counter()
            begun.set()                             # just before A calls
            got["long"] = long_gru(x_long)
            stamps["a_end"] = time.perf_counter()
        finally:
            a_done.set()

    def run_b():
        assert begun.wait(60), "A never started"
        while not a_done.is_set() and len(b_calls) < 100_000:
            t0 = time.perf_counter()
            out = short_gru(x_short)
            b_calls.append((t0, time.perf_counter(), out))

    errors = start_all([run_a, run_b])
    assert not errors, errors
    # a B call that began well inside A's call (not in the instant before A took any lock)
    # and ended before A's call returned
    a_start, a_end = stamps["a_start"], stamps["a_end"]
    margin = min(0.05, took / 5)
    inside = [(s, e) for s, e, _ in b_calls if s >= a_start + margin and e < a_end]
    assert inside, (
        f"no call on the small layer ran during the long call ({a_end - a_start:.3f} s): "
        f"{len(b_calls)} calls, first began {b_calls[0][0] - a_start:+.3f} s and ended "
        f"{b_calls[0][1] - a_start:+.3f} s after A began" if b_calls else "B made no call")
    for a, b in zip(got["long"], want_long):
        np.testing.assert_array_equal(a, b)
    for _, _, out in b_calls:
        for a, b in zip(out, want_short):
            np.testing.assert_array_equal(a, b)


def test_concurrent_calls_with_different_thread_counts(backend, rng):
    """Two threads, each inside its own fastgru.threads(n) (1, 2 or 3), run pooled calls on
    one layer at the same time: every result is the serial one."""
    compiled_only(backend)
    gru = fastgru.GRU(16, 512, seed=0)
    xs = [rng.standard_normal((4, 24, 16)).astype(np.float32) for _ in range(3)]
    want = [gru(x) for x in xs]
    barrier = threading.Barrier(3, timeout=60)
    mismatches = []

    def work(n):
        def run():
            with fastgru.threads(n):
                barrier.wait()
                for k in range(6):
                    i = (n + k) % 3
                    for a, b in zip(gru(xs[i]), want[i]):
                        if not np.array_equal(a, b):
                            mismatches.append((n, i))
        return run

    errors = start_all([work(1), work(2), work(3)])
    assert not errors, errors
    assert not mismatches, f"(threads, input) with other bits than serial: {mismatches}"


def test_one_layer_trained_from_two_threads(backend, rng):
    """Two threads each run forward(train=True) then backward() on one shared layer, 200
    times, each with its own input. Accepted: the right dx for that thread's input, or a
    RuntimeError raised at once. Failed: another thread's dx, a wrong one, any other error."""
    gru = fastgru.GRU(8, 32, seed=0)
    xs = [rng.standard_normal((6, 3, 8)).astype(np.float32) for _ in range(2)]
    ds = [rng.standard_normal((6, 3, 32)).astype(np.float32) for _ in range(2)]
    want = []
    for x, d in zip(xs, ds):
        out, _ = gru.forward(x, train=True)
        dx, _ = gru.backward(d)
        want.append((out, dx))
    assert not np.array_equal(want[0][1], want[1][1])

    barrier = threading.Barrier(2, timeout=60)
    ok, refused, wrong, other = [0, 0], [0, 0], [], []

    def work(i):
        def run():
            barrier.wait()
            for it in range(200):
                try:
                    out, _ = gru.forward(xs[i], train=True)
                except RuntimeError:
                    refused[i] += 1
                    continue
                except Exception as exc:
                    other.append(f"thread {i}, forward {it}: {exc!r}")
                    return
                if not np.array_equal(out, want[i][0]):
                    wrong.append(f"thread {i}, forward {it}: out is not the serial out")
                try:
                    dx, _ = gru.backward(ds[i])
                except RuntimeError:
                    refused[i] += 1
                    continue
                except Exception as exc:
                    other.append(f"thread {i}, backward {it}: {exc!r}")
                    return
                if np.array_equal(dx, want[i][1]):
                    ok[i] += 1
                elif np.array_equal(dx, want[1 - i][1]):
                    wrong.append(f"thread {i}, backward {it}: got the other thread's dx")
                else:
                    wrong.append(f"thread {i}, backward {it}: dx is neither thread's")
        return run

    errors = start_all([work(0), work(1)])
    assert not errors, errors
    assert not other, f"{len(other)} errors other than RuntimeError, first: {other[:3]}"
    assert not wrong, f"{len(wrong)} wrong results, first: {wrong[:3]}"
    assert sum(ok) >= 1, f"no forward+backward succeeded (refused {refused})"
