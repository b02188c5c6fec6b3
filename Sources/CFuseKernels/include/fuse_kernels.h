// CFuseKernels: the few kernels that need instructions Swift's baseline x86-64 target cannot emit
// (F16C, AVX2, AVX-512 BW/BF16/VNNI). Each entry point checks the CPU once at run time and falls back
// to a portable loop, so the same binary runs (and gives the same bits) on any x86-64 or ARM CPU.
// Owns no Swift types; counts are element counts.
#ifndef FUSE_KERNELS_H
#define FUSE_KERNELS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Which vector paths this process uses: bit 0 F16C+AVX2, bit 1 AVX-512 F/BW/VL, bit 2 AVX512_BF16,
/// bit 3 AVX512_VNNI. Setting FUSEKIT_PORTABLE=1 in the environment forces 0 (the portable path).
int fk_cpu_features(void);

/// bf16 -> f32 is exact: the 16 bits become the high half of the f32.
void fk_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
/// f32 -> bf16 with round-to-nearest-even; subnormals kept, overflow to ±inf, every NaN -> 0x7FC0|sign.
void fk_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
/// IEEE binary16 -> f32, exact (subnormals, ±inf, NaN payloads kept).
void fk_f16_to_f32(const uint16_t *src, float *dst, size_t n);
/// f32 -> IEEE binary16 with round-to-nearest-even; subnormals produced, NaN -> sign|0x7E00|(mantissa>>13).
void fk_f32_to_f16(const float *src, uint16_t *dst, size_t n);

/// Scalar versions (the portable reference each vector path is tested against).
float fk_f16_to_f32_scalar(uint16_t h);
uint16_t fk_f32_to_f16_scalar(float f);
uint16_t fk_f32_to_bf16_scalar(float f);

/// y[i] += a * x[i] (f32), and dot products accumulated in f64.
void fk_axpy_f32(float a, const float *x, float *y, size_t n);
double fk_dot_f32(const float *x, const float *y, size_t n);
/// Sum of squares accumulated in f64.
double fk_sumsq_f32(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
