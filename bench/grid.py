"""The benchmark grid: which GRU problems are timed, and how much GEMM work each is.

A case is one GRU problem (shapes, dtype, layers, reset mode, lengths); each case
is timed for the operations in ``OPS`` that it supports. Shapes are (T, B, I, H):
sequence length, batch, input size, hidden size.
"""
from dataclasses import dataclass

FORWARD = "forward"
FORWARD_BACKWARD = "forward+backward"
STEP = "step"                      # one GRUCell step, for streaming
OPS = (FORWARD, FORWARD_BACKWARD, STEP)


@dataclass(frozen=True)
class Case:
    """One GRU problem of the grid."""
    name: str
    T: int
    B: int
    I: int
    H: int
    dtype: str = "float32"
    num_layers: int = 1
    bidirectional: bool = False
    reset: str = "after"           # "after" (PyTorch) or "before" (ONNX linear_before_reset=0)
    lengths: bool = False          # variable sequence lengths (torch PackedSequence)
    cell: bool = False             # a single GRUCell step (T = 1) instead of a sequence
    reference: bool = False        # small enough to time the NumPy reference backend too

    @property
    def ops(self):
        return (STEP,) if self.cell else (FORWARD, FORWARD_BACKWARD)

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    @property
    def shape(self):
        return f"({self.T},{self.B},{self.I},{self.H})"

    def describe(self):
        """The case's name and what sets it apart, for tables."""
        extra = []
        if self.num_layers > 1:
            extra.append(f"{self.num_layers} layers")
        if self.bidirectional:
            extra.append("bidirectional")
        if self.reset != "after":
            extra.append(f"reset={self.reset}")
        if self.lengths:
            extra.append("lengths")
        if self.dtype != "float32":
            extra.append(self.dtype)
        if self.cell:
            return f"{self.name} B={self.B},I={self.I},H={self.H}"
        return f"{self.name} {self.shape}" + (f" {', '.join(extra)}" if extra else "")


def gemm_flops(case, op):
    """Floating-point operations in the GEMMs of ``op`` on ``case`` (elementwise work ignored).

    Forward, per layer and direction: 2*T*B*3H*(I_k + H) (the input projection and the
    recurrent product). Backward does twice that (dX and dW_ih from the input side; dh and
    dW_hh from the recurrent side), so forward+backward is 3x forward. Padded steps of a
    variable-length batch are counted: the work is the nominal (T, B).
    """
    T = 1 if case.cell else case.T
    total = 0
    for k in range(case.num_layers):
        in_k = case.I if k == 0 else case.H * case.directions
        total += case.directions * 2 * T * case.B * 3 * case.H * (in_k + case.H)
    return 3 * total if op == FORWARD_BACKWARD else total


def _variants(name, T, B, I, H):
    """The medium-shape variants of the issue, at a given shape."""
    return [
        Case(f"{name}-bidir2", T, B, I, H, num_layers=2, bidirectional=True),
        Case(f"{name}-before", T, B, I, H, reset="before"),
        Case(f"{name}-lengths", T, B, I, H, lengths=True),
        Case(f"{name}-f64", T, B, I, H, dtype="float64"),
    ]


GRID = [
    Case("seed", 10, 690, 1, 50, reference=True),
    Case("stream", 1000, 1, 16, 64, reference=True),
    Case("small", 100, 16, 32, 64, reference=True),
    Case("medium", 100, 32, 64, 128),
    Case("large", 100, 64, 256, 512),
    Case("wide", 50, 256, 128, 256),
    Case("smallbatch", 500, 2, 64, 512),       # long sequence, tiny batch: latency-bound
    Case("manyshort", 50, 512, 16, 32),        # many short, narrow sequences
    # shapes nobody tuned for: a check that the speed is not confined to the tuned cases
    Case("unseen-a", 200, 8, 128, 384),
    Case("unseen-b", 64, 128, 32, 96),
    Case("cell", 1, 1, 16, 64, cell=True, reference=True),
] + _variants("medium", 100, 32, 64, 128)

# --quick (CI): every code path of the full grid, at small shapes.
QUICK = [
    Case("seed", 10, 690, 1, 50, reference=True),
    Case("small", 100, 16, 32, 64, reference=True),
    Case("cell", 1, 1, 16, 64, cell=True, reference=True),
] + [Case(c.name, c.T, c.B, c.I, c.H, c.dtype, c.num_layers, c.bidirectional, c.reset,
          c.lengths, reference=True)
     for c in _variants("small", 100, 16, 32, 64)]

BY_NAME = {c.name: c for c in GRID + QUICK}
