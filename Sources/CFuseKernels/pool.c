// One persistent pool of worker threads for FuseKit's parallel loops (cpu-kernels.md §4): the caller
// plus `threads - 1` workers created once. A job is published by bumping a generation counter; workers
// spin on it with `pause` for a bounded time (a decode step hands out work every few microseconds),
// then sleep on a condition variable. Chunks are taken from an atomic counter, so a worker that is off
// CPU (another tenant, a page fault) delays nothing: the caller takes its chunks. Callers guarantee each
// chunk writes its own output, so which thread runs a chunk never changes a result.
#include "fuse_pool.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/// `pause` iterations a worker spins before sleeping (tens of microseconds).
#define SPIN_BEFORE_SLEEP 20000
/// `pause` iterations the caller spins on unfinished chunks before yielding its core.
#define SPIN_BEFORE_YIELD 2000
#define MAX_WORKERS 63
/// A job where the caller waited for stragglers longer than it worked, or did every chunk itself,
/// counts as stalled; after
/// STALL_LIMIT more stalled than clean jobs the pool runs inline for SOLO_JOBS jobs, then tries again.
/// On a shared 2-core VM a worker preempted mid-chunk (another tenant on its core) otherwise stalls
/// every step: one thread is then faster than two.
#define STALL_LIMIT 8
#define SOLO_JOBS 512

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Alignas(64) atomic_uint_fast64_t generation;
    _Alignas(64) atomic_int_fast64_t next;
    _Alignas(64) atomic_int_fast64_t done;
    _Alignas(64) atomic_int inside;
    _Alignas(64) int64_t chunks;
    fk_task_fn fn;
    void *ctx;
    int active;        // workers taking part in the current job
    int created;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static _Thread_local int inside_pool = 0;
static int stall_score = 0;
static int64_t solo_jobs_left = 0;

static inline uint64_t now_ns(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;

struct start { int index; uint64_t seen; };

static void *worker(void *arg) {
    struct start st = *(struct start *)arg;
    free(arg);
    inside_pool = 1;
    uint64_t seen = st.seen;   // the generation before the job that created this worker
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load(&pool.generation)) == seen && spins < SPIN_BEFORE_SLEEP) { CPU_RELAX(); spins++; }
        if (g == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((g = atomic_load(&pool.generation)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = g;
        atomic_fetch_add(&pool.inside, 1);
        // Take part only if the job is still the one seen (the caller may have finished it alone).
        if (atomic_load(&pool.generation) == g && st.index < pool.active) {
            int64_t c;
            while ((c = atomic_fetch_add(&pool.next, 1)) < pool.chunks) { pool.fn(pool.ctx, c); atomic_fetch_add(&pool.done, 1); }
        }
        atomic_fetch_sub(&pool.inside, 1);
    }
    return NULL;
}

void fk_pool_run(int threads, int64_t chunks, fk_task_fn fn, void *ctx) {
    if (chunks <= 0) return;
    int workers = threads - 1;
    if (workers > MAX_WORKERS) workers = MAX_WORKERS;
    if (chunks < (int64_t)workers + 1) workers = (int)chunks - 1;
    // Nested calls (from inside a job), single-threaded runs and a second caller while the pool is
    // busy (another thread) run inline: same chunks, same results.
    if (workers <= 0 || inside_pool || pthread_mutex_trylock(&run_lock) != 0) {
        for (int64_t c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    if (solo_jobs_left > 0) {
        solo_jobs_left--;
        pthread_mutex_unlock(&run_lock);
        for (int64_t c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    while (pool.created < workers) {
        pthread_t t;
        struct start *st = malloc(sizeof *st);
        if (!st) break;
        st->index = pool.created; st->seen = atomic_load(&pool.generation);
        pthread_attr_t attr; pthread_attr_init(&attr); pthread_attr_setstacksize(&attr, 8 << 20);
        if (pthread_create(&t, &attr, worker, st) != 0) { free(st); pthread_attr_destroy(&attr); break; }
        pthread_attr_destroy(&attr);
        pthread_detach(t);
        pool.created++;
    }
    if (workers > pool.created) workers = pool.created;
    pool.fn = fn; pool.ctx = ctx; pool.chunks = chunks; pool.active = workers;
    atomic_store(&pool.done, 0);
    atomic_store(&pool.next, 0);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    inside_pool = 1;
    uint64_t t0 = now_ns();
    int64_t c, mine = 0;
    while ((c = atomic_fetch_add(&pool.next, 1)) < chunks) { fn(ctx, c); atomic_fetch_add(&pool.done, 1); mine++; }
    inside_pool = 0;
    uint64_t t1 = now_ns();
    int spins = 0;
    while (atomic_load(&pool.done) < chunks) { if (++spins < SPIN_BEFORE_YIELD) CPU_RELAX(); else sched_yield(); }
    uint64_t t2 = now_ns();
    // Stalled: waited longer than it worked (+20 µs slack), or no worker got to run at all (it is off
    // CPU, and its spinning would only compete with the caller for the one core left).
    if (t2 - t1 > t1 - t0 + 20000 || (mine == chunks && chunks > 1)) stall_score++;
    else if (stall_score > 0) stall_score--;
    if (stall_score > STALL_LIMIT) { stall_score = 0; solo_jobs_left = SOLO_JOBS; }
    // No worker may still be reading this job's fields when the caller publishes the next one.
    while (atomic_load(&pool.inside) > 0) CPU_RELAX();
    pthread_mutex_unlock(&run_lock);
}
