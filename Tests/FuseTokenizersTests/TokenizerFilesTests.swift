// GGUF vocabulary -> tokenizer.json: the written file, loaded back, gives the reference ids.
// Set FUSEKIT_WRITE_TOKENIZER_FILES=DIR to also write the files for
// Tools/fixtures/verify_tokenizer_files.py, which checks them with HF tokenizers and transformers.
import Foundation
import XCTest
@testable import FuseTokenizers

final class TokenizerFilesTests: XCTestCase {
    func roundTrip(_ name: String, vocabulary path: String? = nil) throws {
        let v = try GGUFVocabulary(contentsOf: path ?? Fixtures.directory + "/\(name).vocab.json")
        let files = try TokenizerFiles.huggingFaceFiles(from: v)
        XCTAssertEqual(Set(files.keys), ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"])
        let tokenizer = try Tokenizer(json: Array(files["tokenizer.json"]!.utf8), path: "\(name)/tokenizer.json")
        try checkExactness(tokenizer, reference: name)
        if let out = ProcessInfo.processInfo.environment["FUSEKIT_WRITE_TOKENIZER_FILES"] {
            let dir = out + "/" + name
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (file, text) in files { try text.write(toFile: dir + "/" + file, atomically: true, encoding: .utf8) }
        }
    }

    func testByteLevelFiles() throws { try roundTrip("tiny-gguf-gpt2") }
    func testSentencePieceFiles() throws { try roundTrip("tiny-gguf-llama") }
    func testGemmaFiles() throws { try roundTrip("tiny-gguf-gemma") }

    func testRealModelFiles() throws {
        guard let dir = Fixtures.modelsDirectory, FileManager.default.fileExists(atPath: dir + "/smollm2.vocab.json") else {
            throw XCTSkip("set FUSEKIT_MODELS_DIR (prepared by Tools/fixtures/tokenizer_fixtures.py) to run")
        }
        try roundTrip("smollm2", vocabulary: dir + "/smollm2.vocab.json")
        try roundTrip("gemma3", vocabulary: dir + "/gemma3.vocab.json")
    }
}
