import Foundation
import XCTest
import FuseIO
import FuseModels

/// Unknown architectures, configs that disagree with the weights, and prompts longer than the
/// context give errors that name the problem.
final class BadInputTests: XCTestCase {
    /// A temporary folder holding the llama_gqa weights with an edited config.
    func folder(editing edit: (inout [String: Any]) -> Void) throws -> String {
        let src = fixturePath("runtime/llama_gqa")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-bad-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: src + "/model.safetensors", toPath: dir + "/model.safetensors")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: src + "/config.json"))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    func testUnknownArchitecture() throws {
        let dir = try folder { $0["model_type"] = "mamba" }
        let m = message { _ = try ModelRegistry.load(dir) }
        XCTAssertTrue(m.contains("unknown architecture model_type 'mamba'") && m.contains("llama"), m)
    }

    func testMissingTensorIsNamed() throws {
        let dir = try folder { $0["num_hidden_layers"] = 3 }
        let m = message { _ = try ModelRegistry.load(dir) }
        XCTAssertTrue(m.contains("missing tensor 'model.layers.2.self_attn.q_proj.weight'"), m)
    }

    func testMisshapenTensorIsNamed() throws {
        let dir = try folder { $0["intermediate_size"] = 96 }
        let m = message { _ = try ModelRegistry.load(dir) }
        XCTAssertTrue(m.contains("'model.layers.0.mlp.gate_proj.weight' has shape [128, 64] but the config implies [96, 64]"), m)
    }

    func testBadConfigValues() throws {
        let zero = try folder { $0["num_attention_heads"] = 0 }
        XCTAssertTrue(message { _ = try ModelRegistry.load(zero) }.contains("'num_attention_heads' is 0"))
        let missing = try folder { $0.removeValue(forKey: "hidden_size") }
        XCTAssertTrue(message { _ = try ModelRegistry.load(missing) }.contains("missing key 'hidden_size'"))
        let rope = try folder { $0["rope_parameters"] = ["rope_type": "longrope", "factor": 4.0] }
        XCTAssertTrue(message { _ = try ModelRegistry.load(rope) }.contains("rope type 'longrope' is not supported"))
        let yarn = try folder { $0["rope_parameters"] = ["rope_type": "yarn", "factor": 4.0] }
        XCTAssertTrue(message { _ = try ModelRegistry.load(yarn) }.contains("yarn scaling needs original_max_position_embeddings"))
        let partial = try folder { $0["rope_parameters"] = ["rope_type": "default", "partial_rotary_factor": 0.5] }
        XCTAssertTrue(message { _ = try ModelRegistry.load(partial) }.contains("partial_rotary_factor 0.5 is not supported"))
    }

    func testPromptLongerThanContext() throws {
        let dir = try folder { $0["max_position_embeddings"] = 8 }
        let model = try ModelRegistry.load(dir)
        let m = message { _ = try model.logits(Array(repeating: 5, count: 9)) }
        XCTAssertTrue(m.contains("the prompt has 9 tokens but the model's context is 8"), m)
        let g = message { _ = try generate(model: model, prompt: Array(repeating: 5, count: 9), options: GenerationOptions()) }
        XCTAssertTrue(g.contains("9 tokens"), g)
        // Generation stops at the context instead of failing.
        let r = try generate(model: model, prompt: [5, 6, 7], options: GenerationOptions(maxTokens: 20, stopTokenIDs: []))
        XCTAssertEqual(r.tokens.count, 6)   // the last one is sampled from position 7, never fed back
        XCTAssertEqual(r.stopReason, .context)
        XCTAssertTrue(message { _ = try model.logits([300]) }.contains("token id 300 is outside the vocabulary of 256"))
    }
}

/// Sampling: greedy is argmax; top-k 1 is greedy at any temperature; the same seed gives the same tokens.
final class SamplingTests: XCTestCase {
    func testSamplingRules() throws {
        let logits: [Float] = [0.1, 2.0, 1.9, -1, 2.0]
        var greedy = Sampler(SamplingOptions())
        XCTAssertEqual(greedy.next(logits: logits[...], history: []), 1)   // lowest index on ties
        var topK1 = Sampler(SamplingOptions(temperature: 5, topK: 1, seed: 3))
        for _ in 0..<20 { XCTAssertEqual(topK1.next(logits: logits[...], history: []), 1) }
        // top-p small keeps only the most likely token
        var topP = Sampler(SamplingOptions(temperature: 1, topP: 0.01, seed: 3))
        for _ in 0..<20 { XCTAssertEqual(topP.next(logits: logits[...], history: []), 1) }
        // repetition penalty moves greedy off a repeated token
        var penal = Sampler(SamplingOptions(repetitionPenalty: 2))
        XCTAssertEqual(penal.next(logits: logits[...], history: [1, 4]), 2)
        // seeds: same seed same draws, frequencies follow the softmax
        var a = Sampler(SamplingOptions(temperature: 1, seed: 42)), b = Sampler(SamplingOptions(temperature: 1, seed: 42))
        var counts = [Int](repeating: 0, count: 5)
        for _ in 0..<4000 {
            let x = a.next(logits: logits[...], history: [])
            XCTAssertEqual(x, b.next(logits: logits[...], history: []))
            counts[x] += 1
        }
        let z = logits.map { exp(Double($0)) }.reduce(0, +)
        for i in 0..<5 { XCTAssertEqual(Double(counts[i]) / 4000, exp(Double(logits[i])) / z, accuracy: 0.03) }
        // top-k 2 keeps the two largest (ids 1 and 4, tied at 2.0) and samples them evenly
        var topK2 = Sampler(SamplingOptions(temperature: 1, topK: 2, seed: 5))
        var seen = [Int: Int]()
        for _ in 0..<2000 { seen[topK2.next(logits: logits[...], history: []), default: 0] += 1 }
        XCTAssertEqual(Set(seen.keys), [1, 4])
        XCTAssertEqual(Double(seen[1] ?? 0) / 2000, 0.5, accuracy: 0.05)
        // top-p 0.5: the first token (p ≈ 0.35) is below 0.5, so the second (tied, id 4) stays too
        var topP2 = Sampler(SamplingOptions(temperature: 1, topP: 0.5, seed: 6))
        seen = [:]
        for _ in 0..<2000 { seen[topP2.next(logits: logits[...], history: []), default: 0] += 1 }
        XCTAssertEqual(Set(seen.keys), [1, 4])
        XCTAssertThrowsError(try SamplingOptions(topP: 0).validate())
        XCTAssertThrowsError(try SamplingOptions(temperature: -1).validate())
    }
}
