// Fusion training: the target learns from its fused targets with FuseLLM's loss
// (arXiv 2401.10491, eq. 4; `FuseLLM/src/utils/trainer.py::compute_loss`)
//
//   L = λ · CE(next token) + (1 − λ) · soft(fused distribution),
//
// through FuseTrain's Trainer (AdamW, warm-up + cosine, clipping, accumulation, checkpoints, exact
// resume). The trainer's data are the target's token sequences; its `batchProvider` hook adds each
// micro-batch's soft targets from the fused-targets folder. A micro-batch is one sequence (no
// padding) and `training.batch_size` micro-batches make an optimizer step, as the release's
// per-device batch × gradient accumulation.
//
// What a training writes into its folder (OUT_DIR, or OUT_DIR/pairs/NAME for FuseChat):
//   metrics.jsonl                 one line per step: loss, ce, soft, lr, grad_norm, tokens, tokens_per_s
//   checkpoints/step-NNNNNNNN/    parameters, Adam moments, data cursor (FuseTrain's layout)
//   model/                        the trained target as an HF folder (LoRA: the adapter folded in)
//   adapter/                      LoRA only: the PEFT adapter
import Foundation
import FuseIO
import FuseModels
import FuseNN
import FuseTensor
import FuseTokenizers
import FuseTrain

/// One finished fusion training.
public struct FusionTrainingOutcome: Sendable {
    /// The fused set trained on ("fused", or "pair-NAME" for FuseChat).
    public var name: String
    public var directory: String
    /// The trained target as an HF folder.
    public var model: String
    /// The PEFT adapter (LoRA training only).
    public var adapter: String?
    public var summary: TrainSummary
    /// The last step's loss components (`ce`, `soft`), mean over its micro-batches.
    public var finalComponents: [String: Double]
}

public enum FusionTraining {
    /// The trainer settings a spec asks for over `sequences` training sequences. `continuingFrom`: the
    /// last step of a finished training this one continues (`--add-source`); the new stage runs the
    /// spec's epochs again after it, with the warm-up + cosine schedule restarted over the new steps.
    public static func settings(_ t: TrainingSpec, sequences: Int, continuingFrom: Int = 0) -> TrainerSettings {
        let steps = Trainer.steps(epochs: Double(t.epochs), sequences: sequences, batchSize: 1, gradAccum: t.batchSize)
        // FuseLLM's AdamW: betas (0.9, 0.95).
        var s = TrainerSettings(steps: continuingFrom + steps, optimizer: AdamWSettings(lr: t.lr, beta1: 0.9, beta2: 0.95, weightDecay: t.weightDecay))
        s.scheduleStart = continuingFrom
        s.batchSize = 1
        s.gradAccum = t.batchSize
        s.warmup = Int((t.warmupRatio * Double(steps)).rounded(.up))   // transformers: ceil(ratio · total)
        s.clip = t.gradClip > 0 ? t.gradClip : nil
        s.seed = UInt64(t.seed)
        s.saveEvery = t.saveEvery
        return s
    }

    /// The loss of a spec: λ·CE + (1 − λ)·soft, soft being CE or KL against the fused distribution.
    public static func loss(_ spec: DistillSpec) -> TrainingLoss {
        .mixed(lambda: Float(spec.lambda), soft: spec.training.loss == "kl" ? .kl : .crossEntropy)
    }

    /// The fused set as FuseTrain data: each sequence's target tokens, labels the next tokens (-1 last).
    public static func data(_ fused: FusedTargets) throws -> TrainingData {
        // Index i is corpus sequence i: the batch provider reads the soft targets by that index.
        let sequences = try (0..<fused.sequenceCount).map { i -> TrainingSequence in
            let tokens = try fused.sequence(i).tokens.map(Int.init)
            return TrainingSequence(inputs: tokens, labels: Array(tokens.dropFirst()) + [-1])
        }
        return TrainingData(path: fused.folder, kind: .text, sequences: sequences, examples: sequences.count, dropped: 0)
    }

