import XCTest
import FuseIO
import FuseMerge
import FuseModels
import FuseNN
import FuseTensor
import FuseTestSupport
import FuseTrain
@testable import FuseDistill

/// Three tiny Llamas over byte-level tokenizers in `dir`: `target`, `same` (the target's tokenizer) and
/// `other` (a tokenizer with merges, so its tokens align less), and a 12-line `train.txt`.
func writeDistillFixture(_ dir: String) throws {
    try writeTinyLlama(dir + "/target", vocab: 256, seed: 1)
    try writeByteLevelTokenizer(dir + "/target")
    try writeTinyLlama(dir + "/same", vocab: 256, seed: 2)
    try writeByteLevelTokenizer(dir + "/same")
    let merges = ["t h", "th e", "Ġ t", "Ġt h", "Ġth e", "i n", "e r"]
    try writeTinyLlama(dir + "/other", vocab: 256 + merges.count, seed: 3)
    try writeByteLevelTokenizer(dir + "/other", merges: merges)
    let text = (0..<12).map { "the other thing in there, number \($0) of the winter" }.joined(separator: "\n") + "\n"
    try text.write(toFile: dir + "/train.txt", atomically: true, encoding: .utf8)
}

/// A fused-targets folder of `count` random sequences (`length` tokens, k entries per position), written
/// through Fusion and `storedForm` exactly as the fusion stage writes them; `seed` varies the teacher.
func writeFusedTargets(_ dir: String, count: Int, length: Int, k: Int, vocab: Int, seed: UInt64) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var rng = SeededRNG(seed: seed, name: "fused-targets", chunk: 0)
    let fusion = Fusion(function: .minCE, k: k)
    var stored: [CapturedSequence] = []
    for _ in 0..<count {
        let tokens = (0..<length).map { _ in Int32(3 + Int(rng.next() % UInt64(vocab - 3))) }
        let entries: [AlignedEntry] = (0..<length).map { t in
            if t % 5 == 4 { return .oneHot(tokens[min(t + 1, length - 1)]) }   // unaligned positions, as the fusion stage makes them
            var ids: [Int32] = []
            while ids.count < k { let id = Int32(rng.next() % UInt64(vocab)); if !ids.contains(id) { ids.append(id) } }
            let z = ids.map { _ in 2 * rng.nextGaussian() }
            let lse = log(z.map(exp).reduce(0, +))
            return .distribution(ids: ids, logProbs: z.map { Float($0 - lse) })
        }
        let f = try fusion.fuse([FusionCandidate(name: "teacher", sequence: AlignedSequence(entries: entries, meanCE: 1))], length: length)
        stored.append(storedForm(f.targets, tokens: tokens))
    }
    try CaptureWriter.write(path: CaptureRunner.shardPath(dir, 0), k: k, vocabularySize: vocab, modelHash: ContentHash(high: seed, low: 1),
                            corpusHash: ContentHash(high: 0, low: 2), firstSequence: 0, sequences: stored, flags: CaptureHeader.fusedTargets)
}

final class TrainingTests: XCTestCase {
    var dir: String!
    let vocab = 40

    override func setUp() {
        dir = NSTemporaryDirectory() + "fusekit-distill-train-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func spec(_ training: String, lambda: Double = 0.5, fusechat: String = "") throws -> DistillSpec {
        try DistillSpec.parse(yaml: """
            target: \(dir!)/target
            sources: [{model: \(dir!)/target, name: a}, {model: \(dir!)/target, name: b}]
            corpus: {train: \(dir!)/corpus.txt}
            lambda: \(lambda)
            training: {\(training)}
            \(fusechat)
            """, path: dir + "/spec.yml", checkFiles: false)
    }

    /// Mean KL(q ‖ p) of the model at `path` against the fused targets, over every sequence.
    func kl(_ path: String, _ fused: FusedTargets) throws -> Double {
        let model = try ModelRegistry.loadTrainable(path)
        let batch = try fused.batch(sequences: Array(0..<fused.sequenceCount))
        return try model.evaluateLoss(batch, loss: .mixed(lambda: 0, soft: .kl)).components["soft"] ?? .nan
    }

