import XCTest
@testable import FuseDistill

/// Tests/Fixtures/distill/alignment.json comes from a line-by-line Python port of FuseLLM's released
/// alignment (Tools/fixtures/distill_fixtures.py) on SmolLM2 (target) and Gemma 3 (source)
/// tokenizations of 48 entries of the tokenizer corpus, with synthetic top-5 source distributions.
/// FuseKit in `.release` surface mode must give the same DTW links and the same aligned (ids, logits)
/// at every position where the release uses the source; where the release falls back to a one-hot
/// (on the current token), FuseKit falls back too (on the next token, absent at the last position).
struct AlignmentFixture: Decodable {
    struct Output: Decodable { var ids: [[Int]]; var logits: [[Double]] }
    struct Example: Decodable {
        var text: String
        var target_ids: [Int]; var target_tokens: [String]
        var source_ids: [Int]; var source_tokens: [String]
        var source_topk_ids: [[Int]]; var source_topk_logits: [[Double]]
        var target_to_source: [[Int]]
        var hard: Output; var soft: Output
    }
    var source_strings: [String: String]
    var target_vocab: [String: Int]
    var mined: [String: String]
    var examples: [Example]

    static func load() throws -> AlignmentFixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "alignment", withExtension: "json", subdirectory: "distill"),
                                "Tests/Fixtures/distill/alignment.json missing; run Tools/fixtures/distill_fixtures.py")
        return try JSONDecoder().decode(AlignmentFixture.self, from: Data(contentsOf: url))
    }
}

final class ReleaseFixtureTests: XCTestCase {
    /// Surfaces holding only the strings the fixture names (ids as in the real vocabularies).
    func partialSurfaces(_ f: AlignmentFixture) -> (source: TokenSurfaces, target: TokenSurfaces) {
        var t: [Int: String] = [:]
        for (s, id) in f.target_vocab { t[id] = s }
        for e in f.examples { for (id, s) in zip(e.target_ids, e.target_tokens) { t[id] = s } }
        var s: [Int: String] = [:]
        for (k, v) in f.source_strings { if let id = Int(k) { s[id] = v } }
        func make(_ d: [Int: String], _ style: TokenizerStyle) -> TokenSurfaces {
            let n = (d.keys.max() ?? 0) + 1
            var strings = [[UInt32]](repeating: [], count: n)
            for (id, v) in d { strings[id] = scalars(v) }
            return TokenSurfaces(strings: strings, special: [Bool](repeating: false, count: n), style: style, mode: .release)
        }
        return (make(s, .sentencePiece), make(t, .byteLevel))
    }

    static func compare(_ f: AlignmentFixture, aligner: TokenAligner, mode: KeyPath<AlignmentFixture.Example, AlignmentFixture.Output>,
                 file: StaticString = #filePath, line: UInt = #line) -> (aligned: Int, total: Int) {
        var aligned = 0, total = 0
        for (n, e) in f.examples.enumerated() {
            let st = e.source_ids.map(Int32.init), tt = e.target_ids.map(Int32.init)
            // FuseKit leaves special tokens out of the DTW (a literal "<bos>" in the text is one for Gemma's
            // tokenizer); the release aligns them like any token. Those examples are not comparable.
            if st.contains(where: { isSpecial(aligner.mapping.source, $0) }) || tt.contains(where: { isSpecial(aligner.mapping.target, $0) }) { continue }
            XCTAssertEqual(aligner.align(sourceTokens: st, targetTokens: tt), e.target_to_source, "example \(n) DTW", file: file, line: line)
            let a = aligner.alignedSequence(sourceTokens: st, targetTokens: tt, k: 5, topIDs: e.source_topk_ids.flatMap { $0.map(Int32.init) },
                                            topLogProbs: e.source_topk_logits.flatMap { $0.map(Float.init) }, meanCE: 0)
            let ref = e[keyPath: mode]
            for i in 0..<tt.count {
                total += 1
                let releaseFallback = ref.logits[i] == [1.0] && ref.ids[i] == [e.target_ids[i]]
                switch a.entries[i] {
                case let .distribution(ids, lps):
                    aligned += 1
                    XCTAssertFalse(releaseFallback, "example \(n) position \(i): FuseKit aligned, the release fell back", file: file, line: line)
                    XCTAssertEqual(ids.map(Int.init), ref.ids[i], "example \(n) position \(i) ids", file: file, line: line)
                    XCTAssertEqual(lps, ref.logits[i].map(Float.init), "example \(n) position \(i) logits", file: file, line: line)
                case let .oneHot(id):
                    XCTAssertTrue(releaseFallback, "example \(n) position \(i): FuseKit fell back, the release aligned \(ref.ids[i])", file: file, line: line)
                    XCTAssertEqual(Int(id), e.target_ids[i + 1], file: file, line: line)
                case .absent:
                    XCTAssertTrue(releaseFallback && i == tt.count - 1, "example \(n) position \(i) absent", file: file, line: line)
                }
            }
        }
        return (aligned, total)
    }

    func testReleaseDTWAndHardAlignment() throws {
        let f = try AlignmentFixture.load()
        XCTAssertEqual(f.examples.count, 48)
        let (s, t) = partialSurfaces(f)
        let r = Self.compare(f, aligner: TokenAligner(mapping: VocabularyMapping(source: s, target: t), vocabulary: .hard), mode: \.hard)
        XCTAssertGreaterThan(r.aligned, r.total / 4)   // the comparison is not vacuous
    }

    func testReleaseSoftAlignmentWithReferenceMinED() throws {
        let f = try AlignmentFixture.load()
        let (s, t) = partialSurfaces(f)
        let mapping = VocabularyMapping(source: s, target: t)
        for (id, str) in f.source_strings {
            guard let sid = Int(id) else { continue }
            let translated = String(String.UnicodeScalarView(mapping.translated(scalars(str)).compactMap(Unicode.Scalar.init)))
            if let m = f.mined[translated], let tid = f.target_vocab[m] { mapping.assign(source: sid, target: Int32(tid)) }
        }
        let r = Self.compare(f, aligner: TokenAligner(mapping: mapping, vocabulary: .soft), mode: \.soft)
        XCTAssertGreaterThan(r.aligned, r.total / 2)
    }
}
