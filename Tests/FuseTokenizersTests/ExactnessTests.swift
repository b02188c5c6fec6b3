// Ids and decodes equal HF tokenizers on the fixture corpus, for every tokenizer kind.
import XCTest
@testable import FuseTokenizers

final class ExactnessTests: XCTestCase {
    func load(_ name: String) throws -> Tokenizer { try Tokenizer(contentsOf: Fixtures.directory + "/\(name)/tokenizer.json") }

    /// Byte-level BPE with GPT-2's exact pipeline, trained by the fixture script; added tokens
    /// with lstrip/rstrip/single_word/normalized flags.
    func testGPT2StyleByteLevelBPE() throws { try checkExactness(try load("gpt2-trained"), reference: "gpt2-trained") }

    /// SentencePiece BPE with byte fallback (Llama 2 layout: Metaspace prepend "first", Strip decoder).
    func testLlama2SentencePieceBPE() throws { try checkExactness(try load("llama2-spm"), reference: "llama2-spm") }

    /// BERT WordPiece: BertNormalizer (lowercase, accents, CJK), BertPreTokenizer, WordPiece decoder.
    func testWordPiece() throws { try checkExactness(try load("wordpiece"), reference: "wordpiece") }

    /// Unigram with NFKC and Metaspace, TemplateProcessing with <s> ... </s>.
    func testUnigram() throws { try checkExactness(try load("unigram"), reference: "unigram") }

    // MARK: - real models (opt-in: FUSEKIT_MODELS_DIR, prepared by Tools/fixtures/tokenizer_fixtures.py)

    func realTokenizer(_ name: String) throws -> Tokenizer {
        guard let dir = Fixtures.modelsDirectory else { throw XCTSkip("set FUSEKIT_MODELS_DIR to run the real-model tokenizer tests") }
        let path = dir + "/\(name)/tokenizer.json"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) missing: run Tools/fixtures/tokenizer_fixtures.py MODELS_DIR") }
        return try Tokenizer(contentsOf: path)
    }

    func testSmolLM2TokenizerJSON() throws { try checkExactness(try realTokenizer("smollm2"), reference: "smollm2") }
    func testGemma3TokenizerJSON() throws { try checkExactness(try realTokenizer("gemma3"), reference: "gemma3") }
    func testGPT2TokenizerJSON() throws { try checkExactness(try realTokenizer("gpt2"), reference: "gpt2") }
}
