/* fastgru's own product kernels for the C backend: the twin of
 * fastgru/backends/_numba_product.py (its `tile`).
 *
 * This file holds only product kernels, and it is the only place in fastgru's C
 * code with fused multiply-add (explicit intrinsics or fma()/fmaf(); the build
 * passes -ffp-contract=off, so the compiler fuses nothing else).
 *
 *   tile_f32 / tile_f64(mr, nt, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c,
 *                       c_off, ldc, K, cont), for one tile (nt = 1):
 *
 *   c[c_off + i*ldc + j] = sum_k a[a_off + i*sa_r + k*sa_k] * w[w_off + k*ldw + j]
 *   for i < mr (1..4) and j < NR (16 floats or 8 doubles: one 64-byte line,
 *   two 256-bit vectors); for nt tiles side by side, the tiles of w are w_step
 *   elements apart (one or two rows take 4 or 2 tiles at once).
 *
 * Each output element is one chain over k = 0 .. K-1, starting from zero, or
 * (cont) from the tile's current value, so that a product cut into K blocks gives
 * the bits of one. The chain is the same whatever mr, the tile's place or the
 * caller's partition: a row's result never depends on the rows computed with it,
 * nor on the thread that computes it. Fused multiply-add where the target has
 * FMA, multiply-then-add elsewhere (as the Numba twin, which asks LLVM for fma
 * where the host has it).
 */
#ifndef FASTGRU_PRODUCT_H
#define FASTGRU_PRODUCT_H

#include <stdint.h>
#include <math.h>

#if defined(__GNUC__) || defined(__clang__)
#define FG_INLINE static inline __attribute__((always_inline))
#else
#define FG_INLINE static __inline
#endif

#if defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>

/* Keep a loaded weight vector in a register: gcc otherwise folds the load into
 * each of the mr fused multiply-adds that use it (mr loads instead of one), and the
 * loop becomes load-bound (measured 1.8x slower than the Numba twin). */
#if defined(__GNUC__) || defined(__clang__)
#define FG_IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define FG_IN_REGISTER(v) ((void)0)
#endif

FG_INLINE void fg_tile_f32_m(const int mr, const int nt, const float *a, int64_t sa_r,
                             int64_t sa_k, const float *w, int64_t ldw, int64_t w_step,
                             float *c, int64_t ldc, int64_t K, int cont)
{
    __m256 acc[4][8], wv[8];
    const int nv = 2 * nt;
    int i, v;
    int64_t k;
    for (i = 0; i < mr; i++)
        for (v = 0; v < nv; v++)
            acc[i][v] = cont ? _mm256_loadu_ps(c + i * ldc + v * 8) : _mm256_setzero_ps();
    for (k = 0; k < K; k++) {
        for (v = 0; v < nv; v++) {
            wv[v] = _mm256_loadu_ps(w + (v / 2) * w_step + k * ldw + (v % 2) * 8);
            FG_IN_REGISTER(wv[v]);
        }
        for (i = 0; i < mr; i++) {
            const __m256 s = _mm256_set1_ps(a[i * sa_r + k * sa_k]);
            for (v = 0; v < nv; v++)
                acc[i][v] = _mm256_fmadd_ps(s, wv[v], acc[i][v]);
        }
    }
    for (i = 0; i < mr; i++)
        for (v = 0; v < nv; v++)
            _mm256_storeu_ps(c + i * ldc + v * 8, acc[i][v]);
}

FG_INLINE void fg_tile_f64_m(const int mr, const int nt, const double *a, int64_t sa_r,
                             int64_t sa_k, const double *w, int64_t ldw, int64_t w_step,
                             double *c, int64_t ldc, int64_t K, int cont)
{
    __m256d acc[4][8], wv[8];
    const int nv = 2 * nt;
    int i, v;
    int64_t k;
    for (i = 0; i < mr; i++)
        for (v = 0; v < nv; v++)
            acc[i][v] = cont ? _mm256_loadu_pd(c + i * ldc + v * 4) : _mm256_setzero_pd();
    for (k = 0; k < K; k++) {
        for (v = 0; v < nv; v++) {
            wv[v] = _mm256_loadu_pd(w + (v / 2) * w_step + k * ldw + (v % 2) * 4);
            FG_IN_REGISTER(wv[v]);
        }
        for (i = 0; i < mr; i++) {
            const __m256d s = _mm256_set1_pd(a[i * sa_r + k * sa_k]);
            for (v = 0; v < nv; v++)
                acc[i][v] = _mm256_fmadd_pd(s, wv[v], acc[i][v]);
        }
    }
    for (i = 0; i < mr; i++)
        for (v = 0; v < nv; v++)
            _mm256_storeu_pd(c + i * ldc + v * 4, acc[i][v]);
}

