import Foundation
import XCTest
import FuseModels
import FuseNN

/// SmolLM2-135M and Gemma 3 270M from their GGUF files against transformers' GGUF loading
/// (Tools/fixtures/real_model_fixtures.py): the same top-1 token at every position of 20 prompts.
/// Runs when FUSEKIT_MODELS_DIR holds smollm2.gguf and gemma3-270m.gguf; skipped otherwise.
final class RealModelTests: XCTestCase {
    struct Reference: Decodable {
        struct Prompt: Decodable { let text: String; let ids: [Int]; let top1: [Int]; let top5_ids: [[Int]]; let top5_logits: [[Double]] }
        struct Greedy: Decodable { let ids: [Int]; let new: [Int] }
        let prompts: [Prompt]
        let greedy: [Greedy]
    }

    func check(_ file: String) throws {
        guard let dir = ProcessInfo.processInfo.environment["FUSEKIT_MODELS_DIR"] else { throw XCTSkip("FUSEKIT_MODELS_DIR is not set") }
        let path = dir + "/" + file
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) is missing (Tools/fetch-models.sh)") }
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: fixturePath("runtime/real/" + file.replacingOccurrences(of: ".gguf", with: ".json")))))
        let model = try ModelRegistry.load(path)
        let v = model.summary.vocabularySize
        var positions = 0, agree = 0, worst = 0.0
        for p in ref.prompts {
            let logits = try model.logits(p.ids)
            for t in 0..<p.ids.count {
                let row = logits[(t * v)..<((t + 1) * v)]
                let top = Sampler.argmax(row)
                positions += 1
                if top == p.top1[t] { agree += 1 } else {
                    XCTFail("\(file) '\(p.text)' position \(t): top-1 \(top), transformers \(p.top1[t])")
                }
                for (id, value) in zip(p.top5_ids[t], p.top5_logits[t]) { worst = max(worst, abs(Double(row[row.startIndex + id]) - value)) }
            }
        }
        print("\(file): top-1 equal at \(agree)/\(positions) positions; max abs logit diff over transformers' top-5: \(worst)")

        // KV-cache decode: greedy continuations equal transformers' generate(do_sample=False) with f32
        // activations; with 8-bit activations (the fast decode path) report how far they agree.
        for quantized in [false, true] {
            Linear.quantizeActivations = quantized
            var equalTokens = 0, total = 0
            for g in ref.greedy {
                let r = try generate(model: model, prompt: g.ids, options: GenerationOptions(maxTokens: g.new.count, stopTokenIDs: []))
                if !quantized { XCTAssertEqual(r.tokens, g.new, "\(file) greedy from \(g.ids)") }
                equalTokens += zip(r.tokens, g.new).prefix { $0 == $1 }.count; total += g.new.count
            }
            print("\(file): greedy decode (\(quantized ? "8-bit" : "f32") activations) equal to transformers for \(equalTokens)/\(total) tokens (prefix match)")
        }
        Linear.quantizeActivations = true
    }

    func testSmolLM2() throws { try check("smollm2.gguf") }
    func testGemma3() throws { try check("gemma3-270m.gguf") }
}
