import Foundation
import FuseIO
import FuseTensor

/// LoRA extraction (mergekit `mergekit-extract-lora`): for every 2-D weight of a linear module, the delta
/// Δ = W_ft − W_base (out × in) is factored by a truncated SVD (LAPACK sgesdd) to rank r:
/// B = U_r·√Σ_r (out × r), A = √Σ_r·V_rᵀ (r × in), so B·A is the best rank-r approximation of Δ and
/// ‖Δ − B·A‖_F = √(Σ_{i>r} σᵢ²) (Eckart–Young), which the summary reports per module. Token-indexed
/// tensors (embeddings, lm_head) that changed are saved whole as `modules_to_save`; 1-D tensors (norms)
/// cannot be factored and are listed as skipped when they changed. Written as a PEFT adapter:
/// adapter_config.json (lora_alpha = r, so the scale is 1) and adapter_model.safetensors, through `PEFTAdapter`.
public struct LoraExtractionSummary: Sendable {
    public var modules: Int
    public var rank: Int
    /// Per module: (name, ‖Δ‖_F, predicted residual ‖Δ − BA‖_F).
    public var errors: [(module: String, deltaNorm: Double, residual: Double)]
    public var fullModules: [String]
    public var skipped: [String]
    public var seconds: Double
}

public func extractLora(model ftPath: String, base basePath: String, outPath: String, rank: Int, force: Bool,
                        progress: ((Int, Int, String) -> Void)? = nil) throws -> LoraExtractionSummary {
    let start = Date()
    guard rank >= 1 else { throw MergeError.config(path: "--rank", line: nil, message: "rank must be at least 1") }
    let ft = try WeightStore(path: ftPath), base = try WeightStore(path: basePath)
    var factors: [String: LoraFactors] = [:], fullTensors: [String: Tensor] = [:]
    var rankPattern: [(String, Int)] = []
    var errors: [(String, Double, Double)] = []
    var targets = Set<String>(), full: [String] = [], skipped: [String] = []
    let names = ft.names.filter { base.info($0) != nil }
    for (k, name) in names.enumerated() {
        progress?(k, names.count, name)
        guard let fi = ft.info(name), let bi = base.info(name), fi.dtype.isFloat, bi.dtype.isFloat else { continue }
        guard fi.shape == bi.shape else {
            throw MergeError.shapeMismatch(tensor: name, shapes: [(ftPath, fi.shape), (basePath, bi.shape)])
        }
        let a = try ft.floats(name), b = try base.floats(name)
        var delta = [Float](repeating: 0, count: a.count)
        var changed = false
        for i in a.indices { delta[i] = a[i] - b[i]; if delta[i] != 0 { changed = true } }
        guard changed else { continue }
        let isVocab = name.contains("embed_tokens") || name.hasPrefix("lm_head") || name.contains("wte")
        if isVocab {
            fullTensors[name] = try Tensor(floats: a, shape: fi.shape)
            full.append(String(name.dropLast(".weight".count).split(separator: ".").last ?? ""))
            continue
        }
        guard fi.shape.count == 2, name.hasSuffix(".weight") else { skipped.append(name); continue }
        let rows = fi.shape[0], cols = fi.shape[1]
        let svd = try BLAS.svd(delta, rows: rows, cols: cols)
        let r = min(rank, svd.s.count)
        var bMatrix = [Float](repeating: 0, count: rows * r), aMatrix = [Float](repeating: 0, count: r * cols)
        let full = min(rows, cols)
        for j in 0..<r {
            let root = svd.s[j].squareRoot()
            for i in 0..<rows { bMatrix[i * r + j] = svd.u[i * full + j] * root }
            for c in 0..<cols { aMatrix[j * cols + c] = svd.vt[j * cols + c] * root }
        }
        var total = 0.0, rest = 0.0
        for (j, s) in svd.s.enumerated() { total += Double(s) * Double(s); if j >= r { rest += Double(s) * Double(s) } }
        let module = String(name.dropLast(".weight".count))
        errors.append((module, total.squareRoot(), rest.squareRoot()))
        targets.insert(String(module.split(separator: ".").last ?? ""))
        factors[module] = LoraFactors(a: try Tensor(floats: aMatrix, shape: [r, cols]), b: try Tensor(floats: bMatrix, shape: [rows, r]))
        if r != rank { rankPattern.append((module, r)) }   // a module narrower than the rank keeps all its singular values
    }
    // lora_alpha = r for every module (rank_pattern and alpha_pattern alike), so every scale is 1.
    var config = PEFTConfig(r: rank, loraAlpha: Double(rank), targetModules: targets.sorted(),
                            rankPattern: rankPattern, alphaPattern: rankPattern.map { ($0.0, Double($0.1)) },
                            modulesToSave: full, baseModelNameOrPath: basePath)
    config.taskType = "CAUSAL_LM"
    try PEFTAdapter(config: config, factors: factors, fullTensors: fullTensors).write(to: outPath, force: force)
    progress?(names.count, names.count, "")
    return LoraExtractionSummary(modules: errors.count, rank: rank, errors: errors.map { ($0.0, $0.1, $0.2) },
                                 fullModules: full, skipped: skipped, seconds: Date().timeIntervalSince(start))
}
