/* fastgru's own product kernels for the C backend: the twin of
 * fastgru/backends/_numba_product.py (its `tile`).
 *
 * This file (with _product_variant.h) holds only product kernels, and it is the only
 * place in fastgru's C code with fused multiply-add (explicit intrinsics or
 * fma()/fmaf(); the build passes -ffp-contract=off, so the compiler fuses nothing else).
 *
 *   tile_f32 / tile_f64(mr, nt, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c,
 *                       c_off, ldc, K, cont), for one tile (nt = 1):
 *
 *   c[c_off + i*ldc + j] = sum_k a[a_off + i*sa_r + k*sa_k] * w[w_off + k*ldw + j]
 *   for i < mr (1..4) and j < NR (16 floats or 8 doubles: one 64-byte line); for nt
 *   tiles side by side, the tiles of w are w_step elements apart (nt is 1 or
 *   tiles_at_once(mr): 8, 4, 2, 2 tiles for 1..4 rows with AVX-512, else 4, 2, 1, 1).
 *
 * Each output element is one chain over k = 0 .. K-1, starting from zero, or
 * (cont) from the tile's current value, so that a product cut into K blocks gives
 * the bits of one. The chain is the same whatever mr, the tile's place or the
 * caller's partition: a row's result never depends on the rows computed with it,
 * nor on the thread that computes it.
 *
 * Instruction sets, chosen at run time (the build targets baseline x86-64, so one
 * binary runs on any x86-64 machine): each variant is compiled for its own target
 * with a function attribute, and fg_use_isa() points tile_f32/tile_f64 at one.
 *
 *   FG_ISA_AVX512  AVX-512F: one 512-bit vector per tile, fused multiply-add
 *   FG_ISA_AVX2    AVX2 + FMA: two 256-bit vectors per tile, fused multiply-add
 *   FG_ISA_BASELINE  scalar chains the compiler vectorizes for the build's target;
 *                  on x86-64 multiply-then-add (baseline x86-64 has no FMA), elsewhere
 *                  (arm64: always FMA) fused where the target has FMA
 *
 * The two FMA variants give the same bits as each other and as the Numba twin (which
 * asks LLVM for fma where the host has it); the baseline variant on x86-64 gives the
 * Numba twin's bits on a machine without FMA.
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

#define FG_TILE_ARGS(T)                                                                   \
    int64_t mr, int64_t nt, const T *a, int64_t a_off, int64_t sa_r, int64_t sa_k,       \
    const T *w, int64_t w_off, int64_t ldw, int64_t w_step, T *c, int64_t c_off,         \
    int64_t ldc, int64_t K, int cont

enum { FG_ISA_BASELINE = 0, FG_ISA_AVX2 = 1, FG_ISA_AVX512 = 2, FG_N_ISA = 3 };

/* x86-64 with GCC or Clang: the vector variants, each behind its target attribute
 * (FG_NO_X86_VARIANTS builds the generic code alone, as on arm64: a compile check). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(FG_NO_X86_VARIANTS)
#define FG_X86_VARIANTS 1
#include <immintrin.h>
#endif

/* the baseline variant */
#define FG_VARIANT(name) fg_baseline_##name
#define FG_TARGET
#define FG_VECTOR 0
#if !defined(FG_X86_VARIANTS) && (defined(__FMA__) || defined(FP_FAST_FMAF))
#define FG_MADD_F32(x, y, acc) fmaf((x), (y), (acc))
#else
#define FG_MADD_F32(x, y, acc) ((acc) + (x) * (y))
#endif
#if !defined(FG_X86_VARIANTS) && (defined(__FMA__) || defined(FP_FAST_FMA))
#define FG_MADD_F64(x, y, acc) fma((x), (y), (acc))
#define FG_BASELINE_FMA 1
#else
#define FG_MADD_F64(x, y, acc) ((acc) + (x) * (y))
#define FG_BASELINE_FMA 0
#endif
#include "_product_variant.h"
#undef FG_VARIANT
#undef FG_TARGET
#undef FG_VECTOR

