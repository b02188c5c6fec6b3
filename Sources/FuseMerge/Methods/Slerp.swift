import Foundation
import FuseTensor

/// SLERP between the base (t = 0) and the other model (t = 1), the whole tensor as one vector, in Float32
/// whatever the dtype. Near-parallel or antiparallel vectors (|cos| > `dotThreshold`) fall back to linear
/// interpolation. Coefficients apply to the ORIGINAL vectors, so norms are not exactly preserved.
/// https://en.wikipedia.org/wiki/Slerp
public struct Slerp: MergeMethod {
    public let name = "slerp"
    public let prettyName = "SLERP"
    public let referenceURL: String? = "https://en.wikipedia.org/wiki/Slerp"
    public var parameters: [ParameterSpec] { [.float("t", .shared, nil)] }
    public var contract: InputContract { InputContract(base: .required, minInputs: 2, maxInputs: 2) }
    public var optionalTensorPolicy: OptionalTensorPolicy { .passthroughSingleton }

    /// mergekit's DOT_THRESHOLD: above this |cos| the vectors count as collinear.
    static let dotThreshold: Float = 0.9995
    /// Norms at or below this are treated as 1 (the vector is left unnormalised).
    static let normEpsilon: Double = 1e-8

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard let bi = g.baseIndex, let oi = g.nonBase.first, g.inputs.count == 2 else {
            throw MergeError.method(name: name, tensor: g.name, message: "needs exactly two models, one of them the base_model")
        }
        let a = g.inputs[bi], b = g.inputs[oi], out = g.output, pr = g.precision
        let t = Float(p.double("t"))
        if g.count == 0 { return }
        var na = Float(l2Norm(a)), nb = Float(l2Norm(b))
        if !(Double(na) > Self.normEpsilon) { na = 1 }
        if !(Double(nb) > Self.normEpsilon) { nb = 1 }
        var d = 0.0
        for j in a.indices { d += Double(a[j] / na) * Double(b[j] / nb) }
        let c = min(max(Float(d), -1), 1)
        let linear = abs(c) > Self.dotThreshold
        let theta = acosf(linear ? 0 : c)
        let sinTheta = sinf(theta)
        let ca: Float = linear ? 1 - t : sinf((1 - t) * theta) / sinTheta
        let cb: Float = linear ? t : sinf(t * theta) / sinTheta
        parallelFor(count: g.count, chunkSize: 1 << 16) { _, r in
            for j in r { out[j] = pr.r(ca * a[j] + cb * b[j]) }
        }
    }
}
