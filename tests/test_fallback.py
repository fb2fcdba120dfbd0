"""Backend selection where Numba is missing: Cython is chosen, with one warning, and gives the same numbers.

Each test imports fastgru afresh with modules hidden (``sys.modules[name] = None`` makes
``import name`` fail); the original modules are put back afterwards.
"""
import importlib
import json
import os
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastgru

from helpers import GRAD_NAMES, assert_close, random_problem, upstream

pytest.importorskip("fastgru_ext._gru", reason="the Cython extension is not built")


def _fastgru_modules():
    return [name for name in sys.modules if name == "fastgru" or name.startswith("fastgru.")]


@pytest.fixture
def fresh_fastgru(monkeypatch):
    """fresh_fastgru(hide, backend): fastgru imported anew with ``hide`` unimportable."""
    def load(hide=("numba",), backend="auto"):
        for name in _fastgru_modules():
            monkeypatch.delitem(sys.modules, name)
        for name in hide:
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setenv("FASTGRU_BACKEND", backend)
        return importlib.import_module("fastgru")
    yield load
    # drop the fresh modules; monkeypatch then puts the original ones back
    for name in _fastgru_modules():
        del sys.modules[name]


def runtime_warnings(records):
    return [str(w.message) for w in records if issubclass(w.category, RuntimeWarning)]


def forward_backward(module, p, reset):
    out, h_n, cache = module.gru_forward(reset=reset, need_cache=True, **p)
    T, B, _ = p["x"].shape
    d_out, d_h_n = upstream(np.random.default_rng(5), T, B, p["w_hh"].shape[1], p["x"].dtype)
    return (out, h_n) + module.gru_backward(d_out, d_h_n, cache)


def test_auto_without_numba_chooses_cython_with_one_warning(fresh_fastgru):
    fg = fresh_fastgru()
    p = random_problem(np.random.default_rng(0), 4, 3, 2, 5, np.float32)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        assert fg.get_backend() == "cython"
        fg.gru_forward(**p)
        assert fg.get_backend() == "cython"
    messages = runtime_warnings(records)
    assert len(messages) == 1, messages
    assert "'cython'" in messages[0]
    assert "numba" in messages[0] and "pip install numba" in messages[0]  # what was missing, how to get it
    assert fg.available_backends() == ["cython", "numpy"]


