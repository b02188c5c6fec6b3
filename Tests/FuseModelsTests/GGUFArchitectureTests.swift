import Foundation
import XCTest
import FuseIO
import FuseModels

/// Tiny GGUF files written the way llama.cpp's converter writes them (Tools/fixtures/runtime_fixtures.py):
/// names, q/k row permutation, Gemma's `1 + w` norms and the metadata-derived config must all be undone
/// for the logits to match transformers'.
final class GGUFArchitectureTests: XCTestCase {
    func check(_ name: String, tolerance: Float) throws {
        let model = try ModelRegistry.load(fixturePath("runtime/gguf/\(name).gguf"))
        let ref = try WeightStore(path: fixturePath("runtime/gguf/\(name).reference.safetensors"))
        for i in 0..<2 {
            let ids = try ref.floats("prompt.\(i).ids").map { Int($0) }
            assertClose(try model.logits(ids), try ref.floats("prompt.\(i).logits"), tolerance: tolerance, "\(name) prompt \(i)")
        }
    }

    /// Q8_0 matrices (dequantized exactly by the prefill path), q/k permuted, untied head.
    func testLlamaQ8() throws { try check("llama_q8", tolerance: 1e-4) }

    /// f32, six layers with the default sliding pattern (5 sliding, 1 global), norms stored as 1 + w.
    func testGemma3() throws { try check("gemma3", tolerance: 1e-4) }

    func testConfigFromMetadata() throws {
        let store = try WeightStore(path: fixturePath("runtime/gguf/gemma3.gguf"))
        let c = try XCTUnwrap(store.config)
        XCTAssertEqual(c["model_type"]?.string, "gemma3_text")
        XCTAssertEqual(c["head_dim"]?.int, 16)
        XCTAssertEqual(c["sliding_window"]?.int, 4)
        XCTAssertEqual(c["vocab_size"]?.int, 256)
        XCTAssertEqual(c["tie_word_embeddings"]?.bool, true)
        XCTAssertTrue(store.names.contains("model.layers.5.pre_feedforward_layernorm.weight"))
        let llama = try WeightStore(path: fixturePath("runtime/gguf/llama_q8.gguf"))
        XCTAssertEqual(llama.config?["tie_word_embeddings"]?.bool, false)
        XCTAssertEqual(llama.info("model.layers.0.self_attn.q_proj.weight")?.dtype, .q8_0)
        XCTAssertTrue(llama.names.contains("model.layers.1.post_attention_layernorm.weight"))
    }
}
