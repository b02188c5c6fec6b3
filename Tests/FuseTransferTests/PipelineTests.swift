import Foundation
import FuseIO
import FuseModels
import FuseNN
import FuseTensor
import FuseTestSupport
import FuseTrain
@testable import FuseTransfer
import XCTest

final class PipelineTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "fusekit-transfer-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func makePair() throws -> (teacher: String, student: String) {
        try writeTinyLlama(dir + "/teacher", hidden: 32, heads: 4, kvHeads: 2, headDim: 8, ffn: 48, layers: 4, vocab: 32, seed: 1)
        try writeTinyLlama(dir + "/student", hidden: 16, heads: 2, kvHeads: 1, headDim: 8, ffn: 24, layers: 2, vocab: 32, seed: 2)
        return (dir + "/teacher", dir + "/student")
    }

    /// The step-0 model (W_S − s·B₀A₀ with LoRA at (B₀, A₀)) gives the student's log-probabilities,
    /// read through the LoRA forward path (every vocabulary entry at several positions, 1e-5).
    func testStepZeroModelEqualsStudent() throws {
        let (t, s) = try makePair()
        let teacher = try ModelRegistry.loadTrainable(t)
        let student = try ModelRegistry.loadTrainable(s)
        let seeds = [TrainingBatch(tokens: [1, 5, 9, 13, 4, 7], batch: 1, length: 6, labels: [-1, -1, -1, 4, 7, 2])]
        let targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        let sens = try Sensitivity.compute(model: teacher, samples: seeds, include: { n in targets.contains { n.contains($0) } })
        let layerMap = try selectLayers(.sensitivity, teacherLayers: 4, studentLayers: 2, totals: sens.layerTotals())
        let shapes = { (m: any TrainableModel) in Dictionary(uniqueKeysWithValues: m.allParameters.map { ($0.name, $0.shape) }) }
        let pairs = try pairModules(student: shapes(student), teacher: shapes(teacher), targets: targets, layerMap: layerMap)
        XCTAssertEqual(pairs.count, 14)
        let byName = Dictionary(uniqueKeysWithValues: teacher.allParameters.map { ($0.name, $0.value) })
        let modules = try extractModules(pairs: pairs, teacherWeights: { byName[$0]! }, teacherShapes: shapes(teacher),
                                         studentShapes: shapes(student), sensitivity: sens, rule: .block, rank: 4,
                                         heads: HeadLayout(teacherHeadDim: 8, studentHeadDim: 8))
        // q/k/v rows in whole heads of 8
        for m in modules where m.pair.student.hasSuffix("k_proj") { XCTAssertEqual(m.selection.rows.first! % 8, 0) }

        func logProbs(_ model: any TrainableModel) throws -> [Double] {
            var out: [Double] = []
            let tokens = [1, 6, 11, 3, 8]
            for position in [0, 2, 4] {
                for v in 0..<32 {
                    var labels = [Int](repeating: -1, count: tokens.count)
                    labels[position] = v
                    out.append(try model.evaluateLoss(TrainingBatch(tokens: tokens, batch: 1, length: tokens.count, labels: labels), loss: .crossEntropy).loss)
                }
            }
            return out
        }
        let before = try logProbs(student)
        let settings = LoRASettings(rank: 4, alpha: 8, targetModules: targets)
        try student.attachLoRA(settings, seed: 3)
        try inject(modules, into: student, scale: settings.scale)
        let after = try logProbs(student)
        let worst = zip(before, after).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-5, "step-0 log-probabilities differ from the student's")
        // ... and the injection really moved the base weights (the check could fail).
        let q = student.allParameters.first { $0.name == "model.layers.0.self_attn.q_proj.weight" }!
        let original = try ModelRegistry.loadTrainable(s).allParameters.first { $0.name == q.name }!
        XCTAssertGreaterThan(zip(q.value, original.value).map { abs($0 - $1) }.max()!, 1e-3)

        let path = dir + "/init.safetensors"
        try saveExtraction(modules, layerMap: layerMap, to: path)
        let (back, map) = try loadExtraction(from: path)
        XCTAssertEqual(map, layerMap)
        XCTAssertEqual(back.map(\.pair), modules.map(\.pair))
        XCTAssertEqual(back.map(\.a), modules.map(\.a))
        XCTAssertEqual(back.map(\.selection), modules.map(\.selection))
    }

    func testBadPairs() throws {
        let (t, s) = try makePair()
        let shapes = { (p: String) in Dictionary(uniqueKeysWithValues: try ModelRegistry.loadTrainable(p).allParameters.map { ($0.name, $0.shape) }) }
        let (ts, ss) = (try shapes(t), try shapes(s))
        XCTAssertThrowsError(try pairModules(student: ss, teacher: ts, targets: ["c_attn"], layerMap: [0, 1])) {
            XCTAssertTrue("\($0)".contains("no module matching 'c_attn'"), "\($0)")
        }
        var noDown = ts
        noDown["model.layers.3.mlp.down_proj.weight"] = nil
        XCTAssertThrowsError(try pairModules(student: ss, teacher: noDown, targets: ["down_proj"], layerMap: [0, 3])) {
            XCTAssertTrue("\($0)".contains("no counterpart"), "\($0)")
        }
        // The student larger than the teacher in a dimension.
        let sens = Sensitivity(scores: ["model.layers.0.mlp.up_proj.weight": [Float](repeating: 1, count: 24 * 16)],
                               shapes: [:], samples: 1)
        XCTAssertThrowsError(try extractModules(pairs: [ModulePair(student: "model.layers.0.mlp.up_proj", teacher: "model.layers.0.mlp.up_proj.weight")],
                                                teacherWeights: { _ in [] }, teacherShapes: ["model.layers.0.mlp.up_proj.weight": [24, 16]],
                                                studentShapes: ["model.layers.0.mlp.up_proj.weight": [48, 32]], sensitivity: sens,
                                                rule: .block, rank: 4, heads: HeadLayout(teacherHeadDim: 8, studentHeadDim: 8))) {
            XCTAssertTrue("\($0)".contains("larger than the teacher"), "\($0)")
        }
    }

    func testSpecValidation() throws {
        let (t, s) = try makePair()
        try "{\"prompt_ids\": [1, 2], \"answer_ids\": [3]}\n".write(toFile: dir + "/seeds.jsonl", atomically: true, encoding: .utf8)
        try "{\"text\": \"x\"}\n".write(toFile: dir + "/train.jsonl", atomically: true, encoding: .utf8)
        let good = "teacher: \(t)\nstudent: \(s)\nseeds: seeds.jsonl\ntrain: {data: train.jsonl, steps: 3}\nlora: {rank: 4}\n"
        let spec = try TransferSpec.parse(yaml: good, directory: dir)
        XCTAssertEqual(spec.rank, 4); XCTAssertEqual(spec.alpha, 4); XCTAssertEqual(spec.training.steps, 3)
        XCTAssertEqual(spec.seeds, dir + "/seeds.jsonl")
        let cases: [(String, String)] = [
            (good + "layer_selction: first\n", "did you mean 'layer_selection'"),
            (good.replacingOccurrences(of: "lora: {rank: 4}", with: "lora: {rnak: 4}"), "lora.rnak"),
            (good + "layer_selection: sensitivty\n", "did you mean 'sensitivity'"),
            (good.replacingOccurrences(of: "seeds.jsonl", with: "nope.jsonl"), "seeds"),
            (good.replacingOccurrences(of: "steps: 3", with: "steps: 0"), "train.steps"),
            (good + "target_modules: [embed_tokens]\n", "embeddings and lm_head"),
            ("teacher: [\n", "not valid YAML"),
        ]
        for (yaml, needle) in cases {
            XCTAssertThrowsError(try TransferSpec.parse(yaml: yaml, directory: dir), needle) {
                XCTAssertTrue("\($0)".contains(needle), "expected '\(needle)' in: \($0)")
            }
        }
    }

    func testSeedSamplesMaskThePrompt() throws {
        try "{\"prompt_ids\": [1, 5, 6], \"answer_ids\": [7, 8]}\n".write(toFile: dir + "/seeds.jsonl", atomically: true, encoding: .utf8)
        try "{\"context_ids\": [4, 4], \"choices_ids\": [[9], [10, 11]], \"answer\": 1}\n".write(toFile: dir + "/mc.jsonl", atomically: true, encoding: .utf8)
        let batches = try loadSeedSamples(path: dir + "/seeds.jsonl", encoder: nil, eos: 2, seqLen: 16)
            + loadSeedSamples(path: dir + "/mc.jsonl", encoder: nil, eos: 2, seqLen: 16)
        XCTAssertEqual(batches.count, 2)
        XCTAssertEqual(batches[0].tokens, [1, 5, 6, 7, 8]); XCTAssertEqual(batches[0].labels, [-1, -1, 7, 8, 2])
        XCTAssertEqual(batches[1].tokens, [4, 4, 10, 11]); XCTAssertEqual(batches[1].labels, [-1, 10, 11, 2])
    }
}

