/* The one synchronisation the C kernels need: a spinning barrier for a team of
 * threads; the twin of fastgru/backends/_numba_sync.py (its `barrier`).
 *
 * `sync` points to at least 16 int64 values, zeroed before a team starts:
 * sync[0] counts arrivals; sync[8] (a separate cache line) holds the generation
 * in its first 32 bits, and sync[9] the number of sleeping waiters.
 */
#ifndef FASTGRU_SYNC_H
#define FASTGRU_SYNC_H

#include <stdint.h>
#include <stddef.h>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#include <immintrin.h>
#define FG_CPU_RELAX() _mm_pause()
#else
#define FG_CPU_RELAX() ((void)0)
#endif

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define FG_HAVE_FUTEX 1
#elif defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#endif

/* How a waiting thread waits: it spins (a step is 10 us to 1 ms of work, and a
 * spinning thread wakes at once), then sleeps on a futex until the last arrival
 * wakes it (Linux; elsewhere it yields its core in a loop). Sleeping matters on a
 * machine busy with other processes: a teammate may be waiting for a core, and a
 * sleeping thread frees one. */
#define FG_SPINS 4000

/* sync[8], as a 32-bit word, is the generation (the futex word); sync[9] counts
 * the sleepers. */
static inline int32_t *fg_generation(int64_t *sync) { return (int32_t *)&sync[8]; }

static inline void fg_sleep(int64_t *sync, int32_t generation)
{
    int32_t *word = fg_generation(sync);
#ifdef FG_HAVE_FUTEX
    __atomic_fetch_add(&sync[9], 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == generation)
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, generation, NULL, NULL, 0);
    __atomic_fetch_sub(&sync[9], 1, __ATOMIC_SEQ_CST);
#else
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == generation) {
#if defined(__unix__) || defined(__APPLE__)
        sched_yield();
#else
        FG_CPU_RELAX();
#endif
    }
#endif
}

/* Wait until all nthreads threads of the team have arrived (nothing for one).
 * Sense by generation: read it, arrive; the last to arrive resets the count,
 * bumps the generation and wakes the sleepers; the others wait for the bump. */
static inline void barrier(int64_t *sync, int nthreads)
{
    int32_t *word = fg_generation(sync);
    int32_t generation;
    int spins;
    if (nthreads <= 1)
        return;
    generation = __atomic_load_n(word, __ATOMIC_SEQ_CST);
    if (__atomic_fetch_add(&sync[0], 1, __ATOMIC_SEQ_CST) == nthreads - 1) {
        __atomic_store_n(&sync[0], 0, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(word, 1, __ATOMIC_SEQ_CST);
#ifdef FG_HAVE_FUTEX
        if (__atomic_load_n(&sync[9], __ATOMIC_SEQ_CST) > 0)
            syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
#endif
        return;
    }
    for (spins = 0; spins < FG_SPINS; spins++) {
        if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != generation)
            return;
        FG_CPU_RELAX();
    }
    fg_sleep(sync, generation);
}

#endif
