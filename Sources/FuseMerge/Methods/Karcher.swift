import Foundation
import FuseTensor

/// Karcher (Fréchet) mean on the unit hypersphere with equal weights αᵢ = 1/N over every input (a base
/// is an ordinary input). Inputs with ‖θᵢ‖ <= tol leave the direction; the scale Σαᵢ‖θᵢ‖ keeps them.
/// Iterates u ← exp_u(Σαᵢ(φᵢ/sin φᵢ)(uᵢ − cᵢu)) at most max_iter times or until the step is < tol.
/// https://arxiv.org/abs/2603.04972
public struct Karcher: MergeMethod {
    public let name = "karcher"
    public let prettyName = "Karcher Mean"
    public let referenceURL: String? = "https://arxiv.org/abs/2603.04972"
    public var parameters: [ParameterSpec] {
        [ParameterSpec("max_iter", .int, .shared, default: .value(.number(10))), .float("tol", .shared, 1e-5)]
    }
    public var contract: InputContract { InputContract() }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        let xs = g.inputs, pr = g.precision, out = g.output
        if xs.count == 1 { g.copyToOutput(0); return }
        let tol = p.double("tol"), maxIter = Int(p.double("max_iter"))
        let alphas = xs.map { _ in 1.0 / Double(xs.count) }
        let norms = xs.map { torchVectorNorm($0) }   // torch.linalg.vector_norm in f32, in torch's order
        // Units overwrite the inputs.
        for (k, x) in xs.enumerated() {
            if norms[k] == 0 { x.update(repeating: 0) } else { for j in x.indices { x[j] = pr.r(x[j] / norms[k]) } }
        }
        let valid = xs.indices.filter { Double(norms[$0]) > tol }
        guard !valid.isEmpty else { out.update(repeating: 0); return }
        let alphaSum = valid.reduce(0.0) { $0 + alphas[$1] }
        let a = valid.map { Float(alphas[$0] / alphaSum) }
        let units = valid.map { xs[$0] }
        let mean = out
        mean.update(repeating: 0)
        for (k, u) in units.enumerated() { for j in mean.indices { mean[j] = pr.r(mean[j] + pr.r(a[k] * u[j])) } }
        let meanNorm = torchVectorNorm(mean)
        if Double(meanNorm) < tol { _ = mean.update(fromContentsOf: units[0]) } else { for j in mean.indices { mean[j] = pr.r(mean[j] / meanNorm) } }
        let tangentStorage = Scratch(count: g.count)
        defer { withExtendedLifetime(tangentStorage) {} }
        let tangent = tangentStorage.buffer
        for _ in 0..<max(0, maxIter) {
            tangent.update(repeating: 0)
            for (k, u) in units.enumerated() {
                let c = min(max(pr.r(Float(dot(mean, u))), -1), 1)
                let theta = pr.r(acosf(c))
                if Double(theta) < tol { continue }
                let coefficient = pr.r(a[k] * pr.r(theta / pr.r(sinf(theta))))
                for j in tangent.indices {
                    tangent[j] = pr.r(tangent[j] + pr.r(coefficient * pr.r(u[j] - pr.r(c * mean[j]))))
                }
            }
            let tn = torchVectorNorm(tangent)
            if Double(tn) < tol { break }
            // `torch.cos(tangent_norm) * mean`: a 0-dim Float32 tensor as the *first* operand is cast to the
            // bf16 common dtype before the multiply (torch keeps a scalar's Float32 value only as the second
            // operand, as in `tangent / tangent_norm`), so cos and sin are rounded first.
            let cs = pr.r(cosf(tn)), sn = pr.r(sinf(tn))
            for j in mean.indices { mean[j] = pr.r(pr.r(cs * mean[j]) + pr.r(sn * pr.r(tangent[j] / tn))) }
            let un = torchVectorNorm(mean)
            if Double(un) > tol { for j in mean.indices { mean[j] = pr.r(mean[j] / un) } }
        }
        var scale: Float = 0
        for k in xs.indices { scale += Float(alphas[k]) * norms[k] }
        scale = pr.r(scale)   // `scale * mean`: the Float32 scalar comes first, so it is rounded too
        for j in out.indices { out[j] = pr.r(scale * mean[j]) }
    }
}
