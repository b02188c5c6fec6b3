import Foundation
import FuseTensor

/// RegMean (Jin et al., "Dataless Knowledge Fusion by Merging Weights of Language Models", ICLR 2023).
/// For a linear layer y = W x (W stored [out, in]) whose models name their input Gram files
/// (`fusekit stats --gram`, G = Σ xᵀx) in the `gram` parameter:
///
///     G̃ᵢ = λᵢ · (α Gᵢ + (1 − α) diag(Gᵢ))         α = reduce_non_diagonal_ratio, λᵢ = weight
///     W*ᵀ = (Σᵢ G̃ᵢ)⁻¹ Σᵢ G̃ᵢ Wᵢᵀ                   a Cholesky solve in Double, never an inverse
///
/// the least-squares fit of Σᵢ ‖Xᵢ W*ᵀ − Xᵢ Wᵢᵀ‖², so with α = 1 and Grams summed (not averaged) over
/// each model's rows it is the least-squares solution on the union of their data. α = 1 (the default)
/// is exact RegMean; the paper and FusionBench shrink the off-diagonals (α = 0.1 ... 0.9) for LLMs.
/// A tensor with no Gram in any file (biases, norms, embeddings) is the λ-weighted average. GPT-2's
/// Conv1D weights (stored [in, out]: `attn.c_attn`, `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`) skip the
/// transposes. When Σ G̃ᵢ is not positive definite (an input feature no model ever saw), a ridge of
/// `ridgeFraction` × the mean diagonal is added once before giving up.
/// https://arxiv.org/abs/2212.09849
public struct RegMean: MergeMethod {
    public let name = "regmean"
    public let prettyName = "RegMean"
    public let referenceURL: String? = "https://arxiv.org/abs/2212.09849"
    public var parameters: [ParameterSpec] {
        [.string("gram", .input), .float("weight", .input, 1), .float("reduce_non_diagonal_ratio", .shared, 1)]
    }
    public var contract: InputContract { InputContract(minInputs: 1) }

