"""exp, sigmoid and tanh written so that LLVM vectorizes the loops that call them.

Numba lowers np.exp / np.tanh to scalar libm calls, which dominate the GRU's
elementwise work. These versions use only +, *, /, floor-free rounding and bit
casts, all of which vectorize, and are accurate to a few ulp in float64 (they
compute in float64 for float32 inputs too). No fastmath: the numerical contract
needs IEEE semantics.

exp(a) = 2^k * exp(r), k = round(a / ln 2), |r| <= ln(2) / 2, with exp(r) by its
Taylor series to degree 12 (truncation error < 2e-16 relative).
"""
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490      # ln 2 split so that k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0          # 1.5 * 2^52: adding it rounds to an integer
_LIMIT = 708.0                         # exp(+-708) stays normal


@intrinsic
def _f64_bits(typingctx, value):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, value):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(cache=True, error_model="numpy")
def exp(a):
    if a != a:  # NaN in, NaN out (the clamp below would hide it)
        return a + 0.0
    a = min(max(float(a), -_LIMIT), _LIMIT)
    shifted = a * _LOG2E + _SHIFTER
    k = shifted - _SHIFTER
    r = (a - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # the low bits of `shifted` hold k; (k + 1023) << 52 is 2^k (the shifter's bits fall off)
    return p * _bits_f64((_f64_bits(shifted) + 1023) << 52)


@njit(cache=True, error_model="numpy")
def sigmoid(a):
    return 1.0 / (1.0 + exp(-a))


@njit(cache=True, error_model="numpy")
def tanh(a):
    # 1 - 2 / (exp(2a) + 1): absolute error ~1e-16, which is what the contract measures
    return 1.0 - 2.0 / (exp(2.0 * a) + 1.0)
