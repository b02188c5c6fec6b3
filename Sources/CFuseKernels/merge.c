// The task-arithmetic combine of FuseMerge (TaskArithmeticCore.swift `combine`, the reference): per
// element, uₖ = r(r(θₖ − θ₀)·wₖ) or r(τₖ·wₖ); with sign consensus g = sign(Σuₖ) (ties positive),
// Δ = Σ[uₖ·g > 0]uₖ, D = Σ[uₖ·g > 0]wₖ (an exact zero becomes 1); without, Δ = Σuₖ, D = the scalar
// divisor; then Δ ← r(Δ/D) when normalizing, r(Δ·λ) when λ ≠ 1, and out = r(θ₀ + Δ). r rounds to bf16
// (round to nearest even, a NaN keeps its payload with the quiet bit) or is the identity. Sums run in
// the order k = 0, 1, ... from 0 with one rounding at the end, exactly as the Swift loops do, and no
// multiply-add is fused, so both paths give the same bits.
#pragma clang fp contract(off)
#include "fuse_merge.h"
#include "fuse_kernels.h"
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline float round_bf16(float x) {
    uint32_t b; memcpy(&b, &x, 4);
    uint32_t r = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
    if ((b & 0x7FFFFFFFu) > 0x7F800000u) r = (b | 0x00400000u) & 0xFFFF0000u;
    float y; memcpy(&y, &r, 4);
    return y;
}

static inline float rr(float x, int rounding) { return rounding ? round_bf16(x) : x; }

// MARK: - portable reference order

static void combine_scalar(float *const *taus, const float *base, float *out, size_t lo, size_t m,
                           const fk_combine_settings *s, float *delta, float *divisor, float *total) {
    const int R = s->rounding;
    for (size_t j = 0; j < m; j++) delta[j] = 0;
    for (int k = 0; k < s->count; k++) {
        float *x = taus[k] + lo; const float *y = base + lo; const float w = s->weights[k];
        if (s->subtract_base) { for (size_t j = 0; j < m; j++) { float d = rr(x[j] - y[j], R); x[j] = rr(d * w, R); } }
        else { for (size_t j = 0; j < m; j++) x[j] = rr(x[j] * w, R); }
    }
    if (s->consensus) {
        for (size_t j = 0; j < m; j++) { total[j] = 0; divisor[j] = 0; }
        for (int k = 0; k < s->count; k++) { const float *x = taus[k] + lo; for (size_t j = 0; j < m; j++) total[j] += x[j]; }
        for (size_t j = 0; j < m; j++) total[j] = total[j] >= 0 ? 1.0f : -1.0f;
        for (int k = 0; k < s->count; k++) {
            const float *x = taus[k] + lo; const float w = s->weights[k];
            for (size_t j = 0; j < m; j++) {
                float u = x[j]; int agree = u * total[j] > 0;
                delta[j] += agree ? u : 0.0f;
                divisor[j] += agree ? w : 0.0f;
            }
        }
        for (size_t j = 0; j < m; j++) { float d = rr(divisor[j], R); divisor[j] = d == 0 ? 1.0f : d; delta[j] = rr(delta[j], R); }
    } else {
        for (int k = 0; k < s->count; k++) { const float *x = taus[k] + lo; for (size_t j = 0; j < m; j++) delta[j] += x[j]; }
        for (size_t j = 0; j < m; j++) { delta[j] = rr(delta[j], R); divisor[j] = s->scalar_divisor; }
    }
    const int scale = s->lambda != 1.0f;
    float *dst = out + lo; const float *src = base + lo;
    for (size_t j = 0; j < m; j++) {
        float d = delta[j];
        if (s->normalize) d = rr(d / divisor[j], R);
        if (scale) d = rr(d * s->lambda, R);
        dst[j] = rr(src[j] + d, R);
    }
}