    /// λ·CE + (1 − λ)·soft: the mixed loss and every gradient equal the weighted sum of the two parts
    /// computed separately (CE alone; soft alone with λ = 0), for both soft losses.
    func testMixedLossAndGradientAreTheWeightedSumOfTheParts() throws {
        try writeTinyLlama(dir + "/target", vocab: vocab, seed: 3)
        try writeFusedTargets(dir + "/fused", count: 2, length: 10, k: 4, vocab: vocab, seed: 5)
        let batch = try FusedTargets(folder: dir + "/fused").batch(sequences: [0, 1])
        let model = try ModelRegistry.loadTrainable(dir + "/target")
        func run(_ loss: TrainingLoss) throws -> (LossReport, [[Float]]) {
            for p in model.trainableParameters { p.zeroGrad() }
            let r = try model.accumulateGradients(batch, loss: loss, scale: 1, step: 0)
            return (r, model.trainableParameters.map(\.grad))
        }
        for kind in [SoftLoss.crossEntropy, .kl] {
            let lambda: Float = 0.3
            let (mixed, gMixed) = try run(.mixed(lambda: lambda, soft: kind))
            let (ce, gCE) = try run(.crossEntropy)
            let (soft, gSoft) = try run(.mixed(lambda: 0, soft: kind))
            let expected = Double(lambda) * ce.loss + Double(1 - lambda) * soft.loss
            XCTAssertEqual(mixed.loss, expected, accuracy: 1e-9 * max(1, abs(expected)), "\(kind)")
            XCTAssertEqual(mixed.components["ce"] ?? .nan, ce.loss, accuracy: 1e-9)
            XCTAssertEqual(mixed.components["soft"] ?? .nan, soft.loss, accuracy: 1e-9)
            XCTAssertGreaterThan(soft.loss, 0.1)   // a real soft term, not an empty one
            var worst: Float = 0, scale: Float = 0
            for (i, g) in gMixed.enumerated() {
                for j in g.indices {
                    let want = lambda * gCE[i][j] + (1 - lambda) * gSoft[i][j]
                    worst = max(worst, abs(g[j] - want)); scale = max(scale, abs(want))
                }
            }
            XCTAssertGreaterThan(scale, 1e-3)
            XCTAssertLessThan(worst, 1e-5 * scale, "\(kind): gradient differs by \(worst) (largest \(scale))")
        }
    }

    /// Pure soft-target training (λ = 0) pulls the target's distribution toward the fused targets:
    /// KL(q ‖ p) of the written model falls well below the start, for full and LoRA training; the LoRA
    /// output holds the adapter folded in (its KL equals the trainer's final model evaluated with LoRA).
    func testTrainingOnSoftTargetsLowersKL() throws {
        try writeTinyLlama(dir + "/target", vocab: vocab, seed: 3)
        try writeFusedTargets(dir + "/fused", count: 8, length: 12, k: 4, vocab: vocab, seed: 7)
        let fused = try FusedTargets(folder: dir + "/fused")
        let before = try kl(dir + "/target", fused)
        let full = try FusionTraining.train(targetPath: dir + "/target", fused: fused, name: "fused",
                                            spec: try spec("lr: 0.02, epochs: 6, batch_size: 2, warmup_ratio: 0, weight_decay: 0", lambda: 0),
                                            directory: dir + "/full", resume: false)
        let afterFull = try kl(full.model, fused)
        XCTAssertLessThan(afterFull, 0.6 * before, "full: KL \(before) -> \(afterFull)")
        XCTAssertEqual(full.summary.steps, 24)
        let lora = try FusionTraining.train(targetPath: dir + "/target", fused: fused, name: "fused",
                                            spec: try spec("mode: lora, lr: 0.05, epochs: 6, batch_size: 2, warmup_ratio: 0, weight_decay: 0, "
                                                           + "lora: {rank: 4, alpha: 8, target_modules: [q_proj, v_proj, up_proj, down_proj]}", lambda: 0),
                                            directory: dir + "/lora", resume: false)
        let afterLoRA = try kl(lora.model, fused)
        XCTAssertLessThan(afterLoRA, 0.8 * before, "LoRA: KL \(before) -> \(afterLoRA)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/lora/adapter/adapter_config.json"))
        // The folded model's KL equals the final step's soft loss path: recompute with base + adapter.
        let base = try ModelRegistry.loadTrainable(dir + "/target")
        try base.attachLoRA(LoRASettings(rank: 4, alpha: 8, targetModules: ["q_proj", "v_proj", "up_proj", "down_proj"]), seed: 0)
        let adapter = try PEFTAdapter.read(path: dir + "/lora/adapter")
        for p in base.trainableParameters {
            let module = p.name.replacingOccurrences(of: ".lora_A.weight", with: "").replacingOccurrences(of: ".lora_B.weight", with: "")
            guard let f = adapter.factors[module] else { return XCTFail("adapter lacks \(module)") }
            p.value = try (p.name.hasSuffix(".lora_A.weight") ? f.a : f.b).floats()
        }
        let viaAdapter = try base.evaluateLoss(try fused.batch(sequences: Array(0..<fused.sequenceCount)), loss: .mixed(lambda: 0, soft: .kl))
        XCTAssertEqual(viaAdapter.components["soft"] ?? .nan, afterLoRA, accuracy: 1e-4 * afterLoRA)
        // metrics.jsonl carries both components every step.
        let lines = try String(contentsOfFile: dir + "/full/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 24)
        for line in lines { let j = try JSON.parse(String(line)); XCTAssertNotNil(j["ce"]?.double); XCTAssertNotNil(j["soft"]?.double) }
    }

