// Integer dot products of quantized weight rows with Q8-quantized activations (AVX512-VNNI
// `vpdpbusd` on 256-bit registers), for decode where each weight is read once per token
// (cpu-kernels.md §2). Activations are quantized once per product into 32-value blocks: int8 values,
// one f32 scale per block and the int sums of each 16 values. Weights are used as the unsigned
// operand with a zero point (cpu-kernels rule 3: no sign trick): Σ(q − z)·a = Σ q·a − z·Σa.
// Without VNNI, Linear keeps the f32 dequantize-and-dot kernels of quant.c.
#include "fuse_nn.h"
#include "fuse_kernels.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define Q8_BLOCK 32

size_t fk_q8_row_bytes(size_t n) { return n + (n / Q8_BLOCK) * 8 + (n / 16) * 4; }

/// Layout of one quantized activation row: q int8[n] | d f32[n/32] | d·Σq f32[n/32] | d·Σq per 16 f32[n/16].
/// The scaled sums make each weight block's zero-point or minimum term one multiply-add.
static inline const int8_t *q8_q(const void *row) { return (const int8_t *)row; }
static inline const float *q8_d(const void *row, size_t n) { return (const float *)((const uint8_t *)row + n); }
static inline const float *q8_sum(const void *row, size_t n) { return (const float *)((const uint8_t *)row + n + n / Q8_BLOCK * 4); }
static inline const float *q8_sum16(const void *row, size_t n) { return (const float *)((const uint8_t *)row + n + n / Q8_BLOCK * 8); }

void fk_quantize_q8(const float *x, size_t n, void *out) {
    int8_t *q = (int8_t *)out;
    float *d = (float *)((uint8_t *)out + n);
    float *sum = (float *)((uint8_t *)out + n + n / Q8_BLOCK * 4);
    float *s = (float *)((uint8_t *)out + n + n / Q8_BLOCK * 8);
    for (size_t b = 0; b < n / Q8_BLOCK; b++) {
        const float *xb = x + b * Q8_BLOCK;
        float amax = 0;
        for (int i = 0; i < Q8_BLOCK; i++) amax = fmaxf(amax, fabsf(xb[i]));
        float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
        d[b] = scale;
        int s0 = 0, s1 = 0;
        for (int i = 0; i < Q8_BLOCK; i++) {
            int v = (int)nearbyintf(xb[i] * inv);
            q[b * Q8_BLOCK + i] = (int8_t)v;
            if (i < 16) s0 += v; else s1 += v;
        }
        s[2 * b] = scale * (float)s0; s[2 * b + 1] = scale * (float)s1; sum[b] = scale * (float)(s0 + s1);
    }
}

int fk_qdot_supported(uint32_t type) {
#if defined(__x86_64__)
    int f = fk_cpu_features();
    if (!((f & 2) && (f & 8))) return 0;
    switch (type) {
    case FK_Q4_0: case FK_Q4_1: case FK_Q5_0: case FK_Q8_0: case FK_Q4_K: case FK_Q6_K: return 1;
    default: return 0;
    }
#else
    (void)type; return 0;
#endif
}

#if defined(__x86_64__)
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

VNNI static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
VNNI static inline float f16(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return _cvtsh_ss(h); }
/// Two adjacent f16 values (Q4_1's d and m) in one conversion.
VNNI static inline void f16x2(const uint8_t *p, float *a, float *b) {
    uint32_t u; memcpy(&u, p, 4);
    __m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
    *a = _mm_cvtss_f32(v); *b = _mm_cvtss_f32(_mm_movehdup_ps(v));
}
/// 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15), then high nibbles (16..31).
VNNI static inline __m256i unpack_nibbles16(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}
VNNI static inline __m256i dot(__m256i w_u8, const int8_t *a) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w_u8, _mm256_loadu_si256((const __m256i *)a));
}

