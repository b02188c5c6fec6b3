import XCTest
import Foundation
import FuseIO
import FuseTensor

/// GGUF seen as an HF model, on the runtime fixture written the way llama.cpp's converter writes a
/// Llama (Tools/fixtures/runtime_fixtures.py): q/k rows permuted for llama.cpp's rope, matrices in
/// Q8_0. The export must give back transformers' layout: every weight within Q8_0's rounding of the
/// original checkpoint (half a step of max|block|/127, plus up to 127 times the f16 rounding of the
/// stored scale: 0.57 of a step) — a wrong row order would be off by the weights' own size — and a
/// config.json with the original hyperparameters.
final class GGUFExportTests: XCTestCase {
    func testLlamaGGUFExportsToTheOriginalLayout() throws {
        let original = try WeightStore(path: fixturePath("runtime/llama_gqa"))
        let dir = temporaryDirectory()
        let store = try WeightStore(path: fixturePath("runtime/gguf/llama_q8.gguf"))
        _ = try exportHFFolder(from: store, to: dir + "/hf", options: ExportOptions(dtype: .f32))
        let exported = try WeightStore(path: dir + "/hf")
        XCTAssertEqual(Set(exported.names), Set(original.names))
        for name in original.names {
            let want = try original.floats(name), got = try exported.floats(name)
            XCTAssertEqual(exported.info(name)?.shape, original.info(name)?.shape, name)
            guard (original.info(name)?.shape.count ?? 0) == 2 else {
                XCTAssertEqual(got, want, name)   // norms are stored in f32: exact
                continue
            }
            var worst: Float = 0
            for start in stride(from: 0, to: want.count, by: 32) {
                let block = want[start..<min(start + 32, want.count)]
                let step = (block.map(abs).max() ?? 0) / 127
                for k in block.indices { worst = max(worst, abs(got[k] - want[k]) - step * 0.57 - 1e-7) }
            }
            XCTAssertLessThanOrEqual(worst, 0, "\(name): beyond Q8_0 rounding (rows out of order?)")
        }
        let config = try XCTUnwrap(exported.config)
        XCTAssertEqual(config["model_type"]?.string, "llama")
        XCTAssertEqual(config["num_attention_heads"]?.int, 4)
        XCTAssertEqual(config["num_key_value_heads"]?.int, 2)
        XCTAssertEqual(config["head_dim"]?.int, 16)
        XCTAssertEqual(config["hidden_size"]?.int, 64)
        XCTAssertEqual(config["intermediate_size"]?.int, 128)
        XCTAssertEqual(config["vocab_size"]?.int, 256)
        XCTAssertEqual(config["tie_word_embeddings"]?.bool, false)
        XCTAssertEqual(config["rope_theta"]?.double, 10000)
        XCTAssertEqual(config["rms_norm_eps"]?.double, 1e-5)
        XCTAssertEqual(config["dtype"]?.string, "float32")
    }

    /// Gemma 3: norms come back without llama.cpp's +1, and the layer pattern and local rope base
    /// that GGUF does not carry are filled in.
    func testGemma3ConfigAndNormShift() throws {
        let store = try WeightStore(path: fixturePath("runtime/gguf/gemma3.gguf"))
        let file = try XCTUnwrap(store.ggufFile)
        let raw = try file.floats(named: "blk.0.attn_norm.weight")
        XCTAssertEqual(try store.floats("model.layers.0.input_layernorm.weight"), raw.map { $0 - 1 })
        let config = try XCTUnwrap(store.config)
        XCTAssertEqual(config["model_type"]?.string, "gemma3_text")
        XCTAssertEqual(config["layer_types"]?.array?.compactMap(\.string),
                       ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention"])
        XCTAssertEqual(config["query_pre_attn_scalar"]?.int, 16)
        XCTAssertEqual(config["sliding_window"]?.int, 4)
        XCTAssertEqual(config["rope_parameters"]?["sliding_attention"]?["rope_theta"]?.double, 10000)
        XCTAssertEqual(config["tie_word_embeddings"]?.bool, true)
        XCTAssertNil(store.info("lm_head.weight"))
    }
}
