// Row-interleaved quantized weights for decode (cpu-kernels.md §2, "Rules for FuseKit's kernels"):
// 16 output rows form a panel; for each 32-weight block the panel holds, per group of 4 k values,
// the 4 bytes of each of its 16 rows side by side (one 64-byte zmm), then the 16 rows' f16 scales d
// (and for Q4_1 the f16 minimums m), so that w = d·q + m with q unsigned. One broadcast of 4
// activation bytes and one `vpdpbusd` update 16 rows at once: no horizontal sums, no per-row float
// work inside a block. The panels hold exactly the GGUF bytes per weight, only reordered:
//   Q4_0: 4 groups × 64 bytes of nibble pairs (low nibble k, high nibble k+16) | d f16[16]   (m = −8d)
//   Q4_1: the same | d f16[16] | m f16[16]
//   Q8_0: 8 groups × 64 bytes of q + 128 | d f16[16]                                       (m = −128d)
// Activations are the Q8 rows of qdot.c (scale per 32, scale·Σq per 32).
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
    case FK_Q8_0: return 8 * 64 + 32;
    default: return 0;
    }
}

size_t fk_panel_bytes(uint32_t type, size_t rows, size_t n_in) {
    size_t bb = panel_block_bytes(type);
    if (!bb || rows % PANEL || n_in % 32) return 0;
    return rows / PANEL * (n_in / 32) * bb;
}

int fk_panel_supported(uint32_t type, size_t rows) {
    return fk_qdot_supported(type) && panel_block_bytes(type) != 0 && rows % PANEL == 0;
}


void fk_pack_panels(uint32_t type, const void *w, size_t row_bytes, size_t rows, size_t n_in, void *out) {
    size_t nb = n_in / 32, bb = panel_block_bytes(type);
    for (size_t p = 0; p < rows / PANEL; p++) {
        for (size_t b = 0; b < nb; b++) {
            uint8_t *dst = (uint8_t *)out + (p * nb + b) * bb;
            size_t groups = type == FK_Q8_0 ? 8 : 4;
            uint8_t *d = dst + groups * 64, *m = d + 2 * PANEL;
            for (size_t r = 0; r < PANEL; r++) {
                const uint8_t *blk = (const uint8_t *)w + (p * PANEL + r) * row_bytes;
                switch (type) {
                case FK_Q4_0:
                    blk += b * 18; memcpy(d + 2 * r, blk, 2);
                    for (size_t g = 0; g < 4; g++) memcpy(dst + g * 64 + r * 4, blk + 2 + 4 * g, 4);
                    break;
                case FK_Q4_1:
                    blk += b * 20; memcpy(d + 2 * r, blk, 2); memcpy(m + 2 * r, blk + 2, 2);
                    for (size_t g = 0; g < 4; g++) memcpy(dst + g * 64 + r * 4, blk + 4 + 4 * g, 4);
                    break;
                case FK_Q8_0:
                    blk += b * 34; memcpy(d + 2 * r, blk, 2);
                    for (size_t g = 0; g < 8; g++)
                        for (size_t i = 0; i < 4; i++) dst[g * 64 + r * 4 + i] = (uint8_t)(blk[2 + 4 * g + i] ^ 0x80);
                    break;
                default: break;
                }
            }
        }
    }
}

#if defined(__x86_64__)
#define VNNI512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

VNNI512 static void panels_q8(uint32_t type, const uint8_t *packed, size_t n_in, size_t p0, size_t p1,
                              const uint8_t *xq, size_t ldxq, size_t m, float *y, size_t ldy) {
    size_t nb = n_in / 32, bb = panel_block_bytes(type);
    size_t groups = type == FK_Q8_0 ? 8 : 4;
    const float zero_point = type == FK_Q8_0 ? -128.0f : -8.0f;   // m = zero_point · d (Q4_0, Q8_0)
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (size_t i = 0; i < m; i++) {
        const uint8_t *xrow = xq + i * ldxq;
        const int8_t *a = (const int8_t *)xrow;
        const float *ad = (const float *)(xrow + n_in), *asum = ad + nb;
        for (size_t p = p0; p < p1; p++) {
            const uint8_t *base = packed + p * nb * bb;
            __m512 scaled = _mm512_setzero_ps(), offsets = _mm512_setzero_ps();
            for (size_t b = 0; b < nb; b++) {
                const uint8_t *blk = base + b * bb;
                const int8_t *ab = a + b * 32;
                __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
                if (groups == 4) {
                    for (size_t g = 0; g < 4; g++) {
                        __m512i w = _mm512_loadu_si512(blk + g * 64);
                        int32_t alo, ahi; memcpy(&alo, ab + 4 * g, 4); memcpy(&ahi, ab + 16 + 4 * g, 4);
                        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_and_si512(w, m4), _mm512_set1_epi32(alo));
                        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_and_si512(_mm512_srli_epi16(w, 4), m4), _mm512_set1_epi32(ahi));
                    }
                } else {
                    for (size_t g = 0; g < 8; g += 2) {
                        int32_t a0, a1; memcpy(&a0, ab + 4 * g, 4); memcpy(&a1, ab + 4 * g + 4, 4);
                        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(blk + g * 64), _mm512_set1_epi32(a0));
                        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_loadu_si512(blk + g * 64 + 64), _mm512_set1_epi32(a1));
                    }
                }
                const uint8_t *d16 = blk + groups * 64;
                __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d16));
                scaled = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc0, acc1)), _mm512_mul_ps(d, _mm512_set1_ps(ad[b])), scaled);
                if (type == FK_Q4_1)
                    offsets = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d16 + 32))), _mm512_set1_ps(asum[b]), offsets);
                else
                    offsets = _mm512_fmadd_ps(d, _mm512_set1_ps(zero_point * asum[b]), offsets);
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
