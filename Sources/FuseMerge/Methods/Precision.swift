import Foundation
import FuseTensor

/// The dtype mergekit runs a method's torch ops in. Torch rounds the result of every elementwise op on a
/// bf16/f16 tensor (computing it in Float32 first), so to reproduce mergekit bit for bit FuseKit keeps
/// values in Float32 and applies `r` after each op that torch would round. Reductions (sum, mean, norm)
/// accumulate in Float32 and are rounded once, as torch's CPU kernels do. With `.f32`, `r` is the identity.
public enum Precision: Sendable, Equatable {
    case f32, bf16, f16

    public init(_ dtype: DType) {
        switch dtype {
        case .bf16: self = .bf16
        case .f16: self = .f16
        default: self = .f32
        }
    }

    public var dtype: DType {
        switch self {
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
        }
    }

    /// Rounds to this precision and back (round-to-nearest-even, NaN kept).
    @inline(__always) public func r(_ x: Float) -> Float {
        switch self {
        case .f32: return x
        case .bf16: return roundToBF16(x)
        case .f16: return Convert.float(fromF16: Convert.f16Bits(x))
        }
    }

    /// Rounds every element of `buffer` in place.
    public func round(_ buffer: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .f32: return
        case .bf16: for i in buffer.indices { buffer[i] = roundToBF16(buffer[i]) }
        case .f16: for i in buffer.indices { buffer[i] = Convert.float(fromF16: Convert.f16Bits(buffer[i])) }
        }
    }
}

/// f32 -> bf16 -> f32 with round-to-nearest-even, the same rounding as torch's `.to(torch.bfloat16)`.
@inline(__always) func roundToBF16(_ x: Float) -> Float {
    // Branchless so loops vectorise; a NaN stays a (quiet) NaN.
    let bits = x.bitPattern
    let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000
    let nan = (bits | 0x0040_0000) & 0xFFFF_0000
    return Float(bitPattern: (bits & 0x7FFF_FFFF) > 0x7F80_0000 ? nan : rounded)
}

func l1Norm(_ x: UnsafeMutableBufferPointer<Float>) -> Double {
    var s = 0.0
    for v in x { s += Double(abs(v)) }
    return s
}

func l2Norm(_ x: UnsafeMutableBufferPointer<Float>) -> Double {
    var s = 0.0
    for v in x { s += Double(v) * Double(v) }
    return s.squareRoot()
}

/// ‖x‖₂ summed in torch's order, for where mergekit calls `torch.linalg.vector_norm` on a Float32 tensor and
/// the result's last bits matter (karcher divides bf16 tensors by it, so one ulp of the norm moves values
/// across a bf16 rounding boundary). ATen's CPU norm (ReduceOpsKernel.cpp, the p = 2 last-dim path) keeps
/// `torchNormLanes` Float32 partial sums, adds them left to right, then the leftover elements one by one,
/// and takes a Float32 square root. Checked against torch 2.15 on every length that is a multiple of 8 and
/// on most others (for a few short ragged tails torch's last bit differs).
let torchNormLanes = 8
func torchVectorNorm(_ x: UnsafeMutableBufferPointer<Float>) -> Float {
    var lanes = [Float](repeating: 0, count: torchNormLanes)
    let full = x.count - x.count % torchNormLanes
    var i = 0
    while i < full {
        for l in 0..<torchNormLanes { lanes[l] += x[i + l] * x[i + l] }
        i += torchNormLanes
    }
    var s = lanes[0]
    for l in 1..<torchNormLanes { s += lanes[l] }
    while i < x.count { s += x[i] * x[i]; i += 1 }
    return s.squareRoot()
}

func dot(_ x: UnsafeMutableBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>) -> Double {
    var s = 0.0
    for i in x.indices { s += Double(x[i]) * Double(y[i]) }
    return s
}

