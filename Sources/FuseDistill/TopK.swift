// Per-row top-k and log-partition of a logits row, without sorting the vocabulary: one scalar pass
// keeps the k best in a small descending list (most entries fail one comparison against the current
// k-th), one SIMD pass sums exp(x − max) with a polynomial exp.
import Foundation

public struct RowTopK {
    /// Descending; ties keep the lower id first (torch.topk leaves tie order unspecified).
    public var ids: [Int32]
    public var logits: [Float]
    /// log Σ exp(logits) over the whole row.
    public var logPartition: Float
}

/// Top-k of `row[0..<count]` and its log-partition; nil when the row holds NaN or infinity.
public func topK(_ row: UnsafePointer<Float>, count: Int, k: Int) -> RowTopK? {
    var vals = [Float](repeating: -.infinity, count: k)
    var ids = [Int32](repeating: 0, count: k)
    var threshold = -Float.infinity
    var filled = 0
    for i in 0..<count {
        let v = row[i]
        if v > threshold || filled < k {
            guard v.isFinite else { return nil }
            // insertion into the descending list
            var p = min(filled, k - 1)
            if filled < k { filled += 1 }
            while p > 0 && vals[p - 1] < v { vals[p] = vals[p - 1]; ids[p] = ids[p - 1]; p -= 1 }
            vals[p] = v; ids[p] = Int32(i)
            threshold = filled == k ? vals[k - 1] : -.infinity
        }
    }
    let mx = vals[0]
    guard mx.isFinite else { return nil }
    let s = sumExp(row, count: count, shift: mx)
    guard s.isFinite, s > 0 else { return nil }
    return RowTopK(ids: ids, logits: vals, logPartition: mx + Float(log(s)))
}

/// Σ exp(row[i] − shift), accumulated in Float64 per 16-lane block.
func sumExp(_ row: UnsafePointer<Float>, count: Int, shift: Float) -> Double {
    var total = 0.0
    var i = 0
    let sh = SIMD16<Float>(repeating: shift)
    var acc = SIMD16<Float>(repeating: 0)
    var blocks = 0
    while i + 16 <= count {
        let x = UnsafeRawPointer(row + i).loadUnaligned(as: SIMD16<Float>.self)
        acc += fastExp(x - sh)
        i += 16; blocks += 1
        if blocks == 256 { total += Double(acc.sum()); acc = .zero; blocks = 0 }   // bounded f32 partial sums
    }
    total += Double(acc.sum())
    while i < count { total += exp(Double(row[i] - shift)); i += 1 }
    return total
}

/// exp(x) for x ≤ 0 (inputs below −87 give 0): 2^n · p(r) with n = round(x·log2 e), r = x − n·ln 2 in
/// two parts, p the degree-6 Taylor polynomial (relative error < 2e-7 on |r| ≤ ln2/2).
@inline(__always) func fastExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let lo = SIMD16<Float>(repeating: -87)
    let xc = x.replacing(with: lo, where: x .< lo)
    let n = (xc * 1.442_695_04).rounded(.toNearestOrEven)
    let r = xc - n * 0.693_145_751_953_125 - n * 1.428_606_765_330_187e-06
    var p = SIMD16<Float>(repeating: 1.0 / 720)
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let bits = SIMD16<Int32>(truncatingIfNeeded: SIMD16<Int32>(n) &+ 127) &<< 23
    let scale = unsafeBitCast(bits, to: SIMD16<Float>.self)
    return (p * scale).replacing(with: 0, where: x .< lo)
}
