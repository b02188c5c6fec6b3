import FuseTensor

/// Linear: out = Σ wᵢθᵢ, divided by Σ wᵢ with normalize (no zero guard, as in mergekit). A listed base
/// is an ordinary input with a weight. Computed in Float32 whatever the dtype (fused multiply-adds, as
/// torch's vectorised addcmul_), then rounded once.
/// https://arxiv.org/abs/2203.05482
public struct Linear: MergeMethod {
    public let name = "linear"
    public let prettyName = "Linear"
    public let referenceURL: String? = "https://arxiv.org/abs/2203.05482"
    public var parameters: [ParameterSpec] { [.float("weight", .input, nil), .bool("normalize", true)] }
    public var contract: InputContract { InputContract() }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        let weights = g.inputs.indices.map { Float(p.double("weight", input: $0) ?? 0) }
        var denominator: Float = 0
        for w in weights { denominator += w }
        let normalize = p.bool("normalize")
        let inputs = g.inputs, out = g.output, pr = g.precision
        parallelFor(count: g.count, chunkSize: 1 << 14) { _, r in
            for j in r {
                var s: Float = 0
                for k in inputs.indices { s.addProduct(inputs[k][j], weights[k]) }   // torch's addcmul_ is fused
                out[j] = pr.r(normalize ? s / denominator : s)
            }
        }
    }
}
