import Foundation
import XCTest
import FuseIO
import FuseModels
import FuseNN
import FuseTensor

/// Whole-model gradients of the trainable architectures against PyTorch/transformers and peft
/// (Tools/fixtures/training_fixtures.py): loss and every parameter's gradient, by name.
final class TrainingTests: XCTestCase {
    /// ‖g − g_torch‖ / ‖g_torch‖ per tensor (issue 8: at most 1e-4).
    let gradientTolerance = 1e-4
    let cases = ["llama", "qwen2", "gemma3", "gpt2"]

    struct TrainingCase {
        let folder: String
        let reference: WeightStore
        let batch: TrainingBatch
        init(_ name: String) throws {
            folder = fixturePath("training/" + name)
            reference = try WeightStore(path: folder + "/reference.safetensors")
            let shape = reference.info("tokens")?.shape ?? [0, 0]
            batch = TrainingBatch(tokens: try reference.floats("tokens").map { Int($0) }, batch: shape[0], length: shape[1],
                                  labels: try reference.floats("labels").map { Int($0) })
        }
        func value(_ key: String) throws -> Double { Double(try reference.floats(key)[0]) }
    }

    /// Relative L2 error of one tensor.
    func relativeError(_ got: [Float], _ want: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (g, w) in zip(got, want) { num += Double(g - w) * Double(g - w); den += Double(w) * Double(w) }
        return (num / max(den, 1e-30)).squareRoot()
    }

