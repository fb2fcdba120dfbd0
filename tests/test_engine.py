"""The engine's plan and its prepared weights: partition, packing, parameter versions."""
import io

import numpy as np
import pytest

import fastgru
from fastgru.backends import _layout, partition

from helpers import assert_close

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels


@pytest.mark.parametrize("B, H", [(64, 512), (256, 256), (32, 128), (2, 512), (512, 32),
                                  (4, 768)])
def test_partition_offers_sixteen_pieces_at_the_big_shapes(B, H):
    """The grid's large, wide, medium, smallbatch and manyshort steps (and H=768 at B=4)
    can feed 16 cores; pieces cover every row and unit exactly once."""
    plan = partition(B, H)
    assert plan["pieces"] >= 16
    assert plan["pieces"] == plan["chunks"] * plan["row_blocks"]
    assert plan["rows"] % _layout.MR == 0 and plan["rows"] * plan["row_blocks"] >= B
    assert plan["rows"] * (plan["row_blocks"] - 1) < B          # no empty row block
    assert plan["units"] * plan["chunks"] >= H > plan["units"] * (plan["chunks"] - 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_layouts_hold_the_weights(dtype, rng):
    H, U = 40, 16
    nr = _layout.nr_of(dtype)
    w_hh = rng.standard_normal((3 * H, H)).astype(dtype)
    wf = _layout.pack_forward(w_hh, U, nr)
    chunks = -(-H // U)
    # tile j of chunk c, row k, lane l: W_hh^T[k, gate*H + c*U + (j % (U/nr))*nr + l]
    for c in range(chunks):
        for g in range(3):
            for q in range(U // nr):
                for lane in range(nr):
                    u = c * U + q * nr + lane
                    got = wf[(c * 3 + g) * (U // nr) + q, :, lane]
                    want = w_hh[g * H + u] if u < H else np.zeros(H, dtype)
                    np.testing.assert_array_equal(got, want)
    wb = _layout.pack_backward(w_hh, U, nr)
    for c in range(chunks):
        for q in range(U // nr):
            for lane in range(nr):
                u = c * U + q * nr + lane
                want = w_hh[:, u] if u < H else np.zeros(3 * H, dtype)
                np.testing.assert_array_equal(wb[c * (U // nr) + q, :, lane], want)


def test_cell_rebuilds_packed_weights_when_parameters_change(backend, rng):
    """GRUCell keeps its weights packed while the parameters' versions hold: an
    optimizer step, load_state_dict, assigning .data and changed() each invalidate."""
    cell = fastgru.GRUCell(3, 5, dtype="float64", seed=0)
    x = rng.standard_normal((2, 3))
    h = rng.standard_normal((2, 5))

    def expected():
        with_numpy = fastgru.GRUCell(3, 5, dtype="float64")
        with_numpy.load_state_dict(cell.state_dict())
        with fastgru.backend("numpy"):
            return with_numpy(x, h)

    tol = dict(rtol=0, atol=1e-12)
    np.testing.assert_allclose(cell(x, h), expected(), **tol)
    opt = fastgru.optim.SGD(cell.parameters(), lr=0.5)
    for p in cell.parameters():
        p.grad[...] = 1.0
    opt.step()                                      # p.data -= ...: the setter bumps
    np.testing.assert_allclose(cell(x, h), expected(), **tol)
    cell.load_state_dict({k: v * 0.5 for k, v in cell.state_dict().items()})
    np.testing.assert_allclose(cell(x, h), expected(), **tol)
    cell.weight_hh.data = cell.weight_hh.data + 0.25
    np.testing.assert_allclose(cell(x, h), expected(), **tol)
    cell.weight_hh.data[...] *= -1                  # in place: needs changed()
    cell.weight_hh.changed()
    np.testing.assert_allclose(cell(x, h), expected(), **tol)


def test_parameter_version_counts_changes():
    p = fastgru.nn.Parameter(np.zeros(3))
    assert p.version == 0
    p.data = np.ones(3)
    p.data += 1.0
    p.changed()
    assert p.version == 3


def test_show_config_reports_threads_and_backends():
    buf = io.StringIO()
    fastgru.show_config(file=buf)
    text = buf.getvalue()
    for key in ("fastgru", "numpy", "backend", "available_backends", "threads", "cpu_features",
                "cython_isa"):
        assert f"{key}:" in text
    assert str(fastgru.get_num_threads()) in text
    if "cython" in fastgru.available_backends():
        from fastgru.backends import cython_backend
        assert f"cython_isa: {cython_backend.isa()} (" in text


@pytest.mark.parametrize("reset", ["after", "before"])
def test_padding_never_reaches_a_result(backend, rng, reset):
    """NaN or inf in the padding (steps past a sequence's length), in x and in d_out,
    changes no output and no gradient: the padded rows take no part in any sum."""
    gru = fastgru.GRU(3, 5, reset=reset, dtype="float64", seed=0)
    x = rng.standard_normal((6, 2, 3))
    d = rng.standard_normal((6, 2, 5))
    lengths = [4, 6]

    def run(x, d):
        gru.zero_grad()
        out, h_n = gru.forward(x, lengths=lengths)
        dx, dh0 = gru.backward(d)
        return [out, h_n, dx, dh0] + [p.grad.copy() for p in gru.parameters()]

    clean = run(x, d)
    x_bad, d_bad = x.copy(), d.copy()
    x_bad[4:, 0] = np.nan
    x_bad[5, 0, 1] = np.inf
    d_bad[4:, 0] = np.nan
    dirty = run(x_bad, d_bad)
    for a, b in zip(dirty, clean):
        assert np.isfinite(a[..., :].reshape(-1)[np.isfinite(b.reshape(-1))]).all()
    for a, b in zip(dirty[:1] + dirty[3:], clean[:1] + clean[3:]):   # out, dh0, grads
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dirty[1], clean[1])                 # h_n
    np.testing.assert_array_equal(dirty[2][:4], clean[2][:4])         # dx inside the lengths


@pytest.mark.parametrize("I", [3, 300])   # 300 > K_BLOCK: each chain continued over K blocks
def test_product_tiles_cover_every_row_and_tile_count(backend, dtype, rng, I):
    """The product kernels take rows in blocks of 4 and the last 1 to 4 rows apart, and
    several tiles at once (how many depends on the rows and the vector width) with single
    tiles for what is left: at every row count 1..9 and every tile count 1..17 the products
    meet the contract, and each row has the same bits whatever rows come with it."""
    if backend == "numpy":
        pytest.skip("the NumPy reference is what the kernels are checked against")
    nr = _layout.nr_of(dtype)
    x = rng.standard_normal((9, I)).astype(dtype)
    for n_tiles in range(1, 18):
        lin = fastgru.nn.Linear(I, n_tiles * nr - n_tiles % 3, dtype=dtype, seed=n_tiles)
        full = lin(x)
        with fastgru.backend("numpy"):
            assert_close(full, lin(x), dtype, f"{n_tiles} tiles")
        for n in range(1, 9):
            np.testing.assert_array_equal(lin(x[:n]), full[:n],
                                          err_msg=f"{n} rows, {n_tiles} tiles")
            np.testing.assert_array_equal(lin(x[n:n + 1]), full[n:n + 1],
                                          err_msg=f"row {n} alone, {n_tiles} tiles")
