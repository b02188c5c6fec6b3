// Float conversions between f32 and the two 16-bit storage types. Rounding rules follow
// ../shared/reference/formats-and-models.md §8: RNE everywhere, subnormals produced, NaN canonical.
#include "fuse_kernels.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#include <cpuid.h>
#endif

static int detected = -1;

int fk_cpu_features(void) {
    if (detected >= 0) return detected;
    int f = 0;
    const char *portable = getenv("FUSEKIT_PORTABLE");
    if (portable && portable[0] == '1') { detected = 0; return 0; }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        unsigned a, b, c, d;
        if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C)) f |= 1;
    }
    if ((f & 1) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) f |= 2;
    if ((f & 2) && __builtin_cpu_supports("avx512bf16")) f |= 4;
    if ((f & 2) && __builtin_cpu_supports("avx512vnni")) f |= 8;
#endif
    detected = f;
    return f;
}

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// MARK: - scalar reference

uint16_t fk_f32_to_bf16_scalar(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)(((u >> 16) & 0x8000u) | 0x7FC0u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float fk_f16_to_f32_scalar(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    uint32_t out;
    if (exp == 0x1F) {
        out = sign | 0x7F800000u | (mant << 13);
    } else if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        // subnormal: mant * 2^-24, exact in f32
        float v = (float)mant * 5.9604644775390625e-08f;
        return bits_f32(f32_bits(v) | sign);
    } else {
        out = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    return bits_f32(out);
}

uint16_t fk_f32_to_f16_scalar(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);     // >= 65520 rounds to inf
    if (a < 0x38800000u) {                                       // below 2^-14: subnormal or zero
        // value = a_float; result = round(value / 2^-24)
        uint32_t e = a >> 23;
        if (e < 102) return sign;                                // < 2^-25: rounds to 0 (2^-25 tie -> 0 too)
        uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126 - e;                                // 14..24 bits dropped
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    // normal: rebias exponent, round mantissa from 23 to 10 bits (carry may bump the exponent)
    uint32_t r = a - 0x38000000u;                               // exponent bias 127 -> 15
    r = r + 0xFFFu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

// MARK: - portable loops

static void bf16_to_f32_portable(const uint16_t *s, float *d, size_t n) {
    uint32_t *o = (uint32_t *)d;
    for (size_t i = 0; i < n; i++) o[i] = (uint32_t)s[i] << 16;
}
static void f32_to_bf16_portable(const float *s, uint16_t *d, size_t n) {
    const uint32_t *in = (const uint32_t *)s;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = in[i];
        uint16_t r = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
        d[i] = ((u & 0x7FFFFFFFu) > 0x7F800000u) ? (uint16_t)(((u >> 16) & 0x8000u) | 0x7FC0u) : r;
    }
}

#if defined(__x86_64__)
// MARK: - AVX-512 / F16C paths

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void bf16_to_f32_avx512(const uint16_t *s, float *d, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(s + i));
        __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
        _mm512_storeu_si512((void *)(d + i), w);
    }
    bf16_to_f32_portable(s + i, d + i, n - i);
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void f32_to_bf16_avx512(const float *s, uint16_t *d, size_t n) {
    size_t i = 0;
    const __m512i bias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF), inf = _mm512_set1_epi32(0x7F800000);
    const __m512i qnan = _mm512_set1_epi32(0x7FC0), signm = _mm512_set1_epi32(0x8000);
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512((const void *)(s + i));
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, bias), lsb), 16);
        __mmask16 isnan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absmask), inf);
        __m512i nanv = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u, 16), signm), qnan);
        r = _mm512_mask_mov_epi32(r, isnan, nanv);
        _mm256_storeu_si256((__m256i *)(d + i), _mm512_cvtepi32_epi16(r));
    }
    f32_to_bf16_portable(s + i, d + i, n - i);
}

/// vcvtph2ps quiets signalling NaNs (sets the quiet bit); numpy, gguf-py and the scalar path keep the
/// bits, so a group of 8 holding one (|h| strictly between 0x7C00 and 0x7E00) takes the scalar path.
__attribute__((target("avx2,f16c")))
static void f16_to_f32_f16c(const uint16_t *s, float *d, size_t n) {
    size_t i = 0;
    const __m128i abs_mask = _mm_set1_epi16(0x7FFF), inf = _mm_set1_epi16(0x7C00), quiet = _mm_set1_epi16(0x7E00);
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i a = _mm_and_si128(h, abs_mask);
        if (_mm_movemask_epi8(_mm_and_si128(_mm_cmpgt_epi16(a, inf), _mm_cmplt_epi16(a, quiet)))) {
            for (size_t j = i; j < i + 8; j++) d[j] = fk_f16_to_f32_scalar(s[j]);
            continue;
        }
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) d[i] = fk_f16_to_f32_scalar(s[i]);
}

__attribute__((target("avx2,f16c")))
static void f32_to_f16_f16c(const float *s, uint16_t *d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(s + i);
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) d[i] = fk_f32_to_f16_scalar(s[i]);
}
#endif

// MARK: - dispatch

void fk_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (fk_cpu_features() & 2) { bf16_to_f32_avx512(src, dst, n); return; }
#endif
    bf16_to_f32_portable(src, dst, n);
}

void fk_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
#if defined(__x86_64__)
    if (fk_cpu_features() & 2) { f32_to_bf16_avx512(src, dst, n); return; }
#endif
    f32_to_bf16_portable(src, dst, n);
}

void fk_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (fk_cpu_features() & 1) { f16_to_f32_f16c(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = fk_f16_to_f32_scalar(src[i]);
}

void fk_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
#if defined(__x86_64__)
    if (fk_cpu_features() & 1) { f32_to_f16_f16c(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = fk_f32_to_f16_scalar(src[i]);
}
