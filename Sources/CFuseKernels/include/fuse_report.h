// Merge-analysis sums for `fusekit report` (FuseReport's MergeSums), one pass over a chunk.
#ifndef FUSE_REPORT_H
#define FUSE_REPORT_H
#include <stddef.h>
#include <stdint.h>

/// Largest number of sources fk_merge_stats takes.
#define FK_MERGE_STATS_MAX_SOURCES 32

/// For k sources x[0..k) of n values, the reference r = base (or the mean of the sources when base is
/// NULL), τ_i = x_i − r and δ = m − r, adds into the outputs: gram[a*k+b] += Σ τ_a τ_b (full k×k),
/// delta_dot[a] += Σ δ τ_a, *delta_sq += Σ δ², dist_sq[a] += Σ (m − x_a)², src_sq[a] += Σ x_a²,
/// *conflicts += #elements whose nonzero τ include both signs, *contested += #elements with ≥ 2 nonzero τ,
/// *changed += #elements with m ≠ base (base only). Sums run in f32 over blocks of 256 elements and are
/// carried in f64. Returns -1 when k is out of range, 0 otherwise.
int fk_merge_stats(const float *const *x, int k, const float *base, const float *m, size_t n,
                   double *gram, double *delta_dot, double *delta_sq, double *dist_sq, double *src_sq,
                   int64_t *conflicts, int64_t *contested, int64_t *changed);

#endif
