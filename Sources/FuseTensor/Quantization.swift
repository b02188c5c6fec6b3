import CFuseKernels

/// The GGUF block formats FuseKit can dequantize (formats-and-models.md §2.5). The formats the runtime
/// also multiplies with (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) have one implementation, in
/// CFuseKernels/quant.c (`fk_dequant_row`), shared with the fused kernels; the file-only formats
/// (Q2_K, Q3_K, Q8_1) are short Swift functions under `Quant/`. Each turns whole blocks into Float32 and is bit-exact
/// against gguf-py 0.19.0's `gguf.quants.dequantize`, which follows ggml's `dequantize_row_*`: the
/// products are formed in ggml's order (`d * sc` first, then `* q`; `dmin * m` separately, then
/// subtracted), with no fused multiply-add, so every rounding step is the same.
///
/// Callers pass a whole number of blocks: `elementCount` is a multiple of the type's block size and
/// `blocks` holds `elementCount / blockElements * blockBytes` readable bytes. The GGUF reader checks
/// both before it calls in; a trailing partial block is ignored.
enum Quantization {
    /// The C dequantizer for `dtype` (its ggml type id).
    static func cKernel(_ dtype: DType) -> Dequantizers.Function {
        let id = dtype.traits.ggmlType ?? 0   // invariant: only called with GGUF block types
        return { src, dst, count in fk_dequant_row(id, src, dst, count) }
    }

    static var dequantizers: [DType: Dequantizers.Function] {
        [
            .q4_0: cKernel(.q4_0), .q4_1: cKernel(.q4_1), .q5_0: cKernel(.q5_0), .q5_1: cKernel(.q5_1),
            .q8_0: cKernel(.q8_0), .q4_K: cKernel(.q4_K), .q5_K: cKernel(.q5_K), .q6_K: cKernel(.q6_K),
            .q8_1: dequantizeQ8_1, .q2_K: dequantizeQ2_K, .q3_K: dequantizeQ3_K,
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
