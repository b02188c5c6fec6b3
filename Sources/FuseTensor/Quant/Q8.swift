// Q8_1: 32 weights per block, signed 8-bit quants (ggml `block_q8_1`). Q8_0 lives in CFuseKernels/quant.c.

/// Q8_1, 36 bytes per 32 weights (9 bits/weight), ggml's current `block_q8_1`:
///
///     offset 0  d:  f16
///     offset 2  s:  f16 (d * sum(qs), used only by dot products)
///     offset 4  qs: i8[32]
///     y[i] = qs[i] * d
///
/// ggml uses Q8_1 for activations and never stores it in model files; gguf-py 0.19.0 still lists the
/// old 40-byte layout (f32 d and s) and has no dequantizer, so there is no oracle for this one.
@Sendable func dequantizeQ8_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    for b in 0..<count / 32 {
        let block = src + b * 36
        let y = dst + b * 32
        let d = halfField(block, 0)
        for j in 0..<32 {
            y[j] = Float(block.load(fromByteOffset: 4 + j, as: Int8.self)) * d
        }
    }
}