// MARK: - AVX-512: the same steps, 16 lanes at a time, one pass per element block

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline __m512 round_bf16_v(__m512 x) {
    const __m512i b = _mm512_castps_si512(x);
    const __m512i high = _mm512_set1_epi32((int)0xFFFF0000u);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)), lsb), high);
    __m512i nan = _mm512_and_si512(_mm512_or_si512(b, _mm512_set1_epi32(0x00400000)), high);
    __mmask16 is_nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(b, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(is_nan, rounded, nan));
}

#define FK_MAX_INPUTS 64

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void combine_avx512(float *const *taus, const float *base, float *out, size_t lo, size_t m,
                           const fk_combine_settings *s, int R) {
    const int n = s->count;
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
    const __m512 lambda = _mm512_set1_ps(s->lambda), scalar_div = _mm512_set1_ps(s->scalar_divisor);
    const int scale = s->lambda != 1.0f;
    __m512 w[FK_MAX_INPUTS];
    for (int k = 0; k < n; k++) w[k] = _mm512_set1_ps(s->weights[k]);
#define RND(v) (R ? round_bf16_v(v) : (v))
    for (size_t j = 0; j < m; j += 16) {
        const size_t left = m - j;
        const __mmask16 lanes = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        const size_t at = lo + j;
        const __m512 b = _mm512_maskz_loadu_ps(lanes, base + at);
        __m512 u[FK_MAX_INPUTS];
        for (int k = 0; k < n; k++) {
            __m512 x = _mm512_maskz_loadu_ps(lanes, taus[k] + at);
            if (s->subtract_base) x = RND(_mm512_sub_ps(x, b));
            x = RND(_mm512_mul_ps(x, w[k]));
            _mm512_mask_storeu_ps(taus[k] + at, lanes, x);
            u[k] = x;
        }
        __m512 delta = zero, divisor;
        if (s->consensus) {
            __m512 total = zero;
            for (int k = 0; k < n; k++) total = _mm512_add_ps(total, u[k]);
            // total >= 0 (ordered: a NaN total votes -1, as the reference's comparison does)
            __m512 sign = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(total, zero, _CMP_GE_OQ), minus, one);
            __m512 div = zero;
            for (int k = 0; k < n; k++) {
                __mmask16 agree = _mm512_cmp_ps_mask(_mm512_mul_ps(u[k], sign), zero, _CMP_GT_OQ);
                delta = _mm512_add_ps(delta, _mm512_maskz_mov_ps(agree, u[k]));
                div = _mm512_add_ps(div, _mm512_maskz_mov_ps(agree, w[k]));
            }
            div = RND(div);
            divisor = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(div, zero, _CMP_EQ_OQ), div, one);
            delta = RND(delta);
        } else {
            for (int k = 0; k < n; k++) delta = _mm512_add_ps(delta, u[k]);
            delta = RND(delta);
            divisor = scalar_div;
        }
        if (s->normalize) delta = RND(_mm512_div_ps(delta, divisor));
        if (scale) delta = RND(_mm512_mul_ps(delta, lambda));
        _mm512_mask_storeu_ps(out + at, lanes, RND(_mm512_add_ps(b, delta)));
    }
#undef RND
}
#endif

void fk_ta_combine(float *const *taus, const float *base, float *out, size_t lo, size_t m, const fk_combine_settings *s) {
    if (m == 0) return;
#if defined(__x86_64__)
    if ((fk_cpu_features() & 2) && s->count <= FK_MAX_INPUTS) {
        combine_avx512(taus, base, out, lo, m, s, s->rounding);
        return;
    }
#endif
    enum { BLOCK = 1024 };   // scratch on the stack, block by block (elements are independent)
    float delta[BLOCK], divisor[BLOCK], total[BLOCK];
    for (size_t j = 0; j < m; j += BLOCK) {
        size_t len = m - j < BLOCK ? m - j : BLOCK;
        combine_scalar(taus, base, out, lo + j, len, s, delta, divisor, total);
    }
}
