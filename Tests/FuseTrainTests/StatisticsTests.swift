// Fisher and Gram statistics files: values against independent computations, layout as documented.
import FuseIO
import FuseNN
import FuseTensor
import XCTest
@testable import FuseTrain

final class StatisticsTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory("stats") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func data() throws -> TrainingData {
        let path = dir + "/d.jsonl"
        try "{\"prompt\": \"ab\", \"completion\": \"cd\"}\n{\"prompt\": \"b\", \"completion\": \"aac\"}\n{\"prompt\": \"dd\", \"completion\": \"b\"}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        return try TrainingData.load(path: path, encoder: CharacterEncoder(vocab: 12), eos: 2, seqLen: 8)
    }

    /// F(b) = mean over examples of (Σ_t (softmax(z_t) − onehot(y_t)))², from the logits alone.
    func testFisherIsTheMeanSquaredPerExampleGradient() throws {
        let model = BigramModel(vocab: 12, seed: 3)
        let d = try data()
        let path = dir + "/f.safetensors"
        let summary = try computeFisher(model, data: d, modelPath: "bigram", to: path)
        XCTAssertEqual(summary.examples, 3)
        var expected = [Double](repeating: 0, count: 12)
        for s in d.sequences {
            var g = [Double](repeating: 0, count: 12)
            for (t, y) in s.labels.enumerated() where y >= 0 {
                let z = model.logits(s.inputs[t])
                let m = z.max() ?? 0
                let e = z.map { Foundation.exp($0 - m) }
                let sum = e.reduce(0, +)
                for j in 0..<12 { g[j] += e[j] / sum - (j == y ? 1 : 0) }
            }
            for j in 0..<12 { expected[j] += g[j] * g[j] / 3 }
        }
        let file = try SafetensorsFile(path: path)
        XCTAssertEqual(file.metadata["fusekit_statistics"], "fisher")
        XCTAssertEqual(file.metadata["examples"], "3")
        XCTAssertEqual(file.info("lm.weight")?.shape, [12, 12])
        assertClose(try file.tensor("lm.bias").floats(), expected.map { Float($0) }, abs: 1e-6, rel: 1e-5, "fisher lm.bias")
    }

    /// With one-hot inputs, XᵀX is diagonal with each token's count; rows is the number of positions.
    func testGramOfOneHotInputsCountsTokens() throws {
        let model = BigramModel(vocab: 12, seed: 3)
        let d = try data()
        let path = dir + "/g.safetensors"
        _ = try computeGram(model, data: d, modelPath: "bigram", to: path)
        var counts = [Float](repeating: 0, count: 144)
        for s in d.sequences { for t in s.inputs { counts[t * 12 + t] += 1 } }
        let file = try SafetensorsFile(path: path)
        XCTAssertEqual(file.metadata["fusekit_statistics"], "gram")
        XCTAssertEqual(try file.tensor("lm.weight").floats(), counts)
        let rows = try JSON.parse(file.metadata["rows"] ?? "")
        XCTAssertEqual(rows["lm.weight"]?.int, d.sequences.reduce(0) { $0 + $1.inputs.count })
    }

    func testOutputsAreAnHFFolderAndAPEFTAdapter() throws {
        let model = BigramModel(vocab: 12, seed: 3)
        try writeFullModel(model, to: dir + "/full", config: .object([("model_type", .string("bigram")), ("torch_dtype", .string("bfloat16"))]), sideFiles: nil)
        let full = try SafetensorsFile(path: dir + "/full/model.safetensors")
        XCTAssertEqual(try full.tensor("lm.weight").floats(), model.weight.value)
        let config = try JSON.parse(try String(contentsOfFile: dir + "/full/config.json", encoding: .utf8))
        XCTAssertEqual(config["dtype"]?.string, "float32")
        XCTAssertNil(config["torch_dtype"])

        let settings = LoRASettings(rank: 2, alpha: 8, dropout: 0.05, targetModules: ["lm"])
        XCTAssertThrowsError(try writeLoRAAdapter(model, settings: settings, baseModel: "base", to: dir + "/none"))
        try model.attachLoRA(settings, seed: 1)
        try writeLoRAAdapter(model, settings: settings, baseModel: "base", to: dir + "/adapter")
        let adapter = try SafetensorsFile(path: dir + "/adapter/adapter_model.safetensors")
        XCTAssertEqual(adapter.tensors.map(\.name).sorted(), ["base_model.model.lm.lora_A.weight", "base_model.model.lm.lora_B.weight"])
        XCTAssertEqual(adapter.info("base_model.model.lm.lora_A.weight")?.shape, [2, 12])
        let ac = try JSON.parse(try String(contentsOfFile: dir + "/adapter/adapter_config.json", encoding: .utf8))
        XCTAssertEqual(ac["peft_type"]?.string, "LORA")
        XCTAssertEqual(ac["r"]?.int, 2)
        XCTAssertEqual(ac["lora_alpha"]?.double, 8)
        XCTAssertEqual(ac["target_modules"]?.array?.compactMap(\.string), ["lm"])
    }
}