    /// A run stopped after step 5 (checkpoint at step 4) and resumed logs exactly the losses, components
    /// and output weights of an uninterrupted run.
    func testResumeGivesTheSameLossesAndWeights() throws {
        try writeTinyLlama(dir + "/target", vocab: vocab, seed: 3)
        try writeFusedTargets(dir + "/fused", count: 6, length: 10, k: 4, vocab: vocab, seed: 9)
        let fused = try FusedTargets(folder: dir + "/fused")
        let s = try spec("lr: 0.01, epochs: 2, batch_size: 2, warmup_ratio: 0.2, save_every: 2", lambda: 0.7)
        let whole = try FusionTraining.train(targetPath: dir + "/target", fused: fused, name: "fused", spec: s, directory: dir + "/a", resume: false)
        struct Stop: Error {}
        XCTAssertThrowsError(try FusionTraining.train(targetPath: dir + "/target", fused: fused, name: "fused", spec: s, directory: dir + "/b",
                                                      resume: false, observe: { m in if m.step == 5 { throw Stop() } }))
        let resumed = try FusionTraining.train(targetPath: dir + "/target", fused: fused, name: "fused", spec: s, directory: dir + "/b", resume: true)
        XCTAssertEqual(resumed.summary.resumedFrom, 4)
        func log(_ d: String) throws -> [String] {
            try String(contentsOfFile: d + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
                let j = try JSON.parse(String(line))
                return ["step", "loss", "ce", "soft", "lr", "grad_norm"].map { j[$0]?.serialized() ?? "-" }.joined(separator: " ")
            }
        }
        XCTAssertEqual(whole.summary.steps, 6)
        XCTAssertEqual(try log(dir + "/a"), try log(dir + "/b"))
        XCTAssertEqual(whole.finalComponents, resumed.finalComponents)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a/model/model.safetensors"),
                       FileManager.default.contents(atPath: dir + "/b/model/model.safetensors"))
    }

    /// FuseChat: one command trains a copy of the target per pair and merges them; the merged model is
    /// byte for byte what `fusekit merge` makes of the pairwise results with the same method (sce, and
    /// linear), written here by hand as a user would.
    func testFuseChatOutputEqualsMergeOfThePairs() throws {
        try writeTinyLlama(dir + "/target", vocab: vocab, seed: 3)
        try writeFusedTargets(dir + "/fused-a", count: 4, length: 10, k: 4, vocab: vocab, seed: 11)
        try writeFusedTargets(dir + "/fused-b", count: 4, length: 10, k: 4, vocab: vocab, seed: 12)
        for (method, parameters) in [("sce", "{select_topk: 0.5}"), ("linear", "{weight: 0.5}")] {
            let out = dir + "/out-" + method
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let s = try spec("lr: 0.01, epochs: 2, batch_size: 2, warmup_ratio: 0", lambda: 0.5,
                             fusechat: "fusechat: {enabled: true, merge_method: \(method), parameters: \(parameters)}")
            let run = DistillRun(spec: s, cacheDirectory: dir + "/cache")
            var report = DistillReport()
            report.fused = [("pair-a", dir + "/fused-a", FusionLog(names: ["t", "a"])), ("pair-b", dir + "/fused-b", FusionLog(names: ["t", "b"]))]
            try run.trainingStage(report: &report, outDirectory: out, resume: false)
            XCTAssertEqual(report.training.map(\.name), ["pair-a", "pair-b"])
            XCTAssertEqual(report.merge?.method, method)

            let config = """
            merge_method: \(method)
            base_model: \(dir!)/target
            models:
              - model: \(out)/pairs/pair-a/model
              - model: \(out)/pairs/pair-b/model
            parameters: \(parameters)
            dtype: float32
            """
            _ = try runMerge(config: try MergeConfig.parse(yaml: config), outPath: dir + "/by-hand-" + method, options: MergeRunOptions())
            let merged = try SafetensorsFile(path: out + "/model/model.safetensors")
            let byHand = try SafetensorsFile(path: dir + "/by-hand-\(method)/model.safetensors")
            let pairA = try SafetensorsFile(path: out + "/pairs/pair-a/model/model.safetensors")
            XCTAssertEqual(Set(merged.tensors.map(\.name)), Set(byHand.tensors.map(\.name)))
            var differsFromPair = false
            for info in merged.tensors {
                let m = try merged.tensor(info.name).floats()
                XCTAssertEqual(m, try byHand.tensor(info.name).floats(), "\(method): \(info.name)")
                if m != (try pairA.tensor(info.name).floats()) { differsFromPair = true }
            }
            XCTAssertTrue(differsFromPair, "\(method): the merge equals one pair; the pairs did not differ")
        }
    }
}

