import XCTest
import FuseTokenizers
@testable import FuseDistill

final class SpecTests: XCTestCase {
    let base = """
    target: t.gguf
    sources:
      - model: s.gguf
        name: gemma
    corpus:
      train: train.txt
    """

    func parse(_ text: String) throws -> DistillSpec { try DistillSpec.parse(yaml: text, path: "spec.yml", checkFiles: false) }

    func testDefaultsAndFullSpec() throws {
        let s = try parse(base)
        XCTAssertEqual(s.k, 10); XCTAssertEqual(s.fusion, .minCE); XCTAssertEqual(s.lambda, 0.9); XCTAssertTrue(s.targetDistribution)
        XCTAssertEqual(s.sources, [SourceSpec(name: "gemma", model: "s.gguf")]); XCTAssertEqual(s.corpus.blockTokens, 256)
        let full = try parse(base + """

          held_out: held.txt
          block_tokens: 128
          max_sequences: 50
        k: 5
        fusion: avgCE
        lambda: 0.8
        temperature: 0.5
        alignment: {vocabulary: hard, surface: release}
        cache_dir: /tmp/c
        training: {mode: lora, lr: 5.0e-5, save_every: 7, lora: {rank: 4, target_modules: [q_proj]}}
        fusechat: {enabled: true, merge_method: ties, parameters: {density: 0.5}}
        """)
        XCTAssertEqual(full.k, 5); XCTAssertEqual(full.fusion, .avgCE); XCTAssertEqual(full.corpus.heldOut, "held.txt")
        XCTAssertEqual(full.vocabulary, .hard); XCTAssertEqual(full.surface, .release); XCTAssertEqual(full.training.loraRank, 4)
        XCTAssertEqual(full.training.saveEvery, 7); XCTAssertEqual(s.training.saveEvery, 50)
        XCTAssertEqual(full.fuseChat.mergeMethod, "ties"); XCTAssertEqual(full.fuseChat.parameters["density"], 0.5)
    }

    /// Each fault names its key path.
    func testErrorsNameKeyPaths() {
        let cases: [(String, String, String)] = [
            (base + "\nfuson: minCE", "fuson", "did you mean 'fusion'"),
            (base + "\nfusion: maxCE", "fusion", "minCE or avgCE"),
            (base + "\nlambda: 1.5", "lambda", "out of range"),
            (base + "\nk: 0", "k", "out of range"),
            (base + "\nk: ten", "k", "expected an integer"),
            (base + "\nfusechat: {merge_method: scee}", "fusechat.merge_method", "did you mean 'sce'"),
            (base + "\ntraining: {lora: {rank: 4}}", "training.lora", "training.mode: lora"),
            (base + "\nalignment: {vocabulary: fuzzy}", "alignment.vocabulary", "hard, soft"),
            ("sources: [s.gguf]\ncorpus: {train: x}", "target", "missing"),
            ("target: t.gguf\nsources: []\ncorpus: {train: x}", "sources", "non-empty"),
            ("target: t.gguf\nsources: [a.gguf, {model: b.gguf, name: a}]\ncorpus: {train: x}", "sources[1].name", "used twice"),
            ("target: t.gguf\nsources: [{model: a.gguf, weight: 2}]\ncorpus: {train: x}", "sources[0].weight", "unknown key"),
            ("target: t.gguf\nsources: [a.gguf]\ncorpus: {test: x}", "corpus.test", "unknown key"),
            ("target: [", "", "malformed YAML"),
        ]
        for (yaml, key, needle) in cases {
            XCTAssertThrowsError(try parse(yaml), key) { e in
                guard case let DistillError.spec(_, k, _, message) = e else { return XCTFail("\(e)") }
                XCTAssertEqual(k, key, "\(e)")
                XCTAssertTrue(message.contains(needle), "\(e)")
            }
        }
    }

    func testMissingFilesAreCaughtBeforeLoading() {
        XCTAssertThrowsError(try DistillSpec.parse(yaml: base, path: "spec.yml", checkFiles: true)) { e in
            guard case let DistillError.spec(_, k, _, message) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(k, "target"); XCTAssertTrue(message.contains("does not exist"))
        }
    }
}

final class CorpusTests: XCTestCase {
    func tokenizer() throws -> Tokenizer {
        // a byte-level tokenizer from the tokenizer fixtures, shared through the repository
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers/gpt2-trained").path
        return try Tokenizer(contentsOf: path)
    }

    func testBlocksRespectTheTokenBudgetAndKeepAllText() throws {
        let t = try tokenizer()
        var text = ""
        for i in 0..<200 { text += "Line \(i): the quick brown fox jumps over the lazy dog \(i * 7).\n" }
        text += String(repeating: "averyveryverylongword ", count: 120) + "\n"
        let blocks = Corpus.segment(text, tokenizer: t, blockTokens: 40)
        for b in blocks { XCTAssertLessThanOrEqual(t.encode(b, addSpecialTokens: false).count, 40, b) }
        XCTAssertEqual(blocks.joined(), text)
        XCTAssertEqual(Corpus.segment(text, tokenizer: t, blockTokens: 40, maxSequences: 3).count, 3)
    }

    func testInvalidUTF8IsReportedWithOffset() throws {
        let path = NSTemporaryDirectory() + "fk-bad-\(getpid()).txt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        FileManager.default.createFile(atPath: path, contents: Data([0x61, 0x62, 0xC3, 0x28, 0x63]))
        XCTAssertThrowsError(try Corpus.readText(path)) { e in XCTAssertEqual(e as? DistillError, .invalidUTF8(path: path, offset: 2)) }
        XCTAssertNil([UInt8]("héllo ✓ 😀".utf8).withUnsafeBytes { firstInvalidUTF8($0) })
        XCTAssertEqual([UInt8]([0xED, 0xA0, 0x80]).withUnsafeBytes { firstInvalidUTF8($0) }, 0)   // a surrogate
        XCTAssertEqual([UInt8]([0x61, 0xE2, 0x82]).withUnsafeBytes { firstInvalidUTF8($0) }, 1)   // cut short
    }
}
