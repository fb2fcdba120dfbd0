# exp, sigmoid and tanh for the kernels' elementwise loops, written with +, *, /,
# compares and bit casts only, so that the C compiler vectorizes the loops that
# call them: libm's exp and tanh are scalar calls that would dominate the forward
# pass. float64 is accurate to a few ulp, float32 (computed in float32, so that a
# vector holds twice as many lanes) to about 2 ulp. IEEE semantics, no -ffast-math.
#
# exp(a) = 2^k exp(r), k = round(a / ln 2), |r| <= ln(2) / 2: 2^k is built in the
# exponent bits, exp(r) is a polynomial. NaN stays NaN; a is clamped where exp
# would leave the normal range.
cimport cython
from cython cimport floating
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy


@cython.cdivision(True)
cdef inline double _exp64(double a) noexcept nogil:
    # exp(r) by its Taylor series to degree 12 (truncation < 2e-16 relative), as
    # fastgru/backends/_numba_math.py, in Estrin's scheme: shorter dependency chains.
    cdef double shifted, k, r, r2, r4, r8, p, scale
    cdef uint64_t bits
    a = -708.0 if a < -708.0 else a
    a = 708.0 if a > 708.0 else a
    shifted = a * 1.4426950408889634 + 6755399441055744.0   # + 1.5 * 2^52 rounds to an integer
    k = shifted - 6755399441055744.0
    r = (a - k * 0.693147180369123816490) - k * 1.90821492927058770002e-10  # k * hi is exact
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    p = (((1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0)))
         + r4 * ((1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0))))
    p = p + r8 * ((1.0 / 40320.0 + r * (1.0 / 362880.0))
                  + r2 * (1.0 / 3628800.0 + r * (1.0 / 39916800.0)) + r4 * (1.0 / 479001600.0))
    # the low bits of `shifted` hold k; (k + 1023) << 52 is 2^k (the shifter's bits fall off)
    memcpy(&bits, &shifted, sizeof(double))
    bits = (bits + 1023) << 52
    memcpy(&scale, &bits, sizeof(double))
    return p * scale


@cython.cdivision(True)
cdef inline float _exp32(float a) noexcept nogil:
    # Cephes' expf: a minimax polynomial on |r| <= ln(2) / 2, about 1 ulp.
    cdef float shifted, k, r, p, scale
    cdef uint32_t bits
    a = <float> -87.0 if a < <float> -87.0 else a
    a = <float> 87.0 if a > <float> 87.0 else a
    shifted = a * <float> 1.44269504088896341 + <float> 12582912.0   # 1.5 * 2^23
    k = shifted - <float> 12582912.0
    r = (a - k * <float> 0.693359375) - k * <float> -2.12194440e-4    # k * 0.693359375 is exact
    p = <float> 1.9875691500e-4
    p = p * r + <float> 1.3981999507e-3
    p = p * r + <float> 8.3334519073e-3
    p = p * r + <float> 4.1665795894e-2
    p = p * r + <float> 1.6666665459e-1
    p = p * r + <float> 5.0000001201e-1
    p = (p * (r * r) + r) + <float> 1.0
    memcpy(&bits, &shifted, sizeof(float))
    bits = (bits + 127) << 23
    memcpy(&scale, &bits, sizeof(float))
    return p * scale


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
        return one - two / (_exp32(two * a) + one)
    else:
        return one - two / (_exp64(two * a) + one)
