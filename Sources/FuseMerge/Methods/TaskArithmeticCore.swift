import FuseTensor

/// The generalized task-arithmetic merge (mergekit `GeneralizedTaskArithmeticMerge`): task_arithmetic,
/// ties, dare_*, breadcrumbs*, della* are this one algorithm configured by data (sparsifier, consensus,
/// default normalize/rescale). Per tensor, with θ₀ the base:
/// 1. τᵢ = θᵢ − θ₀ for every non-base input; 2. sparsify each τᵢ with its own density;
/// 3. uᵢ = wᵢ·τᵢ; 4. with sign consensus: g = sign(Σuᵢ) (ties positive), Mᵢ = [sign uᵢ = g],
///    Δ = ΣMᵢuᵢ, D = ΣMᵢwᵢ (exact zeros become 1); without: Δ = Σuᵢ, D = Σwᵢ (|D| < 1e-8 becomes 1);
/// 5. normalize: Δ/D; 6. λ·Δ; 7. θ₀ + Δ. Note the vote is on WEIGHTED, sparsified deltas and the
/// divisor is the sum of agreeing WEIGHTS (not the TIES paper's unweighted vote and count divisor).
public struct TaskArithmeticFamily: MergeMethod {
    public let name: String
    public let prettyName: String
    public let referenceURL: String?
    public let sparsifier: Sparsifier?
    /// Sign consensus by sum (mergekit's `count` variant is reachable from no config, so it is not offered).
    public let signConsensus: Bool
    public let defaultNormalize: Bool
    public let defaultRescale: Bool

    public var contract: InputContract { InputContract(base: .required) }
    public var isRandom: Bool { sparsifier == .random || sparsifier == .dellaMagprune }

    public var parameters: [ParameterSpec] {
        var specs: [ParameterSpec] = [
            .bool("int8_mask", false), .bool("normalize", defaultNormalize), .bool("rescale", defaultRescale),
            .float("lambda", .shared, 1.0), .float("weight", .nonBase, nil), .float("density", .nonBase, 1.0),
        ]
        if sparsifier == .magnitudeOutliers { specs.append(.float("gamma", .nonBase, 0.01)) }
        if sparsifier == .dellaMagprune { specs.append(.float("epsilon", .nonBase, 0.15)) }
        return specs
    }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard let b = g.baseIndex else {
            throw MergeError.method(name: name, tensor: g.name, message: "needs a base_model")
        }
        let pr = g.precision
        let base = g.inputs[b]
        let others = g.nonBase
        if others.isEmpty { g.copyToOutput(b); return }
        let n = g.count
        let rescale = p.bool("rescale")

        // 1-3: τᵢ in place of θᵢ, sparsified; the weight multiply is fused into step 4.
        var weights: [Float] = []
        for i in others {
            let tau = g.inputs[i]
            parallelFor(count: n, chunkSize: 1 << 16) { _, r in
                for j in r { tau[j] = pr.r(tau[j] - base[j]) }
            }
            if let sparsifier {
                let args = SparsifyArguments(density: p.double("density", input: i) ?? 1,
                                             gamma: p.double("gamma", input: i) ?? 0.01,
                                             epsilon: p.double("epsilon", input: i) ?? 0.15, rescale: rescale)
                try sparsifier.apply(tau, shape: g.shape, args, precision: pr, seed: g.seed,
                                     streamName: "\(g.name)#\(i)", tensorName: g.name)
            }
            // mergekit builds the weight tensor in the deltas' dtype, so weights are rounded too.
            weights.append(pr.r(Float(p.double("weight", input: i) ?? 0)))
        }

        let normalize = p.bool("normalize")
        let lambda = p.double("lambda")
        let scalarDivisor: Float = {
            var d: Float = 0
            for w in weights { d += w }
            d = pr.r(d)
            return abs(d) < 1e-8 ? 1 : d
        }()
        let taus = others.map { g.inputs[$0] }
        let out = g.output
        let consensus = signConsensus
        parallelFor(count: n, chunkSize: 1 << 14) { _, r in
            for j in r {
                var delta: Float = 0, divisor: Float = 0
                if consensus {
                    var total: Float = 0
                    for (k, tau) in taus.enumerated() { total += pr.r(tau[j] * weights[k]) }
                    let majorityPositive = total >= 0
                    for (k, tau) in taus.enumerated() {
                        let u = pr.r(tau[j] * weights[k])
                        if (u > 0 && majorityPositive) || (u < 0 && !majorityPositive) {
                            delta += u
                            divisor += weights[k]
                        }
                    }
                    delta = pr.r(delta)
                    divisor = pr.r(divisor)
                    if divisor == 0 { divisor = 1 }
                } else {
                    for (k, tau) in taus.enumerated() { delta += pr.r(tau[j] * weights[k]) }
                    delta = pr.r(delta)
                    divisor = scalarDivisor
                }
                if normalize { delta = pr.r(delta / divisor) }
                if lambda != 1 { delta = pr.r(delta * Float(lambda)) }
                out[j] = pr.r(base[j] + delta)
            }
        }
    }
}
