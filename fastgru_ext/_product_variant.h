/* One variant of the product tiles, included by _product.h once per instruction set.
 *
 * The includer defines:
 *   FG_VARIANT(name)  the variant's name for a function (fg_avx2_tile_f32, ...)
 *   FG_TARGET         the function attribute that enables its instructions, or nothing
 *   FG_VECTOR         0 (one scalar chain per element), 256 (AVX + FMA) or 512 (AVX-512F)
 *   FG_MADD_F32/F64   for FG_VECTOR 0: how acc + x * y is computed (fused or not)
 *
 * Every variant computes each output element as the same chain over k (see _product.h);
 * the vector variants with one fused multiply-add per term, so they give the same bits.
 */

#if FG_VECTOR == 512
#define FG_V32 __m512
#define FG_V64 __m512d
#define FG_VPT 1                       /* vectors per 64-byte tile */
#define FG_AT_ONCE(mr) ((mr) == 1 ? 8 : ((mr) == 2 ? 4 : 2))   /* tiles at once: 8 accumulators */
#define FG_LOAD32 _mm512_loadu_ps
#define FG_STORE32 _mm512_storeu_ps
#define FG_SET1_32 _mm512_set1_ps
#define FG_ZERO32 _mm512_setzero_ps
#define FG_FMADD32 _mm512_fmadd_ps
#define FG_LOAD64 _mm512_loadu_pd
#define FG_STORE64 _mm512_storeu_pd
#define FG_SET1_64 _mm512_set1_pd
#define FG_ZERO64 _mm512_setzero_pd
#define FG_FMADD64 _mm512_fmadd_pd
#elif FG_VECTOR == 256
#define FG_V32 __m256
#define FG_V64 __m256d
#define FG_VPT 2
#define FG_LOAD32 _mm256_loadu_ps
#define FG_STORE32 _mm256_storeu_ps
#define FG_SET1_32 _mm256_set1_ps
#define FG_ZERO32 _mm256_setzero_ps
#define FG_FMADD32 _mm256_fmadd_ps
#define FG_LOAD64 _mm256_loadu_pd
#define FG_STORE64 _mm256_storeu_pd
#define FG_SET1_64 _mm256_set1_pd
#define FG_ZERO64 _mm256_setzero_pd
#define FG_FMADD64 _mm256_fmadd_pd
#endif

#if FG_VECTOR != 512   /* AVX2 and the scalar kernels */
#define FG_AT_ONCE(mr) ((mr) == 1 ? 4 : ((mr) == 2 ? 2 : 1))
#endif

#if FG_VECTOR

/* The body of one vector tile kernel, for a vector type V with L lanes:
 * keep a loaded weight vector in a register (FG_IN_REGISTER): gcc otherwise folds the
 * load into each of the mr fused multiply-adds that use it (mr loads instead of one),
 * and the loop becomes load-bound (measured 1.8x slower than the Numba twin). */
#define FG_VECTOR_TILE(V, L, LOAD, STORE, SET1, ZERO, FMADD)                               \
    V acc[4][8], wv[8];                                                                   \
    const int nv = FG_VPT * nt;                                                           \
    int i, v;                                                                             \
    int64_t k;                                                                            \
    for (i = 0; i < mr; i++)                                                              \
        for (v = 0; v < nv; v++)                                                          \
            acc[i][v] = cont ? LOAD(c + i * ldc + v * (L)) : ZERO();                     \
    for (k = 0; k < K; k++) {                                                             \
        for (v = 0; v < nv; v++) {                                                        \
            wv[v] = LOAD(w + (v / FG_VPT) * w_step + k * ldw + (v % FG_VPT) * (L));      \
            FG_IN_REGISTER(wv[v]);                                                        \
        }                                                                                 \
        for (i = 0; i < mr; i++) {                                                        \
            const V s = SET1(a[i * sa_r + k * sa_k]);                                     \
            for (v = 0; v < nv; v++)                                                      \
                acc[i][v] = FMADD(s, wv[v], acc[i][v]);                                   \
        }                                                                                 \
    }                                                                                     \
    for (i = 0; i < mr; i++)                                                              \
        for (v = 0; v < nv; v++)                                                          \
            STORE(c + i * ldc + v * (L), acc[i][v]);

FG_INLINE FG_TARGET void FG_VARIANT(tile_f32_m)(
    const int mr, const int nt, const float *a, int64_t sa_r, int64_t sa_k, const float *w,
    int64_t ldw, int64_t w_step, float *c, int64_t ldc, int64_t K, int cont)
{
    FG_VECTOR_TILE(FG_V32, 16 / FG_VPT, FG_LOAD32, FG_STORE32, FG_SET1_32, FG_ZERO32,
                   FG_FMADD32)
}

