// CFuseKernels, runtime half: the element-wise, normalisation, attention and quantized dot-product loops
// that FuseNN's ops call. Rows are contiguous float rows unless a leading dimension (`ld*`) says
// otherwise. Quantized weights are named by their ggml type id (formats-and-models.md §2.3) and read
// in place: no kernel here ever needs a full f32 copy of a quantized matrix.
#ifndef FUSE_NN_H
#define FUSE_NN_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// ggml type ids the runtime kernels read (f32, f16, bf16 and the block formats FuseNN supports).
enum {
    FK_F32 = 0, FK_F16 = 1, FK_Q4_0 = 2, FK_Q4_1 = 3, FK_Q5_0 = 6, FK_Q5_1 = 7, FK_Q8_0 = 8,
    FK_Q4_K = 12, FK_Q5_K = 13, FK_Q6_K = 14, FK_BF16 = 30
};

/// 1 when `type` can be read by `fk_dequant_row` and `fk_matmul_rows`.
int fk_type_supported(uint32_t type);

/// Dequantizes (or widens) `n` elements of one row of `type` at `src` into `dst`; `n` must be a whole
/// number of blocks. Multiplication order follows ggml (`d*sc` first, then `*q`), so results are
/// bit-exact with gguf-py's dequantizers.
void fk_dequant_row(uint32_t type, const void *src, float *dst, size_t n);

/// Fused dequantize-and-dot for rows [r0, r1) of a [rows, n_in] weight of `type` (row r starts at
/// `w + r * row_bytes`) against M activation rows: y[m * ldy + r] = Σ_k W[r,k] · x[m * ldx + k].
/// Each weight block is unpacked once and applied to all M rows (weight reuse for small batches).
void fk_matmul_rows(uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                    const float *x, size_t ldx, size_t m, float *y, size_t ldy);

/// Bytes of one activation row of n values (n a multiple of 32) quantized by `fk_quantize_q8`:
/// int8 values, an f32 scale per 32, and scale·Σq per 32 and per 16 values (f32).
size_t fk_q8_row_bytes(size_t n);
/// Quantizes n floats (n a multiple of 32) to that layout: d = max|x| / 127, q = round(x / d).
void fk_quantize_q8(const float *x, size_t n, void *out);
/// 1 when `fk_matmul_rows_q8` has an integer kernel for `type` on this CPU (AVX512-VNNI: Q4_0, Q4_1,
/// Q5_0, Q8_0, Q4_K, Q6_K); callers use `fk_matmul_rows` otherwise.
int fk_qdot_supported(uint32_t type);
/// As `fk_matmul_rows`, with the M activation rows already quantized (row stride `ldxq` bytes).
void fk_matmul_rows_q8(uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                       const void *xq, size_t ldxq, size_t m, float *y, size_t ldy);

/// Row-interleaved panels of 16 rows for decode (qpanel.c): 1 when `type` (Q4_0, Q4_1, Q4_K, Q5_0, Q6_K, Q8_0) with
/// `rows` output rows can be packed and run on this CPU (AVX512-VNNI, rows a multiple of 16).
int fk_panel_supported(uint32_t type, size_t rows);
/// Bytes of the packed copy of a [rows, n_in] weight (0 when unsupported).
size_t fk_panel_bytes(uint32_t type, size_t rows, size_t n_in);
/// Packs the weight (rows at `w + r * row_bytes`) into `out` (`fk_panel_bytes` bytes).
void fk_pack_panels(uint32_t type, const void *w, size_t row_bytes, size_t rows, size_t n_in, void *out);
/// y[i * ldy + r] for the rows of panels [p0, p1) against M Q8 activation rows (`fk_quantize_q8`).
void fk_matmul_panels_q8(uint32_t type, const void *packed, size_t n_in, size_t p0, size_t p1,
                         const void *xq, size_t ldxq, size_t m, float *y, size_t ldy);

/// Which matmul path is in use: 0 portable, 1 AVX2, 2 AVX-512 (for benchmark headers).
int fk_matmul_path(void);

// MARK: - normalisation and activations (in place where `out` may equal `x`)

/// RMSNorm over `dim` for each of `rows` rows, mean of squares accumulated in f64:
/// out = x * rsqrt(mean(x²) + eps) * (add_one ? 1 + w : w). Llama: add_one 0; Gemma: 1.
void fk_rmsnorm(const float *x, const float *w, float *out, size_t rows, size_t dim, float eps, int add_one);
/// LayerNorm (biased variance, f64 sums): out = (x - mean) * rsqrt(var + eps) * w + b.
void fk_layernorm(const float *x, const float *w, const float *b, float *out, size_t rows, size_t dim, float eps);
/// gate[i] = silu(gate[i]) * up[i], silu(z) = z / (1 + exp(-z)).
void fk_silu_mul(float *gate, const float *up, size_t n);
/// gate[i] = gelu_tanh(gate[i]) * up[i] (gelu_pytorch_tanh).
void fk_gelu_tanh_mul(float *gate, const float *up, size_t n);
/// x[i] = gelu_tanh(x[i]).
void fk_gelu_tanh(float *x, size_t n);
/// x[i] += y[i].
void fk_add(float *x, const float *y, size_t n);

// MARK: - rotary embedding

/// Rotates `heads` vectors of `dim` at x (row stride `ld` between tokens, heads contiguous) for `rows`
/// tokens, rotate_half convention: for k < dim/2, x'[k] = x[k] c_k − x[k+dim/2] s_k and
/// x'[k+dim/2] = x[k+dim/2] c_k + x[k] s_k, with c_k = cos(pos · inv_freq[k]) · attn_scale.
void fk_rope(float *x, size_t rows, size_t ld, size_t heads, size_t dim, const int32_t *pos,
             const float *inv_freq, float attn_scale);

// MARK: - attention

/// Masked softmax over the rows of a score block S [t, s] (row stride ld): first S = S * scale, then
/// optional soft-capping (cap > 0: S = tanh(S / cap) * cap), then key j is masked for query i unless
/// key_pos[j] >= 0, j <= q_slot[i] and (window == 0 or q_pos[i] − key_pos[j] < window).
/// Masked entries become 0; a row with no visible key is all zero.
void fk_masked_softmax(float *s, size_t t, size_t n_keys, size_t ld, float scale, float cap,
                       const int32_t *q_slot, const int32_t *q_pos, const int32_t *key_pos, int32_t window);

/// Attention of `nq` query vectors (row stride ldq) that share one key/value head and one visibility
/// rule, over n_keys cached positions (k and v rows of `dim`, contiguous): out[i] = softmax(q_i·K * scale
/// with the mask of `fk_masked_softmax` for query slot q_slot / position q_pos) · V. `scratch` holds
/// nq × n_keys floats. The decode path: one token, the n_rep heads of a group together (each key and
/// value row read once for the group).
void fk_attend(const float *q, size_t nq, size_t ldq, const float *k, const float *v, size_t n_keys, size_t dim,
               float scale, float cap, int32_t q_slot, int32_t q_pos, const int32_t *key_pos, int32_t window,
               float *scratch, float *out, size_t ldo);

// MARK: - training (softmax numerators of the losses and of attention)

/// out[i] = e^(x[i] − shift) for i < n (out may equal x); returns Σ out[i]. AVX-512 with the Cephes
/// polynomial of the masked softmax where available (relative error about 2e-7), expf otherwise.
double fk_exp_shifted(const float *x, size_t n, float shift, float *out);
/// max over x[0..n) (n > 0).
float fk_max_f32(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
