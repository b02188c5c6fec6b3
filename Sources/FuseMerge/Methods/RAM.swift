import FuseTensor

/// RAM (Reinforced Agent Merging): entries with |τᵢ| > epsilon are active; a position changed by one
/// model keeps that change, one changed by several gets their mean; untouched positions stay θ₀.
/// https://arxiv.org/abs/2601.13572
public struct RAM: MergeMethod {
    public let name = "ram"
    public let prettyName = "Reinforced Agent Merging"
    public let referenceURL: String? = "https://arxiv.org/abs/2601.13572"
    public var parameters: [ParameterSpec] { [.float("epsilon", .shared, 1e-5)] }
    public var contract: InputContract { InputContract(base: .required) }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        try ramMerge(g, epsilon: Float(p.double("epsilon")), uniqueScale: nil, name: name)
    }
}

/// RAM+ tensor-local: as RAM, but each model's unique changes are scaled by λᵢ = 1 + r·clip(ρᵢ, 0, α),
/// ρᵢ = (its active shared positions) / max(its active unique positions, epsilon).
public struct RAMPlusTL: MergeMethod {
    public let name = "ramplus_tl"
    public let prettyName = "Reinforced Agent Merging Plus (Tensor-Local)"
    public let referenceURL: String? = "https://arxiv.org/abs/2601.13572"
    public var parameters: [ParameterSpec] {
        [.float("r", .shared, 0.1), .float("alpha", .shared, 0.2), .float("epsilon", .shared, 1e-5)]
    }
    public var contract: InputContract { InputContract(base: .required) }
    /// λ is a Float32 tensor, so torch promotes the result to Float32.
    public func resultDType(compute: DType) -> DType { compute == .f64 ? .f64 : .f32 }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        try ramMerge(g, epsilon: Float(p.double("epsilon")), uniqueScale: (Float(p.double("r")), Float(p.double("alpha"))), name: name)
    }
}

/// Shared body of RAM and RAM+ (RAM+ sums in Float32: its λ promotes the result).
func ramMerge(_ g: MergeGroup, epsilon: Float, uniqueScale: (r: Float, alpha: Float)?, name: String) throws {
    guard let b = g.baseIndex else { throw MergeError.method(name: name, tensor: g.name, message: "needs a base_model") }
    let others = g.nonBase, pr = g.precision, base = g.inputs[b], out = g.output, n = g.count
    if others.isEmpty { g.copyToOutput(b); return }
    let taus = others.map { g.inputs[$0] }
    for tau in taus { for j in 0..<n { tau[j] = pr.r(tau[j] - base[j]) } }
    // torch compares a bf16 tensor with a Python scalar after casting the scalar to bf16.
    let threshold = pr.r(epsilon)
    var lambdas = [Float](repeating: 1, count: taus.count)
    if let (r, alpha) = uniqueScale {
        var shared = [Int](repeating: 0, count: taus.count), unique = [Int](repeating: 0, count: taus.count)
        for j in 0..<n {
            var c = 0
            for tau in taus where abs(tau[j]) > threshold { c += 1 }
            for (k, tau) in taus.enumerated() where abs(tau[j]) > threshold {
                if c == 1 { unique[k] += 1 } else if c > 1 { shared[k] += 1 }
            }
        }
        for k in taus.indices {
            let rho = Float(shared[k]) / max(Float(unique[k]), epsilon)
            lambdas[k] = 1 + r * min(max(rho, 0), alpha)
        }
    }
    for j in 0..<n {
        var c = 0
        for tau in taus where abs(tau[j]) > threshold { c += 1 }
        var merged: Float = 0
        if c == 1 {
            for (k, tau) in taus.enumerated() where abs(tau[j]) > threshold {
                merged += uniqueScale == nil ? tau[j] : tau[j] * lambdas[k]
            }
        } else if c > 1 {
            for tau in taus where abs(tau[j]) > threshold { merged += pr.r(tau[j] / Float(c)) }   // bf16 / int64 stays bf16
        }
        out[j] = uniqueScale == nil ? pr.r(base[j] + pr.r(merged)) : base[j] + merged
    }
}
