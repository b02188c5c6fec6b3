import FuseTensor

/// Model Stock: δᵢ = θᵢ − θ₀, c = mean pairwise cosine of the δᵢ (per row with filter_wise), 
/// t = N·c/(1 + (N−1)·c) (the base is kept where the denominator is within 1e-6 of zero),
/// out = t·mean(θᵢ) + (1−t)·θ₀. https://arxiv.org/abs/2403.19522
public struct ModelStock: MergeMethod {
    public let name = "model_stock"
    public let prettyName = "Model Stock"
    public let referenceURL: String? = "https://arxiv.org/abs/2403.19522"
    public var parameters: [ParameterSpec] { [.bool("filter_wise", false)] }
    public var contract: InputContract { InputContract(base: .required, minInputs: 3) }
    public var optionalTensorPolicy: OptionalTensorPolicy { .baseOrSkip }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard let b = g.baseIndex, g.nonBase.count >= 2 else {
            throw MergeError.method(name: name, tensor: g.name, message: "needs a base_model and at least two other models")
        }
        let pr = g.precision, base = g.inputs[b], ws = g.nonBase.map { g.inputs[$0] }, out = g.output
        let n = g.count
        let filterWise = p.bool("filter_wise")
        let cols = filterWise ? (g.shape.count >= 2 ? (g.shape.last ?? 1) : n) : n
        let rows = cols == 0 ? 0 : n / cols
        let count = Float(ws.count)
        // Average of the models (not the deltas), summed left to right as Python's sum() does.
        let offsets = ws.map { w -> Scratch in
            let s = Scratch(count: n)
            for j in 0..<n { s.buffer[j] = pr.r(w[j] - base[j]) }
            return s
        }
        for j in 0..<n {
            var s = ws[0][j]
            for k in 1..<ws.count { s = pr.r(s + ws[k][j]) }
            out[j] = pr.r(s / count)
        }
        parallelFor(count: rows, chunkSize: 1) { row, _ in
            let start = row * cols
            var cosines: [Float] = []
            for i in 0..<offsets.count {
                for k in (i + 1)..<max(i + 1, offsets.count) where k < offsets.count {
                    let x = offsets[i].buffer, y = offsets[k].buffer
                    var d = 0.0
                    for j in start..<(start + cols) { d += Double(pr.r(x[j] * y[j])) }
                    // torch.norm(·, dim=-1) in torch's summation order (Precision.swift), rounded to the dtype
                    let nx = torchNorm(x, pr, start: start, count: cols)
                    let ny = torchNorm(y, pr, start: start, count: cols)
                    let normProduct = pr.r(nx * ny)
                    cosines.append(min(max(pr.r(pr.r(Float(d)) / pr.r(max(normProduct, 1e-6))), -1), 1))
                }
            }
            var meanCos = 0.0
            for c in cosines { meanCos += Double(c) }
            let c = pr.r(Float(meanCos / Double(max(cosines.count, 1))))
            let denominator = pr.r(1 + pr.r((count - 1) * c))
            let singular = abs(denominator) < 1e-6
            let t = singular ? 0 : pr.r(pr.r(count * c) / denominator)
            let oneMinusT = pr.r(1 - t)
            for j in start..<(start + cols) {
                out[j] = pr.r(pr.r(t * out[j]) + pr.r(oneMinusT * base[j]))
            }
        }
    }
}
