import CFuseKernels

/// Element conversions at the edges: every kernel works in Float32, storage is f32, f16, bf16 or f64
/// (quantized types dequantize through `Dequantizers`). Vector paths live in CFuseKernels with a
/// portable fallback; rounding is round-to-nearest-even (formats-and-models.md §8).
public enum Convert {
    /// Converts `count` elements of `dtype` at `src` to Float32 at `dst`.
    public static func toFloat32(_ dtype: DType, from src: UnsafeRawPointer, to dst: UnsafeMutablePointer<Float>, count: Int) throws {
        switch dtype {
        case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .bf16: fk_bf16_to_f32(src.assumingMemoryBound(to: UInt16.self), dst, count)
        case .f16: fk_f16_to_f32(src.assumingMemoryBound(to: UInt16.self), dst, count)
        case .f64:
            let s = src.assumingMemoryBound(to: Double.self)
            for i in 0..<count { dst[i] = Float(s[i]) }
        case .i8: widen(src, Int8.self, dst, count)
        case .u8, .bool: widen(src, UInt8.self, dst, count)
        case .i16: widen(src, Int16.self, dst, count)
        case .u16: widen(src, UInt16.self, dst, count)
        case .i32: widen(src, Int32.self, dst, count)
        case .u32: widen(src, UInt32.self, dst, count)
        case .i64: widen(src, Int64.self, dst, count)
        case .u64: widen(src, UInt64.self, dst, count)
        default:
            guard let dequantize = Dequantizers.table[dtype] else {
                throw TensorError.unsupportedConversion(from: dtype, to: .f32)
            }
            dequantize(src, dst, count)
        }
    }

    /// Converts `count` Float32 values at `src` to `dtype` at `dst`.
    public static func fromFloat32(_ dtype: DType, from src: UnsafePointer<Float>, to dst: UnsafeMutableRawPointer, count: Int) throws {
        switch dtype {
        case .f32: dst.assumingMemoryBound(to: Float.self).update(from: src, count: count)
        case .bf16: fk_f32_to_bf16(src, dst.assumingMemoryBound(to: UInt16.self), count)
        case .f16: fk_f32_to_f16(src, dst.assumingMemoryBound(to: UInt16.self), count)
        case .f64:
            let d = dst.assumingMemoryBound(to: Double.self)
            for i in 0..<count { d[i] = Double(src[i]) }
        default: throw TensorError.unsupportedConversion(from: .f32, to: dtype)
        }
    }

    private static func widen<T: BinaryInteger>(_ src: UnsafeRawPointer, _: T.Type, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.stride, as: T.self)) }
    }

    // Scalar helpers for tests and odd spots; bulk work uses the functions above.
    public static func bf16Bits(_ f: Float) -> UInt16 { fk_f32_to_bf16_scalar(f) }
    public static func f16Bits(_ f: Float) -> UInt16 { fk_f32_to_f16_scalar(f) }
    public static func float(fromBF16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
    public static func float(fromF16 bits: UInt16) -> Float { fk_f16_to_f32_scalar(bits) }
}

/// Block dequantizers keyed by type: `(blocks, out, elementCount)`. The GGUF quant module fills the
/// table (one short function per format, formats-and-models.md §2.5).
public enum Dequantizers {
    public typealias Function = @Sendable (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void
    nonisolated(unsafe) public static var table: [DType: Function] = Quantization.dequantizers
}