/// Characters to ids 3..30 (the tiny models have no tokenizer).
struct CharacterEncoder: TextEncoder {
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        (addSpecialTokens ? [1] : []) + text.unicodeScalars.map { 3 + Int($0.value % 28) }
    }
}

final class TransferRunTests: XCTestCase {
    /// The whole command's library path: outputs, the merged model equal to W_S − s·B₀A₀ + s·B·A, and a
    /// resumed run that ends with the same adapter as an uninterrupted one.
    func testRunWritesOutputsAndResumes() throws {
        let dir = NSTemporaryDirectory() + "fusekit-transfer-run-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyLlama(dir + "/teacher", hidden: 32, heads: 4, kvHeads: 2, headDim: 8, ffn: 48, layers: 3, vocab: 32, seed: 1)
        try writeTinyLlama(dir + "/student", hidden: 16, heads: 2, kvHeads: 1, headDim: 8, ffn: 24, layers: 2, vocab: 32, seed: 2)
        try (0..<6).map { "{\"prompt\": \"q\($0) \", \"answer\": \"a\($0 * 7 % 5)\"}" }.joined(separator: "\n")
            .write(toFile: dir + "/seeds.jsonl", atomically: true, encoding: .utf8)
        try (0..<8).map { "{\"prompt\": \"q\($0) \", \"completion\": \"a\($0 * 7 % 5)\"}" }.joined(separator: "\n")
            .write(toFile: dir + "/train.jsonl", atomically: true, encoding: .utf8)
        let yaml = """
        teacher: teacher
        student: student
        seeds: seeds.jsonl
        target_modules: [q_proj, v_proj, down_proj]
        lora: {rank: 4, alpha: 8, dropout: 0}
        train: {data: train.jsonl, steps: 6, lr: 0.003, batch_size: 2, seq_len: 16}
        seed: 3
        """
        let spec = try TransferSpec.parse(yaml: yaml, directory: dir)
        let lookup: TransferRun.TokenizerLookup = { _, _ in (CharacterEncoder(), 2) }
        let full = try TransferRun.run(spec: spec, outDir: dir + "/out", resume: false, tokenizer: lookup)
        XCTAssertEqual(full.modules, 6)
        XCTAssertLessThan(full.stepZeroLossDifference, 1e-5)
        for f in ["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "delta_adapter/adapter_model.safetensors",
                  "merged/model.safetensors", "merged/config.json", "extraction/init.safetensors", "extraction/sensitivity.safetensors", "metrics.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/" + f), f)
        }
        // merged = student − s·B₀A₀ + s·B·A for one module, recomputed from the saved factors.
        let student = try WeightStore(path: dir + "/student"), merged = try WeightStore(path: dir + "/out/merged")
        let delta = try PEFTAdapter.read(path: dir + "/out/delta_adapter"), trained = try PEFTAdapter.read(path: dir + "/out/adapter")
        let module = "model.layers.1.self_attn.v_proj"
        let w = try student.floats(module + ".weight"), m = try merged.floats(module + ".weight")
        let s: Float = 2
        func product(_ f: LoraFactors) throws -> [Float] {
            let (b, a) = (try f.b.floats(), try f.a.floats()), (out, r, inF) = (f.b.shape[0], f.a.shape[0], f.a.shape[1])
            return (0..<(out * inF)).map { k in (0..<r).reduce(Float(0)) { $0 + b[(k / inF) * r + $1] * a[$1 * inF + k % inF] } }
        }
        let d = try product(delta.factors[module]!), t = try product(trained.factors[module]!)
        for k in 0..<w.count { XCTAssertEqual(m[k], w[k] + s * d[k] + s * t[k], accuracy: 1e-5) }

        // Interrupted after the checkpoint at step 3, resumed: the same losses and adapter.
        var checkpointed = spec
        checkpointed.training.saveEvery = 3
        let resumedDir = dir + "/resumed"
        struct Interrupt: Error {}
        XCTAssertThrowsError(try TransferRun.run(spec: checkpointed, outDir: resumedDir, resume: false, tokenizer: lookup,
                                                 observe: { if $0.step == 4 { throw Interrupt() } }))
        XCTAssertFalse(FileManager.default.fileExists(atPath: resumedDir + "/adapter"))
        let resumed = try TransferRun.run(spec: checkpointed, outDir: resumedDir, resume: true, tokenizer: lookup)
        XCTAssertEqual(resumed.training.resumedFrom, 3)
        XCTAssertEqual(resumed.training.losses, Array(full.training.losses.suffix(resumed.training.losses.count)))
        XCTAssertEqual(resumed.training.finalLoss, full.training.finalLoss)
        let again = try PEFTAdapter.read(path: resumedDir + "/adapter")
        XCTAssertEqual(try again.factors[module]!.b.floats(), try trained.factors[module]!.b.floats())
    }
}
