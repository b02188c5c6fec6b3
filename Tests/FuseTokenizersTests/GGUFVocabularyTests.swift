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