    func testFullGradientsMatchPyTorch() throws {
        for name in cases {
            let c = try TrainingCase(name)
            let model = try ModelRegistry.loadTrainable(c.folder)
            XCTAssertEqual(model.trainableParameters.count, model.allParameters.count)
            let report = try model.accumulateGradients(c.batch, loss: .crossEntropy, scale: 1, step: 0)
            let expected = try c.value("loss")
            XCTAssertEqual(report.loss, expected, accuracy: 1e-5 * expected, "\(name) loss")
            XCTAssertEqual(report.tokens, c.batch.labelledTokens)
            let refNames = Set(c.reference.names.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) })
            XCTAssertEqual(Set(model.allParameters.map(\.name)), refNames, "\(name): parameter names equal transformers' named_parameters")
            var worst = 0.0, worstName = ""
            for p in model.allParameters where refNames.contains(p.name) {
                let err = relativeError(p.grad, try c.reference.floats("grad." + p.name))
                XCTAssertLessThanOrEqual(err, gradientTolerance, "\(name): gradient of \(p.name)")
                if err > worst { worst = err; worstName = p.name }
            }
            print("\(name): loss \(report.loss) vs torch \(expected); worst gradient relative error \(worst) (\(worstName))")
            // The forward-only loss is the same number.
            let eval = try model.evaluateLoss(c.batch, loss: .crossEntropy)
            XCTAssertEqual(eval.loss, report.loss, accuracy: 1e-9 * expected, "\(name) evaluateLoss")
        }
    }

    func testLoRAGradientsMatchPEFT() throws {
        for (name, targets) in [("llama", ["q_proj", "v_proj", "down_proj"]), ("gpt2", ["c_attn", "mlp.c_proj"])] {
            let c = try TrainingCase(name)
            let model = try ModelRegistry.loadTrainable(c.folder)
            try model.attachLoRA(LoRASettings(rank: 4, alpha: 8, dropout: 0, targetModules: targets), seed: 1)
            let refNames = Set(c.reference.names.filter { $0.hasPrefix("lora.value.") }.map { String($0.dropFirst(11)) })
            XCTAssertEqual(Set(model.trainableParameters.map(\.name)), refNames, "\(name): LoRA parameter names equal peft's")
            for p in model.trainableParameters where refNames.contains(p.name) {
                p.value = try c.reference.floats("lora.value." + p.name)
            }
            let report = try model.accumulateGradients(c.batch, loss: .crossEntropy, scale: 1, step: 0)
            let expected = try c.value("lora.loss")
            XCTAssertEqual(report.loss, expected, accuracy: 1e-5 * expected, "\(name) LoRA loss")
            var worst = 0.0
            for p in model.trainableParameters where refNames.contains(p.name) {
                let err = relativeError(p.grad, try c.reference.floats("lora.grad." + p.name))
                XCTAssertLessThanOrEqual(err, gradientTolerance, "\(name): gradient of \(p.name)")
                worst = max(worst, err)
            }
            // Frozen weights get no gradient.
            XCTAssertTrue(model.allParameters.allSatisfy { $0.grad.allSatisfy { $0 == 0 } }, "\(name): base weights stay frozen")
            print("\(name) LoRA: loss \(report.loss) vs peft \(expected); worst gradient relative error \(worst)")
        }
    }

    /// A fresh adapter is the identity (B = 0): the LoRA loss equals the base loss; A follows
    /// Kaiming-uniform(a = √5) bounds and is the same bytes for the same seed.
    func testFreshLoRAIsIdentityAndSeeded() throws {
        let c = try TrainingCase("llama")
        let base = try ModelRegistry.loadTrainable(c.folder).evaluateLoss(c.batch, loss: .crossEntropy)
        let a = try ModelRegistry.loadTrainable(c.folder), b = try ModelRegistry.loadTrainable(c.folder)
        let settings = LoRASettings(rank: 2, alpha: 4, dropout: 0.1, targetModules: ["q_proj", "o_proj"])
        try a.attachLoRA(settings, seed: 42); try b.attachLoRA(settings, seed: 42)
        XCTAssertEqual(try a.evaluateLoss(c.batch, loss: .crossEntropy).loss, base.loss, accuracy: 1e-12)
        XCTAssertEqual(a.trainableParameters.map(\.value), b.trainableParameters.map(\.value))
        for p in a.trainableParameters where p.name.hasSuffix("lora_A.weight") {
            let bound = 1 / Float(p.shape[1]).squareRoot()
            XCTAssertTrue(p.value.allSatisfy { abs($0) <= bound } && p.value.contains { $0 != 0 }, p.name)
        }
        XCTAssertEqual(a.trainableParameters.count, 2 * 2 * 2)
        // Dropout: the same step gives the same gradient, another step a different one.
        for p in a.trainableParameters where p.name.hasSuffix("lora_B.weight") { p.value = p.value.indices.map { Float($0 % 7) * 0.01 } }
        for p in b.trainableParameters where p.name.hasSuffix("lora_B.weight") { p.value = p.value.indices.map { Float($0 % 7) * 0.01 } }
        let l1 = try a.accumulateGradients(c.batch, loss: .crossEntropy, scale: 1, step: 5)
        let l2 = try b.accumulateGradients(c.batch, loss: .crossEntropy, scale: 1, step: 5)
        XCTAssertEqual(l1.loss, l2.loss)
        XCTAssertEqual(a.trainableParameters.map(\.grad), b.trainableParameters.map(\.grad))
        let l3 = try b.accumulateGradients(c.batch, loss: .crossEntropy, scale: 1, step: 6)
        XCTAssertNotEqual(l1.loss, l3.loss)
    }

    /// Gradients accumulate: two calls with scale ½ give the gradient of one call with scale 1.
    func testAccumulationScales() throws {
        let c = try TrainingCase("gemma3")
        let once = try ModelRegistry.loadTrainable(c.folder), twice = try ModelRegistry.loadTrainable(c.folder)
        _ = try once.accumulateGradients(c.batch, loss: .crossEntropy, scale: 1, step: 0)
        _ = try twice.accumulateGradients(c.batch, loss: .crossEntropy, scale: 0.5, step: 0)
        _ = try twice.accumulateGradients(c.batch, loss: .crossEntropy, scale: 0.5, step: 1)
        for (p, q) in zip(once.allParameters, twice.allParameters) {
            XCTAssertLessThanOrEqual(relativeError(q.grad, p.grad), 1e-6, p.name)
        }
    }

    /// Same batch, seed and step: the same gradient bytes with 1 and 2 threads (DESIGN.md, Determinism).
    func testGradientsDoNotDependOnThreadCount() throws {
        let c = try TrainingCase("llama")
        // 4 x 64 tokens: large enough that products, attention and reductions are split into chunks.
        let tokens = (0..<256).map { ($0 * 7 + $0 / 5) % 48 }
        let batch = TrainingBatch(tokens: tokens, batch: 4, length: 64, labels: tokens.indices.map { $0 % 64 == 63 ? -1 : tokens[$0 + 1] })
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        var results: [[[Float]]] = []
        for threads in [1, 2] {
            Parallel.threads = threads
            let model = try ModelRegistry.loadTrainable(c.folder)
            try model.attachLoRA(LoRASettings(rank: 2, alpha: 4, dropout: 0.2, targetModules: ["q_proj", "down_proj"]), seed: 9)
            for p in model.trainableParameters where p.name.hasSuffix("lora_B.weight") { p.value = p.value.indices.map { Float($0 % 5) * 0.02 } }
            _ = try model.accumulateGradients(batch, loss: .crossEntropy, scale: 1, step: 3)
            results.append(model.trainableParameters.map(\.grad))
        }
        XCTAssertEqual(results[0], results[1])
    }

    /// visitLinearInputs sees every linear's input in forward order with its width; q/k/v share one input.
    func testVisitLinearInputs() throws {
        let c = try TrainingCase("qwen2")
        let model = try ModelRegistry.loadTrainable(c.folder)
        var seen: [(String, Int, Int, Float)] = []
        try model.visitLinearInputs(c.batch) { name, x, rows, width in seen.append((name, rows, width, x[0])) }
        XCTAssertEqual(seen.count, 2 * 7 + 1)
        XCTAssertEqual(seen.first?.0, "model.layers.0.self_attn.q_proj.weight")
        XCTAssertEqual(seen.last?.0, "lm_head.weight")
        XCTAssertTrue(seen.allSatisfy { $0.1 == 16 })
        XCTAssertEqual(seen.first { $0.0.hasSuffix("down_proj.weight") }?.2, 48)
        XCTAssertEqual(seen[0].3, seen[1].3)   // q and k read the same normalised rows
    }

    /// A NaN in a weight is refused at load with the tensor's name.
    func testNaNWeightIsRefused() throws {
        let c = try TrainingCase("llama")
        let dir = NSTemporaryDirectory() + "fusekit-nan-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: c.folder + "/config.json", toPath: dir + "/config.json")
        let store = try WeightStore(path: c.folder)
        var tensors: [(String, Tensor)] = []
        for name in store.names {
            var values = try store.floats(name)
            if name == "model.layers.1.mlp.up_proj.weight" { values[5] = .nan }
            tensors.append((name, try Tensor(floats: values, shape: store.info(name)?.shape ?? [])))
        }
        try writeSafetensors(path: dir + "/model.safetensors", tensors: tensors)
        XCTAssertThrowsError(try ModelRegistry.loadTrainable(dir)) { XCTAssertTrue("\($0)".contains("model.layers.1.mlp.up_proj.weight"), "\($0)") }
    }

    func testBadInputIsRefused() throws {
        let c = try TrainingCase("llama")
        let model = try ModelRegistry.loadTrainable(c.folder)
        XCTAssertThrowsError(try model.attachLoRA(LoRASettings(rank: 4, alpha: 8, targetModules: ["c_attn"]), seed: 0)) {
            XCTAssertTrue("\($0)".contains("c_attn"), "\($0)")
        }
        XCTAssertThrowsError(try model.attachLoRA(LoRASettings(rank: 0, alpha: 8, targetModules: ["q_proj"]), seed: 0))
        var bad = c.batch
        bad.labels.removeLast()
        XCTAssertThrowsError(try model.accumulateGradients(bad, loss: .crossEntropy, scale: 1, step: 0))
        bad = c.batch
        bad.tokens[0] = 1000
        XCTAssertThrowsError(try model.evaluateLoss(bad, loss: .crossEntropy)) { XCTAssertTrue("\($0)".contains("1000"), "\($0)") }
        bad = TrainingBatch(tokens: [Int](repeating: 1, count: 65), batch: 1, length: 65, labels: [Int](repeating: 1, count: 65))
        XCTAssertThrowsError(try model.evaluateLoss(bad, loss: .crossEntropy))
        XCTAssertThrowsError(try model.evaluateLoss(c.batch, loss: .mixed(lambda: 0.5, soft: .kl)))
        XCTAssertThrowsError(try ModelRegistry.loadTrainable(fixturePath("training/missing")))
        XCTAssertTrue(model.allParameters.allSatisfy { $0.grad.allSatisfy { $0 == 0 } }, "a refused batch leaves gradients untouched")
    }
}