    /// Relative ridge added to Σ G̃ᵢ when its Cholesky factorisation fails.
    static let ridgeFraction = 1e-6
    static let conv1DModules = ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"]

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        let alpha = p.double("reduce_non_diagonal_ratio")
        guard alpha >= 0, alpha <= 1 else {
            throw MergeError.method(name: name, tensor: g.name, message: "reduce_non_diagonal_ratio must be in [0, 1], got \(alpha)")
        }
        guard g.count > 0 else { return }
        let weights = g.inputs.indices.map { p.double("weight", input: $0) ?? 1 }
        // Which inputs have a Gram for this tensor: all (a linear layer) or none (averaged).
        var grams: [[Float]?] = []
        var width = 0
        for i in g.inputs.indices {
            guard let path = p.string("gram", input: i) else {
                throw MergeError.method(name: name, tensor: g.name, message: "\(g.inputNames[i]) names no 'gram' statistics file")
            }
            let f = try StatisticsFiles.shared.file(path, kind: "gram", method: name, tensor: g.name, directory: g.workingDirectory)
            guard let info = f.info(g.inputTensors[i]) else { grams.append(nil); continue }
            guard info.shape.count == 2, info.shape[0] == info.shape[1] else {
                throw MergeError.method(name: name, tensor: g.name, message: "\(path): Gram of \(g.inputTensors[i]) has shape \(info.shape), expected [in, in]")
            }
            width = info.shape[0]
            grams.append(try StatisticsFiles.shared.floats(path, kind: "gram", method: name, name: g.inputTensors[i], count: width * width, directory: g.workingDirectory))
        }
        if grams.allSatisfy({ $0 == nil }) { return average(g, weights) }
        if let missing = grams.firstIndex(where: { $0 == nil }) {
            throw MergeError.method(name: name, tensor: g.name, message: "\(p.string("gram", input: missing) ?? "?") has no Gram for \(g.inputTensors[missing]) while other models' files do; compute every model's statistics with the same `fusekit stats --gram`")
        }
        // Layout: [out, in] (nn.Linear) or [in, out] (Conv1D).
        guard g.shape.count == 2 else {
            throw MergeError.method(name: name, tensor: g.name, message: "has a Gram but shape \(g.shape); only matrices are linear layers")
        }
        let conv1D = Self.conv1DModules.contains { g.name.hasSuffix($0) } ? g.shape[0] == width : g.shape[1] != width && g.shape[0] == width
        let out = conv1D ? g.shape[1] : g.shape[0]
        guard width > 0, out > 0 else { return }
        guard (conv1D ? g.shape[0] : g.shape[1]) == width else {
            throw MergeError.method(name: name, tensor: g.name, message: "weight shape \(g.shape) does not take inputs of width \(width) (the Gram's size)")
        }
        // A = Σ G̃ᵢ (Double), B = Σ G̃ᵢ Wᵢᵀ ([in, out], Float32 BLAS per model, summed in Double).
        var a = [Double](repeating: 0, count: width * width)
        var b = [Double](repeating: 0, count: width * out)
        var shrunk = [Float](repeating: 0, count: width * width)
        var product = [Float](repeating: 0, count: width * out)
        for i in g.inputs.indices {
            guard let gram = grams[i] else { continue }
            let lambda = weights[i]
            for r in 0..<width {
                for c in 0..<width {
                    let v = Double(gram[r * width + c]) * (r == c ? 1 : alpha) * lambda
                    shrunk[r * width + c] = Float(v)
                    a[r * width + c] += v
                }
            }
            guard let w = UnsafePointer(g.inputs[i].baseAddress) else { continue }
            shrunk.withUnsafeBufferPointer { s in
                product.withUnsafeMutableBufferPointer { pr in
                    // [in, in] · Wᵀ: W is [out, in] (use its transpose) or already [in, out] (Conv1D).
                    BLAS.sgemm(transA: false, transB: !conv1D, m: width, n: out, k: width, a: s.baseAddress!, lda: width, // invariant: non-empty
                               b: w, ldb: conv1D ? out : width, c: pr.baseAddress!, ldc: out) // invariant: non-empty
                }
            }
            for k in 0..<(width * out) { b[k] += Double(product[k]) }
        }
        guard var factor = Self.cholesky(a, n: width) else {
            throw MergeError.method(name: name, tensor: g.name, message: "the summed Gram matrix is not positive definite even with a ridge; check the statistics files")
        }
        Self.solve(&factor, n: width, rhs: &b, columns: out)
        // b now holds W*ᵀ [in, out].
        for r in 0..<width {
            for c in 0..<out {
                let v = g.precision.r(Float(b[r * out + c]))
                if conv1D { g.output[r * out + c] = v } else { g.output[c * width + r] = v }
            }
        }
    }

    func average(_ g: MergeGroup, _ weights: [Double]) {
        let total = weights.reduce(0, +)
        for j in 0..<g.count {
            var s = 0.0
            for i in g.inputs.indices { s += weights[i] * Double(g.inputs[i][j]) }
            g.output[j] = g.precision.r(Float(s / total))
        }
    }

    /// Lower Cholesky factor of the symmetric n×n matrix `a` (row-major), retrying once with a ridge;
    /// nil when it is not positive definite.
    static func cholesky(_ a: [Double], n: Int) -> [Double]? {
        func factor(_ m: [Double]) -> [Double]? {
            var l = m
            for j in 0..<n {
                var d = l[j * n + j]
                for k in 0..<j { d -= l[j * n + k] * l[j * n + k] }
                guard d > 0, d.isFinite else { return nil }
                let root = d.squareRoot()
                l[j * n + j] = root
                for i in (j + 1)..<max(j + 1, n) {
                    var s = l[i * n + j]
                    for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                    l[i * n + j] = s / root
                }
            }
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { l[i * n + j] = 0 } }
            return l
        }
        if let l = factor(a) { return l }
        var meanDiagonal = 0.0
        for i in 0..<n { meanDiagonal += a[i * n + i] / Double(n) }
        guard meanDiagonal > 0 else { return nil }
        var ridged = a
        for i in 0..<n { ridged[i * n + i] += ridgeFraction * meanDiagonal }
        return factor(ridged)
    }

    /// Solves L Lᵀ X = B in place for B [n, columns] (row-major), row operations over whole rows.
    static func solve(_ l: inout [Double], n: Int, rhs b: inout [Double], columns: Int) {
        for i in 0..<n {                       // L y = b
            for k in 0..<i where l[i * n + k] != 0 {
                let f = l[i * n + k]
                for c in 0..<columns { b[i * columns + c] -= f * b[k * columns + c] }
            }
            let d = l[i * n + i]
            for c in 0..<columns { b[i * columns + c] /= d }
        }
        for i in stride(from: n - 1, through: 0, by: -1) {   // Lᵀ x = y
            for k in (i + 1)..<max(i + 1, n) where l[k * n + i] != 0 {
                let f = l[k * n + i]
                for c in 0..<columns { b[i * columns + c] -= f * b[k * columns + c] }
            }
            let d = l[i * n + i]
            for c in 0..<columns { b[i * columns + c] /= d }
        }
    }
}