#ifdef FG_X86_VARIANTS
/* Keep a loaded weight vector in a register (see FG_VECTOR_TILE in _product_variant.h). */
#define FG_IN_REGISTER(v) __asm__("" : "+v"(v))

#define FG_VARIANT(name) fg_avx2_##name
#define FG_TARGET __attribute__((target("avx2,fma")))
#define FG_VECTOR 256
#include "_product_variant.h"
#undef FG_VARIANT
#undef FG_TARGET
#undef FG_VECTOR

#define FG_VARIANT(name) fg_avx512_##name
#define FG_TARGET __attribute__((target("avx512f,avx2,fma")))
#define FG_VECTOR 512
#include "_product_variant.h"
#undef FG_VARIANT
#undef FG_TARGET
#undef FG_VECTOR
#endif

typedef void (*fg_tile_f32_fn)(FG_TILE_ARGS(float));
typedef void (*fg_tile_f64_fn)(FG_TILE_ARGS(double));

/* The variant in use; written only by fg_use_isa (the backend calls it once, at import,
 * before any kernel runs). */
static fg_tile_f32_fn fg_tile_f32_in_use = fg_baseline_tile_f32;
static fg_tile_f64_fn fg_tile_f64_in_use = fg_baseline_tile_f64;
static int fg_isa_in_use = FG_ISA_BASELINE;

/* Whether variant `isa` is compiled into this build. */
static inline int fg_isa_compiled(int isa)
{
#ifdef FG_X86_VARIANTS
    return isa >= 0 && isa < FG_N_ISA;
#else
    return isa == FG_ISA_BASELINE;
#endif
}

/* Whether variant `isa` is compiled in and this CPU (and OS) can run it. */
static inline int fg_isa_runs_here(int isa)
{
    if (!fg_isa_compiled(isa))
        return 0;
#ifdef FG_X86_VARIANTS
    __builtin_cpu_init();
    if (isa == FG_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")
               && __builtin_cpu_supports("fma");
    if (isa == FG_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return 1;
}

/* Whether variant `isa` multiplies and adds in one rounding (fused multiply-add). */
static inline int fg_isa_fused(int isa) { return isa == FG_ISA_BASELINE ? FG_BASELINE_FMA : 1; }

/* Use variant `isa` from now on; 0 if it cannot run here (nothing changes then). */
static inline int fg_use_isa(int isa)
{
    if (!fg_isa_runs_here(isa))
        return 0;
#ifdef FG_X86_VARIANTS
    if (isa == FG_ISA_AVX512) {
        fg_tile_f32_in_use = fg_avx512_tile_f32;
        fg_tile_f64_in_use = fg_avx512_tile_f64;
    } else if (isa == FG_ISA_AVX2) {
        fg_tile_f32_in_use = fg_avx2_tile_f32;
        fg_tile_f64_in_use = fg_avx2_tile_f64;
    } else
#endif
    {
        fg_tile_f32_in_use = fg_baseline_tile_f32;
        fg_tile_f64_in_use = fg_baseline_tile_f64;
    }
    fg_isa_in_use = isa;
    return 1;
}

static inline int fg_isa(void) { return fg_isa_in_use; }

/* How many tiles side by side the kernel in use takes at once for mr rows (its
 * FG_AT_ONCE): 8 vector accumulators or more where the rows allow, so that two FMA
 * pipes (4 cycles of latency each) are kept busy even for one or two rows. The same
 * numbers as tiles_at_once in fastgru/backends/_numba_product.py. */
static inline int64_t tiles_at_once(int64_t mr)
{
    if (fg_isa_in_use == FG_ISA_AVX512)   /* one 512-bit vector a tile row */
        return mr == 1 ? 8 : (mr == 2 ? 4 : 2);
    return mr == 1 ? 4 : (mr == 2 ? 2 : 1);
}

static inline void tile_f32(FG_TILE_ARGS(float))
{
    fg_tile_f32_in_use(mr, nt, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc,
                       K, cont);
}

static inline void tile_f64(FG_TILE_ARGS(double))
{
    fg_tile_f64_in_use(mr, nt, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc,
                       K, cont);
}

#endif
