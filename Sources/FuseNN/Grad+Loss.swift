// Losses over logits `[N, V]`: cross-entropy against hard labels (−1 = no loss at that position), and
// soft-target cross-entropy / KL against sparse top-k distributions (distillation, FuseLLM), mixed as
// λ·CE + (1 − λ)·soft. The loss is the last node of the tape, so its gradient is written straight
// into the logits' gradient while the row's softmax is at hand (no [N, V] probabilities kept).
import Foundation
import FuseTensor
import CFuseKernels

extension Tape {
    /// The loss of one micro-batch. When recording and `logits` needs a gradient, adds
    /// `gradScale · ∂loss/∂logits` into `logits.grad`.
    ///
    /// - CE: mean over labelled positions of −log p(label).
    /// - soft: q = the k target probabilities renormalised over their k entries (ids < 0 are empty
    ///   slots), averaged over positions with a target (`present`, default all): `.crossEntropy`
    ///   −Σ q log p, `.kl` Σ q (log q − log p). Gradient (both): p·Σq − q = p − q.
    public func languageModelLoss(_ logits: Variable, labels: [Int], soft: SparseTargets?, loss: TrainingLoss, gradScale: Float = 1) throws -> LossReport {
        let (n, v) = (logits.rows, logits.cols)
        guard labels.count == n else { throw NNError.shapeMismatch(tensor: "labels", expected: [n], got: [labels.count]) }
        for l in labels where l >= v || l < -1 {
            throw NNError.invalidArgument("label \(l) is outside the vocabulary of \(v) entries (use -1 for positions without a loss)")
        }
        let (ceWeight, softWeight, softKind): (Double, Double, SoftLoss?)
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
        let hasSoft: [Bool] = (0..<n).map { i in
            guard let t = target, t.present?[i] ?? true else { return false }
            return (0..<k).contains { t.ids[i * k + $0] >= 0 && t.logProbs[i * k + $0] > -.infinity }
        }
        let labelled = labels.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) }
        let softCount = hasSoft.reduce(0) { $0 + ($1 ? 1 : 0) }
        let positions = (0..<n).reduce(0) { $0 + ((labels[$1] >= 0 && ceWeight > 0) || hasSoft[$1] ? 1 : 0) }
        let wCE = labelled > 0 ? ceWeight / Double(labelled) : 0
        let wSoft = softCount > 0 ? softWeight / Double(softCount) : 0

        var ceRows = [Double](repeating: 0, count: n), softRows = [Double](repeating: 0, count: n)
        let grad = recording ? logits.grad : nil
        let z = logits.data
        let ids = target?.ids ?? [], lps = target?.logProbs ?? []
        ceRows.withUnsafeMutableBufferPointer { ceOut in
            softRows.withUnsafeMutableBufferPointer { softOut in
                ids.withUnsafeBufferPointer { idp in
                    lps.withUnsafeBufferPointer { lpp in
                        let chunk = max(1, rowChunk(v))
                        parallelFor(count: n, chunkSize: chunk) { _, r in
                            let scratch = SavedFloats(grad == nil ? chunk * v : 1)
                            for i in r {
                                let label = labels[i], soft = hasSoft[i]
                                guard label >= 0 || soft else { continue }
                                let zr = z + i * v
                                let mx = fk_max_f32(zr, v)
                                // e^(z − max) lands in the gradient row (scaled to p − target below), or in scratch.
                                let sum = fk_exp_shifted(zr, v, mx, grad.map { $0 + i * v } ?? scratch.pointer + (i - r.lowerBound) * v)
                                let lse = Double(mx) + log(sum)
                                var rowCE = 0.0
                                if label >= 0 { rowCE = lse - Double(zr[label]); ceOut[i] = rowCE }
                                // Soft part: q renormalised over the row's valid entries.
                                var q = [Double](repeating: 0, count: k)
                                if soft {
                                    var qmax = -Double.infinity
                                    for e in 0..<k where idp[i * k + e] >= 0 { qmax = max(qmax, Double(lpp[i * k + e])) }
                                    var qs = 0.0
                                    for e in 0..<k where idp[i * k + e] >= 0 { q[e] = exp(Double(lpp[i * k + e]) - qmax); qs += q[e] }
                                    var ce = 0.0, negEntropy = 0.0
                                    for e in 0..<k where idp[i * k + e] >= 0 && q[e] > 0 {
                                        q[e] /= qs
                                        ce -= q[e] * (Double(zr[Int(idp[i * k + e])]) - lse)
                                        negEntropy += q[e] * log(q[e])
                                    }
                                    softOut[i] = softKind == .kl ? ce + negEntropy : ce
                                }
                                guard let grad else { continue }
                                // ∂/∂z = wCE·(p − onehot(label)) + wSoft·(p − q), times gradScale.
                                let gr = grad + i * v
                                let rowCEWeight = label >= 0 ? wCE : 0, rowSoftWeight = soft ? wSoft : 0
                                let pScale = Float((rowCEWeight + rowSoftWeight) * Double(gradScale) / sum)
                                for j in 0..<v { gr[j] *= pScale }
                                if label >= 0 { gr[label] -= Float(rowCEWeight * Double(gradScale)) }
                                if soft {
                                    for e in 0..<k where idp[i * k + e] >= 0 { gr[Int(idp[i * k + e])] -= Float(rowSoftWeight * q[e] * Double(gradScale)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        let ceMean = labelled > 0 ? ceRows.reduce(0, +) / Double(labelled) : 0
        let softMean = softCount > 0 ? softRows.reduce(0, +) / Double(softCount) : 0
        var components = ["ce": ceMean]
        if softKind != nil { components["soft"] = softMean }
        return LossReport(loss: ceWeight * ceMean + softWeight * softMean, components: components, tokens: positions)
    }
}
