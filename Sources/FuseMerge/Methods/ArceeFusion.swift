import Foundation
import FuseTensor

/// Arcee Fusion: importance I = |θ₁ − θ₀| · KL(softmax θ₁ ‖ softmax θ₀) per row (last axis), threshold
/// τ* = median(I) + 1.5·(Q3 − Q1) with quantile q taken at index ⌊q·(n−1)⌋ of the sorted values, and
/// out = θ₀ + [I ≥ τ*]·(θ₁ − θ₀). Above `quantileSampleSize` elements the quantiles come from a random
/// sample (with replacement, as mergekit does), drawn from the tensor's seeded stream.
public struct ArceeFusion: MergeMethod {
    public let name = "arcee_fusion"
    public let prettyName = "Arcee Fusion"
    public let referenceURL: String? = "https://arcee.ai"
    public var parameters: [ParameterSpec] { [] }
    public var contract: InputContract { InputContract(base: .required, minInputs: 2, maxInputs: 2) }
    public var optionalTensorPolicy: OptionalTensorPolicy { .passthroughSingleton }
    public var isRandom: Bool { true }
    /// The fusion mask is a Float32 tensor, so torch promotes the result to Float32.
    public func resultDType(compute: DType) -> DType { compute == .f64 ? .f64 : .f32 }

    static let quantileSampleSize = 1_000_000
    static let probabilityEpsilon: Float = 1e-8

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard let bi = g.baseIndex, let oi = g.nonBase.first else {
            throw MergeError.method(name: name, tensor: g.name, message: "needs a base and one other model")
        }
        let pr = g.precision, q = g.inputs[bi], pp = g.inputs[oi], out = g.output
        let n = g.count
        if n == 0 { return }
        let cols = g.shape.last ?? 1
        let rows = cols == 0 ? 0 : n / cols
        let importanceStorage = Scratch(count: n)
        defer { withExtendedLifetime(importanceStorage) {} }
        let importance = importanceStorage.buffer
        let eps = Self.probabilityEpsilon
        parallelFor(count: rows, chunkSize: 1) { row, _ in
            let s = row * cols
            func softmax(_ x: UnsafeMutableBufferPointer<Float>) -> [Float] {
                var m = -Float.infinity
                for j in s..<(s + cols) { m = max(m, x[j]) }
                var e = [Float](repeating: 0, count: cols), total: Float = 0
                for j in 0..<cols { e[j] = expf(x[s + j] - m); total += e[j] }
                return e.map { pr.r(pr.r($0 / total) + eps) }
            }
            let pp1 = softmax(pp), qq = softmax(q)
            var kl = 0.0
            for j in 0..<cols { kl += Double(pr.r(pp1[j] * pr.r(logf(pr.r(pp1[j] / qq[j]))))) }
            let k = pr.r(Float(kl))
            for j in s..<(s + cols) { importance[j] = pr.r(pr.r(abs(pr.r(pp[j] - q[j]))) * k) }
        }
        var sample: [Float]
        if n > Self.quantileSampleSize {
            var rng = SeededRNG(seed: g.seed, name: g.name, chunk: 0)
            sample = (0..<Self.quantileSampleSize).map { _ in importance[Int(rng.next() % UInt64(n))] }
        } else {
            sample = Array(importance)
        }
        sample.sort()
        func quantile(_ fraction: Float) -> Float {
            sample[min(sample.count - 1, Int(fraction * Float(sample.count - 1)))]
        }
        let q1 = quantile(0.25), median = quantile(0.5), q3 = quantile(0.75)
        let threshold = pr.r(median + pr.r(1.5 * pr.r(q3 - q1)))
        for j in out.indices {
            let keep: Float = importance[j] >= threshold ? 1 : 0
            out[j] = q[j] + pr.r(pp[j] - q[j]) * keep
        }
    }
}
