import Foundation
import FuseIO
import FuseNN
import FuseTensor

// MARK: - Statistics files (docs/formats.md, "Statistics files")
//
// Both are ordinary safetensors files of f32 tensors with string metadata:
//
// Fisher (`fusekit stats --fisher`): metadata {"fusekit_statistics": "fisher", "version": "1",
//   "estimator": "empirical", "examples": N, "model": path}. One tensor per trainable parameter, under
//   the parameter's own HF name and shape: F = (1/N) Σₙ (∂ log p(yₙ | xₙ) / ∂θ)², where log p(yₙ | xₙ)
//   is the summed log-likelihood of the labelled tokens of example n (its data tokens: the
//   "empirical" Fisher of Matena & Raffel, with one backward per example, never a batch-mean gradient).
//
// Gram (`fusekit stats --gram`): metadata {"fusekit_statistics": "gram", "version": "1",
//   "examples": N, "model": path, "rows": JSON object {weight name: rows}}. One tensor per linear
//   layer, named by the layer's weight (`model.layers.0.mlp.down_proj.weight`), shape [in, in]:
//   G = Σ xᵀx over every input row x the layer saw (the sum, not the mean; `rows` gives the count).
//   Examples are run one at a time, so no padding row ever enters G.

public enum StatisticsKind: String, Sendable { case fisher, gram }

public struct StatisticsSummary: Sendable {
    public var kind: StatisticsKind
    public var examples: Int
    public var tensors: Int
    public var seconds: Double
}

/// Diagonal empirical Fisher of `model.trainableParameters` over the sequences of `data` (at most
/// `limit` of them, in file order), written to `path`.
public func computeFisher(_ model: any TrainableModel, data: TrainingData, limit: Int? = nil, modelPath: String,
                          to path: String, progress: ((Int, Int) -> Void)? = nil) throws -> StatisticsSummary {
    let start = Date()
    let parameters = model.trainableParameters
    let sequences = Array(data.sequences.prefix(limit ?? data.sequences.count))
    var fisher = parameters.map { [Double](repeating: 0, count: $0.count) }
    for (n, s) in sequences.enumerated() {
        progress?(n, sequences.count)
        for p in parameters { p.zeroGrad() }
        // accumulateGradients differentiates the mean CE = −(1/L) Σ log p; scale −… by L gives the
        // gradient of the summed negative log-likelihood, whose square equals that of log p.
        let batch = makeBatch([s])
        let report = try model.accumulateGradients(batch, loss: .crossEntropy, scale: Float(s.labelled), step: n)
        guard report.loss.isFinite else { throw FuseTrainError.nonFinite(step: n + 1, what: "the loss of example \(n + 1)") }
        for (k, p) in parameters.enumerated() {
            p.grad.withUnsafeBufferPointer { g in
                fisher[k].withUnsafeMutableBufferPointer { f in for i in 0..<g.count { f[i] += Double(g[i]) * Double(g[i]) } }
            }
        }
    }
    progress?(sequences.count, sequences.count)
    for p in parameters { p.zeroGrad() }
    let scale = 1.0 / Double(max(1, sequences.count))
    let tensors = try zip(parameters, fisher).map { p, f in (p.name, try Tensor(floats: f.map { Float($0 * scale) }, shape: p.shape)) }
    try writeSafetensors(path: path, tensors: tensors, metadata: [
        "fusekit_statistics": "fisher", "version": "1", "estimator": "empirical",
        "examples": String(sequences.count), "model": modelPath,
    ])
    return StatisticsSummary(kind: .fisher, examples: sequences.count, tensors: tensors.count, seconds: Date().timeIntervalSince(start))
}

/// Input Gram matrices XᵀX of every linear layer of `model` over the sequences of `data` (one at a time),
/// written to `path` with their row counts.
public func computeGram(_ model: any TrainableModel, data: TrainingData, limit: Int? = nil, modelPath: String,
                        to path: String, progress: ((Int, Int) -> Void)? = nil) throws -> StatisticsSummary {
    let start = Date()
    let sequences = Array(data.sequences.prefix(limit ?? data.sequences.count))
    var order: [String] = []
    var grams: [String: [Float]] = [:]
    var widths: [String: Int] = [:]
    var rows: [String: Int] = [:]
    var failure: FuseTrainError?
    for (n, s) in sequences.enumerated() {
        progress?(n, sequences.count)
        try model.visitLinearInputs(makeBatch([s])) { name, x, count, width in
            if grams[name] == nil {
                order.append(name)
                grams[name] = [Float](repeating: 0, count: width * width)
                widths[name] = width
            }
            guard widths[name] == width else {
                failure = .model("linear \(name): input width changed from \(widths[name] ?? 0) to \(width)")
                return
            }
            // G += xᵀx (BLAS, f32): [width, rows] · [rows, width]
            grams[name]?.withUnsafeMutableBufferPointer { g in
                guard let gp = g.baseAddress else { return }
                BLAS.sgemm(transA: true, transB: false, m: width, n: width, k: count, a: x, lda: width, b: x, ldb: width,
                           beta: 1, c: gp, ldc: width)
            }
            rows[name, default: 0] += count
        }
        if let failure { throw failure }
    }
    progress?(sequences.count, sequences.count)
    let tensors = try order.map { name in (name, try Tensor(floats: grams[name] ?? [], shape: [widths[name] ?? 0, widths[name] ?? 0])) }
    let rowsJSON = JSON.object(order.map { ($0, .int(rows[$0] ?? 0)) }).serialized()
    try writeSafetensors(path: path, tensors: tensors, metadata: [
        "fusekit_statistics": "gram", "version": "1", "examples": String(sequences.count), "model": modelPath, "rows": rowsJSON,
    ])
    return StatisticsSummary(kind: .gram, examples: sequences.count, tensors: tensors.count, seconds: Date().timeIntervalSince(start))
}
