// A source's top-k distributions moved onto the target's tokenization, FuseLLM's
// `transform_step_logits` (`FuseLLM/src/utils/others.py`):
//
// 1. DTW (DTW.swift) aligns the source tokens to the target tokens; special tokens of either side are
//    left out of the DTW and get no aligned distribution.
// 2. Target position i takes the source's distribution at position j when i is aligned to exactly one
//    source position j and the tokens agree: equal strings (after marker translation), or in `.soft`
//    mode (MinED, the paper's choice) the source token maps to the target token. The release's first
//    token rule (MPT's missing leading marker) is generalised: at position 0 a marker present on one
//    side only is ignored.
// 3. Each of the source's top-k ids maps to a target id (exact string, or MinED in `.soft`); ids
//    without a target are dropped, and a target id met twice keeps its first (most probable) entry
//    only: duplicates are dropped, not summed, as in the release.
// 4. Every other position gets a one-hot on the target's gold next token. The release puts the
//    one-hot on the target's *current* token (`base_model_vocab[base_token]`) although position i
//    predicts token i+1; FuseKit uses token i+1 (the next token) and gives the last position, which
//    has no next token, no distribution.
import Foundation

public enum VocabularyAlignment: String, Sendable, CaseIterable {
    /// Exact string match only (the paper's "EM").
    case hard
    /// Exact match, else minimum edit distance (the paper's "MinED").
    case soft
}

/// The sparse distribution at one target position.
public enum AlignedEntry: Equatable, Sendable {
    /// Target ids with the source's log-probabilities, most probable first.
    case distribution(ids: [Int32], logProbs: [Float])
    /// The fallback: all mass on this target id (the gold next token).
    case oneHot(Int32)
    /// No distribution at this position.
    case absent
}

/// A source's aligned distributions over one target sequence, with its sequence-level CE (MinCE's
/// metric, measured on the source's own tokens) and counts for the health report.
public struct AlignedSequence: Sendable {
    public var entries: [AlignedEntry]
    public var meanCE: Double
    public var alignedPositions: Int { entries.reduce(0) { if case .distribution = $1 { return $0 + 1 }; return $0 } }
    public var oneHotPositions: Int { entries.reduce(0) { if case .oneHot = $1 { return $0 + 1 }; return $0 } }
}

public struct TokenAligner: @unchecked Sendable {
    public let mapping: VocabularyMapping
    public let vocabulary: VocabularyAlignment

    public init(mapping: VocabularyMapping, vocabulary: VocabularyAlignment) {
        self.mapping = mapping; self.vocabulary = vocabulary
    }

    var source: TokenSurfaces { mapping.source }
    var target: TokenSurfaces { mapping.target }

    /// DTW over the non-special tokens; the result's lists hold positions in the full sequences.
    public func align(sourceTokens: [Int32], targetTokens: [Int32]) -> [[Int]] {
        let s = sourceTokens.indices.filter { !isSpecial(source, sourceTokens[$0]) }
        let t = targetTokens.indices.filter { !isSpecial(target, targetTokens[$0]) }
        var out = [[Int]](repeating: [], count: targetTokens.count)
        guard !s.isEmpty, !t.isEmpty else { return out }
        let ss = s.map { strippedString(source, sourceTokens[$0]) }
        let ts = t.map { strippedString(target, targetTokens[$0]) }
        let dtw = dynamicTimeWarping(sourceCount: ss.count, targetCount: ts.count) { editDistance(ss[$0], ts[$1]) }
        for (k, list) in dtw.targetToSource.enumerated() { out[t[k]] = list.map { s[$0] } }
        return out
    }

    /// The aligned distributions of one sequence. `topIDs`/`topLogProbs` are `[S, k]` for the S source
    /// tokens; `meanCE` is carried through.
    public func alignedSequence(sourceTokens: [Int32], targetTokens: [Int32], k: Int, topIDs: [Int32], topLogProbs: [Float],
                                meanCE: Double) -> AlignedSequence {
        let links = align(sourceTokens: sourceTokens, targetTokens: targetTokens)
        if vocabulary == .soft {   // MinED entries this sequence needs; a no-op when the caller resolved them first
            prepare(sourceTokens: sourceTokens, topIDs: topIDs)
        }
        var entries = [AlignedEntry](repeating: .absent, count: targetTokens.count)
        for i in 0..<targetTokens.count {
            let gold: AlignedEntry = i + 1 < targetTokens.count ? .oneHot(targetTokens[i + 1]) : .absent
            guard !isSpecial(target, targetTokens[i]) else { continue }
            let js = links[i]
            guard js.count == 1, tokensAgree(source: Int(sourceTokens[js[0]]), target: Int(targetTokens[i]), first: i == 0) else {
                entries[i] = gold; continue
            }
            let j = js[0]
            var ids: [Int32] = [], lps: [Float] = []
            for e in 0..<k {
                let sid = Int(topIDs[j * k + e])
                guard let tid = mapped(sid), !ids.contains(tid) else { continue }
                ids.append(tid); lps.append(topLogProbs[j * k + e])
            }
            entries[i] = ids.isEmpty ? gold : .distribution(ids: ids, logProbs: lps)
        }
        return AlignedSequence(entries: entries, meanCE: meanCE)
    }

    /// Resolves the MinED entries of these source ids (in parallel). Call it before aligning sequences
    /// concurrently: alignment itself then only reads the mapping.
    public func prepare(sourceTokens: [Int32], topIDs: [Int32]) {
        guard vocabulary == .soft else { return }
        let map = mapping.map
        var need: [Int] = []
        for id in sourceTokens where id >= 0 && Int(id) < map.count && map[Int(id)] < 0 { need.append(Int(id)) }
        for id in topIDs where id >= 0 && Int(id) < map.count && map[Int(id)] < 0 { need.append(Int(id)) }
        if !need.isEmpty { mapping.resolve(need) }
    }

    /// The target id of a source id under this vocabulary alignment, or nil.
    func mapped(_ sid: Int) -> Int32? {
        switch vocabulary {
        case .hard:
            guard sid >= 0, sid < mapping.exact.count, mapping.exact[sid] else { return nil }
            return mapping.map[sid]
        case .soft:
            guard sid >= 0, sid < mapping.map.count, mapping.map[sid] >= 0 else { return nil }
            return mapping.map[sid]
        }
    }

    func tokensAgree(source sid: Int, target tid: Int, first: Bool) -> Bool {
        guard sid < source.count, tid < target.count else { return false }
        let s = mapping.translated(source.strings[sid]), t = target.strings[tid]
        if s == t { return true }
        if first {   // one side starts with the marker and the other does not (the release's MPT case)
            let m = target.marker
            if t.first == m, s.first != m, [m] + s == t { return true }
            if s.first == m, t.first != m, s == [m] + t { return true }
        }
        return vocabulary == .soft && mapping.map[sid] == Int32(tid)
    }
}

func isSpecial(_ s: TokenSurfaces, _ id: Int32) -> Bool { Int(id) < s.special.count ? s.special[Int(id)] : false }

func strippedString(_ s: TokenSurfaces, _ id: Int32) -> [UInt32] {
    Int(id) < s.count && id >= 0 ? s.stripped(Int(id)) : []
}
