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
/// A norm over a strided vector (`torch.norm(x, dim=0)` of a row-major matrix, one column) is summed
/// top to bottom in Float32: torch vectorises across the columns instead.
let torchNormLanes = 8
/// `block`: the main loop covers whole multiples of it (8 for Float32; 16 for bf16/f16, whose vectors hold
/// 16 elements that torch widens into two Float32 vectors added to the same 8 partial sums).
func torchVectorNorm(_ x: UnsafeMutableBufferPointer<Float>, start: Int = 0, count: Int? = nil, stride: Int = 1, block: Int = 8,
                     sequential: Bool = false) -> Float {
    let n = count ?? x.count
    if stride != 1 || sequential {
        var s: Float = 0
        for i in 0..<n { let v = x[start + i * stride]; s += v * v }
        return s.squareRoot()
    }
    var lanes = [Float](repeating: 0, count: torchNormLanes)
    let full = n - n % block
    var i = 0
    while i < full {
        for l in 0..<torchNormLanes { let v = x[start + i + l]; lanes[l] += v * v }
        i += torchNormLanes
    }
    var s = lanes[0]
    for l in 1..<torchNormLanes { s += lanes[l] }
    while i < n { let v = x[start + i]; s += v * v; i += 1 }
    return s.squareRoot()
}

/// `x.sum()` of a contiguous Float32 vector in torch's order (ATen SumKernel.cpp `cascade_sum`, one
/// thread): the elements as vectors of `torchNormLanes`, those summed by `torchRowSum` (4 interleaved
/// accumulators, each a 4-level cascade); the leftover elements are summed from 0, then the lanes are
/// added to that left to right. Checked against torch 2.15 up to 32768 elements; above that torch splits
/// the sum between threads, so its own result depends on the thread count.
func torchSum(_ x: UnsafeMutableBufferPointer<Float>) -> Float {
    let lanes = torchNormLanes, n = x.count
    guard n >= lanes else { return torchRowSum(count: n, width: 1) { i, _ in x[i] }[0] }
    let vectors = n / lanes
    let partial = torchRowSum(count: vectors, width: lanes) { i, l in x[i * lanes + l] }
    var total: Float = 0
    for k in (vectors * lanes)..<n { total += x[k] }
    for l in 0..<lanes { total += partial[l] }
    return total
}

/// ATen's `row_sum`: `count` elements of `width` lanes each, read through `load(element, lane)`, summed as
/// rows of `ilp` = 4 by `multi_row_sum`; leftovers go to the first accumulator, then the four are added.
func torchRowSum(count: Int, width: Int, _ load: (Int, Int) -> Float) -> [Float] {
    let ilp = 4, levels = 4
    let rows = count / ilp
    // multi_row_sum: acc[level][k][lane]; every `step` rows level 0 is carried up the cascade.
    let power = max(4, ceilLog2(rows) / levels), step = 1 << power, mask = step - 1
    var acc = [Float](repeating: 0, count: levels * ilp * width)
    @inline(__always) func at(_ level: Int, _ k: Int, _ l: Int) -> Int { (level * ilp + k) * width + l }
    var i = 0
    while i + step <= rows {
        for _ in 0..<step {
            for k in 0..<ilp { for l in 0..<width { acc[at(0, k, l)] += load(i * ilp + k, l) } }
            i += 1
        }
        for level in 1..<levels {
            for k in 0..<ilp { for l in 0..<width { acc[at(level, k, l)] += acc[at(level - 1, k, l)]; acc[at(level - 1, k, l)] = 0 } }
            if i & (mask << (level * power)) != 0 { break }
        }
    }
    while i < rows {
        for k in 0..<ilp { for l in 0..<width { acc[at(0, k, l)] += load(i * ilp + k, l) } }
        i += 1
    }
    for level in 1..<levels { for k in 0..<ilp { for l in 0..<width { acc[at(0, k, l)] += acc[at(level, k, l)] } } }
    var result = (0..<width).map { acc[at(0, 0, $0)] }
    for e in (rows * ilp)..<count { for l in 0..<width { result[l] += load(e, l) } }
    for k in 1..<ilp { for l in 0..<width { result[l] += acc[at(0, k, l)] } }
    return result
}

/// c10's CeilLog2 (1 for x <= 2).
func ceilLog2(_ x: Int) -> Int {
    x <= 2 ? 1 : (Int.bitWidth - (x - 1).leadingZeroBitCount)
}

/// `torch.norm` (over the last axis, or `stride` apart) of a tensor held in precision `pr`, summed in
/// torch's order in Float32 and rounded once to the tensor's type: Float32 and bf16 take ATen's vectorised
/// p = 2 path (bf16 vectors of 16 widened into the 8 Float32 partial sums), f16 is not on that path and
/// is summed in order. (A norm within a few Float32 ulps of a half-precision rounding boundary is common
/// enough: the exactly rounded one moved whole f16 multislerp tensors by a norm ulp.)
func torchNorm(_ x: UnsafeMutableBufferPointer<Float>, _ pr: Precision, start: Int = 0, count: Int? = nil, stride: Int = 1) -> Float {
    switch pr {
    case .f32: return torchVectorNorm(x, start: start, count: count, stride: stride)
    case .bf16: return pr.r(torchVectorNorm(x, start: start, count: count, stride: stride, block: 16))
    case .f16: return pr.r(torchVectorNorm(x, start: start, count: count, stride: stride, sequential: true))
    }
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
