"""Make the torch.nn.GRU golden vectors in tests/data/golden_*.npz.

Run from the repository root with torch==2.13.0 installed:
    python tests/data/make_golden.py
Each file holds the layer's configuration, its state dict (prefix ``p:``), the inputs,
torch's outputs, the upstream gradients and torch's gradients (prefix ``g:``).
"""
import json
import pathlib
import zlib

import numpy as np
import torch

HERE = pathlib.Path(__file__).parent
SMALL = dict(T=6, B=4, I=3, H=5, lengths=[6, 2, 5, 1])
# big enough for the engine's cut paths: 10 pieces per step (5 row blocks x 2 unit
# chunks), 520 rows (> PROJECT_ROWS, and two float32 chunks of SUM_ROWS in the sums)
TALL = dict(T=13, B=40, I=8, H=80, lengths=[1 + (b * 5) % 13 for b in range(40)])

CASES = {
    "l1": dict(num_layers=1),
    "l2": dict(num_layers=2),
    "bidir": dict(num_layers=1, bidirectional=True),
    "l2_bidir_packed": dict(num_layers=2, bidirectional=True, packed=True),
    "packed": dict(num_layers=1, packed=True),
    "batch_first": dict(num_layers=2, batch_first=True),
    "batch_first_packed_bidir": dict(num_layers=1, batch_first=True, bidirectional=True, packed=True),
    "tall_packed": dict(num_layers=1, packed=True, size=TALL),
}


def make(name, dtype, num_layers, bidirectional=False, batch_first=False, packed=False,
         size=SMALL):
    T, B, I, H = size["T"], size["B"], size["I"], size["H"]
    torch.manual_seed(zlib.crc32(f"{name}-{dtype}".encode()))
    gru = torch.nn.GRU(I, H, num_layers=num_layers, bidirectional=bidirectional,
                       batch_first=batch_first).to(dtype)
    D = 2 if bidirectional else 1
    with torch.no_grad():  # torch's init leaves biases random already; make them larger
        for k, p in gru.named_parameters():
            if k.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    h0 = (0.5 * torch.randn(num_layers * D, B, H, dtype=dtype)).requires_grad_()
    lengths = torch.tensor(size["lengths"]) if packed else torch.full((B,), T)
    if packed:
        seq = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=batch_first,
                                                      enforce_sorted=False)
        out_p, h_n = gru(seq, h0)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, batch_first=batch_first,
                                                        total_length=T)
    else:
        out, h_n = gru(x, h0)
    d_out = torch.randn_like(out)
    d_h_n = torch.randn_like(h_n)
    ((out * d_out).sum() + (h_n * d_h_n).sum()).backward()
    arrays = {"x": x, "h0": h0, "lengths": lengths, "out": out, "h_n": h_n,
              "d_out": d_out, "d_h_n": d_h_n, "g:x": x.grad, "g:h0": h0.grad}
    for k, p in gru.named_parameters():
        arrays["p:" + k] = p
        arrays["g:" + k] = p.grad
    arrays = {k: a.detach().numpy() for k, a in arrays.items()}
    config = dict(input_size=I, hidden_size=H, num_layers=num_layers,
                  bidirectional=bidirectional, batch_first=batch_first, packed=packed)
    arrays["config"] = np.array(json.dumps(config))
    np.savez_compressed(HERE / f"golden_{name}_{str(dtype).split('.')[-1]}.npz", **arrays)


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    for dtype in (torch.float32, torch.float64):
        for name, case in CASES.items():
            make(name, dtype, **case)
    print(f"torch {torch.__version__}: wrote {2 * len(CASES)} files to {HERE}")
