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
    /// mergekit's _CHUNK_ELEMENTS (slerp.py): norms are taken per chunk of this many elements, then combined.
    static let normChunk = 1024 * 1024
    /// Norms at or below this are treated as 1 (the vector is left unnormalised).
    static let normEpsilon: Double = 1e-8

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard let bi = g.baseIndex, let oi = g.nonBase.first, g.inputs.count == 2 else {
            throw MergeError.method(name: name, tensor: g.name, message: "needs exactly two models, one of them the base_model")
        }
        let a = g.inputs[bi], b = g.inputs[oi], out = g.output, pr = g.precision
        let t = Float(p.double("t"))
        if g.count == 0 { return }
        // torch.linalg.vector_norm per chunk of `normChunk` elements, then over the chunk norms (slerp.py):
        // near-parallel vectors make the coefficients sensitive to the norms' last bits.
        func chunkedNorm(_ x: UnsafeMutableBufferPointer<Float>) -> Float {
            var parts: [Float] = []
            for start in stride(from: 0, to: x.count, by: Self.normChunk) {
                parts.append(torchVectorNorm(UnsafeMutableBufferPointer(rebasing: x[start..<min(x.count, start + Self.normChunk)])))
            }
            return parts.withUnsafeMutableBufferPointer { torchVectorNorm($0) }
        }
        var na = chunkedNorm(a), nb = chunkedNorm(b)
        if !(Double(na) > Self.normEpsilon) { na = 1 }
        if !(Double(nb) > Self.normEpsilon) { nb = 1 }
        // dot = Σ (a/‖a‖)(b/‖b‖) per chunk with torch's summation order, then over the chunks.
        let productStorage = Scratch(count: min(g.count, Self.normChunk), zeroed: false)
        defer { withExtendedLifetime(productStorage) {} }
        var chunkDots: [Float] = []
        for start in stride(from: 0, to: g.count, by: Self.normChunk) {
            let m = min(g.count - start, Self.normChunk)
            let products = UnsafeMutableBufferPointer(rebasing: productStorage.buffer[0..<m])
            for j in 0..<m { products[j] = (a[start + j] / na) * (b[start + j] / nb) }
            chunkDots.append(torchSum(products))
        }
        let d = chunkDots.withUnsafeMutableBufferPointer { torchSum($0) }
        let c = min(max(d, -1), 1)
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
