// Row-interleaved quantized weights for decode (cpu-kernels.md §2, "Rules for FuseKit's kernels"):
// 16 output rows form a panel; for each 32-weight block the panel holds, per group of 4 k values,
// the 4 bytes of each of its 16 rows side by side (one 64-byte zmm), then the 16 rows' scales. One
// broadcast of 4 activation bytes and one `vpdpbusd` update 16 rows at once: no horizontal sums, no
// per-row float work inside a block. Weights are unsigned with w = d·q + m (m a zero point or a min).
//   nibble panels, 4 groups × 64 bytes of nibble pairs (low nibble: element k, high: k + 16):
//     Q4_0  d f16[16]                    m = −8d      (the file's bytes per weight, reordered)
//     Q4_1  d f16[16] | m f16[16]                     (the same)
//     Q4_K  d·sc f32[16] | −dmin·min f32[16]          (per 32-value sub-block; 24 B per 32 vs 18)
//   byte panels, 8 groups × 64 bytes of q:
//     Q8_0  q + 128, d f16[16]           m = −128d    (the file's bytes per weight)
//     Q5_0  q in 0..31, d f16[16]        m = −16d     (34 B per 32 vs 22: the 5th bit unpacked)
//     Q6_K  q in 0..63, d·sc f32[16] for elements 0..15 | for 16..31, m = −32·scale (40 B vs 26)
// Activations are the Q8 rows of qdot.c (scale per 32, scale·Σq per 32 and per 16).
#include "fuse_nn.h"
#include "fuse_kernels.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define PANEL 16

static size_t panel_block_bytes(uint32_t type) {
    switch (type) {
    case FK_Q4_0: return 4 * 64 + 32;
    case FK_Q4_1: return 4 * 64 + 64;
    case FK_Q4_K: return 4 * 64 + 128;
    case FK_Q8_0: case FK_Q5_0: return 8 * 64 + 32;
    case FK_Q6_K: return 8 * 64 + 128;
    default: return 0;
    }
}
static int nibble_panel(uint32_t type) { return type == FK_Q4_0 || type == FK_Q4_1 || type == FK_Q4_K; }

size_t fk_panel_bytes(uint32_t type, size_t rows, size_t n_in) {
    size_t bb = panel_block_bytes(type);
    if (!bb || rows % PANEL || n_in % 32) return 0;
    return rows / PANEL * (n_in / 32) * bb;
}

int fk_panel_supported(uint32_t type, size_t rows) {
    return fk_qdot_supported(type) && panel_block_bytes(type) != 0 && rows % PANEL == 0;
}

static float half_to_float(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return fk_f16_to_f32_scalar(h); }

/// The 32 unsigned values of block b of a row, and its f32 scales for the K-quants (formats §2.5).
static void unpack_block(uint32_t type, const uint8_t *row, size_t b, uint8_t q[32], float *s0, float *s1) {
    switch (type) {
    case FK_Q5_0: {
        const uint8_t *blk = row + b * 22; uint32_t qh; memcpy(&qh, blk + 2, 4);
        for (int i = 0; i < 16; i++) {
            q[i] = (uint8_t)((blk[6 + i] & 0xF) | (((qh >> i) & 1) << 4));
            q[i + 16] = (uint8_t)((blk[6 + i] >> 4) | (((qh >> (i + 16)) & 1) << 4));
        }
        break;
    }
    case FK_Q4_K: {
        const uint8_t *blk = row + (b / 8) * 144, *sc = blk + 4, *qs = blk + 16;
        int j = (int)(b % 8), c = j / 2, hlf = j % 2, scale, mn;
        if (j < 4) { scale = sc[j] & 63; mn = sc[j + 4] & 63; }
        else { scale = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4); mn = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4); }
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)((qs[32 * c + l] >> (4 * hlf)) & 0xF);
        *s0 = half_to_float(blk) * (float)scale; *s1 = -(half_to_float(blk + 2) * (float)mn);
        break;
    }
    case FK_Q6_K: {
        const uint8_t *blk = row + (b / 8) * 210, *ql = blk, *qh = blk + 128;
        const int8_t *sc = (const int8_t *)(blk + 192);
        int k = (int)(b % 8), h = k / 4, part = k % 4;   // elements 128h + 32·part + l
        for (int l = 0; l < 32; l++) {
            int lo = part == 0 ? ql[64 * h + l] & 0xF : part == 1 ? ql[64 * h + 32 + l] & 0xF
                   : part == 2 ? ql[64 * h + l] >> 4 : ql[64 * h + 32 + l] >> 4;
            q[l] = (uint8_t)(lo | (((qh[32 * h + l] >> (2 * part)) & 3) << 4));
        }
        float d = half_to_float(blk + 208);
        *s0 = d * (float)sc[8 * h + 2 * part]; *s1 = d * (float)sc[8 * h + 2 * part + 1];
        break;
    }
    default: break;
    }
}

