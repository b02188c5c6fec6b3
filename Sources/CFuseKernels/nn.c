// Normalisation, activation, rotary and attention loops for FuseNN's forward ops. Each follows the
// formula transformers uses (formats-and-models.md §5); sums of squares accumulate in f64.
#include "fuse_nn.h"
#include "fuse_kernels.h"
#include <math.h>

void fk_rmsnorm(const float *x, const float *w, float *out, size_t rows, size_t dim, float eps, int add_one) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim; float *o = out + r * dim;
        double ss = fk_sumsq_f32(xr, dim);
        float inv = 1.0f / sqrtf((float)(ss / (double)dim) + eps);
        if (add_one) for (size_t i = 0; i < dim; i++) o[i] = (xr[i] * inv) * (1.0f + w[i]);
        else for (size_t i = 0; i < dim; i++) o[i] = w[i] * (xr[i] * inv);
    }
}

void fk_layernorm(const float *x, const float *w, const float *b, float *out, size_t rows, size_t dim, float eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim; float *o = out + r * dim;
        double s = 0; for (size_t i = 0; i < dim; i++) s += xr[i];
        float mean = (float)(s / (double)dim);
        double v = 0; for (size_t i = 0; i < dim; i++) { double d = (double)xr[i] - mean; v += d * d; }
        float inv = 1.0f / sqrtf((float)(v / (double)dim) + eps);
        for (size_t i = 0; i < dim; i++) o[i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
    }
}

void fk_silu_mul(float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static inline float gelu_tanh(float x) {
    const float k = 0.7978845608028654f;   // sqrt(2/pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}
void fk_gelu_tanh_mul(float *g, const float *u, size_t n) { for (size_t i = 0; i < n; i++) g[i] = gelu_tanh(g[i]) * u[i]; }
void fk_gelu_tanh(float *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = gelu_tanh(x[i]); }
void fk_add(float *x, const float *y, size_t n) { for (size_t i = 0; i < n; i++) x[i] += y[i]; }

void fk_rope(float *x, size_t rows, size_t ld, size_t heads, size_t dim, const int32_t *pos,
             const float *inv_freq, float attn_scale) {
    size_t half = dim / 2;
    float c[512], s[512];   // dim/2 <= 512 checked by the caller
    for (size_t r = 0; r < rows; r++) {
        for (size_t k = 0; k < half; k++) {
            float theta = (float)pos[r] * inv_freq[k];
            c[k] = cosf(theta) * attn_scale; s[k] = sinf(theta) * attn_scale;
        }
        for (size_t h = 0; h < heads; h++) {
            float *v = x + r * ld + h * dim;
            for (size_t k = 0; k < half; k++) {
                float a = v[k], b = v[k + half];
                v[k] = a * c[k] - b * s[k];
                v[k + half] = b * c[k] + a * s[k];
            }
        }
    }
}

static inline int visible(int32_t j, int32_t q_slot, int32_t q_pos, const int32_t *key_pos, int32_t window) {
    return key_pos[j] >= 0 && j <= q_slot && (window == 0 || q_pos - key_pos[j] < window);
}

static void softmax_row(float *s, size_t n_keys, float scale, float cap, int32_t q_slot, int32_t q_pos,
                        const int32_t *key_pos, int32_t window) {
    float mx = -INFINITY;
    for (size_t j = 0; j < n_keys; j++) {
        if (!visible((int32_t)j, q_slot, q_pos, key_pos, window)) { s[j] = -INFINITY; continue; }
        float v = s[j] * scale;
        if (cap > 0) v = tanhf(v / cap) * cap;
        s[j] = v;
        if (v > mx) mx = v;
    }
    if (mx == -INFINITY) { for (size_t j = 0; j < n_keys; j++) s[j] = 0; return; }
    float sum = 0;
    for (size_t j = 0; j < n_keys; j++) { float e = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx); s[j] = e; sum += e; }
    float inv = 1.0f / sum;
    for (size_t j = 0; j < n_keys; j++) s[j] *= inv;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

/// e^x for x <= 0 (softmax arguments): Cephes' expf polynomial on r = x − n ln2, scaled by 2^n;
/// relative error about 2e-7 against libm.
AVX512 static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/// The row of `softmax_row` without soft-capping, 16 keys at a time.
AVX512 static void softmax_row_avx512(float *s, size_t n_keys, float scale, int32_t q_slot, int32_t q_pos,
                                      const int32_t *key_pos, int32_t window) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (size_t j = 0; j < n_keys; j += 16) {
        __mmask16 in = n_keys - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n_keys - j)) - 1);
        __m512i kp = _mm512_maskz_loadu_epi32(in, key_pos + j);
        __mmask16 vis = _mm512_mask_cmpge_epi32_mask(in, kp, _mm512_setzero_si512());
        vis = _mm512_mask_cmple_epi32_mask(vis, _mm512_add_epi32(lane, _mm512_set1_epi32((int32_t)j)), _mm512_set1_epi32(q_slot));
        if (window) vis = _mm512_mask_cmplt_epi32_mask(vis, _mm512_sub_epi32(_mm512_set1_epi32(q_pos), kp), _mm512_set1_epi32(window));
        __m512 v = _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), vis, _mm512_maskz_loadu_ps(in, s + j), _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(s + j, in, v);
        vmax = _mm512_max_ps(vmax, v);
    }
    float mx = _mm512_reduce_max_ps(vmax);
    if (mx == -INFINITY) { for (size_t j = 0; j < n_keys; j++) s[j] = 0; return; }
    __m512 vsum = _mm512_setzero_ps(), m = _mm512_set1_ps(mx);
    for (size_t j = 0; j < n_keys; j += 16) {
        __mmask16 in = n_keys - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n_keys - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(in, s + j);
        __mmask16 live = _mm512_mask_cmp_ps_mask(in, v, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
        __m512 e = _mm512_maskz_mov_ps(live, exp512(_mm512_sub_ps(v, m)));
        _mm512_mask_storeu_ps(s + j, in, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (size_t j = 0; j < n_keys; j += 16) {
        __mmask16 in = n_keys - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n_keys - j)) - 1);
        _mm512_mask_storeu_ps(s + j, in, _mm512_mul_ps(_mm512_maskz_loadu_ps(in, s + j), inv));
    }
}
#endif