/// A byte-level BPE tokenizer.json (GPT-2's byte-to-character table): the 256 byte tokens, then one token
/// per merge in `merges` ("a b" → "ab"), so two tiny models can have different tokenizations of one text.
func writeByteLevelTokenizer(_ dir: String, merges: [String] = []) throws {
    var byteToChar: [Int: Character] = [:]
    var printable = Array(33...126) + Array(161...172) + Array(174...255)
    var extra = 0
    for b in 0..<256 where !printable.contains(b) { printable.append(b); byteToChar[b] = Character(UnicodeScalar(256 + extra)!); extra += 1 }
    for b in Array(33...126) + Array(161...172) + Array(174...255) { byteToChar[b] = Character(UnicodeScalar(b)!) }
    var vocab: [(String, Int)] = (0..<256).map { (String(byteToChar[$0]!), $0) }
    for m in merges { vocab.append((m.replacingOccurrences(of: " ", with: ""), vocab.count)) }
    let vocabJSON = vocab.map { "\(JSON.string($0.0).serialized()): \($0.1)" }.joined(separator: ", ")
    let mergesJSON = merges.map { JSON.string($0).serialized() }.joined(separator: ", ")
    let text = """
    {"version": "1.0", "added_tokens": [], "normalizer": null,
     "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
     "post_processor": null, "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
     "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
               "fuse_unk": false, "byte_fallback": false, "vocab": {\(vocabJSON)}, "merges": [\(mergesJSON)]}}
    """
    try text.write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
}

final class TinyPipelineTests: XCTestCase {
    /// The whole `fusekit distill` pipeline on tiny models with different tokenizers: capture, align,
    /// fuse (MinCE), train, then `--resume` of the finished run. The source that shares the target's
    /// tokenizer aligns everywhere; the one with merges aligns less; training writes a model whose
    /// soft loss on the fused targets is below the start's.
    func testPipelineCaptureAlignFuseTrain() throws {
        let dir = NSTemporaryDirectory() + "fusekit-distill-e2e-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeDistillFixture(dir)
        try """
        target: \(dir)/target
        sources: [{model: \(dir)/same, name: same}, {model: \(dir)/other, name: other}]
        corpus: {train: \(dir)/train.txt, block_tokens: 40}
        k: 4
        lambda: 0.5
        training: {lr: 0.01, epochs: 2, batch_size: 2, warmup_ratio: 0, save_every: 3}
        """.write(toFile: dir + "/spec.yml", atomically: true, encoding: .utf8)
        let spec = try DistillSpec.load(path: dir + "/spec.yml")
        let run = DistillRun(spec: spec, cacheDirectory: dir + "/cache")
        var stages = Set<String>()
        run.trainingProgress = { stage, _ in stages.insert(stage) }
        let report = try run.run(outDirectory: dir + "/out", resume: false, force: false)
        let coverage = Dictionary(uniqueKeysWithValues: report.alignment.map { ($0.source, $0.coverage) })
        XCTAssertEqual(coverage["same"], 1)
        XCTAssertLessThan(coverage["other"] ?? 1, 1)
        XCTAssertGreaterThan(coverage["other"] ?? 0, 0.3)
        XCTAssertEqual(report.training.count, 1)
        XCTAssertEqual(stages, ["train fused"])
        let training = try XCTUnwrap(report.training.first)
        XCTAssertEqual(training.model, URL(fileURLWithPath: dir + "/out/model").standardizedFileURL.path)
        XCTAssertEqual(Set(training.finalComponents.keys), ["ce", "soft"])
        let fused = try FusedTargets(folder: report.fused[0].folder)
        let batch = try fused.batch(sequences: Array(0..<fused.sequenceCount))
        func soft(_ path: String) throws -> Double {
            try ModelRegistry.loadTrainable(path).evaluateLoss(batch, loss: .mixed(lambda: 0, soft: .crossEntropy)).components["soft"] ?? .nan
        }
        XCTAssertLessThan(try soft(training.model), try soft(dir + "/target"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/model/tokenizer.json"))
        let json = try JSON.parse(try String(contentsOfFile: dir + "/out/distill.json", encoding: .utf8))
        XCTAssertEqual(json["training"]?.array?.first?["steps"]?.int, training.summary.steps)
        // --resume of a finished run: every stage is reused, training continues from its last checkpoint.
        let again = try run.run(outDirectory: dir + "/out", resume: true, force: false)
        XCTAssertEqual(again.training.first?.summary.resumedFrom, training.summary.steps)
        XCTAssertEqual(again.training.first?.summary.finalLoss, training.summary.finalLoss)   // from the log: no step ran
        XCTAssertEqual(again.training.first?.finalComponents, training.finalComponents)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/out/model/model.safetensors"),
                       FileManager.default.contents(atPath: training.model + "/model.safetensors"))
    }
}