/// One weight row (n_in elements) against one Q8 activation row.
VNNI static float row_dot(uint32_t type, const uint8_t *w, const void *xq, size_t n) {
    const int8_t *a = q8_q(xq); const float *ad = q8_d(xq, n), *asum = q8_sum(xq, n), *as = q8_sum16(xq, n);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float corr = 0;
    size_t nb = n / Q8_BLOCK;
    switch (type) {
    case FK_Q8_0:   // d f16 | q i8[32]; q + 128 as the unsigned operand, minus 128 Σa
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = w + b * 34;
            __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(blk + 2)), _mm256_set1_epi8((char)0x80));
            float dw = f16(blk), s = dw * ad[b];
            __m256 p = _mm256_cvtepi32_ps(dot(u, a + b * 32));
            if (b & 1) acc1 = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc1); else acc0 = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc0);
            corr += dw * 128.0f * asum[b];
        }
        break;
    case FK_Q4_0:   // d | nibbles; value d (q − 8)
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = w + b * 18;
            float dw = f16(blk), s = dw * ad[b];
            __m256 p = _mm256_cvtepi32_ps(dot(unpack_nibbles16(blk + 2), a + b * 32));
            if (b & 1) acc1 = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc1); else acc0 = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc0);
            corr += dw * 8.0f * asum[b];
        }
        break;
    case FK_Q4_1:   // d | m | nibbles; value d q + m
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = w + b * 20;
            float dw, mw; f16x2(blk, &dw, &mw);
            float s = dw * ad[b];
            __m256 p = _mm256_cvtepi32_ps(dot(unpack_nibbles16(blk + 4), a + b * 32));
            if (b & 1) acc1 = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc1); else acc0 = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc0);
            corr -= mw * asum[b];
        }
        break;
    case FK_Q5_0: { // d | qh u32 | nibbles; value d (q − 16), q = nibble | bit << 4
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = w + b * 22;
            uint32_t qh; memcpy(&qh, blk + 2, 4);
            __m256i hb = _mm256_and_si256(_mm256_movm_epi8(qh), _mm256_set1_epi8(0x10));
            __m256i q = _mm256_or_si256(unpack_nibbles16(blk + 6), hb);
            float dw = f16(blk), s = dw * ad[b];
            __m256 p = _mm256_cvtepi32_ps(dot(q, a + b * 32));
            if (b & 1) acc1 = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc1); else acc0 = _mm256_fmadd_ps(p, _mm256_set1_ps(s), acc0);
            corr += dw * 16.0f * asum[b];
        }
        break;
    }
    case FK_Q4_K: { // d | dmin | scales[12] | qs[128]; value (d sc_j) q − dmin m_j per 32-value sub-block j
        __m256i m4 = _mm256_set1_epi8(0x0F);
        for (size_t sb = 0; sb < n / 256; sb++) {
            const uint8_t *blk = w + sb * 144, *sc = blk + 4, *qs = blk + 16;
            float d = f16(blk), dmin = f16(blk + 2);
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                for (int hlf = 0; hlf < 2; hlf++) {
                    int j = 2 * c + hlf, scale, mn;
                    if (j < 4) { scale = sc[j] & 63; mn = sc[j + 4] & 63; }
                    else { scale = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4); mn = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4); }
                    size_t b = sb * 8 + (size_t)j;
                    __m256i q = hlf ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
                    __m256 p = _mm256_cvtepi32_ps(dot(q, a + b * 32));
                    __m256 s = _mm256_set1_ps(d * (float)scale * ad[b]);
                    if (hlf) acc1 = _mm256_fmadd_ps(p, s, acc1); else acc0 = _mm256_fmadd_ps(p, s, acc0);
                    corr += dmin * (float)mn * asum[b];
                }
            }
        }
        break;
    }
    case FK_Q6_K: { // ql[128] | qh[64] | scales i8[16] | d; value d sc_(i/16) (q − 32), q in 0..63
        __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
        for (size_t sb = 0; sb < n / 256; sb++) {
            const uint8_t *blk = w + sb * 210, *ql = blk, *qh = blk + 128;
            const int8_t *sc = (const int8_t *)(blk + 192);
            float d = f16(blk + 208);
            for (int h = 0; h < 2; h++) {
                __m256i la = _mm256_loadu_si256((const __m256i *)(ql + 64 * h)), lb = _mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32));
                __m256i hv = _mm256_loadu_si256((const __m256i *)(qh + 32 * h));
                __m256i q[4] = {
                    _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m2), 4)),
                    _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 2), m2), 4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 4), m2), 4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 6), m2), 4)),
                };
                for (int k = 0; k < 4; k++) {
                    size_t b = sb * 8 + (size_t)(4 * h + k);
                    int g = 8 * h + 2 * k;   // scales of elements 0..15 and 16..31 of this block
                    float s0 = d * (float)sc[g] * ad[b], s1 = d * (float)sc[g + 1] * ad[b];
                    __m256 s = _mm256_setr_ps(s0, s0, s0, s0, s1, s1, s1, s1);
                    __m256 p = _mm256_cvtepi32_ps(dot(q[k], a + b * 32));
                    if (k & 1) acc1 = _mm256_fmadd_ps(p, s, acc1); else acc0 = _mm256_fmadd_ps(p, s, acc0);
                    corr += 32.0f * d * ((float)sc[g] * as[2 * b] + (float)sc[g + 1] * as[2 * b + 1]);
                }
            }
        }
        break;
    }
    default: return NAN;
    }
    return hsum8(_mm256_add_ps(acc0, acc1)) - corr;
}

VNNI static void matmul_rows_q8_vnni(uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                                     const void *xq, size_t ldxq, size_t m, float *y, size_t ldy) {
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * row_bytes;
        for (size_t i = 0; i < m; i++) y[i * ldy + r] = row_dot(type, row, (const uint8_t *)xq + i * ldxq, n_in);
    }
}
#endif

void fk_matmul_rows_q8(uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                       const void *xq, size_t ldxq, size_t m, float *y, size_t ldy) {
#if defined(__x86_64__)
    matmul_rows_q8_vnni(type, w, row_bytes, n_in, r0, r1, xq, ldxq, m, y, ldy);
#else
    (void)type; (void)w; (void)row_bytes; (void)n_in; (void)r0; (void)r1; (void)xq; (void)ldxq; (void)m; (void)y; (void)ldy;
#endif
}
