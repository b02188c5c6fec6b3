import Foundation
import FuseTensor

/// Multi-SLERP: barycentric interpolation on the hypersphere in one tangent-space step. xᵢ = θᵢ (or τᵢ
/// with a base), uᵢ = xᵢ/(‖xᵢ‖+eps), m = Σwᵢuᵢ normalised, tangents tᵢ = uᵢ − ⟨uᵢ,m⟩m, T = Σwᵢtᵢ,
/// r = cos‖T‖·m + sin‖T‖·T/‖T‖, out = (Σwᵢ‖xᵢ‖)·r (+ θ₀). One non-base input is returned as is.
/// https://goddard.blog/posts/multislerp-wow-what-a-cool-idea
public struct MultiSlerp: MergeMethod {
    public let name = "multislerp"
    public let prettyName = "Multi-SLERP"
    public let referenceURL: String? = "https://goddard.blog/posts/multislerp-wow-what-a-cool-idea"
    public var parameters: [ParameterSpec] {
        [.float("weight", .nonBase, nil), .bool("normalize_weights", true), .float("eps", .shared, 1e-8)]
    }
    public var contract: InputContract { InputContract(base: .optional, minNonBase: 1) }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        let others = g.nonBase, pr = g.precision, out = g.output
        if others.count == 1 { g.copyToOutput(others[0]); return }
        let xs = others.map { g.inputs[$0] }
        if let b = g.baseIndex {
            let base = g.inputs[b]
            for x in xs { for j in x.indices { x[j] = pr.r(x[j] - base[j]) } }
        }
        var w = others.map { pr.r(Float(p.double("weight", input: $0) ?? 0)) }
        if p.bool("normalize_weights") {
            var s: Float = 0
            for v in w { s += v }
            s = pr.r(s)
            w = w.map { pr.r($0 / s) }
        }
        let eps = Float(p.double("eps"))
        let norms = xs.map { torchNorm($0, pr) }
        // Units overwrite the inputs.
        for (k, x) in xs.enumerated() {
            let d = pr.r(norms[k] + eps)
            for j in x.indices { x[j] = pr.r(x[j] / d) }
        }
        let meanStorage = Scratch(count: g.count)
        defer { withExtendedLifetime(meanStorage) {} }
        let mean = meanStorage.buffer
        for j in mean.indices {
            var s: Float = 0
            for k in xs.indices { s += pr.r(xs[k][j] * w[k]) }
            mean[j] = pr.r(s)
        }
        let meanNorm = torchNorm(mean, pr)
        if meanNorm < eps {
            guard xs.count == 2 else {
                throw MergeError.method(name: name, tensor: g.name, message: "the weighted sum of the inputs is zero (antipodal inputs with balancing weights); use different weights")
            }
            // Linear fallback uses the original vectors: undo the unit scaling.
            for j in out.indices {
                let a = pr.r(xs[0][j] * pr.r(norms[0] + eps)), b = pr.r(xs[1][j] * pr.r(norms[1] + eps))
                out[j] = pr.r(pr.r(a * w[0]) + pr.r(b * w[1]))
            }
            if let b = g.baseIndex { let base = g.inputs[b]; for j in out.indices { out[j] = pr.r(out[j] + base[j]) } }
            return
        }
        for j in mean.indices { mean[j] = pr.r(mean[j] / meanNorm) }
        let dots = xs.map { x -> Float in
            var s = 0.0
            for j in x.indices { s += Double(pr.r(x[j] * mean[j])) }
            return pr.r(Float(s))
        }
        let tangent = out
        for j in tangent.indices {
            var s: Float = 0
            for k in xs.indices { s += pr.r(pr.r(xs[k][j] - pr.r(dots[k] * mean[j])) * w[k]) }
            tangent[j] = pr.r(s)
        }
        let tn = pr.r(torchNorm(tangent, pr) + eps)
        let cosT = pr.r(cosf(tn)), sinOverT = pr.r(pr.r(sinf(tn)) / tn)
        var avg: Float = 0
        for k in xs.indices { avg += pr.r(norms[k] * w[k]) }
        avg = pr.r(avg)
        for j in out.indices {
            out[j] = pr.r(pr.r(pr.r(mean[j] * cosT) + pr.r(tangent[j] * sinOverT)) * avg)
        }
        if let b = g.baseIndex { let base = g.inputs[b]; for j in out.indices { out[j] = pr.r(out[j] + base[j]) } }
    }
}
