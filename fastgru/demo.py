"""The seed article's sine-wave example, without PyTorch: ``python -m fastgru demo``.

A GRU(1, 50) + Linear(50, 1) on the last step learns to predict the next value of
sin(2 pi i / 1000) from the 10 before it; full batch, MSE, Adam lr=0.01, 50 epochs.
"""
import json
import os
import sys
import time

import numpy as np

from . import backends
from .nn import GRUModel


def sine_windows(timesteps=1000, time_step=10, train_fraction=0.7):
    """The article's data, float64.

    Returns series (timesteps,), x_train (N, time_step), y_train (N,), x_test, y_test: the
    windows ``series[i:i + time_step]`` with target ``series[i + time_step]`` for
    i < timesteps - time_step - 1 (as the article's ``create_dataset``), the first
    int(0.7 * count) for training.
    """
    series = np.sin(2 * np.pi * np.arange(timesteps) / timesteps)
    count = timesteps - time_step - 1
    idx = np.arange(count)[:, None] + np.arange(time_step)
    x, y = series[idx], series[time_step:time_step + count]
    n_train = int(count * train_fraction)
    return series, x[:n_train], y[:n_train], x[n_train:], y[n_train:]


class _Progress:
    """One self-rewriting line on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total, stream):
        self.total, self.stream = total, stream
        self.live = hasattr(stream, "isatty") and stream.isatty()

    def update(self, epoch, loss):
        if self.live:
            width = 30
            done = width * epoch // self.total
            self.stream.write(f"\r[{'#' * done}{'.' * (width - done)}] epoch {epoch}/{self.total} "
                              f"loss {loss:.4f}")
            self.stream.flush()

    def clear(self):
        if self.live:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


def _plot(path, series, time_step, train_pred, test_pred):
    """The article's figure; returns False (and says why) without matplotlib."""
    try:   # a Figure of its own, not pyplot: the caller's plotting backend stays as it was
        from matplotlib.figure import Figure
    except ImportError:
        print("fastgru demo: matplotlib is not installed, so no plot "
              "(pip install matplotlib to get it)", file=sys.stderr)
        return False
    n_train, n_test = len(train_pred), len(test_pred)
    fig = Figure(figsize=(10, 6))
    ax = fig.subplots()
    ax.plot(series, label="Original Data")
    ax.plot(np.arange(time_step, time_step + n_train), train_pred, label="Training Predict")
    ax.plot(np.arange(time_step + n_train, time_step + n_train + n_test), test_pred,
            label="Test Predict")
    ax.legend()
    ax.set_title("fastgru: GRU(1, 50) + Linear(50, 1) on a sine wave")
    fig.savefig(path, dpi=100)
    return True


def run(out="fastgru-demo", epochs=50, backend=None, seed=0, plot=True, dtype="float32",
        stdout=None, stderr=None):
    """Train and evaluate the article's model; print as the article does; return the summary.

    The summary (also printed last, as one JSON line) has train_mse, test_mse, epochs,
    seconds (training and prediction, after a warm-up that loads or compiles the kernels)
    and backend. ``backend`` applies to this call only: the caller's choice stays.
    """
    with backends.backend(backends.get_backend() if backend is None else backend):
        return _run(out, epochs, seed, plot, dtype,
                    sys.stdout if stdout is None else stdout,
                    sys.stderr if stderr is None else stderr)


def _run(out, epochs, seed, plot, dtype, stdout, stderr):
    backend = backends.get_backend()
    series, x_train, y_train, x_test, y_test = sine_windows()
    x_train, x_test = x_train[:, :, None], x_test[:, :, None]
    model = GRUModel(1, 50, 1, dtype=dtype, seed=seed)
    print(f"fastgru demo: {len(x_train)} training and {len(x_test)} test windows of 10 steps; "
          f"GRU(1, 50) + Linear(50, 1), Adam lr=0.01, {epochs} epochs, backend {backend}",
          file=stderr)

    # load (or, on the first run, compile) the kernels outside the timing
    t0 = time.perf_counter()
    warm = GRUModel(1, 2, 1, dtype=dtype, seed=0)
    warm.backward(warm.forward(x_train[:2]))
    warm_s = time.perf_counter() - t0
    if warm_s > 1.0:
        print(f"fastgru demo: kernels compiled in {warm_s:.1f} s (cached for later runs)",
              file=stderr)

    progress = _Progress(epochs, stderr)

    def report(epoch, loss):
        progress.update(epoch, loss)
        if epoch % 10 == 0:
            progress.clear()
            print(f"Epoch [{epoch}/{epochs}], Loss: {loss:.4f}", file=stdout, flush=True)

    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, lr=0.01, callback=report)
    train_pred = model.predict(x_train)[:, 0]
    test_pred = model.predict(x_test)[:, 0]
    seconds = time.perf_counter() - t0
    progress.clear()

    if plot:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "sine.png")
        if _plot(path, series, x_train.shape[1], train_pred, test_pred):
            print(f"fastgru demo: wrote {path}", file=stderr)
    summary = {
        "train_mse": float(np.mean((train_pred.astype(np.float64) - y_train) ** 2)),
        "test_mse": float(np.mean((test_pred.astype(np.float64) - y_test) ** 2)),
        "epochs": epochs,
        "seconds": round(seconds, 4),
        "backend": backend,
    }
    print(json.dumps(summary), file=stdout, flush=True)
    return summary