    /// Trains the target at `targetPath` on `fused` into `directory` (created if missing). With `resume`,
    /// continues from the newest checkpoint there; otherwise any old checkpoints are removed.
    /// `continuingFrom` (a step): a new stage of the finished training in `directory`, starting from its
    /// checkpoint of that step (weights, Adam moments, step count, data cursor; `Trainer.run`).
    /// `willStart` sees the step and the parameters the first step starts from.
    public static func train(targetPath: String, fused: FusedTargets, name: String, spec: DistillSpec, directory: String,
                             resume: Bool, continuingFrom: Int? = nil, willStart: ((Int, [Parameter]) throws -> Void)? = nil,
                             observe: ((StepMetrics) throws -> Void)? = nil) throws -> FusionTrainingOutcome {
        let store = try WeightStore(path: targetPath)
        let model = try ModelRegistry.loadTrainable(store: store)
        let t = spec.training
        let lora = t.mode == .lora ? LoRASettings(rank: t.loraRank, alpha: Float(t.loraAlpha), dropout: Float(t.loraDropout),
                                                  targetModules: t.loraTargetModules) : nil
        if let lora { try model.attachLoRA(lora, seed: UInt64(t.seed)) }
        let data = try data(fused)
        let trainer = try Trainer(model: model, data: data, settings: settings(t, sequences: data.sequences.count, continuingFrom: continuingFrom ?? 0),
                                  outputDirectory: directory)
        trainer.loss = loss(spec)
        trainer.batchProvider = { try fused.batch(sequences: $0) }
        trainer.willStart = willStart
        let summary = try trainer.run(resume: resume, continuingFrom: continuingFrom, observe: observe)

        var adapter: String?
        if let lora {
            adapter = directory + "/adapter"
            try replaceAtomically(adapter!) { try writeLoRAAdapter(model, settings: lora, baseModel: targetPath, to: $0) }
            try foldLoRA(model, scale: lora.scale)
        }
        let modelFolder = directory + "/model"
        try replaceAtomically(modelFolder) {
            try writeFullModel(model, to: $0, config: store.config, sideFiles: store.folder, extraFiles: try tokenizerFiles(store))
        }
        var outcome = FusionTrainingOutcome(name: name, directory: directory, model: modelFolder, adapter: adapter, summary: summary,
                                            finalComponents: trainer.lastComponents)
        if summary.finalLoss == nil, let last = lastLoggedStep(trainer.metricsPath) {   // resumed after the last step: nothing ran
            outcome.summary.finalLoss = last["loss"]?.double
            outcome.finalComponents = Dictionary(uniqueKeysWithValues: ["ce", "soft"].compactMap { k in last[k]?.double.map { (k, $0) } })
        }
        return outcome
    }

    /// The last line of a metrics log, or nil.
    static func lastLoggedStep(_ path: String) -> JSON? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let line = text.split(separator: "\n").last else { return nil }
        return try? JSON.parse(String(line))
    }

    /// HF tokenizer files for a GGUF target (its vocabulary), so the output folder runs on its own.
    static func tokenizerFiles(_ store: WeightStore) throws -> [String: [UInt8]] {
        guard let file = store.ggufFile else { return [:] }
        return try TokenizerFiles.huggingFaceFiles(from: GGUFVocabulary(gguf: file)).mapValues { Array($0.utf8) }
    }

    /// W ← W + s·B·A for every LoRA module (PEFT's merge_and_unload), in the model's base parameters.
    static func foldLoRA(_ model: any TrainableModel, scale s: Float) throws {
        let base = Dictionary(model.allParameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var a: [String: Parameter] = [:], b: [String: Parameter] = [:]
        for p in model.trainableParameters {
            if p.name.hasSuffix(".lora_A.weight") { a[String(p.name.dropLast(".lora_A.weight".count))] = p }
            if p.name.hasSuffix(".lora_B.weight") { b[String(p.name.dropLast(".lora_B.weight".count))] = p }
        }
        for (module, pa) in a {
            guard let pb = b[module], let w = base[module + ".weight"] else {
                throw DistillError.invalidArgument("LoRA module \(module) has no lora_B or no base weight to fold into")
            }
            let (out, r, inF) = (pb.shape[0], pa.shape[0], pa.shape[1])
            guard w.count == out * inF else {
                throw DistillError.invalidArgument("LoRA module \(module): B·A is \(out)x\(inF) but the weight holds \(w.count) values")
            }
            w.value.withUnsafeMutableBufferPointer { c in
                guard let c = c.baseAddress else { return }
                BLAS.sgemm(m: out, n: inF, k: r, alpha: s, a: pb.value, lda: r, b: pa.value, ldb: inF, beta: 1, c: c, ldc: inF)
            }
        }
    }
}

/// Writes a folder through `write(temporaryPath)` and renames it over `path` when whole.
func replaceAtomically(_ path: String, _ write: (String) throws -> Void) throws {
    let fm = FileManager.default
    let parent = (path as NSString).deletingLastPathComponent
    let temp = parent + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
    try? fm.removeItem(atPath: temp)
    do {
        try fm.createDirectory(atPath: temp, withIntermediateDirectories: true)
        try write(temp)
        if fm.fileExists(atPath: path) { try fm.removeItem(atPath: path) }
        try fm.moveItem(atPath: temp, toPath: path)
    } catch {
        try? fm.removeItem(atPath: temp)
        throw error
    }
}
