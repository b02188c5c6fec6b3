/// The GGUF block formats FuseKit can dequantize, one short function per format under `Quant/`
/// (formats-and-models.md §2.5). Each function turns whole blocks into Float32 and is bit-exact
/// against gguf-py 0.19.0's `gguf.quants.dequantize`, which follows ggml's `dequantize_row_*`: the
/// products are formed in ggml's order (`d * sc` first, then `* q`; `dmin * m` separately, then
/// subtracted), with no fused multiply-add, so every rounding step is the same.
///
/// Callers pass a whole number of blocks: `elementCount` is a multiple of the type's block size and
/// `blocks` holds `elementCount / blockElements * blockBytes` readable bytes. The GGUF reader checks
/// both before it calls in; a trailing partial block is ignored.
enum Quantization {
    static var dequantizers: [DType: Dequantizers.Function] {
        [
            .q4_0: dequantizeQ4_0, .q4_1: dequantizeQ4_1,
            .q5_0: dequantizeQ5_0, .q5_1: dequantizeQ5_1,
            .q8_0: dequantizeQ8_0, .q8_1: dequantizeQ8_1,
            .q2_K: dequantizeQ2_K, .q3_K: dequantizeQ3_K, .q4_K: dequantizeQ4_K,
            .q5_K: dequantizeQ5_K, .q6_K: dequantizeQ6_K,
        ]
    }
}

// MARK: - Field readers shared by the block formats (all fields are little-endian and unaligned)

/// The IEEE half at `offset`, widened exactly to Float32.
@inline(__always)
func halfField(_ block: UnsafeRawPointer, _ offset: Int) -> Float {
    Convert.float(fromF16: UInt16(littleEndian: block.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

@inline(__always)
func byteField(_ block: UnsafeRawPointer, _ offset: Int) -> UInt8 {
    block.load(fromByteOffset: offset, as: UInt8.self)
}

/// ggml's `QK_K`: elements per K-quant super-block.
let superBlockElements = 256
