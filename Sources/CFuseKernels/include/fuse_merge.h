// Merge kernels (FuseMerge): the task-arithmetic combine, AVX-512 with a portable fallback.
#ifndef FUSE_MERGE_H
#define FUSE_MERGE_H
#include <stddef.h>

/// Steps 3-7 of FuseMerge's generalized task arithmetic (Methods/TaskArithmeticCore.swift `combine`),
/// over elements [lo, lo + m) of every buffer. `taus[k]` hold τₖ (or θₖ when subtract_base) and are
/// overwritten with uₖ = r(τₖ·wₖ). rounding: 0 = none (f32), 1 = bf16 after every op (torch's rounding).
/// Results equal the Swift reference bit for bit (same op order, no fused multiply-add).
typedef struct {
    const float *weights;
    int count;
    int consensus;
    int normalize;
    float lambda;
    float scalar_divisor;
    int subtract_base;
    int rounding;
} fk_combine_settings;

void fk_ta_combine(float *const *taus, const float *base, float *out, size_t lo, size_t m, const fk_combine_settings *s);

#endif
