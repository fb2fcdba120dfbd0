/* The one synchronisation the C kernels need: a spinning barrier for a team of
 * threads; the twin of fastgru/backends/_numba_sync.py (its `barrier`).
 *
 * `sync` points to at least 16 int64 values, zeroed before a team starts:
 * sync[0] counts arrivals, sync[8] is the generation (a separate cache line).
 */
#ifndef FASTGRU_SYNC_H
#define FASTGRU_SYNC_H

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#include <immintrin.h>
#define FG_CPU_RELAX() _mm_pause()
#else
#define FG_CPU_RELAX() ((void)0)
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#define FG_GIVE_WAY() ((void)sched_yield())
#else
#define FG_GIVE_WAY() FG_CPU_RELAX()
#endif

#define FG_SPINS 4000   /* pauses before a waiting thread starts yielding its core */

/* Wait until all nthreads threads of the team have arrived (nothing for one).
 * Sense by generation: read it, arrive; the last to arrive resets the count and
 * bumps the generation, the others wait for the bump (spinning, then yielding
 * the core so that an oversubscribed machine still makes progress). */
static inline void barrier(int64_t *sync, int nthreads)
{
    int64_t generation;
    int spins = 0;
    if (nthreads <= 1)
        return;
    generation = __atomic_load_n(&sync[8], __ATOMIC_SEQ_CST);
    if (__atomic_fetch_add(&sync[0], 1, __ATOMIC_SEQ_CST) == nthreads - 1) {
        __atomic_store_n(&sync[0], 0, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&sync[8], 1, __ATOMIC_SEQ_CST);
        return;
    }
    while (__atomic_load_n(&sync[8], __ATOMIC_SEQ_CST) == generation) {
        if (spins < FG_SPINS) {
            FG_CPU_RELAX();
            spins++;
        } else {
            FG_GIVE_WAY();
        }
    }
}

#endif
