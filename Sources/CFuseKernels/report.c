// One-pass sums for the merge analysis (fuse_report.h). Blocks of 256 elements keep the k task
// vectors of a block in L1; every inner loop is a plain loop over the block that the compiler
// vectorises, with f32 partial sums per block added into f64 totals.
#include "fuse_report.h"
#include <string.h>

#define BLOCK 256

static float dotf(const float *a, const float *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) { s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1]; s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3]; }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

int fk_merge_stats(const float *const *x, int k, const float *base, const float *m, size_t n,
                   double *gram, double *delta_dot, double *delta_sq, double *dist_sq, double *src_sq,
                   int64_t *conflicts, int64_t *contested, int64_t *changed) {
    if (k < 1 || k > FK_MERGE_STATS_MAX_SOURCES) return -1;
    float r[BLOCK], d[BLOCK], diff[BLOCK];
    float t[FK_MERGE_STATS_MAX_SOURCES][BLOCK];
    uint8_t pos[BLOCK], neg[BLOCK];
    const float inv = 1.0f / (float)k;
    for (size_t start = 0; start < n; start += BLOCK) {
        const int len = (int)(n - start < BLOCK ? n - start : BLOCK);
        const float *mb = m + start;
        if (base) {
            memcpy(r, base + start, (size_t)len * sizeof(float));
            int64_t ch = 0;
            for (int j = 0; j < len; j++) ch += mb[j] != r[j];
            *changed += ch;
        } else {
            for (int j = 0; j < len; j++) r[j] = 0;
            for (int i = 0; i < k; i++) { const float *xi = x[i] + start; for (int j = 0; j < len; j++) r[j] += xi[j]; }
            for (int j = 0; j < len; j++) r[j] *= inv;
        }
        memset(pos, 0, sizeof pos); memset(neg, 0, sizeof neg);
        for (int i = 0; i < k; i++) {
            const float *xi = x[i] + start;
            float *ti = t[i];
            src_sq[i] += dotf(xi, xi, len);
            for (int j = 0; j < len; j++) diff[j] = mb[j] - xi[j];
            dist_sq[i] += dotf(diff, diff, len);
            for (int j = 0; j < len; j++) {
                ti[j] = xi[j] - r[j];
                pos[j] += ti[j] > 0;
                neg[j] += ti[j] < 0;
            }
        }
        int64_t cf = 0, ct = 0;
        for (int j = 0; j < len; j++) {
            ct += (pos[j] + neg[j]) >= 2;
            cf += pos[j] > 0 && neg[j] > 0;
        }
        *conflicts += cf; *contested += ct;
        for (int j = 0; j < len; j++) d[j] = mb[j] - r[j];
        *delta_sq += dotf(d, d, len);
        for (int a = 0; a < k; a++) {
            delta_dot[a] += dotf(d, t[a], len);
            for (int b = a; b < k; b++) {
                double v = dotf(t[a], t[b], len);
                gram[a * k + b] += v;
                if (b != a) gram[b * k + a] += v;
            }
        }
    }
    return 0;
}
