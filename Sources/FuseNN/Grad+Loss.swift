// Losses over logits `[N, V]`: cross-entropy against hard labels (−1 = no loss at that position), and
// soft-target cross-entropy / KL against sparse top-k distributions (distillation, FuseLLM), mixed as
// λ·CE + (1 − λ)·soft. The loss is the last node of the tape, so its gradient is computed while each
// row's softmax is at hand. `headLoss` goes further (cpu-kernels.md §3, "never materialise a batch's
// logits"): the head product, soft-capping, loss and both head gradients run per block of rows.
import Foundation
import FuseTensor
import CFuseKernels

/// The batch-wide part of a loss: validated targets and the weights that average the rows.
///
/// - CE: mean over labelled positions of −log p(label).
/// - soft: q = the k target probabilities renormalised over their k entries (ids < 0 are empty
///   slots), averaged over positions with a target (`present`, default all): `.crossEntropy`
///   −Σ q log p, `.kl` Σ q (log q − log p). Gradient (both): p·Σq − q = p − q.
struct LossPlan {
    let vocabulary: Int
    let labels: [Int]
    let ids: [Int32]
    let logProbs: [Float]
    let k: Int
    let hasSoft: [Bool]
    let ceWeight: Double, softWeight: Double
    let softKind: SoftLoss?
    let labelled: Int, softCount: Int, positions: Int
    /// Per-row weights: ∂loss/∂(row CE) and ∂loss/∂(row soft term).
    let wCE: Double, wSoft: Double

