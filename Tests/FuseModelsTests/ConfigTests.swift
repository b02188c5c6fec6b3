import Foundation
import XCTest
@testable import FuseModels

/// Config details transformers resolves in particular ways (formats-and-models.md §5).
final class ConfigTests: XCTestCase {
    /// Gemma's embedding scale is cast to the weight dtype first: 25.25 in bf16, 25.296875 in f16.
    func testEmbedScaleRounding() {
        let s = Float(640).squareRoot()
        XCTAssertEqual(roundedToStorage(s, .bf16), 25.25)
        XCTAssertEqual(roundedToStorage(s, .f16), 25.296875)
        XCTAssertEqual(roundedToStorage(s, .f32), s)
    }

    func testTokenIDsAndRopeDecoding() throws {
        let json = #"{"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10, "rms_norm_eps": 1e-5, "eos_token_id": [1, 106], "bos_token_id": null, "rope_scaling": {"type": "linear", "factor": 4.0}, "rope_theta": 500000.0}"#
        let c = try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8))
        XCTAssertEqual(c.eos?.ids, [1, 106])
        XCTAssertNil(c.bos)   // null
        XCTAssertEqual(c.kvHeads, 2)
        XCTAssertEqual(c.headDim, 4)
        XCTAssertEqual(c.ropeTheta, 500000)
        XCTAssertEqual(try c.ropeScalingRule(), .linear(factor: 4))
        let gemma = #"{"model_type": "gemma3_text", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 12, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "vocab_size": 10}"#
        let g = try JSONDecoder().decode(Gemma3Config.self, from: Data(gemma.utf8))
        XCTAssertEqual(g.layerIsSliding.enumerated().filter { !$0.element }.map(\.offset), [5, 11])   // pattern 6
        XCTAssertEqual(g.localRopeTheta, 10_000)
        XCTAssertEqual(g.globalRopeTheta, 1_000_000)
        XCTAssertEqual(g.attentionScale, 0.5)   // query_pre_attn_scalar defaults to head_dim here
    }
}
