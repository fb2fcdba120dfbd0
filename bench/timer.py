"""Timing for the report runner and the scaling script (pytest-benchmark times the suite).

A sample is one round of ``number`` back-to-back calls, ``number`` chosen so that a round
lasts at least ``min_round_s`` (timer resolution and call overhead stay negligible). The
figure reported is the median over rounds of the time per call.
"""
import dataclasses
import gc
import statistics
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long to time one thing."""
    min_round_s: float = 0.02   # a round lasts at least this long
    min_rounds: int = 7
    max_rounds: int = 50
    target_s: float = 1.0       # stop after this much time once min_rounds are done


QUICK = Budget(min_round_s=0.002, min_rounds=2, max_rounds=3, target_s=0.02)
FULL = Budget()


@dataclasses.dataclass(frozen=True)
class Timing:
    median_s: float
    min_s: float
    iqr_s: float       # interquartile range of the per-call times: the noise
    rounds: int
    number: int        # calls per round


def measure(fn, budget=FULL):
    """Time ``fn()`` (already warmed up) within ``budget``; per-call seconds."""
    number = 1
    while True:     # calibrate: grow number until one round lasts min_round_s
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= budget.min_round_s or number >= 1 << 20:
            break
        number *= max(2, min(10, int(budget.min_round_s / max(elapsed, 1e-9) * 1.2)))
    samples = [elapsed / number]
    gc_was = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(samples) < budget.max_rounds:
            if len(samples) >= budget.min_rounds and time.perf_counter() - start >= budget.target_s:
                break
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was:
            gc.enable()
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Timing(statistics.median(samples), min(samples), q[2] - q[0], len(samples), number)


def gemm_rate(dtype="float32", n=2048, budget=FULL):
    """FLOP/s of an n x n x n matrix product through NumPy's BLAS at the current thread limit."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    np.matmul(a, b, out=c)
    t = measure(lambda: np.matmul(a, b, out=c), dataclasses.replace(budget, min_round_s=0.0))
    return 2.0 * n ** 3 / t.median_s