    init(rows n: Int, vocabulary v: Int, labels: [Int], soft: SparseTargets?, loss: TrainingLoss) throws {
        guard labels.count == n else { throw NNError.shapeMismatch(tensor: "labels", expected: [n], got: [labels.count]) }
        for l in labels where l >= v || l < -1 {
            throw NNError.invalidArgument("label \(l) is outside the vocabulary of \(v) entries (use -1 for positions without a loss)")
        }
        switch loss {
        case .crossEntropy: (ceWeight, softWeight, softKind) = (1, 0, nil)
        case let .mixed(lambda, kind):
            guard lambda >= 0, lambda <= 1 else { throw NNError.invalidArgument("mixed loss lambda \(lambda) must lie in [0, 1]") }
            (ceWeight, softWeight, softKind) = (Double(lambda), 1 - Double(lambda), kind)
        }
        var target: SparseTargets? = nil
        if softWeight > 0 {
            guard let soft else { throw NNError.invalidArgument("a mixed loss with lambda < 1 needs soft targets in the batch") }
            guard soft.k > 0, soft.ids.count == n * soft.k, soft.logProbs.count == n * soft.k else {
                throw NNError.shapeMismatch(tensor: "soft targets", expected: [n, soft.k], got: [soft.ids.count, soft.logProbs.count])
            }
            if let present = soft.present, present.count != n {
                throw NNError.shapeMismatch(tensor: "soft targets present", expected: [n], got: [present.count])
            }
            for id in soft.ids where id >= Int32(v) { throw NNError.tokenOutOfRange(token: Int(id), vocabulary: v) }
            for lp in soft.logProbs where lp.isNaN || lp == .infinity {
                throw NNError.invalidArgument("soft target log-probability \(lp) is not a finite value or -inf")
            }
            target = soft
        }
        // A position carries a soft target when present and at least one of its k ids is a token.
        let k = target?.k ?? 0
        hasSoft = (0..<n).map { i in
            guard let t = target, t.present?[i] ?? true else { return false }
            return (0..<k).contains { t.ids[i * k + $0] >= 0 && t.logProbs[i * k + $0] > -.infinity }
        }
        self.k = k; vocabulary = v; self.labels = labels
        ids = target?.ids ?? []; logProbs = target?.logProbs ?? []
        labelled = labels.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) }
        softCount = hasSoft.reduce(0) { $0 + ($1 ? 1 : 0) }
        let (ceOn, labelsCopy, softFlags) = (ceWeight > 0, labels, hasSoft)
        positions = (0..<n).reduce(0) { $0 + ((labelsCopy[$1] >= 0 && ceOn) || softFlags[$1] ? 1 : 0) }
        wCE = labelled > 0 ? ceWeight / Double(labelled) : 0
        wSoft = softCount > 0 ? softWeight / Double(softCount) : 0
    }

    /// Whether row i contributes to the loss.
    func contributes(_ i: Int) -> Bool { labels[i] >= 0 || hasSoft[i] }

    /// Row i of logits at z: its CE and soft terms into ce[i], soft[i]; with `grad`,
    /// gradScale · ∂loss/∂z written into grad (assigned, the row's only writer), else `scratch` (V floats) is used.
    func row(_ i: Int, logits zr: UnsafePointer<Float>, grad: UnsafeMutablePointer<Float>?, gradScale: Float,
             ce: UnsafeMutablePointer<Double>, soft: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Float>) {
        let v = vocabulary, label = labels[i], isSoft = hasSoft[i]
        guard label >= 0 || isSoft else {
            if let grad { grad.update(repeating: 0, count: v) }
            return
        }
        let mx = fk_max_f32(zr, v)
        // e^(z − max) lands in the gradient row (scaled to p − target below), or in scratch.
        let sum = fk_exp_shifted(zr, v, mx, grad ?? scratch)
        let lse = Double(mx) + log(sum)
        if label >= 0 { ce[i] = lse - Double(zr[label]) }
        // Soft part: q renormalised over the row's valid entries.
        var q = [Double](repeating: 0, count: k)
        if isSoft {
            var qmax = -Double.infinity
            for e in 0..<k where ids[i * k + e] >= 0 { qmax = max(qmax, Double(logProbs[i * k + e])) }
            var qs = 0.0
            for e in 0..<k where ids[i * k + e] >= 0 { q[e] = exp(Double(logProbs[i * k + e]) - qmax); qs += q[e] }
            var cross = 0.0, negEntropy = 0.0
            for e in 0..<k where ids[i * k + e] >= 0 && q[e] > 0 {
                q[e] /= qs
                cross -= q[e] * (Double(zr[Int(ids[i * k + e])]) - lse)
                negEntropy += q[e] * log(q[e])
            }
            soft[i] = softKind == .kl ? cross + negEntropy : cross
        }
        guard let grad else { return }
        // ∂/∂z = wCE·(p − onehot(label)) + wSoft·(p − q), times gradScale.
        let rowCE = label >= 0 ? wCE : 0, rowSoft = isSoft ? wSoft : 0
        let pScale = Float((rowCE + rowSoft) * Double(gradScale) / sum)
        for j in 0..<v { grad[j] *= pScale }
        if label >= 0 { grad[label] -= Float(rowCE * Double(gradScale)) }
        if isSoft {
            for e in 0..<k where ids[i * k + e] >= 0 { grad[Int(ids[i * k + e])] -= Float(rowSoft * q[e] * Double(gradScale)) }
        }
    }

    func report(ce: [Double], soft: [Double]) -> LossReport {
        let ceMean = labelled > 0 ? ce.reduce(0, +) / Double(labelled) : 0
        let softMean = softCount > 0 ? soft.reduce(0, +) / Double(softCount) : 0
        var components = ["ce": ceMean]
        if softKind != nil { components["soft"] = softMean }
        return LossReport(loss: ceWeight * ceMean + softWeight * softMean, components: components, tokens: positions)
    }
}

/// Rows per block of `headLoss` (a 64 x 49152 f32 block of logits is 12.6 MB).
let headLossBlockRows = 64

extension Tape {
    /// The loss of one micro-batch from logits `[N, V]` (see `LossPlan`). When recording and `logits`
    /// needs a gradient, adds `gradScale · ∂loss/∂logits` into `logits.grad`.
    public func languageModelLoss(_ logits: Variable, labels: [Int], soft: SparseTargets?, loss: TrainingLoss, gradScale: Float = 1) throws -> LossReport {
        let (n, v) = (logits.rows, logits.cols)
        let plan = try LossPlan(rows: n, vocabulary: v, labels: labels, soft: soft, loss: loss)
        var ce = [Double](repeating: 0, count: n), softTerms = [Double](repeating: 0, count: n)
        let grad = recording ? logits.grad : nil
        let z = logits.data
        ce.withUnsafeMutableBufferPointer { ceOut in
            softTerms.withUnsafeMutableBufferPointer { softOut in
                guard let cp = ceOut.baseAddress, let sp = softOut.baseAddress else { return }
                let chunk = max(1, rowChunk(v))
                parallelFor(count: n, chunkSize: chunk) { _, r in
                    let scratch = SavedFloats(v), g = SavedFloats(grad == nil ? 1 : v)
                    for i in r {
                        plan.row(i, logits: z + i * v, grad: grad == nil ? nil : g.pointer, gradScale: gradScale, ce: cp, soft: sp, scratch: scratch.pointer)
                        if let grad, plan.contributes(i) { let gr = grad + i * v; for j in 0..<v { gr[j] += g.pointer[j] } }
                    }
                }
            }
        }
        return plan.report(ce: ce, soft: softTerms)
    }

