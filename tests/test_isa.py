"""The Cython backend's instruction-set variants (fastgru_ext/_product.h): each one this
machine runs meets the contract, FASTGRU_ISA caps the choice, and a variant the machine
cannot run is refused."""
import numpy as np
import pytest

from fastgru import backends
from fastgru.backends.contract import Layer

from helpers import assert_close, random_problem, run_script

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels

_gru = pytest.importorskip("fastgru_ext._gru", reason="the Cython extension is not built")
cython = backends.load("cython")
reference = backends.load("numpy")

RUNS_HERE = _gru.isa_runs_here()
LEVELS = cython.ISA_LEVELS


@pytest.fixture
def use_isa():
    """Switch the product kernels for one test, restoring the previous set afterwards."""
    before = cython.isa()
    try:
        yield _gru.use_isa
    finally:
        _gru.use_isa(before)


def forward(p):
    x, w_hh = p["x"], p["w_hh"]
    (T, B, _), H, dt = x.shape, w_hh.shape[1], x.dtype
    out, h_n = np.empty((T, B, H), dt), np.empty((B, H), dt)
    backend = cython if p.get("cython", True) else reference
    lengths = np.full(B, T, np.int64)
    backend.forward(Layer(x, p["w_ih"], w_hh, p["b_ih"], p["b_hh"], lengths, False, True),
                    p["h0"], out, h_n)
    return out


def test_choose_isa_takes_the_best_at_or_below_the_cap():
    everything = ["baseline", "avx2", "avx512"]
    assert cython.choose_isa("", everything) == "avx512"
    assert cython.choose_isa("avx2", everything) == "avx2"
    assert cython.choose_isa(" Baseline ", everything) == "baseline"
    assert cython.choose_isa("", ["baseline"]) == "baseline"


def test_choose_isa_warns_when_the_cap_is_beyond_the_machine():
    with pytest.warns(RuntimeWarning, match=r"FASTGRU_ISA=avx512 .* uses 'avx2'"):
        assert cython.choose_isa("avx512", ["baseline", "avx2"]) == "avx2"


def test_choose_isa_rejects_an_unknown_name():
    with pytest.raises(ValueError, match=r"FASTGRU_ISA must be one of baseline, avx2, avx512.*'sse9'"):
        cython.choose_isa("sse9", RUNS_HERE)


def test_every_compiled_variant_is_known_and_baseline_always_runs():
    assert set(_gru.isa_compiled()) <= set(LEVELS)
    assert "baseline" in RUNS_HERE and set(RUNS_HERE) <= set(_gru.isa_compiled())


@pytest.mark.parametrize("isa", LEVELS)
def test_a_variant_this_machine_cannot_run_is_refused(isa, use_isa):
    if isa in RUNS_HERE:
        pytest.skip(f"this machine runs {isa}")
    before = cython.isa()
    with pytest.raises(ValueError, match=f"cannot run the '{isa}' product kernels"):
        use_isa(isa)
    assert cython.isa() == before


@pytest.mark.parametrize("isa", RUNS_HERE)
@pytest.mark.parametrize("shape", [(3, 1, 5, 40), (4, 2, 7, 33), (3, 7, 300, 20), (2, 9, 3, 130)])
def test_each_variant_matches_the_reference(isa, shape, dtype, rng, use_isa):
    # B of 1, 2 and >= 3 take the kernels' different tile shapes; I = 300 crosses K_BLOCK
    p = random_problem(rng, *shape, dtype)
    p["h0"] = np.zeros_like(p["h0"]) if shape[1] == 2 else p["h0"]
    want = forward(dict(p, cython=False))
    use_isa(isa)
    assert cython.isa() == isa
    assert_close(forward(p), want, dtype, f"forward out ({isa})")


