// The GGUF route gives the ids transformers' GGUF tokenizer conversion gives.
import XCTest
@testable import FuseTokenizers

final class GGUFVocabularyTests: XCTestCase {
    func vocabulary(_ name: String) throws -> GGUFVocabulary {
        try GGUFVocabulary(contentsOf: Fixtures.directory + "/\(name).vocab.json")
    }

    /// gpt2-type vocabulary with merges (the trained byte-level BPE stored as GGUF metadata).
    func testByteLevelVocabulary() throws { try checkExactness(try vocabulary("tiny-gguf-gpt2").makeTokenizer(), reference: "tiny-gguf-gpt2") }

    /// llama-type (SentencePiece) vocabulary without merges: merges derived from scores.
    func testSentencePieceVocabulary() throws { try checkExactness(try vocabulary("tiny-gguf-llama").makeTokenizer(), reference: "tiny-gguf-llama") }

    /// The same vocabulary under architecture gemma3: merges ordered by file position, Gemma's pipeline.
    func testGemmaVocabulary() throws { try checkExactness(try vocabulary("tiny-gguf-gemma").makeTokenizer(), reference: "tiny-gguf-gemma") }

    func realVocabulary(_ name: String) throws -> GGUFVocabulary {
        guard let dir = Fixtures.modelsDirectory else { throw XCTSkip("set FUSEKIT_MODELS_DIR to run the real-model tokenizer tests") }
        let path = dir + "/\(name).vocab.json"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) missing: run Tools/fixtures/tokenizer_fixtures.py MODELS_DIR") }
        return try GGUFVocabulary(contentsOf: path)
    }

    func testSmolLM2Vocabulary() throws { try checkExactness(try realVocabulary("smollm2").makeTokenizer(), reference: "smollm2") }
    func testGemma3Vocabulary() throws { try checkExactness(try realVocabulary("gemma3").makeTokenizer(), reference: "gemma3") }

    func testUnknownModelAndPreAreRefused() throws {
        var v = try vocabulary("tiny-gguf-gpt2")
        v.pre = "qwen2"
        XCTAssertThrowsError(try v.makeTokenizer()) { e in
            guard case TokenizerError.unsupportedVocabulary = e else { return XCTFail("\(e)") }
        }
        v.model = "bert"
        XCTAssertThrowsError(try v.makeTokenizer()) { e in
            guard case TokenizerError.unsupportedVocabulary = e else { return XCTFail("\(e)") }
        }
    }

    func testInconsistentVocabularyIsRefused() throws {
        var v = try vocabulary("tiny-gguf-llama")
        v.scores = [0, 1]
        XCTAssertThrowsError(try v.makeTokenizer()) { e in
            guard case TokenizerError.badVocabulary = e else { return XCTFail("\(e)") }
        }
        v = try vocabulary("tiny-gguf-llama")
        v.bosID = v.tokens.count
        XCTAssertThrowsError(try v.makeTokenizer()) { e in
            guard case TokenizerError.badVocabulary = e else { return XCTFail("\(e)") }
        }
    }
}

/// llama.cpp's score-driven SentencePiece (no llama.cpp reference here): compared with the HF route
/// on the corpus. The two agree wherever merge order by score equals the derived merge ranks.
final class LlamaCppFlavorTests: XCTestCase {
    /// Entries where both flavors give the same ids. With `skipLeadingSpace`, entries that start
    /// with a space are left out: transformers' Metaspace ("first") adds no "▁" before a text that
    /// already starts with one, llama.cpp's add_space_prefix always does.
    func agreement(_ v: GGUFVocabulary, skipLeadingSpace: Bool = false) throws -> (Int, Int) {
        let a = try v.makeTokenizer(), b = try v.makeTokenizer(flavor: .llamaCpp)
        var same = 0, total = 0
        var shown = 0
        for text in Fixtures.corpus where !(skipLeadingSpace && text.hasPrefix(" ")) {
            total += 1
            let x = a.encode(text), y = b.encode(text)
            if x == y { same += 1 } else if shown < 3 {
                shown += 1
                print("differs: \(text.debugDescription)\n  HF:        \(x.map { a.token(for: $0)! })\n  llama.cpp: \(y.map { b.token(for: $0)! })")
            }
        }
        return (same, total)
    }

    func testScoreDrivenMergingMatchesHFOnSentencePieceVocabulary() throws {
        var v = try GGUFVocabulary(contentsOf: Fixtures.directory + "/tiny-gguf-llama.vocab.json")
        // transformers' llama route always prepends "▁" to the text (Metaspace, prepend "first");
        // llama.cpp does when add_space_prefix is set: set it so only the merging differs
        v.addSpacePrefix = true
        let b = try v.makeTokenizer(flavor: .llamaCpp)
        // "▁" + "Hello" merged by score, byte fallback for an unseen character
        XCTAssertEqual(try b.decode(b.encode("Hello 世界"), skipSpecialTokens: true), " Hello 世界")
        let (same, total) = try agreement(v, skipLeadingSpace: true)
        print("llama.cpp flavor vs HF route (tiny-gguf-llama): \(same)/\(total) entries agree")
        XCTAssertGreaterThan(same, total * 9 / 10)
    }

    func testGemma3Agreement() throws {
        guard let dir = Fixtures.modelsDirectory else { throw XCTSkip("set FUSEKIT_MODELS_DIR to run") }
        let path = dir + "/gemma3.vocab.json"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) missing: run Tools/fixtures/tokenizer_fixtures.py MODELS_DIR") }
        let v = try GGUFVocabulary(contentsOf: path)
        let (same, total) = try agreement(v)
        print("llama.cpp flavor vs HF route (gemma3): \(same)/\(total) entries agree")
    }
}
