// Block dequantizers and fused dequantize-and-dot kernels for the runtime (formats-and-models.md §2.5).
// One short unpacker per block format; every kernel is written once over them and compiled three times
// (portable, AVX2, AVX-512) through per-function target attributes, chosen once at run time.
#include "fuse_nn.h"
#include "fuse_kernels.h"
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/// Elements dequantized at a time by the fused kernels (16 KB of f32: stays in L1).
#define DOT_CHUNK 4096
/// Independent accumulator lanes in dot products (lets the compiler keep several vector chains).
#define DOT_LANES 32

ALWAYS_INLINE float h2f(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, out;
    if (exp == 0x1F) out = sign | 0x7F800000u | (mant << 13);
    else if (exp == 0) {
        if (mant == 0) out = sign;
        else { float v = (float)mant * 5.9604644775390625e-08f; memcpy(&out, &v, 4); out |= sign; }
    } else out = sign | ((exp + 112u) << 23) | (mant << 13);
    float f; memcpy(&f, &out, 4); return f;
}

// MARK: - block unpackers (y receives block_elems floats)

/// Q4_0, 18 B: d f16 | qs u8[16]; y[i] = d * (q - 8), low nibbles are elements 0..15.
ALWAYS_INLINE void dq_q4_0(const uint8_t *b, float *y) {
#pragma clang fp contract(off)
    float d = h2f(b); const uint8_t *qs = b + 2;
    for (int i = 0; i < 16; i++) { y[i] = d * (float)((qs[i] & 0xF) - 8); y[i + 16] = d * (float)((qs[i] >> 4) - 8); }
}
/// Q4_1, 20 B: d f16 | m f16 | qs u8[16]; y[i] = d * q + m.
ALWAYS_INLINE void dq_q4_1(const uint8_t *b, float *y) {
#pragma clang fp contract(off)
    float d = h2f(b), m = h2f(b + 2); const uint8_t *qs = b + 4;
    for (int i = 0; i < 16; i++) { y[i] = d * (float)(qs[i] & 0xF) + m; y[i + 16] = d * (float)(qs[i] >> 4) + m; }
}
/// Q5_0, 22 B: d f16 | qh u32 | qs u8[16]; q = lo | ((qh >> i) & 1) << 4; y = d * (q - 16).
ALWAYS_INLINE void dq_q5_0(const uint8_t *b, float *y) {
#pragma clang fp contract(off)
    float d = h2f(b); uint32_t qh; memcpy(&qh, b + 2, 4); const uint8_t *qs = b + 6;
    for (int i = 0; i < 16; i++) {
        int lo = (qs[i] & 0xF) | (((qh >> i) & 1) << 4), hi = (qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4);
        y[i] = d * (float)(lo - 16); y[i + 16] = d * (float)(hi - 16);
    }
}
/// Q5_1, 24 B: d f16 | m f16 | qh u32 | qs u8[16]; y = d * q + m.
ALWAYS_INLINE void dq_q5_1(const uint8_t *b, float *y) {
#pragma clang fp contract(off)
    float d = h2f(b), m = h2f(b + 2); uint32_t qh; memcpy(&qh, b + 4, 4); const uint8_t *qs = b + 8;
    for (int i = 0; i < 16; i++) {
        int lo = (qs[i] & 0xF) | (((qh >> i) & 1) << 4), hi = (qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4);
        y[i] = d * (float)lo + m; y[i + 16] = d * (float)hi + m;
    }
}
/// Q8_0, 34 B: d f16 | qs i8[32]; y = d * q.
ALWAYS_INLINE void dq_q8_0(const uint8_t *b, float *y) {
#pragma clang fp contract(off)
    float d = h2f(b); const int8_t *qs = (const int8_t *)(b + 2);
    for (int i = 0; i < 32; i++) y[i] = d * (float)qs[i];
}
/// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4).
ALWAYS_INLINE void scale_min_k4(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) { *sc = s[j] & 63; *m = s[j + 4] & 63; }
    else { *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4); *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
}
/// Q4_K, 144 B: d f16 | dmin f16 | scales u8[12] | qs u8[128]; y = (d*sc_j) * q - dmin*m_j.
ALWAYS_INLINE void dq_q4_K(const uint8_t *b, float *y) {
#pragma clang fp contract(off)
    float d = h2f(b), dmin = h2f(b + 2); const uint8_t *s = b + 4, *q = b + 16;
    for (int c = 0; c < 4; c++) {
        int sc, m; scale_min_k4(2 * c, s, &sc, &m); float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(2 * c + 1, s, &sc, &m); float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) { y[64 * c + l] = d1 * (float)(q[32 * c + l] & 0xF) - m1; y[64 * c + 32 + l] = d2 * (float)(q[32 * c + l] >> 4) - m2; }
    }
}
/// Q5_K, 176 B: d | dmin | scales u8[12] | qh u8[32] | qs u8[128]; q = lo | ((qh[l] >> (i/32)) & 1) << 4.
ALWAYS_INLINE void dq_q5_K(const uint8_t *b, float *y) {
#pragma clang fp contract(off)
    float d = h2f(b), dmin = h2f(b + 2); const uint8_t *s = b + 4, *qh = b + 16, *q = b + 48;
    for (int c = 0; c < 4; c++) {
        int sc, m; scale_min_k4(2 * c, s, &sc, &m); float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(2 * c + 1, s, &sc, &m); float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            int lo = (q[32 * c + l] & 0xF) | (((qh[l] >> (2 * c)) & 1) << 4);
            int hi = (q[32 * c + l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4);
            y[64 * c + l] = d1 * (float)lo - m1; y[64 * c + 32 + l] = d2 * (float)hi - m2;
        }
    }
}
/// Q6_K, 210 B: ql u8[128] | qh u8[64] | scales i8[16] | d f16; q = (lo | hi << 4) - 32; y = (d*sc) * q.
ALWAYS_INLINE void dq_q6_K(const uint8_t *b, float *y) {
#pragma clang fp contract(off)
    const uint8_t *ql = b, *qh = b + 128; const int8_t *sc = (const int8_t *)(b + 192); float d = h2f(b + 208);
    for (int h = 0; h < 2; h++) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[64 * h + l] & 0xF) | (((qh[32 * h + l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[64 * h + l + 32] & 0xF) | (((qh[32 * h + l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[64 * h + l] >> 4) | (((qh[32 * h + l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[64 * h + l + 32] >> 4) | (((qh[32 * h + l] >> 6) & 3) << 4)) - 32;
            float *yy = y + 128 * h; const int8_t *s = sc + 8 * h;
            yy[l] = d * (float)s[is] * (float)q1; yy[l + 32] = d * (float)s[is + 2] * (float)q2;
            yy[l + 64] = d * (float)s[is + 4] * (float)q3; yy[l + 96] = d * (float)s[is + 6] * (float)q4;
        }
    }
}

ALWAYS_INLINE int block_geometry(uint32_t type, size_t *elems, size_t *bytes) {
    switch (type) {
    case FK_F32: *elems = 1; *bytes = 4; return 1;
    case FK_F16: case FK_BF16: *elems = 1; *bytes = 2; return 1;
    case FK_Q4_0: *elems = 32; *bytes = 18; return 1;
    case FK_Q4_1: *elems = 32; *bytes = 20; return 1;
    case FK_Q5_0: *elems = 32; *bytes = 22; return 1;
    case FK_Q5_1: *elems = 32; *bytes = 24; return 1;
    case FK_Q8_0: *elems = 32; *bytes = 34; return 1;
    case FK_Q4_K: *elems = 256; *bytes = 144; return 1;
    case FK_Q5_K: *elems = 256; *bytes = 176; return 1;
    case FK_Q6_K: *elems = 256; *bytes = 210; return 1;
    default: return 0;
    }
}

int fk_type_supported(uint32_t type) { size_t e, b; return block_geometry(type, &e, &b); }

/// Elements [k0, k0 + n) of a row (k0 and n whole blocks) into dst.
ALWAYS_INLINE void dequant_span(uint32_t type, const uint8_t *row, size_t k0, float *dst, size_t n) {
    size_t e = 1, bb = 4; block_geometry(type, &e, &bb);
    const uint8_t *src = row + k0 / e * bb;
    switch (type) {
    case FK_F32: memcpy(dst, src, n * 4); return;
    case FK_BF16: for (size_t i = 0; i < n; i++) { uint32_t u = (uint32_t)(src[2 * i] | (src[2 * i + 1] << 8)) << 16; memcpy(dst + i, &u, 4); } return;
    case FK_F16: for (size_t i = 0; i < n; i++) dst[i] = h2f(src + 2 * i); return;
    default: break;
    }
    for (size_t blk = 0; blk < n / e; blk++) {
        const uint8_t *b = src + blk * bb; float *y = dst + blk * e;
        switch (type) {
        case FK_Q4_0: dq_q4_0(b, y); break;
        case FK_Q4_1: dq_q4_1(b, y); break;
        case FK_Q5_0: dq_q5_0(b, y); break;
        case FK_Q5_1: dq_q5_1(b, y); break;
        case FK_Q8_0: dq_q8_0(b, y); break;
        case FK_Q4_K: dq_q4_K(b, y); break;
        case FK_Q5_K: dq_q5_K(b, y); break;
        case FK_Q6_K: dq_q6_K(b, y); break;
        default: break;
        }
    }
}

ALWAYS_INLINE float dot_lanes(const float *a, const float *b, size_t n) {
    float acc[DOT_LANES] = {0};
    size_t i = 0;
    for (; i + DOT_LANES <= n; i += DOT_LANES)
        for (int l = 0; l < DOT_LANES; l++) acc[l] += a[i + l] * b[i + l];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    for (int w = DOT_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0] + s;
}

ALWAYS_INLINE void matmul_rows_body(uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                                    const float *x, size_t ldx, size_t m, float *y, size_t ldy) {
    float buf[DOT_CHUNK] __attribute__((aligned(64)));
    size_t e = 1, bb = 4; block_geometry(type, &e, &bb);
    size_t chunk = DOT_CHUNK / e * e;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + r * row_bytes;
        if (type == FK_F32) {
            for (size_t i = 0; i < m; i++) y[i * ldy + r] = dot_lanes((const float *)row, x + i * ldx, n_in);
            continue;
        }
        for (size_t k0 = 0; k0 < n_in; k0 += chunk) {
            size_t len = n_in - k0 < chunk ? n_in - k0 : chunk;
            dequant_span(type, row, k0, buf, len);
            for (size_t i = 0; i < m; i++) {
                float d = dot_lanes(buf, x + i * ldx + k0, len);
                if (k0 == 0) y[i * ldy + r] = d; else y[i * ldy + r] += d;
            }
        }
    }
}

static void matmul_rows_portable(uint32_t t, const void *w, size_t rb, size_t n, size_t r0, size_t r1, const float *x, size_t ldx, size_t m, float *y, size_t ldy) {
    matmul_rows_body(t, w, rb, n, r0, r1, x, ldx, m, y, ldy);
}
#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c")))
static void matmul_rows_avx2(uint32_t t, const void *w, size_t rb, size_t n, size_t r0, size_t r1, const float *x, size_t ldx, size_t m, float *y, size_t ldy) {
    matmul_rows_body(t, w, rb, n, r0, r1, x, ldx, m, y, ldy);
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
static void matmul_rows_avx512(uint32_t t, const void *w, size_t rb, size_t n, size_t r0, size_t r1, const float *x, size_t ldx, size_t m, float *y, size_t ldy) {
    matmul_rows_body(t, w, rb, n, r0, r1, x, ldx, m, y, ldy);
}
#endif

int fk_matmul_path(void) {
    int f = fk_cpu_features();
    return (f & 2) ? 2 : (f & 1) ? 1 : 0;
}

void fk_matmul_rows(uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                    const float *x, size_t ldx, size_t m, float *y, size_t ldy) {
#if defined(__x86_64__)
    int p = fk_matmul_path();
    if (p == 2) { matmul_rows_avx512(type, w, row_bytes, n_in, r0, r1, x, ldx, m, y, ldy); return; }
    if (p == 1) { matmul_rows_avx2(type, w, row_bytes, n_in, r0, r1, x, ldx, m, y, ldy); return; }
#endif
    matmul_rows_portable(type, w, row_bytes, n_in, r0, r1, x, ldx, m, y, ldy);
}

static void dequant_row_portable(uint32_t type, const void *src, float *dst, size_t n) { dequant_span(type, src, 0, dst, n); }
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
static void dequant_row_avx512(uint32_t type, const void *src, float *dst, size_t n) { dequant_span(type, src, 0, dst, n); }
#endif

void fk_dequant_row(uint32_t type, const void *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (fk_matmul_path() == 2) { dequant_row_avx512(type, src, dst, n); return; }
#endif
    dequant_row_portable(type, src, dst, n);
}
