import Foundation
import FuseTensor

/// How the next token is chosen from logits, in the order transformers' logits processors apply them:
/// repetition penalty, temperature, top-k, top-p, then sampling (or argmax when greedy).
public struct SamplingOptions: Sendable, Equatable {
    /// 0 = greedy (argmax, lowest id on ties).
    public var temperature: Float = 0
    /// Keep the k most likely tokens (0 = off).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1 = off).
    public var topP: Float = 1
    /// CTRL-style penalty on tokens already in the sequence: logit / r if positive, logit * r if not (1 = off).
    public var repetitionPenalty: Float = 1
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP
        self.repetitionPenalty = repetitionPenalty; self.seed = seed
    }

    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else { throw ModelError.invalidArgument("temperature must be >= 0, got \(temperature)") }
        guard topK >= 0 else { throw ModelError.invalidArgument("top-k must be >= 0, got \(topK)") }
        guard topP > 0, topP <= 1 else { throw ModelError.invalidArgument("top-p must be in (0, 1], got \(topP)") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else { throw ModelError.invalidArgument("repetition penalty must be > 0, got \(repetitionPenalty)") }
    }
}

/// Picks tokens from logits. Randomness comes from one SplitMix64 stream seeded by `seed`, so the same
/// seed gives the same text on any thread count.
public struct Sampler {
    public let options: SamplingOptions
    var state: UInt64

    public init(_ options: SamplingOptions) {
        self.options = options
        self.state = options.seed &+ 0x9E37_79B9_7F4A_7C15
    }

    mutating func nextUniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1.0p-53
    }

    /// The next token given the logits `[V]` of the last position and the tokens so far.
    public mutating func next(logits: ArraySlice<Float>, history: [Int]) -> Int {
        var l = Array(logits)
        if options.repetitionPenalty != 1 {
            for id in Set(history) where id >= 0 && id < l.count {
                l[id] = l[id] > 0 ? l[id] / options.repetitionPenalty : l[id] * options.repetitionPenalty
            }
        }
        if options.temperature == 0 { return Sampler.argmax(l) }
        for i in l.indices { l[i] /= options.temperature }
        let mx = l.max() ?? 0
        // Candidates in descending order (ties: lower id first). Sorting a 262k vocabulary per token
        // would cost tens of milliseconds, so only the tokens that can matter are sorted: the top k, or
        // for top-p those with probability at least `tailCutoff` of the largest (the rest hold a
        // negligible mass and sit at the tail, which top-p drops first).
        var order: [Int]
        if options.topK > 0 {
            order = Sampler.topIndices(l, options.topK)
        } else if options.topP < 1 {
            let floor = mx + log(Sampler.tailCutoff)
            order = l.indices.filter { l[$0] >= floor }
            order.sort { l[$0] != l[$1] ? l[$0] > l[$1] : $0 < $1 }
        } else {
            order = Array(l.indices)
        }
        var probs = order.map { Double(exp(l[$0] - mx)) }
        var total = probs.reduce(0, +)
        if options.topP < 1 {
            // transformers' TopPLogitsWarper keeps tokens while the cumulative probability of the ones
            // before them is below p (the token that crosses p stays). The total is over all tokens.
            if options.topK == 0 { total = l.reduce(0.0) { $0 + Double(exp($1 - mx)) } }
            var cumulative = 0.0, keep = 0
            for p in probs { if cumulative >= Double(options.topP) * total, keep > 0 { break }; cumulative += p; keep += 1 }
            order = Array(order.prefix(keep)); probs = Array(probs.prefix(keep)); total = probs.reduce(0, +)
        }
        var u = nextUniform() * total
        for (i, p) in probs.enumerated() { u -= p; if u < 0 { return order[i] } }
        return order[order.count - 1]
    }

    /// Probability ratio below which top-p leaves tokens unsorted (treated as the discarded tail).
    static let tailCutoff: Float = 1e-9

    /// Indices of the k largest values, descending, lower index first on ties (a bounded insertion).
    static func topIndices(_ l: [Float], _ k: Int) -> [Int] {
        var top: [Int] = []
        top.reserveCapacity(k + 1)
        func before(_ a: Int, _ b: Int) -> Bool { l[a] != l[b] ? l[a] > l[b] : a < b }
        for i in l.indices {
            if top.count == k, let last = top.last, !before(i, last) { continue }
            var j = top.count
            while j > 0 && before(i, top[j - 1]) { j -= 1 }
            top.insert(i, at: j)
            if top.count > k { top.removeLast() }
        }
        return top
    }

    /// Index of the largest value, lowest index on ties (torch.argmax's rule).
    public static func argmax<C: Collection>(_ values: C) -> Int where C.Element == Float, C.Index == Int {
        var best = values.startIndex, bestValue = -Float.infinity
        for i in values.indices where values[i] > bestValue { bestValue = values[i]; best = i }
        return best - values.startIndex
    }
}