def test_fused_variants_agree_bitwise_and_differ_from_unfused(rng, use_isa):
    """The variants really run: the fused ones give the same bits as each other, and
    bits other than multiply-then-add (one rounding less per term)."""
    p = random_problem(rng, 4, 5, 200, 48, np.float32)
    outs = {}
    for isa in RUNS_HERE:
        use_isa(isa)
        outs[isa] = (_gru.isa_fused(), forward(p))
    fused = [out for is_fused, out in outs.values() if is_fused]
    unfused = [out for is_fused, out in outs.values() if not is_fused]
    for out in fused[1:]:
        np.testing.assert_array_equal(out, fused[0])
    for out in unfused[1:]:
        np.testing.assert_array_equal(out, unfused[0])
    if not (fused and unfused):
        pytest.skip(f"only {'fused' if fused else 'unfused'} variants run here")
    assert not np.array_equal(fused[0], unfused[0])


SHOW_ISA = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from fastgru.backends import cython_backend
print(json.dumps(dict(cython_backend.isa_info(), warnings=[str(w.message) for w in caught])))
"""


@pytest.mark.parametrize("cap", LEVELS)
def test_fastgru_isa_caps_the_choice_at_import(cap, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGRU_ISA", cap)
    info = run_script(SHOW_ISA, tmp_path)
    expected = [name for name in LEVELS[:LEVELS.index(cap) + 1] if name in RUNS_HERE][-1]
    assert info["in_use"] == expected and info["cap"] == cap
    assert any("lacks" in w for w in info["warnings"]) == (expected != cap)


def test_without_a_cap_the_best_variant_is_chosen(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTGRU_ISA", raising=False)
    info = run_script(SHOW_ISA, tmp_path)
    assert info["in_use"] == RUNS_HERE[-1] and not info["warnings"]


PRODUCT_PROGRAM = r"""
#include <stdio.h>
#include "_product.h"
int main(void)
{
    float a[3 * 40], w[40 * 16], c[3 * 16];
    int i, n = 0;
    for (i = 0; i < 3 * 40; i++) a[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
    for (i = 0; i < 40 * 16; i++) w[i] = (float)((i * 5) % 13) / 13.0f - 0.5f;
    for (i = 0; i < FG_N_ISA; i++) n += fg_isa_compiled(i);
    tile_f32(3, 1, a, 0, 40, 1, w, 0, 16, 40 * 16, c, 0, 16, 40, 0);
    printf("%d %d", n, fg_isa());
    for (i = 0; i < 3 * 16; i++) printf(" %.9g", c[i]);
    printf("\n");
    return 0;
}
"""


@pytest.mark.parametrize("generic", [False, True], ids=["x86-variants", "generic"])
def test_product_header_compiles_cleanly(generic, tmp_path):
    """_product.h builds with warnings as errors, with its x86-64 variants and without them
    (the generic code alone, as on arm64: FG_NO_X86_VARIANTS), and computes a product."""
    import os
    import platform
    import shutil
    import subprocess

    import fastgru_ext
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    if not generic and platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the x86-64 variants are built on x86-64 only")
    (tmp_path / "p.c").write_text(PRODUCT_PROGRAM)
    flags = ["-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
    flags += ["-DFG_NO_X86_VARIANTS"] if generic else []
    subprocess.run([cc, *flags, "-I", os.path.dirname(fastgru_ext.__file__), "p.c", "-o", "p",
                    "-lm"], cwd=tmp_path, check=True, capture_output=True, text=True)
    out = subprocess.run([str(tmp_path / "p")], check=True, capture_output=True,
                         text=True).stdout.split()
    assert int(out[0]) == (1 if generic else 3) and int(out[1]) == 0   # baseline until chosen
    i = np.arange(3 * 40)
    a = (((i * 7) % 11) / np.float32(11) - np.float32(0.5)).astype(np.float32).reshape(3, 40)
    j = np.arange(40 * 16)
    w = (((j * 5) % 13) / np.float32(13) - np.float32(0.5)).astype(np.float32).reshape(40, 16)
    got = np.array(out[2:], np.float32).reshape(3, 16)
    np.testing.assert_allclose(got, a.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)


def test_this_process_honours_fastgru_isa():
    """In CI's forced run (FASTGRU_ISA=baseline), the suite really ran on the capped kernels."""
    import os
    import warnings
    cap = os.environ.get("FASTGRU_ISA", "")
    if not cap:
        pytest.skip("FASTGRU_ISA is not set")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cython.isa() == cython.choose_isa(cap, RUNS_HERE)
