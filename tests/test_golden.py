"""fastgru.GRU against torch.nn.GRU golden vectors (tests/data, made by make_golden.py)."""
import json
import pathlib

import numpy as np
import pytest

import fastgru

from helpers import GOLDEN_TOL, assert_close

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels

FILES = sorted((pathlib.Path(__file__).parent / "data").glob("golden_*.npz"))


def test_golden_files_present():
    assert len(FILES) == 16


def test_a_golden_case_reaches_the_cut_paths():
    """The tall case runs the multi-piece recurrence, several projection pieces and two
    float32 chunks of the weight sums (make_golden.py's TALL)."""
    from fastgru.backends import _layout, partition
    g = np.load(FILES[0].parent / "golden_tall_packed_float32.npz")
    T, B, _ = g["x"].shape
    assert partition(B, g["h0"].shape[-1], np.float32)["pieces"] >= 8
    assert T * B > max(_layout.PROJECT_ROWS, _layout.SUM_ROWS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_matches_torch_golden(backend, path):
    g = np.load(path, allow_pickle=False)
    cfg = json.loads(str(g["config"]))
    dtype = g["x"].dtype
    gru = fastgru.GRU(cfg["input_size"], cfg["hidden_size"], num_layers=cfg["num_layers"],
                      bidirectional=cfg["bidirectional"], batch_first=cfg["batch_first"],
                      dtype=dtype)
    gru.load_state_dict({k[2:]: g[k] for k in g.files if k.startswith("p:")})
    lengths = g["lengths"] if cfg["packed"] else None
    out, h_n = gru.forward(g["x"], g["h0"], lengths=lengths)
    assert_close(out, g["out"], dtype, "out", GOLDEN_TOL)
    assert_close(h_n, g["h_n"], dtype, "h_n", GOLDEN_TOL)
    dx, dh0 = gru.backward(g["d_out"], g["d_h_n"])
    assert_close(dx, g["g:x"], dtype, "dx", GOLDEN_TOL)
    assert_close(dh0, g["g:h0"], dtype, "dh0", GOLDEN_TOL)
    for name, param in gru.named_parameters():
        assert_close(param.grad, g["g:" + name], dtype, f"grad {name}", GOLDEN_TOL)
    # inference gives the same forward numbers
    out2, h_n2 = gru(g["x"], g["h0"], lengths=lengths)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(h_n2, h_n)