    /// The head and the loss together, per block of `headLossBlockRows` rows: logits = x·Wᵀ (+ b),
    /// soft-capped when `softcap` > 0, the loss rows, and when recording the head's gradients at once
    /// (dx += dlogits·W, dW += dlogitsᵀ·x): the loss is the last node, so nothing waits for backward
    /// and no `[N, V]` buffer exists. A head with LoRA goes through `linear` and `languageModelLoss`.
    public func headLoss(_ x: Variable, _ head: TrainableLinear, _ params: ParameterBinding, softcap: Float,
                         labels: [Int], soft: SparseTargets?, loss: TrainingLoss, gradScale: Float = 1) throws -> LossReport {
        if head.lora != nil {
            let logits = try linear(x, head, params)
            return try languageModelLoss(softcap > 0 ? self.softcap(logits, cap: softcap) : logits, labels: labels, soft: soft,
                                         loss: loss, gradScale: gradScale)
        }
        guard x.cols == head.inFeatures else {
            throw NNError.shapeMismatch(tensor: head.weight.name + " input", expected: [x.rows, head.inFeatures], got: [x.rows, x.cols])
        }
        if head.visible, let visit = linearInputVisitor { visit(head.weight.name, x.data, x.rows, x.cols) }
        let w = try params(head.weight), b = try head.bias.map { try params($0) }
        let (n, c, v) = (x.rows, head.inFeatures, head.outFeatures)
        let plan = try LossPlan(rows: n, vocabulary: v, labels: labels, soft: soft, loss: loss)
        let grads = recording && (x.requiresGrad || w.requiresGrad || b?.requiresGrad == true)
        let block = min(headLossBlockRows, n)
        let logits = SavedFloats(block * v), dlogits = SavedFloats(grads ? block * v : 1), scratch = SavedFloats(grads ? 1 : block * v)
        var ce = [Double](repeating: 0, count: n), softTerms = [Double](repeating: 0, count: n)
        let dx = grads ? x.grad : nil, dw = grads ? w.grad : nil, db = grads ? b?.grad : nil
        ce.withUnsafeMutableBufferPointer { ceOut in
            softTerms.withUnsafeMutableBufferPointer { softOut in
                guard let cp = ceOut.baseAddress, let sp = softOut.baseAddress else { return }
                for r0 in stride(from: 0, to: n, by: block) {
                    let rows = min(block, n - r0), z = logits.pointer, g = dlogits.pointer
                    linearForward(x.data + r0 * c, rows: rows, weight: w.data, bias: b?.data, conv1D: head.conv1D,
                                  inFeatures: c, outFeatures: v, into: z)
                    if softcap > 0 {
                        parallelFor(count: rows * v, chunkSize: 1 << 16) { _, r in for i in r { z[i] = tanhf(z[i] / softcap) * softcap } }
                    }
                    parallelFor(count: rows, chunkSize: max(1, rows / 8)) { _, r in
                        for i in r {
                            plan.row(r0 + i, logits: z + i * v, grad: grads ? g + i * v : nil, gradScale: gradScale, ce: cp, soft: sp,
                                     scratch: grads ? scratch.pointer : scratch.pointer + i * v)
                        }
                    }
                    guard grads else { continue }
                    if softcap > 0 {   // y = c·tanh(z/c): dz = dy·(1 − (y/c)²)
                        parallelFor(count: rows * v, chunkSize: 1 << 16) { _, r in for i in r { let t = z[i] / softcap; g[i] *= 1 - t * t } }
                    }
                    linearBackward(g, rows: rows, x: x.data + r0 * c, weight: w.data, conv1D: head.conv1D, inFeatures: c, outFeatures: v,
                                   dx: dx.map { $0 + r0 * c }, dWeight: dw, dBias: db)
                }
            }
        }
        return plan.report(ce: ce, soft: softTerms)
    }
}
