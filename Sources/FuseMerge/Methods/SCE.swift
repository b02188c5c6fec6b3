import FuseTensor

/// SCE (Select, Calculate, Erase; FuseChat): τᵢ = θᵢ − θ₀; Select keeps the ⌊select_topk·#(variance ≠ 0)⌋
/// positions of highest variance across models; Calculate weighs each model by mean(τᵢ²) normalised to
/// sum 1; Erase drops entries whose sign disagrees with sign(Στᵢ) (unweighted). No per-model weights.
/// https://arxiv.org/abs/2408.07990
public struct SCE: MergeMethod {
    public let name = "sce"
    public let prettyName = "SCE"
    public let referenceURL: String? = "https://arxiv.org/abs/2408.07990"
    public var parameters: [ParameterSpec] { [.bool("int8_mask", false), .float("select_topk", .shared, 1.0)] }
    public var contract: InputContract { InputContract(base: .required) }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard let b = g.baseIndex else { throw MergeError.method(name: name, tensor: g.name, message: "needs a base_model") }
        let others = g.nonBase, pr = g.precision, base = g.inputs[b], out = g.output, n = g.count
        if others.isEmpty { g.copyToOutput(b); return }
        let taus = others.map { g.inputs[$0] }
        for tau in taus { for j in 0..<n { tau[j] = pr.r(tau[j] - base[j]) } }

        let topk = p.double("select_topk")
        if topk < 1 {
            if topk <= 0 {
                for tau in taus { tau.update(repeating: 0) }
            } else {
                // Population variance across models at each position.
                let varianceStorage = Scratch(count: n)
                defer { withExtendedLifetime(varianceStorage) {} }
                let variance = varianceStorage.buffer
                var nonzero = 0
                let m = Double(taus.count)
                for j in 0..<n {
                    var mean = 0.0
                    for tau in taus { mean += Double(tau[j]) }
                    mean /= m
                    var v = 0.0
                    for tau in taus { let d = Double(tau[j]) - mean; v += d * d }
                    variance[j] = pr.r(Float(v / m))
                    if variance[j] != 0 { nonzero += 1 }
                }
                // torch.topk(var.abs(), k): the set above the k-th largest value is fixed; which of the values
                // equal to it are kept follows torch's CPU selection algorithm (TorchTopK), run only then.
                let k = Int(Double(nonzero) * topk)
                let keep = LargestSelection(variance, k: k)
                var atThreshold = 0
                if k > 0 && k < n { for j in 0..<n where keep.isThreshold(variance[j]) { atThreshold += 1 } }
                if atThreshold > keep.takeAtThreshold {
                    let mask = Scratch(count: n)
                    for j in TorchTopK.largest(variance, k: k) { mask.buffer[Int(j)] = 1 }
                    for j in 0..<n where mask.buffer[j] == 0 { for tau in taus { tau[j] = 0 } }
                } else {
                    for j in 0..<n where !keep.contains(j, variance[j]) { for tau in taus { tau[j] = 0 } }
                }
            }
        }
        // Calculate: cᵢ = mean(τᵢ²) / Σⱼ mean(τⱼ²), or 1/N when the sum is below 1e-6.
        var c = taus.map { tau -> Float in
            var s = 0.0
            for v in tau { s += Double(pr.r(v * v)) }
            return pr.r(Float(s / Double(max(n, 1))))
        }
        var total: Float = 0
        for v in c { total += v }
        total = pr.r(total)
        if abs(Double(total)) < 1e-6 { c = c.map { _ in pr.r(1 / Float(taus.count)) } } else { c = c.map { pr.r($0 / total) } }
        parallelFor(count: n, chunkSize: 1 << 14) { _, r in
            for j in r {
                var s: Float = 0
                for tau in taus { s += tau[j] }
                let positive = s >= 0
                var merged: Float = 0, weight: Float = 0
                for (k, tau) in taus.enumerated() {
                    let v = tau[j]
                    if (v > 0 && positive) || (v < 0 && !positive) {
                        merged += pr.r(v * c[k])
                        weight += c[k]
                    }
                }
                let divisor = pr.r(max(pr.r(weight), 1e-6))
                out[j] = pr.r(base[j] + pr.r(pr.r(merged) / divisor))
            }
        }
    }
}
