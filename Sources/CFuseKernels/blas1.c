// Level-1 loops with f64 accumulation (DESIGN.md: accumulate norms and dot products in Float64).
#include "fuse_kernels.h"

void fk_axpy_f32(float a, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

double fk_dot_f32(const float *x, const float *y, size_t n) {
    // four independent f64 chains so the loop is not latency-bound
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)x[i] * y[i];         s1 += (double)x[i + 1] * y[i + 1];
        s2 += (double)x[i + 2] * y[i + 2]; s3 += (double)x[i + 3] * y[i + 3];
    }
    for (; i < n; i++) s0 += (double)x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

double fk_sumsq_f32(const float *x, size_t n) { return fk_dot_f32(x, x, n); }
