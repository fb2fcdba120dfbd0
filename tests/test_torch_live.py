"""Live parity with torch.nn.GRU / GRUCell, forward and backward (skipped without torch)."""
import numpy as np
import pytest

import fastgru

from helpers import GOLDEN_TOL, assert_close, torch_gru_run

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,packed", [
    (1, False, False, False), (2, True, False, True), (3, False, True, False),
    (1, True, True, True),
])
def test_gru_matches_torch(backend, dtype, rng, num_layers, bidirectional, batch_first, packed):
    T, B, I, H = 7, 5, 4, 6
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(int(rng.integers(1 << 30)))
    tg = torch.nn.GRU(I, H, num_layers=num_layers, bidirectional=bidirectional,
                      batch_first=batch_first).to(tdtype)
    D = 2 if bidirectional else 1
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=tdtype, requires_grad=True)
    h0 = torch.randn(num_layers * D, B, H, dtype=tdtype, requires_grad=True)
    lengths = torch.tensor([7, 3, 1, 5, 7])
    out, h_n = torch_gru_run(torch, tg, x, h0, lengths, packed)
    d_out, d_h_n = torch.randn_like(out), torch.randn_like(h_n)
    ((out * d_out).sum() + (h_n * d_h_n).sum()).backward()

    g = fastgru.GRU(I, H, num_layers=num_layers, bidirectional=bidirectional,
                    batch_first=batch_first, dtype=dtype)
    g.load_state_dict(tg.state_dict())
    f_out, f_h_n = g.forward(x.detach().numpy(), h0.detach().numpy(),
                             lengths=lengths.numpy() if packed else None)
    assert_close(f_out, out.detach().numpy(), dtype, "out", GOLDEN_TOL)
    assert_close(f_h_n, h_n.detach().numpy(), dtype, "h_n", GOLDEN_TOL)
    dx, dh0 = g.backward(d_out.numpy(), d_h_n.numpy())
    assert_close(dx, x.grad.numpy(), dtype, "dx", GOLDEN_TOL)
    assert_close(dh0, h0.grad.numpy(), dtype, "dh0", GOLDEN_TOL)
    for name, p in tg.named_parameters():
        assert_close(getattr(g, name).grad, p.grad.numpy(), dtype, f"grad {name}", GOLDEN_TOL)


def test_cell_matches_torch(backend, dtype, rng):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    tc = torch.nn.GRUCell(4, 6).to(tdtype)
    cell = fastgru.GRUCell(4, 6, dtype=dtype)
    cell.load_state_dict(tc.state_dict())
    x, h = torch.randn(3, 4, dtype=tdtype), torch.randn(3, 6, dtype=tdtype)
    with torch.inference_mode():
        want = tc(x, h).numpy()
    assert_close(cell(x.numpy(), h.numpy()), want, dtype, "cell", GOLDEN_TOL)