void fk_pack_panels(uint32_t type, const void *w, size_t row_bytes, size_t rows, size_t n_in, void *out) {
    size_t nb = n_in / 32, bb = panel_block_bytes(type), groups = nibble_panel(type) ? 4 : 8;
    for (size_t p = 0; p < rows / PANEL; p++) {
        for (size_t b = 0; b < nb; b++) {
            uint8_t *dst = (uint8_t *)out + (p * nb + b) * bb, *scales = dst + groups * 64;
            for (size_t r = 0; r < PANEL; r++) {
                const uint8_t *row = (const uint8_t *)w + (p * PANEL + r) * row_bytes;
                uint8_t q[32]; float s0 = 0, s1 = 0;
                switch (type) {
                case FK_Q4_0:
                    memcpy(scales + 2 * r, row + b * 18, 2);
                    for (size_t g = 0; g < 4; g++) memcpy(dst + g * 64 + r * 4, row + b * 18 + 2 + 4 * g, 4);
                    break;
                case FK_Q4_1:
                    memcpy(scales + 2 * r, row + b * 20, 2); memcpy(scales + 32 + 2 * r, row + b * 20 + 2, 2);
                    for (size_t g = 0; g < 4; g++) memcpy(dst + g * 64 + r * 4, row + b * 20 + 4 + 4 * g, 4);
                    break;
                case FK_Q8_0:
                    memcpy(scales + 2 * r, row + b * 34, 2);
                    for (size_t g = 0; g < 8; g++)
                        for (size_t i = 0; i < 4; i++) dst[g * 64 + r * 4 + i] = (uint8_t)(row[b * 34 + 2 + 4 * g + i] ^ 0x80);
                    break;
                case FK_Q5_0:
                    memcpy(scales + 2 * r, row + b * 22, 2);
                    unpack_block(type, row, b, q, &s0, &s1);
                    for (size_t g = 0; g < 8; g++) memcpy(dst + g * 64 + r * 4, q + 4 * g, 4);
                    break;
                case FK_Q4_K:
                    unpack_block(type, row, b, q, &s0, &s1);
                    for (size_t g = 0; g < 4; g++)
                        for (size_t i = 0; i < 4; i++) dst[g * 64 + r * 4 + i] = (uint8_t)(q[4 * g + i] | (q[16 + 4 * g + i] << 4));
                    memcpy(scales + 4 * r, &s0, 4); memcpy(scales + 64 + 4 * r, &s1, 4);
                    break;
                case FK_Q6_K:
                    unpack_block(type, row, b, q, &s0, &s1);
                    for (size_t g = 0; g < 8; g++) memcpy(dst + g * 64 + r * 4, q + 4 * g, 4);
                    memcpy(scales + 4 * r, &s0, 4); memcpy(scales + 64 + 4 * r, &s1, 4);
                    break;
                default: break;
                }
            }
        }
    }
}

#if defined(__x86_64__)
#define VNNI512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