FG_INLINE FG_TARGET void FG_VARIANT(tile_f64_m)(
    const int mr, const int nt, const double *a, int64_t sa_r, int64_t sa_k, const double *w,
    int64_t ldw, int64_t w_step, double *c, int64_t ldc, int64_t K, int cont)
{
    FG_VECTOR_TILE(FG_V64, 8 / FG_VPT, FG_LOAD64, FG_STORE64, FG_SET1_64, FG_ZERO64,
                   FG_FMADD64)
}

#undef FG_VECTOR_TILE
#undef FG_VPT
#undef FG_V32
#undef FG_V64
#undef FG_LOAD32
#undef FG_STORE32
#undef FG_SET1_32
#undef FG_ZERO32
#undef FG_FMADD32
#undef FG_LOAD64
#undef FG_STORE64
#undef FG_SET1_64
#undef FG_ZERO64
#undef FG_FMADD64

#else   /* scalar: k outermost, so that the compiler vectorizes over the tile's columns */

#define FG_SCALAR_TILE(T, NR, MADD)                                                       \
    T acc[4][4 * (NR)];                                                                   \
    const int n = (NR) * nt;                                                              \
    int i, j, q;                                                                          \
    int64_t k;                                                                            \
    for (i = 0; i < mr; i++)                                                              \
        for (j = 0; j < n; j++)                                                           \
            acc[i][j] = cont ? c[i * ldc + j] : (T)0;                                     \
    for (k = 0; k < K; k++)                                                               \
        for (i = 0; i < mr; i++) {                                                        \
            const T s = a[i * sa_r + k * sa_k];                                           \
            for (q = 0; q < nt; q++)                                                      \
                for (j = 0; j < (NR); j++)                                                \
                    acc[i][q * (NR) + j] = MADD(s, w[q * w_step + k * ldw + j],           \
                                                acc[i][q * (NR) + j]);                    \
        }                                                                                 \
    for (i = 0; i < mr; i++)                                                              \
        for (j = 0; j < n; j++)                                                           \
            c[i * ldc + j] = acc[i][j];

FG_INLINE FG_TARGET void FG_VARIANT(tile_f32_m)(
    const int mr, const int nt, const float *a, int64_t sa_r, int64_t sa_k, const float *w,
    int64_t ldw, int64_t w_step, float *c, int64_t ldc, int64_t K, int cont)
{
    FG_SCALAR_TILE(float, 16, FG_MADD_F32)
}

FG_INLINE FG_TARGET void FG_VARIANT(tile_f64_m)(
    const int mr, const int nt, const double *a, int64_t sa_r, int64_t sa_k, const double *w,
    int64_t ldw, int64_t w_step, double *c, int64_t ldc, int64_t K, int cont)
{
    FG_SCALAR_TILE(double, 8, FG_MADD_F64)
}

#undef FG_SCALAR_TILE

#endif

/* mr in 1..4 (more is taken as 4), nt either FG_AT_ONCE(mr) or 1 (tiles_at_once in
 * _product.h gives the variant's FG_AT_ONCE). Each case calls the inlined kernel with
 * constants, so its accumulators stay in registers. */
#define FG_TILE_CASE(M, R)                                                                \
    if (nt > 1)                                                                           \
        M(R, FG_AT_ONCE(R), a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);              \
    else                                                                                  \
        M(R, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
#define FG_TILE_CASES(M)                                                                  \
    a += a_off;                                                                           \
    w += w_off;                                                                           \
    c += c_off;                                                                           \
    if (mr >= 4) {                                                                        \
        FG_TILE_CASE(M, 4)                                                                \
    } else if (mr == 3) {                                                                 \
        FG_TILE_CASE(M, 3)                                                                \
    } else if (mr == 2) {                                                                 \
        FG_TILE_CASE(M, 2)                                                                \
    } else {                                                                              \
        FG_TILE_CASE(M, 1)                                                                \
    }

static FG_TARGET void FG_VARIANT(tile_f32)(FG_TILE_ARGS(float))
{
    FG_TILE_CASES(FG_VARIANT(tile_f32_m))
}

static FG_TARGET void FG_VARIANT(tile_f64)(FG_TILE_ARGS(double))
{
    FG_TILE_CASES(FG_VARIANT(tile_f64_m))
}

#undef FG_TILE_CASES
#undef FG_TILE_CASE
#undef FG_AT_ONCE
