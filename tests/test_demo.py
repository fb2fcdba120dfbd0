"""``python -m fastgru demo``: the article's output lines, the plot, the closing JSON line."""
import io
import json
import os
import subprocess
import sys

import pytest

import fastgru
from fastgru import demo
from fastgru.__main__ import main

KEYS = {"train_mse", "test_mse", "epochs", "seconds", "backend"}


def _summary(stdout):
    last = stdout.strip().splitlines()[-1]
    summary = json.loads(last)
    assert set(summary) == KEYS
    return summary


def test_demo_main_few_epochs(capsys, backend, tmp_path):
    assert main(["demo", "--epochs", "10", "--no-plot", "--backend", backend,
                 "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch [10/10], Loss: ")
    float(lines[0].rsplit(" ", 1)[1])
    summary = _summary(out)
    assert summary["epochs"] == 10 and summary["backend"] == backend
    assert summary["seconds"] > 0 and 0 < summary["test_mse"] < 1
    assert "692 training and 297 test windows" in err
    assert not (tmp_path / "out").exists()     # --no-plot writes nothing


def test_demo_cli_full_run_lands_in_torch_range(tmp_path):
    """The README's command: 50 epochs, the article's lines, the plot, torch's test MSE range."""
    pytest.importorskip("matplotlib")
    env = dict(os.environ, MPLBACKEND="Agg")
    # cwd outside the checkout: `python -m` puts the cwd first on sys.path, and a fresh
    # checkout's fastgru_ext has no compiled extension (the installed package has)
    proc = subprocess.run([sys.executable, "-m", "fastgru", "demo", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(",")[0] for line in lines[:5]] == [
        f"Epoch [{e}/50]" for e in (10, 20, 30, 40, 50)]
    summary = _summary(proc.stdout)
    assert summary["epochs"] == 50
    assert 0.0003 <= summary["test_mse"] <= 0.003, summary
    assert summary["train_mse"] < summary["test_mse"] * 2
    png = tmp_path / "sine.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in proc.stderr


def test_demo_without_matplotlib_says_so_and_skips_the_plot(capsys, monkeypatch, tmp_path):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib fails
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "matplotlib is not installed" in err and "pip install matplotlib" in err
    assert not (tmp_path / "out" / "sine.png").exists()
    assert _summary(out)["epochs"] == 1


def test_demo_seed_changes_the_run_and_is_reproducible(capsys):
    runs = []
    for seed in (1, 1, 2):
        assert main(["demo", "--epochs", "2", "--no-plot", "--seed", str(seed)]) == 0
        runs.append(_summary(capsys.readouterr().out)["test_mse"])
    assert runs[0] == runs[1] != runs[2]


def test_demo_usage_errors(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err
    for argv in (["demo", "--epochs", "-1"], ["demo", "--backend", "torch"], ["nope"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    capsys.readouterr()


def test_demo_unavailable_backend_is_a_clear_error(capsys, monkeypatch):
    from fastgru import backends

    def unavailable(name):
        raise backends.BackendUnavailable(f"fastgru backend {name!r} is not available: test")

    monkeypatch.setattr(backends, "load", unavailable)
    try:
        assert main(["demo", "--epochs", "1", "--no-plot", "--backend", "cython"]) == 2
    finally:
        monkeypatch.undo()
    assert "'cython' is not available" in capsys.readouterr().err


def test_demo_leaves_the_callers_backend_and_plotting_alone(tmp_path):
    """run(backend=...) is for that call; the plot is drawn on a Figure of its own, so a
    notebook's matplotlib backend stays as it was."""
    matplotlib = pytest.importorskip("matplotlib")
    before_backend = fastgru.get_backend()
    before_mpl = matplotlib.rcParams._get_backend_or_none()
    other = "numpy" if before_backend != "numpy" else fastgru.available_backends()[0]
    summary = demo.run(out=str(tmp_path), epochs=1, backend=other, stdout=io.StringIO(),
                       stderr=io.StringIO())
    assert summary["backend"] == other
    assert fastgru.get_backend() == before_backend
    assert matplotlib.rcParams._get_backend_or_none() == before_mpl
    assert (tmp_path / "sine.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