VNNI512 static inline __m512 f16x16(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
VNNI512 static inline __m512i bcast4(const int8_t *a) { int32_t v; memcpy(&v, a, 4); return _mm512_set1_epi32(v); }

VNNI512 static void panels_q8(uint32_t type, const uint8_t *packed, size_t n_in, size_t p0, size_t p1,
                              const uint8_t *xq, size_t ldxq, size_t m, float *y, size_t ldy) {
    size_t nb = n_in / 32, bb = panel_block_bytes(type);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const int nibbles = nibble_panel(type);
    const float zero_point = type == FK_Q8_0 ? -128.0f : type == FK_Q5_0 ? -16.0f : type == FK_Q6_K ? -32.0f : -8.0f;
    for (size_t i = 0; i < m; i++) {
        const uint8_t *xrow = xq + i * ldxq;
        const int8_t *a = (const int8_t *)xrow;
        const float *ad = (const float *)(xrow + n_in), *asum = ad + nb, *asum16 = asum + nb;
        for (size_t p = p0; p < p1; p++) {
            const uint8_t *base = packed + p * nb * bb;
            __m512 scaled = _mm512_setzero_ps(), offsets = _mm512_setzero_ps();
            for (size_t b = 0; b < nb; b++) {
                const uint8_t *blk = base + b * bb;
                const int8_t *ab = a + b * 32;
                __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
                if (nibbles) {
                    for (size_t g = 0; g < 4; g++) {
                        __m512i w = _mm512_loadu_si512(blk + g * 64);
                        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_and_si512(w, m4), bcast4(ab + 4 * g));
                        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_and_si512(_mm512_srli_epi16(w, 4), m4), bcast4(ab + 16 + 4 * g));
                    }
                } else {   // acc0: elements 0..15 (groups 0-3), acc1: 16..31 (Q6_K scales them apart)
                    for (size_t g = 0; g < 4; g++) {
                        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(blk + g * 64), bcast4(ab + 4 * g));
                        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_loadu_si512(blk + (g + 4) * 64), bcast4(ab + 16 + 4 * g));
                    }
                }
                const uint8_t *s = blk + (nibbles ? 4 : 8) * 64;
                __m512 da = _mm512_set1_ps(ad[b]);
                switch (type) {
                case FK_Q4_1:
                    scaled = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc0, acc1)), _mm512_mul_ps(f16x16(s), da), scaled);
                    offsets = _mm512_fmadd_ps(f16x16(s + 32), _mm512_set1_ps(asum[b]), offsets);
                    break;
                case FK_Q4_K: {
                    __m512 d = _mm512_loadu_ps((const float *)s);
                    scaled = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc0, acc1)), _mm512_mul_ps(d, da), scaled);
                    offsets = _mm512_fmadd_ps(_mm512_loadu_ps((const float *)(s + 64)), _mm512_set1_ps(asum[b]), offsets);
                    break;
                }
                case FK_Q6_K: {
                    __m512 d0 = _mm512_loadu_ps((const float *)s), d1 = _mm512_loadu_ps((const float *)(s + 64));
                    scaled = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc0), _mm512_mul_ps(d0, da), scaled);
                    scaled = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc1), _mm512_mul_ps(d1, da), scaled);
                    offsets = _mm512_fmadd_ps(d0, _mm512_set1_ps(zero_point * asum16[2 * b]), offsets);
                    offsets = _mm512_fmadd_ps(d1, _mm512_set1_ps(zero_point * asum16[2 * b + 1]), offsets);
                    break;
                }
                default: {   // Q4_0, Q8_0, Q5_0: m = zero_point · d
                    __m512 d = f16x16(s);
                    scaled = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc0, acc1)), _mm512_mul_ps(d, da), scaled);
                    offsets = _mm512_fmadd_ps(d, _mm512_set1_ps(zero_point * asum[b]), offsets);
                    break;
                }
                }
            }
            _mm512_storeu_ps(y + i * ldy + p * PANEL, _mm512_add_ps(scaled, offsets));
        }
    }
}
#endif

void fk_matmul_panels_q8(uint32_t type, const void *packed, size_t n_in, size_t p0, size_t p1,
                         const void *xq, size_t ldxq, size_t m, float *y, size_t ldy) {
#if defined(__x86_64__)
    panels_q8(type, (const uint8_t *)packed, n_in, p0, p1, (const uint8_t *)xq, ldxq, m, y, ldy);
#else
    (void)type; (void)packed; (void)n_in; (void)p0; (void)p1; (void)xq; (void)ldxq; (void)m; (void)y; (void)ldy;
#endif
}