@pytest.mark.parametrize("reset", ["after", "before"])
def test_fallback_gives_the_same_numbers(fresh_fastgru, dtype, reset):
    p = random_problem(np.random.default_rng(1), 6, 19, 3, 7, dtype, lengths=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fg = fresh_fastgru()
        got = forward_backward(fg, p, reset)
    assert fg.get_backend() == "cython"
    fg.set_backend("numpy")
    want = forward_backward(fg, p, reset)
    for name, a, b in zip(("out", "h_n") + GRAD_NAMES, got, want):
        assert_close(a, b, dtype, f"fallback {name}")
    # and exactly what the same extension gives in the process as it was (numba importable or not)
    before = fastgru.get_backend()
    fastgru.set_backend("cython")
    try:
        same = forward_backward(fastgru, p, reset)
    finally:
        fastgru.set_backend(before)
    for name, a, b in zip(("out", "h_n") + GRAD_NAMES, got, same):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_forced_cython_does_not_warn(fresh_fastgru):
    fg = fresh_fastgru(backend="cython")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        assert fg.get_backend() == "cython"
    assert runtime_warnings(records) == []


def test_forced_numba_without_numba_is_a_clear_error(fresh_fastgru):
    fg = fresh_fastgru(backend="numba")
    with pytest.raises(ImportError, match=r"'numba' is not available.*pip install numba"):
        fg.get_backend()
    fg.set_backend("cython")
    with pytest.raises(fg.backends.BackendUnavailable, match="numba"):
        fg.set_backend("numba")
    assert fg.get_backend() == "cython"


def test_without_numba_and_extension_falls_back_to_numpy(fresh_fastgru):
    fg = fresh_fastgru(hide=("numba", "fastgru_ext"))
    with pytest.warns(RuntimeWarning) as records:
        assert fg.get_backend() == "numpy"
    message = runtime_warnings(records)[0]
    assert "numba" in message and "cython" in message
    assert fg.available_backends() == ["numpy"]
    # fastgru is not on PyPI: the hint must work from a checkout
    with pytest.raises(ImportError,
                       match=r"'cython' is not available.*pip install -e \. in the fastgru checkout"):
        fg.set_backend("cython")


@pytest.mark.parametrize("name", ["numba", "cython"])
@pytest.mark.parametrize("user_value", [None, "7"])
def test_openmp_spin_setting_is_scoped_to_the_load(name, user_value, tmp_path):
    """Loading a compiled backend sets GOMP_SPINCOUNT=0 only while its OpenMP runtime
    loads: afterwards the environment is as it was, and a user's value is kept."""
    import os
    import subprocess
    if name not in fastgru.available_backends():
        pytest.skip(f"{name} backend not available")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if user_value is not None:
        env["GOMP_SPINCOUNT"] = user_value
    code = (f"import os, numpy as np, fastgru; fastgru.set_backend({name!r}); "
            "fastgru.GRU(2, 3)(np.zeros((2, 2, 2), np.float32)); "
            "print(os.environ.get('GOMP_SPINCOUNT'))")
    # run outside the checkout: the child must import the fastgru this test imported
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == str(user_value)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_fork_after_choosing_numba_before_using_it(tmp_path):
    """Choosing the backend must not start GNU OpenMP: a child forked before the
    first computation would be killed when it computes ("fork() called from a
    process already using GNU OpenMP")."""
    import subprocess
    if "numba" not in fastgru.available_backends():
        pytest.skip("numba backend not available")
    code = """if True:
        import os, numpy as np, fastgru
        fastgru.set_backend("numba")
        pid = os.fork()
        if pid == 0:
            out, _ = fastgru.GRU(4, 8)(np.ones((3, 40, 4), np.float32))
            os._exit(0 if out.shape == (3, 40, 8) else 3)
        print(os.waitpid(pid, 0)[1])
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "0", result.stdout + result.stderr


def test_numba_without_a_writable_cache_compiles_anyway(tmp_path):
    """A locked-down container: the package's own folder is read-only and so are
    NUMBA_CACHE_DIR and HOME. The default backend computes (one warning), with the same
    numbers. CI runs as root, which ignores permissions: every place Numba would write is
    put under a regular file instead."""
    pytest.importorskip("numba")
    import shutil
    import subprocess

    here = tmp_path / "site"
    shutil.copytree(os.path.dirname(fastgru.__file__), here / "fastgru",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder in (here / "fastgru", here / "fastgru" / "backends", here / "fastgru" / "nn"):
        (folder / "__pycache__").write_text("a file where Numba wants a folder")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where Numba wants a folder")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(blocker / "numba"), HOME=str(blocker / "home"),
               XDG_CACHE_HOME=str(blocker / "cache"), PYTHONDONTWRITEBYTECODE="1",
               FASTGRU_BACKEND="auto")
    code = textwrap.dedent("""
        import json, warnings
        import numpy as np
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            import fastgru
            gru = fastgru.GRU(3, 8, seed=0, dtype="float64")
            out, _ = gru(np.linspace(-1, 1, 60).reshape(5, 4, 3))
        print(json.dumps({"file": fastgru.__file__, "backend": fastgru.get_backend(),
                          "warnings": [str(w.message) for w in seen],
                          "out": out.ravel().tolist()}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=here, env=env, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(here)) and got["backend"] == "numba"
    assert len(got["warnings"]) == 1 and "no writable cache directory" in got["warnings"][0]
    with fastgru.backend("numba"):
        want, _ = fastgru.GRU(3, 8, seed=0, dtype="float64")(np.linspace(-1, 1, 60).reshape(5, 4, 3))
    np.testing.assert_array_equal(np.array(got["out"]), want.ravel())


def test_fallback_warning_points_at_the_users_line(fresh_fastgru):
    """The warning raised deep inside fastgru (a backend chosen on first use) names the
    line of the caller's code, not a fastgru file."""
    fg = fresh_fastgru()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fg.GRU(2, 3)(np.zeros((1, 1, 2), np.float32))   # this line
    fallback = [w for w in seen if "falling back" in str(w.message)]
    assert len(fallback) == 1
    assert fallback[0].filename == __file__, fallback[0].filename
