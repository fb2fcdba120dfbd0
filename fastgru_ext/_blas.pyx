# cython: language_level=3
"""The one typed BLAS wrapper the kernels call, over scipy's BLAS.

Row-major throughout; the only place that knows BLAS is column-major.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating *a, int lda,
               const floating *b, int ldb,
               floating beta, floating *c, int ldc) noexcept nogil:
    """C := alpha * op(A) op(B) + beta * C, row-major: C (m, n), op(A) (m, k), op(B) (k, n).

    lda, ldb, ldc are the row strides (in elements) of A, B and C as stored.
    """
    # A row-major C is the column-major C^T = op(B)^T op(A)^T: swap the operands
    # and m, n; each transpose flag stays with its own matrix.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int inc_a = lda if trans_a else 1, one = 1
    if m == 1:
        # One row: c^T := alpha * op(B)^T a^T + beta * c^T is a GEMV, which BLAS
        # runs faster than a one-row GEMM (streaming B at B=1 is the whole step).
        # B as stored is column-major (n, k) (trans_b False) or (k, n) (trans_b True).
        tb = b'T' if trans_b else b'N'
        if floating is float:
            if trans_b:
                sgemv(&tb, &k, &n, &alpha, <float *> b, &ldb, <float *> a, &inc_a, &beta, c, &one)
            else:
                sgemv(&tb, &n, &k, &alpha, <float *> b, &ldb, <float *> a, &inc_a, &beta, c, &one)
        else:
            if trans_b:
                dgemv(&tb, &k, &n, &alpha, <double *> b, &ldb, <double *> a, &inc_a, &beta, c, &one)
            else:
                dgemv(&tb, &n, &k, &alpha, <double *> b, &ldb, <double *> a, &inc_a, &beta, c, &one)
    elif floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *> b, &ldb, <float *> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double *> b, &ldb, <double *> a, &lda,
              &beta, c, &ldc)
