// Fusion of aligned distributions into one soft target per target position (FuseLLM, arXiv
// 2401.10491, section 3.3; `FuseLLM/src/utils/trainer.py::compute_loss`, `data_collator.py`).
//
// Each candidate (the target's own capture, when used, and every aligned source) brings per position
// a sparse distribution q = softmax(logp / T) over its kept entries (renormalised to its top-k, as the
// release's collator scatters softmax(top-k logits / T)), and one sequence-level cross-entropy CE
// (the candidate's mean next-token CE on its own tokens). The release turns CEs into rewards
// r = exp(−CE).
//
// - MinCE: per sequence, the candidate with the highest reward (lowest CE; the first on ties, as
//   torch.argmax) gives every position's distribution. Where it has none, the release falls back to
//   the target's own distribution ("bad case"); FuseKit then takes the next candidate in CE order
//   that has one.
// - AvgCE: per sequence, weights w = softmax(r) over the candidates (the release's
//   `distill_weighted_as_gt`: a softmax of the rewards, not of −CE), and p = Σ w_c q_c per position,
//   the weights renormalised over the candidates present there.
//
// The result is FuseNN's `SparseTargets` with `k` entries per position, most probable first,
// log-probabilities renormalised over the kept entries; rows with fewer entries are padded with
// `paddingLogProb` (probability 0, finite so that q·log q stays 0) on the row's first id.
import Foundation
import FuseNN

public enum FusionFunction: String, Sendable, CaseIterable {
    case minCE = "minCE"
    case avgCE = "avgCE"
}

/// Log-probability of padding entries in fused targets: exp of it is exactly 0 in Float32.
public let paddingLogProb: Float = -1e30

public struct FusionCandidate: Sendable {
    public var name: String
    public var sequence: AlignedSequence
    public init(name: String, sequence: AlignedSequence) { self.name = name; self.sequence = sequence }
}

/// One fused sequence: soft targets for its T positions and, for MinCE, the chosen candidate.
public struct FusedSequence: Sendable {
    public var targets: SparseTargets
    /// Index into the candidates MinCE chose; nil for AvgCE.
    public var chosen: Int?
    /// AvgCE's weights per candidate (MinCE: one-hot on the choice).
    public var weights: [Double]
}

public struct Fusion: Sendable {
    public var function: FusionFunction
    public var k: Int
    public var temperature: Float

    public init(function: FusionFunction, k: Int, temperature: Float = 1) {
        self.function = function; self.k = k; self.temperature = temperature
    }

    /// Fuses one sequence of `length` target positions. Candidates must all cover `length` positions.
    public func fuse(_ candidates: [FusionCandidate], length: Int) throws -> FusedSequence {
        guard !candidates.isEmpty else { throw DistillError.invalidArgument("fusion needs at least one candidate distribution") }
        for c in candidates where c.sequence.entries.count != length {
            throw DistillError.invalidArgument("candidate \(c.name) has \(c.sequence.entries.count) positions, the target sequence \(length)")
        }
        let rewards = candidates.map { exp(-$0.sequence.meanCE) }
        var ids = [Int32](repeating: 0, count: length * k)
        var lps = [Float](repeating: paddingLogProb, count: length * k)
        var present = [Bool](repeating: false, count: length)
        switch function {
        case .minCE:
            // Stable order by reward, highest first: the first is MinCE's choice, the rest its fallbacks.
            let order = candidates.indices.sorted { rewards[$0] != rewards[$1] ? rewards[$0] > rewards[$1] : $0 < $1 }
            for t in 0..<length {
                for c in order {
                    guard let q = probabilities(candidates[c].sequence.entries[t]) else { continue }
                    write(q, row: t, ids: &ids, lps: &lps); present[t] = true
                    break
                }
            }
            var w = [Double](repeating: 0, count: candidates.count); w[order[0]] = 1
            return FusedSequence(targets: SparseTargets(k: k, ids: ids, logProbs: lps, present: present), chosen: order[0], weights: w)
        case .avgCE:
            let mx = rewards.max() ?? 0
            let e = rewards.map { exp($0 - mx) }
            let z = e.reduce(0, +)
            let w = e.map { $0 / z }
            for t in 0..<length {
                var mix: [Int32: Double] = [:]
                var total = 0.0
                for (c, cand) in candidates.enumerated() {
                    guard let q = probabilities(cand.sequence.entries[t]) else { continue }
                    total += w[c]
                    for (id, p) in q { mix[id, default: 0] += w[c] * p }
                }
                guard total > 0 else { continue }
                let merged = mix.map { ($0.key, $0.value / total) }
                write(merged, row: t, ids: &ids, lps: &lps); present[t] = true
            }
            return FusedSequence(targets: SparseTargets(k: k, ids: ids, logProbs: lps, present: present), chosen: nil, weights: w)
        }
    }

    /// softmax(logp / T) over the entry's kept ids (the release's collator), or nil when absent.
    func probabilities(_ e: AlignedEntry) -> [(Int32, Double)]? {
        switch e {
        case .absent: return nil
        case let .oneHot(id): return [(id, 1)]
        case let .distribution(ids, logProbs):
            guard !ids.isEmpty else { return nil }
            let scaled = logProbs.map { Double($0) / Double(temperature) }
            let mx = scaled.max() ?? 0
            let e = scaled.map { exp($0 - mx) }
            let z = e.reduce(0, +)
            return zip(ids, e).map { ($0, $1 / z) }
        }
    }

    /// Keeps the `k` most probable ids (ties: lower id first), renormalised, as log-probabilities.
    func write(_ q: [(Int32, Double)], row t: Int, ids: inout [Int32], lps: inout [Float]) {
        let kept = q.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(k)
        let z = kept.reduce(0) { $0 + $1.1 }
        guard let first = kept.first else { return }
        for e in 0..<k { ids[t * k + e] = first.0 }
        for (e, (id, p)) in kept.enumerated() {
            ids[t * k + e] = id
            lps[t * k + e] = p > 0 ? Float(log(p / z)) : paddingLogProb
        }
    }
}

/// How often MinCE chose each candidate, and AvgCE's mean weights: what a report reads later.
public struct FusionLog: Sendable, Equatable {
    public var names: [String]
    public var chosen: [Int]
    public var weightSums: [Double]
    public var sequences: Int
    public var positions: Int
    public var presentPositions: Int

    public init(names: [String]) {
        self.names = names
        chosen = [Int](repeating: 0, count: names.count); weightSums = [Double](repeating: 0, count: names.count)
        sequences = 0; positions = 0; presentPositions = 0
    }

    public mutating func record(_ f: FusedSequence) {
        if let c = f.chosen { chosen[c] += 1 }
        for (i, w) in f.weights.enumerated() where i < weightSums.count { weightSums[i] += w }
        sequences += 1
        positions += f.targets.present?.count ?? 0
        presentPositions += f.targets.present?.reduce(0) { $0 + ($1 ? 1 : 0) } ?? 0
    }
}