/// The training forward and the inference forward (checked against transformers' logits in
/// ArchitectureTests) give the same cross-entropy on every runtime fixture, and on the real models
/// when FUSEKIT_MODELS_DIR is set.
final class TrainingForwardTests: XCTestCase {
    /// Mean next-token cross-entropy of one sequence from inference logits, in f64.
    func inferenceLoss(_ model: any CausalLanguageModel, _ ids: [Int]) throws -> Double {
        let logits = try model.logits(ids), v = model.summary.vocabularySize
        var total = 0.0
        for t in 0..<(ids.count - 1) {
            let row = logits[(t * v)..<((t + 1) * v)].map(Double.init)
            let mx = row.max() ?? 0
            total += mx + log(row.reduce(0) { $0 + exp($1 - mx) }) - row[ids[t + 1]]
        }
        return total / Double(ids.count - 1)
    }

    func check(_ path: String, _ ids: [Int], tolerance: Double) throws {
        let inference = try ModelRegistry.load(path), trainable = try ModelRegistry.loadTrainable(path)
        let expected = try inferenceLoss(inference, ids)
        let batch = TrainingBatch(tokens: ids, batch: 1, length: ids.count, labels: Array(ids.dropFirst()) + [-1])
        let got = try trainable.evaluateLoss(batch, loss: .crossEntropy).loss
        XCTAssertEqual(got, expected, accuracy: tolerance * expected, path)
        print("\(URL(fileURLWithPath: path).lastPathComponent): training-forward loss \(got), inference-forward loss \(expected)")
    }

    func testTrainingForwardMatchesInferenceOnRuntimeFixtures() throws {
        for name in runtimeCases {
            let c = try RuntimeCase(name)
            try check(c.folder, try c.ints("prompt.1.ids"), tolerance: 1e-5)
        }
    }

    func testRealModels() throws {
        guard let dir = ProcessInfo.processInfo.environment["FUSEKIT_MODELS_DIR"] else { throw XCTSkip("FUSEKIT_MODELS_DIR is not set") }
        for file in ["smollm2.gguf", "gemma3-270m.gguf"] {
            let path = dir + "/" + file
            guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) is missing (Tools/fetch-models.sh)") }
            // Ids of a short English sentence in each vocabulary do not matter for this check: any ids do.
            let ids = (0..<24).map { 100 + 37 * $0 }
            try check(path, ids, tolerance: 1e-4)
        }
    }
}
