import Foundation

/// Errors of the tensor layer. Messages say what failed and what to do.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(what: String, expected: [Int], got: [Int])
    case byteCountMismatch(what: String, expected: Int, got: Int)
    case unsupportedConversion(from: DType, to: DType)
    case invalidShape([Int])
    case lapack(routine: String, info: Int)

    public var description: String {
        switch self {
        case let .shapeMismatch(what, expected, got):
            return "\(what): expected shape \(expected), got \(got)"
        case let .byteCountMismatch(what, expected, got):
            return "\(what): expected \(expected) bytes, got \(got)"
        case let .unsupportedConversion(from, to):
            return "cannot convert \(from.rawValue) to \(to.rawValue): only f32, f16, bf16 and f64 convert element-wise (quantized types dequantize to f32 first)"
        case let .invalidShape(shape):
            return "invalid shape \(shape): dimensions must be non-negative and their product must fit in memory"
        case let .lapack(routine, info):
            return "LAPACK \(routine) failed (info = \(info)); the matrix may hold NaN or Inf"
        }
    }
}

/// Raw bytes, either owned (allocated, 64-byte aligned) or borrowed from an owner such as a memory map
/// that stays alive as long as this buffer does.
public final class Buffer: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let byteCount: Int
    private let owner: AnyObject?
    private let ownsMemory: Bool

    /// Zero-filled owned memory.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        self.base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        self.base.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        self.owner = nil
        self.ownsMemory = true
    }

    /// A view of `byteCount` bytes at `base`, kept valid by `owner`.
    public init(borrowing base: UnsafeRawPointer, byteCount: Int, owner: AnyObject) {
        self.base = UnsafeMutableRawPointer(mutating: base)
        self.byteCount = byteCount
        self.owner = owner
        self.ownsMemory = false
    }

    deinit { if ownsMemory { base.deallocate() } }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: byteCount) }
}

/// Keeps an array alive for the `Buffer` that borrows its storage (`Tensor(sharing:shape:)`).
private final class SharedFloats {
    let values: [Float]
    init(_ values: [Float]) { self.values = values }
}

/// A dense row-major tensor: element type, shape, and its bytes. Values are immutable by convention
/// except through `withMutableFloats` on owned f32 tensors.
public struct Tensor: @unchecked Sendable {
    public let dtype: DType
    public let shape: [Int]
    public let buffer: Buffer

    public init(dtype: DType, shape: [Int], buffer: Buffer) throws {
        guard let n = elementCount(shape) else { throw TensorError.invalidShape(shape) }
        guard let bytes = dtype.byteCount(elements: n) else { throw TensorError.invalidShape(shape) }
        guard bytes == buffer.byteCount else {
            throw TensorError.byteCountMismatch(what: "tensor \(dtype.rawValue)\(shape)", expected: bytes, got: buffer.byteCount)
        }
        self.dtype = dtype
        self.shape = shape
        self.buffer = buffer
    }

    /// An owned f32 tensor holding `values`.
    public init(floats values: [Float], shape: [Int]) throws {
        guard elementCount(shape) == values.count else {
            throw TensorError.shapeMismatch(what: "values", expected: shape, got: [values.count])
        }
        let buffer = Buffer(byteCount: values.count * 4)
        values.withUnsafeBytes { buffer.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } // invariant: non-empty alloc
        try self.init(dtype: .f32, shape: shape, buffer: buffer)
    }

    /// A read-only f32 tensor over `values` without copying them: the buffer keeps the array alive, and
    /// the array is never mutated through it (its storage cannot move while it is shared and unchanged).
    public init(sharing values: [Float], shape: [Int]) throws {
        guard elementCount(shape) == values.count else {
            throw TensorError.shapeMismatch(what: "values", expected: shape, got: [values.count])
        }
        let owner = SharedFloats(values)
        guard let base = owner.values.withUnsafeBytes({ $0.baseAddress }) else { try self.init(floats: values, shape: shape); return }
        try self.init(dtype: .f32, shape: shape, buffer: Buffer(borrowing: base, byteCount: values.count * 4, owner: owner))
    }

    public var count: Int { elementCount(shape) ?? 0 }
    public var byteCount: Int { buffer.byteCount }

    /// Elements as Float32 (dequantized or widened). Quantized types need a dequantizer registered
    /// by the quant module; plain float types convert here.
    public func floats() throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { try toFloat32(into: $0.baseAddress!, count: $0.count) } // invariant
        return out
    }

    /// Writes the elements, converted to Float32, into `dst` (which holds `count` floats).
    public func toFloat32(into dst: UnsafeMutablePointer<Float>, count n: Int) throws {
        guard n == count else { throw TensorError.byteCountMismatch(what: "f32 destination", expected: count * 4, got: n * 4) }
        try Convert.toFloat32(dtype, from: UnsafeRawPointer(buffer.base), to: dst, count: n)
    }

    /// A copy of this tensor in `target` (f32, f16, bf16 or f64).
    public func converted(to target: DType) throws -> Tensor {
        if target == dtype { return self }
        let n = count
        guard let outBytes = target.byteCount(elements: n) else { throw TensorError.invalidShape(shape) }
        let out = Buffer(byteCount: outBytes)
        if dtype == .f32 {
            try Convert.fromFloat32(target, from: buffer.base.assumingMemoryBound(to: Float.self), to: out.base, count: n)
        } else {
            var tmp = [Float](repeating: 0, count: n)
            try tmp.withUnsafeMutableBufferPointer { p in
                try toFloat32(into: p.baseAddress!, count: n) // invariant
                try Convert.fromFloat32(target, from: p.baseAddress!, to: out.base, count: n)
            }
        }
        return try Tensor(dtype: target, shape: shape, buffer: out)
    }

    /// Same bytes, new shape with the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard elementCount(newShape) == count else {
            throw TensorError.shapeMismatch(what: "reshape", expected: shape, got: newShape)
        }
        return try Tensor(dtype: dtype, shape: newShape, buffer: buffer)
    }
}
