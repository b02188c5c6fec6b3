// The persistent thread pool behind FuseTensor's parallelFor (pool.c).
#ifndef FUSE_POOL_H
#define FUSE_POOL_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef void (*fk_task_fn)(void *ctx, int64_t chunk);
/// Runs fn(ctx, c) for every c in [0, chunks) on the caller plus up to threads - 1 pool workers and
/// returns when all are done. Nested calls run inline.
void fk_pool_run(int threads, int64_t chunks, fk_task_fn fn, void *ctx);
#ifdef __cplusplus
}
#endif
#endif
