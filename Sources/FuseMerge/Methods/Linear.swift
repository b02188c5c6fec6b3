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
            // torch's addcmul_ is a fused multiply-add. Swift's baseline x86-64 target has no FMA
            // instruction (fmaf is a libm call), so the fused step is computed in Double: x·w is exact
            // there, and the sum rounds once more only when the magnitudes are ~2^29 apart.
            let m = r.count
            let acc = UnsafeMutablePointer<Float>.allocate(capacity: m)
            defer { acc.deallocate() }
            acc.initialize(repeating: 0, count: m)
            for k in inputs.indices {
                guard let x = inputs[k].baseAddress.map({ $0 + r.lowerBound }) else { continue }
                let w = Double(weights[k])
                for j in 0..<m { acc[j] = Float(Double(x[j]) * w + Double(acc[j])) }
            }
            let d = denominator
            switch pr {
            case .f32: for j in 0..<m { out[r.lowerBound + j] = normalize ? acc[j] / d : acc[j] }
            case .bf16: for j in 0..<m { out[r.lowerBound + j] = roundToBF16(normalize ? acc[j] / d : acc[j]) }
            case .f16: for j in 0..<m { out[r.lowerBound + j] = pr.r(normalize ? acc[j] / d : acc[j]) }
            }
        }
    }
}
