import XCTest
@testable import FuseDistill

final class AlignmentTests: XCTestCase {
    // MARK: - surfaces

    func testCanonicalFormsMeetAcrossFamilies() {
        let bl = TokenizerStyle.byteLevel, sp = TokenizerStyle.sentencePiece
        XCTAssertEqual(canonicalForm(scalars("Ġthe"), style: bl), canonicalForm(scalars("▁the"), style: sp))
        XCTAssertEqual(canonicalForm(scalars("Ċ"), style: bl), canonicalForm(scalars("\n"), style: sp))
        XCTAssertEqual(canonicalForm(scalars("ĠcafÃ©"), style: bl), canonicalForm(scalars("▁café"), style: sp))
        // half of "é" (0xC3 0xA9): a byte-level piece meets SentencePiece's byte-fallback token
        XCTAssertEqual(canonicalForm(scalars("Ã"), style: bl), scalars("<0xC3>"))
        XCTAssertEqual(canonicalForm(scalars("<0xC3>"), style: sp), scalars("<0xC3>"))
        XCTAssertEqual(canonicalForm(scalars("<0x0A>"), style: sp), scalars("\n"))
    }

    func testMarkerTranslationInReleaseMode() {
        let src = surfaces(["▁the", "▁cat", "s"], style: .sentencePiece)
        let tgt = surfaces(["Ġthe", "Ġcat", "Ġcats"], style: .byteLevel)
        let m = VocabularyMapping(source: src, target: tgt)
        XCTAssertEqual(m.map[0], 0); XCTAssertEqual(m.map[1], 1)
        XCTAssertTrue(m.exact[0])
        XCTAssertEqual(m.targetID(2), 0)   // "s" is at distance 4 from all three: the first id wins
    }

    // MARK: - MinED

    func testMinEDTakesFirstMinimumByID() {
        let src = surfaces(["abx", "zzzz"], style: .sentencePiece)
        let tgt = surfaces(["q", "aby", "abz", "ab"], style: .sentencePiece)   // aby, abz, ab all at distance 1: id 1 wins
        let m = VocabularyMapping(source: src, target: tgt)
        XCTAssertEqual(m.targetID(0), 1)
        XCTAssertFalse(m.exact[0])
    }

    func testMinEDSearchEqualsBruteForce() {
        var rng = SystemRandomNumberGenerator()
        func word() -> String { String((0..<Int.random(in: 1...6, using: &rng)).map { _ in "abcde".randomElement(using: &rng)! }) }
        let targets = (0..<300).map { _ in word() }
        let sources = (0..<200).map { _ in word() }
        let m = VocabularyMapping(source: surfaces(sources, style: .sentencePiece), target: surfaces(targets, style: .sentencePiece))
        m.resolve(Array(0..<sources.count))
        for (i, s) in sources.enumerated() {
            let ds = targets.map { editDistance(scalars(s), scalars($0)) }
            let best = ds.min()!
            let expected = targets.firstIndex(of: s) ?? ds.firstIndex(of: best)!
            XCTAssertEqual(Int(m.map[i]), expected, "source \(s)")
        }
    }

    func testMappingCacheRoundTripAndRejectsOtherPair() throws {
        let src = surfaces(["abx", "▁q"], style: .sentencePiece), tgt = surfaces(["aby", "q"], style: .sentencePiece)
        let m = VocabularyMapping(source: src, target: tgt)
        m.resolve([0, 1])
        let dir = NSTemporaryDirectory() + "fk-vmap-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try m.save(to: dir + "/m.fkvmap", key: m.cacheKey)
        let again = VocabularyMapping(source: src, target: tgt)
        try again.load(from: dir + "/m.fkvmap", key: again.cacheKey)
        XCTAssertEqual(again.map, m.map)
        XCTAssertThrowsError(try again.load(from: dir + "/m.fkvmap", key: "other")) { e in
            guard case DistillError.cache = e else { return XCTFail("\(e)") }
        }
    }

    // MARK: - aligned distributions

    /// Source (SentencePiece) "▁New ▁York er ▁today" vs target (byte-level) "ĠNew ĠYorker Ġtoday".
    /// Position 0: one-to-one, "▁New" = "ĠNew" -> the source's distribution at 0, ids mapped; the source
    /// lists "▁York" twice through two ids that map to one target id: the first is kept, the second dropped.
    /// Position 1: one-to-many (ĠYorker <- ▁York, er) -> one-hot on the gold next token (Ġtoday).
    /// Position 2: one-to-one "▁today" = "Ġtoday", the last position -> the source's distribution (a
    /// distribution does not need a next token; a one-hot would).
    /// (With "▁is" for "▁today" the release's DTW pairs "er" with "is" instead: cost 2 < 4.)
    func testAlignedDistributionsHandMade() {
        let src = surfaces(["▁New", "▁York", "er", "▁today", "▁York"], style: .sentencePiece)
        let tgt = surfaces(["ĠNew", "ĠYorker", "Ġtoday", "ĠYork"], style: .byteLevel)
        let aligner = TokenAligner(mapping: VocabularyMapping(source: src, target: tgt), vocabulary: .hard)
        let k = 3
        let topIDs: [Int32] = [1, 4, 2,   2, 3, 0,   3, 0, 1,   0, 1, 2]
        let topLPs: [Float] = [-0.1, -2, -3,   -0.2, -1, -4,   -0.3, -2, -5,   -1, -2, -3]
        let a = aligner.alignedSequence(sourceTokens: [0, 1, 2, 3], targetTokens: [0, 1, 2], k: k, topIDs: topIDs, topLogProbs: topLPs, meanCE: 1.5)
        // source id 2 ("er") has no exact target: dropped in hard mode
        XCTAssertEqual(a.entries[0], .distribution(ids: [3], logProbs: [-0.1]))
        XCTAssertEqual(a.entries[1], .oneHot(2))
        XCTAssertEqual(a.entries[2], .distribution(ids: [0, 3], logProbs: [-1, -2]))
        XCTAssertEqual(a.alignedPositions, 2); XCTAssertEqual(a.oneHotPositions, 1)
        XCTAssertEqual(a.meanCE, 1.5)
    }

    /// Soft (MinED): "er" maps to the nearest target string, and a one-to-one link whose strings differ
    /// counts as agreement when the source token maps to the target token.
    func testSoftModeUsesMinEDForLinksAndEntries() {
        let src = surfaces(["▁Yorkers", "▁is"], style: .sentencePiece)
        let tgt = surfaces(["ĠYorker", "Ġis"], style: .byteLevel)
        let aligner = TokenAligner(mapping: VocabularyMapping(source: src, target: tgt), vocabulary: .soft)
        let a = aligner.alignedSequence(sourceTokens: [0, 1], targetTokens: [0, 1], k: 2, topIDs: [1, 0, 0, 1], topLogProbs: [-0.5, -1, -0.7, -0.9], meanCE: 0)
        XCTAssertEqual(a.entries[0], .distribution(ids: [1, 0], logProbs: [-0.5, -1]))
        let hard = TokenAligner(mapping: VocabularyMapping(source: src, target: tgt), vocabulary: .hard)
        let b = hard.alignedSequence(sourceTokens: [0, 1], targetTokens: [0, 1], k: 2, topIDs: [1, 0, 0, 1], topLogProbs: [-0.5, -1, -0.7, -0.9], meanCE: 0)
        XCTAssertEqual(b.entries[0], .oneHot(1))
    }
}