/// A scratch Float32 buffer, returned to `BufferPool` when the value dies.
final class Scratch {
    private let base: UnsafeMutablePointer<Float>
    private let capacity: Int
    let buffer: UnsafeMutableBufferPointer<Float>
    /// `zeroed: false` leaves the contents unspecified, for buffers the caller fills completely.
    init(count: Int, zeroed: Bool = true) {
        (base, capacity) = BufferPool.shared.take(count)
        if zeroed { base.initialize(repeating: 0, count: max(count, 1)) }
        buffer = UnsafeMutableBufferPointer(start: base, count: count)
    }
    deinit { BufferPool.shared.give(base, capacity: capacity) }
}

/// Reuses large Float32 buffers across tensors. A merge allocates buffers of the same few shapes over and
/// over; fresh allocations of that size come from mmap, so every tensor would pay a page fault and a
/// kernel zero-fill per 4 KiB page (gigabytes of them per merge). The pool keeps at most `limitBytes`.
final class BufferPool: @unchecked Sendable {
    static let shared = BufferPool()
    /// Buffers smaller than this go straight to malloc (it recycles them well).
    static let minimumPooled = 1 << 18
    var limitBytes = 640 << 20
    private let lock = NSLock()
    private var free: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []
    private var pooledBytes = 0

    func take(_ count: Int) -> (UnsafeMutablePointer<Float>, Int) {
        let need = max(count, 1)
        if need >= Self.minimumPooled {
            lock.lock()
            // Smallest free buffer that fits without wasting more than half of it.
            var best: Int?
            for (i, f) in free.enumerated() where f.capacity >= need && f.capacity <= 2 * need {
                if best == nil || f.capacity < free[best ?? 0].capacity { best = i }
            }
            if let i = best {
                let f = free.remove(at: i)
                pooledBytes -= f.capacity * 4
                lock.unlock()
                return (f.pointer, f.capacity)
            }
            // A miss: shrink the pool (oldest first) so pooled + this new buffer stay within the limit;
            // peak memory is then about max(limit, what is in use).
            var evicted: [UnsafeMutablePointer<Float>] = []
            while pooledBytes + need * 4 > limitBytes, !free.isEmpty {
                let f = free.removeFirst()
                pooledBytes -= f.capacity * 4
                evicted.append(f.pointer)
            }
            lock.unlock()
            for p in evicted { p.deallocate() }
        }
        return (.allocate(capacity: need), need)
    }

    func give(_ pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        guard capacity >= Self.minimumPooled else { pointer.deallocate(); return }
        lock.lock()
        free.append((pointer, capacity))
        pooledBytes += capacity * 4
        var evicted: [UnsafeMutablePointer<Float>] = []
        while pooledBytes > limitBytes, !free.isEmpty {
            let f = free.removeFirst()     // oldest first
            pooledBytes -= f.capacity * 4
            evicted.append(f.pointer)
        }
        lock.unlock()
        for p in evicted { p.deallocate() }
    }
}

// MARK: - Rounding as a type, for hot loops

/// `Precision.r` as a static function, so generic kernels specialise into one loop per precision
/// with no per-element switch (the loops then vectorise).
protocol Rounder { static func r(_ x: Float) -> Float }
enum RoundF32: Rounder { @inline(__always) static func r(_ x: Float) -> Float { x } }
enum RoundBF16: Rounder { @inline(__always) static func r(_ x: Float) -> Float { roundToBF16(x) } }
enum RoundF16: Rounder { @inline(__always) static func r(_ x: Float) -> Float { Convert.float(fromF16: Convert.f16Bits(x)) } }

/// x ← r(x − y) elementwise, in parallel chunks.
func subtractInPlace(_ x: UnsafeMutableBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>, _ pr: Precision) {
    func run<R: Rounder>(_: R.Type) {
        parallelFor(count: x.count, chunkSize: 1 << 16) { _, r in
            for j in r { x[j] = R.r(x[j] - y[j]) }
        }
    }
    switch pr {
    case .f32: run(RoundF32.self)
    case .bf16: run(RoundBF16.self)
    case .f16: run(RoundF16.self)
    }
}