void fk_masked_softmax(float *s, size_t t, size_t n_keys, size_t ld, float scale, float cap,
                       const int32_t *q_slot, const int32_t *q_pos, const int32_t *key_pos, int32_t window) {
#if defined(__x86_64__)
    if (cap <= 0 && (fk_cpu_features() & 2)) {
        for (size_t i = 0; i < t; i++) softmax_row_avx512(s + i * ld, n_keys, scale, q_slot[i], q_pos[i], key_pos, window);
        return;
    }
#endif
    for (size_t i = 0; i < t; i++) softmax_row(s + i * ld, n_keys, scale, cap, q_slot[i], q_pos[i], key_pos, window);
}

static inline __attribute__((always_inline)) void attend_body(const float *q, size_t nq, size_t ldq, const float *k, const float *v,
                                      size_t n_keys, size_t dim, float scale, float cap, int32_t q_slot, int32_t q_pos,
                                      const int32_t *key_pos, int32_t window, float *s, float *out, size_t ldo) {
    for (size_t i = 0; i < nq; i++) {
        const float *qi = q + i * ldq;
        for (size_t j = 0; j < n_keys; j++) {
            const float *kj = k + j * dim;
            float acc[16] = {0}, t = 0; size_t d = 0;
            for (; d + 16 <= dim; d += 16) for (int l = 0; l < 16; l++) acc[l] += qi[d + l] * kj[d + l];
            for (; d < dim; d++) t += qi[d] * kj[d];
            for (int w = 8; w > 0; w /= 2) for (int l = 0; l < w; l++) acc[l] += acc[l + w];
            s[j] = acc[0] + t;
        }
        softmax_row(s, n_keys, scale, cap, q_slot, q_pos, key_pos, window);
        float *o = out + i * ldo;
        for (size_t d = 0; d < dim; d++) o[d] = 0;
        for (size_t j = 0; j < n_keys; j++) {
            float p = s[j]; if (p == 0) continue;
            const float *vj = v + j * dim;
            for (size_t d = 0; d < dim; d++) o[d] += p * vj[d];
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
static void attend_avx512(const float *q, size_t nq, size_t ldq, const float *k, const float *v, size_t n_keys, size_t dim,
                          float scale, float cap, int32_t q_slot, int32_t q_pos, const int32_t *key_pos, int32_t window,
                          float *s, float *out, size_t ldo) {
    attend_body(q, nq, ldq, k, v, n_keys, dim, scale, cap, q_slot, q_pos, key_pos, window, s, out, ldo);
}
#endif
static void attend_portable(const float *q, size_t nq, size_t ldq, const float *k, const float *v, size_t n_keys, size_t dim,
                            float scale, float cap, int32_t q_slot, int32_t q_pos, const int32_t *key_pos, int32_t window,
                            float *s, float *out, size_t ldo) {
    attend_body(q, nq, ldq, k, v, n_keys, dim, scale, cap, q_slot, q_pos, key_pos, window, s, out, ldo);
}

#if defined(__x86_64__)
/// All `nq` queries of one kv head at once: each key and value row is read once for the group
/// (cpu-kernels.md §4, KV-cache layout); `s` holds nq × n_keys floats. dim is a multiple of 16.
AVX512 static void attend_group_avx512(const float *q, size_t nq, size_t ldq, const float *k, const float *v, size_t n_keys,
                                       size_t dim, float scale, int32_t q_slot, int32_t q_pos, const int32_t *key_pos,
                                       int32_t window, float *s, float *out, size_t ldo) {
    for (size_t j = 0; j < n_keys; j++) {
        const float *kj = k + j * dim;
        for (size_t i = 0; i < nq; i++) {
            const float *qi = q + i * ldq;
            __m512 acc = _mm512_setzero_ps();
            for (size_t d = 0; d < dim; d += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(qi + d), _mm512_loadu_ps(kj + d), acc);
            s[i * n_keys + j] = _mm512_reduce_add_ps(acc);
        }
    }
    for (size_t i = 0; i < nq; i++) {
        softmax_row_avx512(s + i * n_keys, n_keys, scale, q_slot, q_pos, key_pos, window);
        for (size_t d = 0; d < dim; d++) out[i * ldo + d] = 0;
    }
    for (size_t j = 0; j < n_keys; j++) {
        const float *vj = v + j * dim;
        for (size_t i = 0; i < nq; i++) {
            float p = s[i * n_keys + j];
            if (p == 0) continue;
            __m512 pv = _mm512_set1_ps(p);
            float *o = out + i * ldo;
            for (size_t d = 0; d < dim; d += 16) _mm512_storeu_ps(o + d, _mm512_fmadd_ps(pv, _mm512_loadu_ps(vj + d), _mm512_loadu_ps(o + d)));
        }
    }
}
#endif

void fk_attend(const float *q, size_t nq, size_t ldq, const float *k, const float *v, size_t n_keys, size_t dim,
               float scale, float cap, int32_t q_slot, int32_t q_pos, const int32_t *key_pos, int32_t window,
               float *scratch, float *out, size_t ldo) {
#if defined(__x86_64__)
    if ((fk_cpu_features() & 2) && cap <= 0 && dim % 16 == 0) {
        attend_group_avx512(q, nq, ldq, k, v, n_keys, dim, scale, q_slot, q_pos, key_pos, window, scratch, out, ldo);
        return;
    }
    if (fk_cpu_features() & 2) { attend_avx512(q, nq, ldq, k, v, n_keys, dim, scale, cap, q_slot, q_pos, key_pos, window, scratch, out, ldo); return; }
#endif
    attend_portable(q, nq, ldq, k, v, n_keys, dim, scale, cap, q_slot, q_pos, key_pos, window, scratch, out, ldo);
}

// MARK: - training

#if defined(__x86_64__)
AVX512 static double exp_shifted_avx512(const float *x, size_t n, float shift, float *out) {
    __m512 vsum = _mm512_setzero_ps(), m = _mm512_set1_ps(shift);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 in = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __m512 e = _mm512_maskz_mov_ps(in, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, x + j), m)));
        _mm512_mask_storeu_ps(out + j, in, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    return (double)_mm512_reduce_add_ps(vsum);
}
AVX512 static float max_avx512(const float *x, size_t n) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 in = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        vmax = _mm512_mask_max_ps(vmax, in, vmax, _mm512_maskz_loadu_ps(in, x + j));
    }
    return _mm512_reduce_max_ps(vmax);
}
#endif

double fk_exp_shifted(const float *x, size_t n, float shift, float *out) {
#if defined(__x86_64__)
    if (fk_cpu_features() & 2) return exp_shifted_avx512(x, n, shift, out);
#endif
    double sum = 0;
    for (size_t i = 0; i < n; i++) { out[i] = expf(x[i] - shift); sum += out[i]; }
    return sum;
}

float fk_max_f32(const float *x, size_t n) {
#if defined(__x86_64__)
    if (fk_cpu_features() & 2) return max_avx512(x, n);
#endif
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) if (x[i] > m) m = x[i];
    return m;
}
