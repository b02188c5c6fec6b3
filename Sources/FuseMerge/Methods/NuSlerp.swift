import Foundation
import FuseTensor

/// NuSLERP: t = w₂/(w₁+w₂) over the two non-base models in config order (0.5 when |w₁+w₂| < 1e-6).
/// With a base, slerps the task vectors and adds θ₀. `nuslerp_flatten` (default) treats the tensor as one
/// vector; otherwise each row (vectors along the last axis), or each column with `nuslerp_row_wise`
/// (mergekit's naming, the opposite of its docs). Runs in the tensors' own dtype; unit vectors use norms
/// clamped at 1e-7 and collinear vectors (1 − cos² <= 1e-16) interpolate linearly. No 0.9995 threshold.
public struct NuSlerp: MergeMethod {
    public let name = "nuslerp"
    public let prettyName = "NuSLERP"
    public var parameters: [ParameterSpec] {
        [.float("weight", .nonBase, nil), .bool("nuslerp_row_wise", false), .bool("nuslerp_flatten", true)]
    }
    public var contract: InputContract { InputContract(base: .optional, minNonBase: 2, maxNonBase: 2) }
    public var optionalTensorPolicy: OptionalTensorPolicy { .passthroughSingleton }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        let others = g.nonBase
        guard others.count == 2 else {
            throw MergeError.method(name: name, tensor: g.name, message: "needs exactly two non-base models, got \(others.count)")
        }
        let w0 = p.double("weight", input: others[0]) ?? 0, w1 = p.double("weight", input: others[1]) ?? 0
        let total = w0 + w1
        let t = abs(total) < 1e-6 ? 0.5 : w1 / total
        let pr = g.precision
        let v0 = g.inputs[others[0]], v1 = g.inputs[others[1]], out = g.output
        if let b = g.baseIndex {
            let base = g.inputs[b]
            for j in v0.indices { v0[j] = pr.r(v0[j] - base[j]); v1[j] = pr.r(v1[j] - base[j]) }
        }
        let n = g.count
        // Vectors: (count, length, stride between elements, offset of vector k).
        let flatten = p.bool("nuslerp_flatten"), columns = p.bool("nuslerp_row_wise")
        let cols = g.shape.last ?? 1
        let rows = cols == 0 ? 0 : n / cols
        let vectors: (count: Int, length: Int, stride: Int, start: (Int) -> Int)
        if flatten || g.shape.count < 2 {
            vectors = (1, n, 1, { _ in 0 })
        } else if columns && g.shape.count == 2 {
            vectors = (cols, rows, cols, { $0 })
        } else {
            vectors = (rows, cols, 1, { $0 * cols })
        }
        let oneMinusT = Float(1 - t), tf = Float(t)
        let colinearLimit = 1e-16
        parallelFor(count: vectors.count, chunkSize: 1) { k, _ in
            let s = vectors.start(k), m = vectors.length, st = vectors.stride
            // torch's summation order: near-parallel rows make the result sensitive to the norms' last bits.
            let raw0 = torchNorm(v0, pr, start: s, count: m, stride: st)
            let raw1 = torchNorm(v1, pr, start: s, count: m, stride: st)
            let norm0 = pr.r(max(raw0, 1e-7)), norm1 = pr.r(max(raw1, 1e-7))
            var c = 0.0
            for i in 0..<m { c += Double(pr.r(pr.r(v0[s + i * st] / norm0) * pr.r(v1[s + i * st] / norm1))) }
            let cosTheta = min(max(pr.r(Float(c)), -1), 1)
            let colinear = Double(pr.r(1 - pr.r(cosTheta * cosTheta))) <= colinearLimit
            let theta = pr.r(acosf(colinear ? 0 : cosTheta))
            let sinTheta = pr.r(sinf(theta))
            let c0 = pr.r(sinf(pr.r(oneMinusT * theta))), c1 = pr.r(sinf(pr.r(tf * theta)))
            for i in 0..<m {
                let j = s + i * st
                if colinear {
                    out[j] = pr.r(pr.r(oneMinusT * v0[j]) + pr.r(tf * v1[j]))
                } else {
                    out[j] = pr.r(pr.r(pr.r(c0 * v0[j]) + pr.r(c1 * v1[j])) / sinTheta)
                }
            }
        }
        if let b = g.baseIndex {
            let base = g.inputs[b]
            for j in out.indices { out[j] = pr.r(base[j] + out[j]) }
        }
    }
}
