import Foundation
import XCTest
import FuseTensor
@testable import FuseIO

/// PEFT adapter folders: write → read keeps every factor, whole tensor and config key; scales follow
/// peft (alpha/r, alpha/√r with rslora, rank_pattern / alpha_pattern matched as `get_pattern_key`);
/// pickled and DoRA adapters and broken factor pairs are refused with the tensor named.
final class PEFTTests: XCTestCase {
    private func temp(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "fusekit-peft-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        return dir
    }

    func testRoundTripAndScales() throws {
        let dir = try temp("roundtrip")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = PEFTConfig(r: 4, loraAlpha: 8, targetModules: ["q_proj", "embed_tokens"], useRslora: true,
                                rankPattern: [("layers.1.self_attn.q_proj", 2)], alphaPattern: [("q_proj", 3)],
                                modulesToSave: ["lm_head"])
        config.extra = [("lora_dropout", .double(0.05))]
        let q0 = LoraFactors(a: try Tensor(floats: (0..<24).map { Float($0) }, shape: [4, 6]),
                             b: try Tensor(floats: (0..<20).map { -Float($0) }, shape: [5, 4]))
        let q1 = LoraFactors(a: try Tensor(floats: (0..<12).map { Float($0) * 0.5 }, shape: [2, 6]).converted(to: .bf16),
                             b: try Tensor(floats: (0..<10).map { Float($0) }, shape: [5, 2]))
        let emb = LoraFactors(a: try Tensor(floats: (0..<40).map { Float($0) }, shape: [4, 10]),
                              b: try Tensor(floats: (0..<24).map { Float($0) }, shape: [6, 4]), isEmbedding: true)
        let head = try Tensor(floats: (0..<60).map { Float($0) }, shape: [10, 6])
        let adapter = PEFTAdapter(config: config, factors: ["model.layers.0.self_attn.q_proj": q0,
                                                            "model.layers.1.self_attn.q_proj": q1,
                                                            "model.embed_tokens": emb],
                                  fullTensors: ["lm_head.weight": head])
        try adapter.write(to: dir, force: false)
        XCTAssertThrowsError(try adapter.write(to: dir, force: false))   // never over an existing folder
        let names = try SafetensorsFile(path: dir + "/adapter_model.safetensors").tensors.map(\.name).sorted()
        XCTAssertEqual(names, ["base_model.model.lm_head.weight",
                               "base_model.model.model.embed_tokens.lora_embedding_A",
                               "base_model.model.model.embed_tokens.lora_embedding_B",
                               "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                               "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
                               "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
                               "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"])
        let back = try PEFTAdapter.read(path: dir)
        XCTAssertEqual(back.config, config)
        XCTAssertEqual(back.config.extra.first?.0, "lora_dropout")
        XCTAssertEqual(back.modules, adapter.modules)
        XCTAssertEqual(try back.factors["model.layers.0.self_attn.q_proj"]?.a.floats(), try q0.a.floats())
        XCTAssertEqual(back.factors["model.layers.1.self_attn.q_proj"]?.a.dtype, .bf16)
        XCTAssertEqual(back.factors["model.embed_tokens"]?.isEmbedding, true)
        XCTAssertEqual(try back.fullTensors["lm_head.weight"]?.floats(), try head.floats())
        // rslora: alpha/√r; layer 1 has r = 2 from rank_pattern, every q_proj alpha 3 from alpha_pattern.
        XCTAssertEqual(back.config.scale(module: "model.layers.0.self_attn.q_proj"), 3 / 2, accuracy: 1e-12)
        XCTAssertEqual(back.config.scale(module: "model.layers.1.self_attn.q_proj"), 3 / 2.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(back.config.scale(module: "model.embed_tokens"), 8 / 2, accuracy: 1e-12)
        // peft's pattern keys match whole dotted suffixes only.
        XCTAssertEqual(PEFTConfig.patternKey([("proj", 1)], module: "model.q_proj"), nil)
        XCTAssertEqual(PEFTConfig.patternKey([("q_proj", 1)], module: "model.q_proj"), 1)
    }

    func testRefusesPickleDoRAAndBrokenPairs() throws {
        let dir = try temp("broken")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeFileAtomically(path: dir + "/adapter_config.json", contents: #"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#)
        try writeFileAtomically(path: dir + "/adapter_model.bin", contents: "pickle")
        XCTAssertThrowsError(try PEFTAdapter.read(path: dir)) { XCTAssertTrue("\($0)".contains("pickled adapters are not read"), "\($0)") }

        let a = try Tensor(floats: [Float](repeating: 1, count: 6), shape: [2, 3])
        try writeSafetensors(path: dir + "/adapter_model.safetensors",
                             tensors: [("base_model.model.model.q_proj.lora_A.weight", a)])
        XCTAssertThrowsError(try PEFTAdapter.read(path: dir)) {
            XCTAssertTrue("\($0)".contains("base_model.model.model.q_proj.lora_B.weight"), "\($0)")
        }
        try writeSafetensors(path: dir + "/adapter_model.safetensors",
                             tensors: [("base_model.model.model.q_proj.lora_A.weight", a),
                                       ("base_model.model.model.q_proj.lora_B.weight", try Tensor(floats: [1, 2, 3], shape: [3, 1]))])
        XCTAssertThrowsError(try PEFTAdapter.read(path: dir)) { XCTAssertTrue("\($0)".contains("do not multiply"), "\($0)") }

        try writeFileAtomically(path: dir + "/adapter_config.json", contents: #"{"peft_type": "LORA", "r": 2, "use_dora": true}"#)
        XCTAssertThrowsError(try PEFTAdapter.read(path: dir)) { XCTAssertTrue("\($0)".contains("DoRA"), "\($0)") }
    }
}
