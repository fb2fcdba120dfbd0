# exp, sigmoid and tanh for the kernels' elementwise loops: exactly the functions
# of fastgru/backends/_numba_math.py (same reduction, same constants, same Horner
# order, same clamp and NaN handling), so that both backends' results agree bitwise.
# Written with +, *, /, compares and bit casts only, so that the C compiler
# vectorizes the loops that call them (libm's exp and tanh are scalar calls).
# IEEE semantics: no -ffast-math, and -ffp-contract=off keeps every a * b + c
# here a multiply then an add, as in the Numba twin.
#
# exp(a) = 2^k exp(r), k = round(a / ln 2), |r| <= ln(2) / 2: 2^k is built in the
# exponent bits, exp(r) is its Taylor series, degree 12 in float64 and degree 7 in
# float32 (coefficients 1/n!, rounded to the type). NaN stays NaN; a is clamped to
# +-708 (float64) or +-87 (float32), where 2^k stays normal; above the last argument
# whose exp is finite (OVERFLOW in the twin) the result is +inf, as libm's, so that
# sigmoid(-inf) is exactly 0 and non-finite inputs propagate as they do in torch.
cimport cython
from cython cimport floating
from libc.stdint cimport uint32_t, uint64_t
from libc.math cimport INFINITY
from libc.string cimport memcpy


@cython.cdivision(True)
cdef inline double _exp64(double a) noexcept nogil:
    cdef double x, shifted, k, r, p, scale
    cdef uint64_t bits
    x = -708.0 if a < -708.0 else a
    x = 708.0 if x > 708.0 else x
    shifted = x * 1.4426950408889634 + 6755399441055744.0   # + 1.5 * 2^52 rounds to an integer
    k = shifted - 6755399441055744.0
    r = (x - k * 0.693147180369123816490) - k * 1.90821492927058770002e-10  # k * hi is exact
    p = (1.0 / 479001600.0) * r + (1.0 / 39916800.0)
    p = p * r + (1.0 / 3628800.0)
    p = p * r + (1.0 / 362880.0)
    p = p * r + (1.0 / 40320.0)
    p = p * r + (1.0 / 5040.0)
    p = p * r + (1.0 / 720.0)
    p = p * r + (1.0 / 120.0)
    p = p * r + (1.0 / 24.0)
    p = p * r + (1.0 / 6.0)
    p = p * r + 0.5
    p = p * r + 1.0
    # the low bits of `shifted` hold k; (k + 1023) << 52 is 2^k (the shifter's bits fall off)
    memcpy(&bits, &shifted, sizeof(double))
    bits = (bits + 1023) << 52
    memcpy(&scale, &bits, sizeof(double))
    p = (p * r + 1.0) * scale
    if a > 709.782712893384:     # overflow: +inf, as libm (the clamp would give a finite value)
        p = INFINITY
    return a if a != a else p     # NaN in, NaN out (the clamp would hide it)


@cython.cdivision(True)
cdef inline float _exp32(float a) noexcept nogil:
    cdef float x, shifted, k, r, p, scale
    cdef uint32_t bits
    x = <float> -87.0 if a < <float> -87.0 else a
    x = <float> 87.0 if x > <float> 87.0 else x
    shifted = x * <float> 1.4426950408889634 + <float> 12582912.0   # 1.5 * 2^23
    k = shifted - <float> 12582912.0
    r = (x - k * <float> 0.693359375) - k * <float> -2.12194440e-4    # k * 0.693359375 is exact
    p = <float> (1.0 / 5040.0) * r + <float> (1.0 / 720.0)
    p = p * r + <float> (1.0 / 120.0)
    p = p * r + <float> (1.0 / 24.0)
    p = p * r + <float> (1.0 / 6.0)
    p = p * r + <float> 0.5
    p = p * r + <float> 1.0
    memcpy(&bits, &shifted, sizeof(float))
    bits = (bits + 127) << 23
    memcpy(&scale, &bits, sizeof(float))
    p = (p * r + <float> 1.0) * scale
    if a > <float> 88.72283:
        p = <float> INFINITY
    return a if a != a else p


@cython.cdivision(True)
cdef inline floating sigmoid_(floating a) noexcept nogil:
    cdef floating one = 1
    if floating is float:
        return one / (one + _exp32(-a))
    else:
        return one / (one + _exp64(-a))


@cython.cdivision(True)
cdef inline floating tanh_(floating a) noexcept nogil:
    # 1 - 2 / (exp(2a) + 1): absolute error about 1 ulp of 1, which is what the contract measures
    cdef floating one = 1, two = 2
    if floating is float:
        return one - two / (_exp32(a + a) + one)
    else:
        return one - two / (_exp64(a + a) + one)
