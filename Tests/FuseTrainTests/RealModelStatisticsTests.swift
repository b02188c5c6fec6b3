// Statistics on a real (tiny) Llama from Tests/Fixtures/training/llama, checked without the model's own
// gradient or forward code: the Fisher against central finite differences of the summed log-likelihood,
// layer 0's q_proj Gram against RMSNorm(embedding) rows computed here.
import Foundation
import FuseIO
import FuseModels
import FuseNN
import FuseTensor
import XCTest
@testable import FuseTrain

final class RealModelStatisticsTests: XCTestCase {
    static let llama = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/training/llama").path
    var dir = ""
    override func setUp() { dir = temporaryDirectory("real-stats") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    let sequences = [TrainingSequence(inputs: [1, 5, 9, 13, 40, 7], labels: [5, 9, 13, 40, 7, 2]),
                     TrainingSequence(inputs: [1, 22, 3], labels: [-1, 3, 30])]
    var data: TrainingData { TrainingData(path: "-", kind: .promptCompletion, sequences: sequences, examples: 2, dropped: 0) }

    func testFisherMatchesFiniteDifferencesOfTheLogLikelihood() throws {
        let model = try ModelRegistry.loadTrainable(Self.llama)
        let path = dir + "/f.safetensors"
        _ = try computeFisher(model, data: data, modelPath: Self.llama, to: path)
        let file = try SafetensorsFile(path: path)
        let name = "model.layers.1.mlp.down_proj.weight"
        let fisher = try file.tensor(name).floats()
        guard let p = model.trainableParameters.first(where: { $0.name == name }) else { return XCTFail("no \(name)") }
        for element in [0, 17, 301] {
            var expected = 0.0
            for s in sequences {
                let batch = makeBatch([s])
                func nll() throws -> Double {
                    let r = try model.evaluateLoss(batch, loss: .crossEntropy)
                    return r.loss * Double(r.tokens)
                }
                let h: Float = 1e-2
                let saved = p.value[element]
                p.value[element] = saved + h; let up = try nll()
                p.value[element] = saved - h; let down = try nll()
                p.value[element] = saved
                let g = (up - down) / (2 * Double(h))
                expected += g * g / Double(sequences.count)
            }
            XCTAssertGreaterThan(expected, 1e-6, "a zero Fisher would make the check vacuous")
            XCTAssertEqual(Double(fisher[element]), expected, accuracy: 0.03 * expected + 1e-7, "F[\(element)]")
        }
    }

    func testQProjGramIsTheSumOfNormalisedEmbeddingOuterProducts() throws {
        let model = try ModelRegistry.loadTrainable(Self.llama)
        let path = dir + "/g.safetensors"
        _ = try computeGram(model, data: data, modelPath: Self.llama, to: path)
        let file = try SafetensorsFile(path: path)
        let params = Dictionary(uniqueKeysWithValues: model.allParameters.map { ($0.name, $0) })
        guard let embedding = params["model.embed_tokens.weight"], let norm = params["model.layers.0.input_layernorm.weight"] else {
            return XCTFail("fixture lacks embedding or norm")
        }
        let c = embedding.shape[1]
        var expected = [Double](repeating: 0, count: c * c)
        var rows = 0
        for s in sequences {
            for t in s.inputs {
                let e = (0..<c).map { Double(embedding.value[t * c + $0]) }
                let rms = (e.reduce(0) { $0 + $1 * $1 } / Double(c) + 1e-5).squareRoot()
                let x = (0..<c).map { e[$0] / rms * Double(norm.value[$0]) }
                for i in 0..<c { for j in 0..<c { expected[i * c + j] += x[i] * x[j] } }
                rows += 1
            }
        }
        let q = try file.tensor("model.layers.0.self_attn.q_proj.weight").floats()
        assertClose(q, expected.map { Float($0) }, abs: 1e-4, rel: 1e-4, "q_proj Gram")
        XCTAssertEqual(try file.tensor("model.layers.0.self_attn.k_proj.weight").floats(), q, "q, k and v see the same input")
        let counts = try JSON.parse(file.metadata["rows"] ?? "")
        XCTAssertEqual(counts["model.layers.0.self_attn.q_proj.weight"]?.int, rows)
        XCTAssertEqual(file.info("model.layers.1.mlp.down_proj.weight")?.shape, [48, 48])
    }
}