#else   /* no AVX + FMA: one scalar chain per element */

#if defined(__FMA__) || defined(FP_FAST_FMAF)
#define FG_MADD_F32(x, y, acc) fmaf((x), (y), (acc))
#else
#define FG_MADD_F32(x, y, acc) ((acc) + (x) * (y))
#endif
#if defined(__FMA__) || defined(FP_FAST_FMA)
#define FG_MADD_F64(x, y, acc) fma((x), (y), (acc))
#else
#define FG_MADD_F64(x, y, acc) ((acc) + (x) * (y))
#endif

FG_INLINE void fg_tile_f32_m(const int mr, const int nt, const float *a, int64_t sa_r,
                             int64_t sa_k, const float *w, int64_t ldw, int64_t w_step,
                             float *c, int64_t ldc, int64_t K, int cont)
{
    int i, j, q;
    int64_t k;
    for (q = 0; q < nt; q++) {
        for (i = 0; i < mr; i++) {
            for (j = 0; j < 16; j++) {
                float acc = cont ? c[i * ldc + q * 16 + j] : 0.0f;
                for (k = 0; k < K; k++)
                    acc = FG_MADD_F32(a[i * sa_r + k * sa_k], w[q * w_step + k * ldw + j], acc);
                c[i * ldc + q * 16 + j] = acc;
            }
        }
    }
}

FG_INLINE void fg_tile_f64_m(const int mr, const int nt, const double *a, int64_t sa_r,
                             int64_t sa_k, const double *w, int64_t ldw, int64_t w_step,
                             double *c, int64_t ldc, int64_t K, int cont)
{
    int i, j, q;
    int64_t k;
    for (q = 0; q < nt; q++) {
        for (i = 0; i < mr; i++) {
            for (j = 0; j < 8; j++) {
                double acc = cont ? c[i * ldc + q * 8 + j] : 0.0;
                for (k = 0; k < K; k++)
                    acc = FG_MADD_F64(a[i * sa_r + k * sa_k], w[q * w_step + k * ldw + j], acc);
                c[i * ldc + q * 8 + j] = acc;
            }
        }
    }
}

#endif

/* How many tiles side by side the kernel for mr rows takes at once: 8 vector
 * accumulators or more, so that the two FMA pipes (4 cycles of latency each) are
 * kept busy even for one or two rows. */
static inline int64_t tiles_at_once(int64_t mr) { return mr == 1 ? 4 : (mr == 2 ? 2 : 1); }

/* mr in 1..4 (more is taken as 4), nt either tiles_at_once(mr) or 1: the nt tiles
 * of w are w_step elements apart, those of c side by side. Each case compiles with
 * its constants, so the accumulators stay in registers. */
static inline void tile_f32(int64_t mr, int64_t nt, const float *a, int64_t a_off,
                            int64_t sa_r, int64_t sa_k, const float *w, int64_t w_off,
                            int64_t ldw, int64_t w_step, float *c, int64_t c_off, int64_t ldc,
                            int64_t K, int cont)
{
    a += a_off;
    w += w_off;
    c += c_off;
    if (mr >= 4)
        fg_tile_f32_m(4, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else if (mr == 3)
        fg_tile_f32_m(3, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else if (mr == 2 && nt == 2)
        fg_tile_f32_m(2, 2, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else if (mr == 2)
        fg_tile_f32_m(2, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else if (nt == 4)
        fg_tile_f32_m(1, 4, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else
        fg_tile_f32_m(1, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
}

static inline void tile_f64(int64_t mr, int64_t nt, const double *a, int64_t a_off,
                            int64_t sa_r, int64_t sa_k, const double *w, int64_t w_off,
                            int64_t ldw, int64_t w_step, double *c, int64_t c_off, int64_t ldc,
                            int64_t K, int cont)
{
    a += a_off;
    w += w_off;
    c += c_off;
    if (mr >= 4)
        fg_tile_f64_m(4, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else if (mr == 3)
        fg_tile_f64_m(3, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else if (mr == 2 && nt == 2)
        fg_tile_f64_m(2, 2, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else if (mr == 2)
        fg_tile_f64_m(2, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else if (nt == 4)
        fg_tile_f64_m(1, 4, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
    else
        fg_tile_f64_m(1, 1, a, sa_r, sa_k, w, ldw, w_step, c, ldc, K, cont);
}

#endif
