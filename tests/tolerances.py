"""Every tolerance the tests hold fastgru to, in one place; the README's numerical contract
cites this file. Where a bound is not DESIGN.md's contract itself, the measured worst case
and the margin are stated beside it. No test may use a looser bound than these."""
import numpy as np

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)

# DESIGN.md's contract, max abs diff <= TOL * max(1, max |expected|):
BACKEND = {F64: 1e-12, F32: 2e-6}      # a backend against the NumPy reference
GOLDEN = {F64: 1e-12, F32: 1e-5}       # against torch.nn.GRU golden vectors

# gradients against central finite differences (float64), relative error
FINITE_DIFFERENCES = 1e-6

# the article's 50 training epochs against torch, per-epoch loss, relative.
# measured: float32 5.0e-6 (numpy) and 2.7e-6 (numba, cython), margin 2x and 3.7x;
# float64 9.0e-15 (numba, cython) and 6.5e-15 (numpy), margin 3.3x
TRAINING_LOSS = {F32: 1e-5, F64: 3e-14}

# the kernels' exp (relative) and sigmoid/tanh (absolute), both backends: 2 eps each.
# measured: float64 exp 1.43 eps, sigmoid 1.00 eps, tanh 1.50 eps; float32 exp 0.80 eps,
# sigmoid 0.74 eps, tanh 1.49 eps: margin 1.33x at the worst
MATH = {F64: 2 * np.finfo(np.float64).eps, F32: 2 * np.finfo(np.float32).eps}
