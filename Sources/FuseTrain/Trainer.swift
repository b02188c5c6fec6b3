import Foundation
import FuseIO
import FuseNN
import FuseTensor

// MARK: - Settings and metrics

public struct TrainerSettings: Sendable, Equatable {
    /// Optimiser steps.
    public var steps: Int
    /// Sequences per micro-batch.
    public var batchSize: Int = 1
    /// Micro-batches per optimiser step; each micro-batch's loss is scaled by 1/gradAccum.
    public var gradAccum: Int = 1
    public var optimizer: AdamWSettings
    public var warmup: Int = 0
    /// Global gradient-norm limit; nil disables clipping (the norm is still measured and logged).
    public var clip: Double? = 1.0
    public var seed: UInt64 = 0
    /// Evaluate on the held-out data every N steps (and after the last); nil: only after the last.
    public var evalEvery: Int?
    /// Checkpoint every N steps; nil: never (a final checkpoint is still not written: the output is).
    public var saveEvery: Int?
    /// Whole checkpoints kept on disk.
    public var keepCheckpoints = 1
    /// The step this stage's warm-up + cosine schedule starts at: 0 for a fresh run; for a continuation
    /// of a finished run (`Trainer.run(continuingFrom:)`), the step it finished at. `steps` still counts
    /// from the very first step, so the schedule spans `steps − scheduleStart` steps.
    public var scheduleStart = 0

    public init(steps: Int, optimizer: AdamWSettings) {
        self.steps = steps; self.optimizer = optimizer
    }

    func validate() throws {
        if steps < 1 { throw FuseTrainError.badSetting(name: "--steps", reason: "must be at least 1, got \(steps)") }
        if batchSize < 1 { throw FuseTrainError.badSetting(name: "--batch-size", reason: "must be at least 1, got \(batchSize)") }
        if gradAccum < 1 { throw FuseTrainError.badSetting(name: "--grad-accum", reason: "must be at least 1, got \(gradAccum)") }
        if warmup < 0 { throw FuseTrainError.badSetting(name: "--warmup", reason: "must not be negative, got \(warmup)") }
        if !(optimizer.lr >= 0) || !optimizer.lr.isFinite { throw FuseTrainError.badSetting(name: "--lr", reason: "must be a finite number ≥ 0, got \(optimizer.lr)") }
        if !(optimizer.weightDecay >= 0) { throw FuseTrainError.badSetting(name: "--weight-decay", reason: "must be ≥ 0, got \(optimizer.weightDecay)") }
        if let c = clip, !(c > 0) { throw FuseTrainError.badSetting(name: "--clip", reason: "must be > 0, got \(c)") }
        if let e = evalEvery, e < 1 { throw FuseTrainError.badSetting(name: "--eval-every", reason: "must be at least 1, got \(e)") }
        if let s = saveEvery, s < 1 { throw FuseTrainError.badSetting(name: "--save-every", reason: "must be at least 1, got \(s)") }
        if scheduleStart < 0 || scheduleStart >= steps {
            throw FuseTrainError.badSetting(name: "scheduleStart", reason: "must be in 0..<steps (\(steps)), got \(scheduleStart)")
        }
    }

    /// What a resumed run must share with the run that wrote the checkpoint (anything else changes the losses).
    var json: JSON {
        .object([
            ("steps", .int(steps)), ("batch_size", .int(batchSize)), ("grad_accum", .int(gradAccum)),
            ("lr", .double(optimizer.lr)), ("beta1", .double(optimizer.beta1)), ("beta2", .double(optimizer.beta2)),
            ("eps", .double(optimizer.eps)), ("weight_decay", .double(optimizer.weightDecay)),
            ("warmup", .int(warmup)), ("clip", clip.map { .double($0) } ?? .null), ("seed", .string(String(seed))),
        ] + (scheduleStart > 0 ? [("schedule_start", JSON.int(scheduleStart))] : []))   // absent for fresh runs: older checkpoints still match
    }
}

/// One optimiser step, as logged to metrics.jsonl.
public struct StepMetrics: Sendable {
    public var step: Int
    public var totalSteps: Int
    /// Mean of the micro-batch losses.
    public var loss: Double
    public var lr: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    /// Input tokens (padding excluded) processed this step.
    public var tokens: Int
    public var tokensPerSecond: Double
    public var elapsed: Double
    public var evalLoss: Double?
    /// Mean over the micro-batches of each loss component the model reported (`ce`, and `soft` for a
    /// mixed loss); logged beside `loss`.
    public var components: [String: Double] = [:]

    public var json: JSON {
        var pairs: [(String, JSON)] = [("step", .int(step)), ("loss", .double(loss)), ("lr", .double(lr)),
                                       ("grad_norm", .double(gradNorm)), ("tokens", .int(tokens)),
                                       ("tokens_per_s", .double((tokensPerSecond * 10).rounded() / 10)),
                                       ("elapsed_s", .double((elapsed * 1000).rounded() / 1000))]
        for (name, value) in components.sorted(by: { $0.key < $1.key }) where name != "loss" { pairs.append((name, .double(value))) }
        if let evalLoss { pairs.append(("eval_loss", .double(evalLoss))) }
        return .object(pairs)
    }
}

public struct TrainSummary: Sendable {
    public var steps: Int
    public var resumedFrom: Int?
    public var finalLoss: Double?
    public var finalEvalLoss: Double?
    public var tokens: Int
    public var seconds: Double
    public var losses: [Double]
}

// MARK: - The trainer

/// Trains `model.trainableParameters` on `data`: micro-batches from a seeded order, accumulation,
/// clipping, AdamW on the warm-up + cosine schedule, held-out evaluation, a metrics log and checkpoints
/// in `outputDirectory`. A run resumed from a checkpoint continues with the same losses, bit for bit,
/// as one that was never interrupted.
public final class Trainer {
    public let model: any TrainableModel
    public let data: TrainingData
    public let evalData: TrainingData?
    public let settings: TrainerSettings
    public let outputDirectory: String
    public let optimizer: AdamW
    public let schedule: CosineSchedule
    public var loss: TrainingLoss = .crossEntropy
    /// Builds the micro-batch of the given sequences (indices into `data.sequences`) instead of
    /// `makeBatch`: for data that carries more than ids and labels, such as the soft targets of
    /// distillation. Order, cursor, fingerprint and checkpoints still come from `data`.
    public var batchProvider: ((_ sequences: [Int]) throws -> TrainingBatch)?
    /// The loss components of the last `trainStep`, averaged over its micro-batches.
    public private(set) var lastComponents: [String: Double] = [:]
    /// Sees the step the run starts at and the parameters its first step starts from (after any
    /// checkpoint was restored), before that step runs.
    public var willStart: ((_ step: Int, _ parameters: [Parameter]) throws -> Void)?

    public var checkpointDirectory: String { outputDirectory + "/checkpoints" }
    public var metricsPath: String { outputDirectory + "/metrics.jsonl" }

    public init(model: any TrainableModel, data: TrainingData, evalData: TrainingData? = nil,
                settings: TrainerSettings, outputDirectory: String) throws {
        try settings.validate()
        guard !data.sequences.isEmpty else { throw FuseTrainError.noData(path: data.path, reason: "no sequences") }
        self.model = model
        self.data = data
        self.evalData = evalData
        self.settings = settings
        self.outputDirectory = outputDirectory
        self.optimizer = AdamW(settings.optimizer)
        self.schedule = CosineSchedule(baseLR: settings.optimizer.lr, warmup: settings.warmup, total: settings.steps - settings.scheduleStart)
    }

    /// Steps needed to see the data `epochs` times.
    public static func steps(epochs: Double, sequences: Int, batchSize: Int, gradAccum: Int) -> Int {
        max(1, Int((epochs * Double(sequences) / Double(batchSize * gradAccum)).rounded(.up)))
    }

    /// (sequence count, FNV-1a over every id and label): a resumed run must see the same data.
    var dataFingerprint: JSON {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ v: Int) { h = (h ^ UInt64(bitPattern: Int64(v))) &* 0x0000_0100_0000_01B3 }
        for s in data.sequences { mix(s.inputs.count); s.inputs.forEach(mix); s.labels.forEach(mix) }
        return .object([("sequences", .int(data.sequences.count)), ("fingerprint", .string(String(h, radix: 16)))])
    }

    /// Runs to `settings.steps`. With `resume`, continues from the newest checkpoint (an error when the
    /// settings or the data differ from the run that wrote it); without, any old checkpoints are removed.
    /// `observe` sees every step's metrics (progress bars); an error it throws stops the run there.
    ///
    /// `continuingFrom` makes this run a new stage of a finished one: the newest checkpoint must be that
    /// run's last (step `continuingFrom`, settings free to differ: more steps, `scheduleStart`) or one this
    /// stage wrote itself (then it resumes as usual). Parameters, Adam moments and step count, the data
    /// cursor and the metrics log up to that step carry over; the lr schedule restarts at
    /// `settings.scheduleStart`.
    public func run(resume: Bool, continuingFrom: Int? = nil, observe: ((StepMetrics) throws -> Void)? = nil) throws -> TrainSummary {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true) } catch {
            throw FuseTrainError.unreadable(path: outputDirectory, reason: "cannot create the output folder: \(error.localizedDescription)")
        }
        let parameters = model.trainableParameters
        guard !parameters.isEmpty else { throw FuseTrainError.model("the model has no trainable parameters") }
        var startStep = 0, cursor = 0
        var resumedFrom: Int?
        Checkpoints.removeLeftovers(directory: checkpointDirectory)
        let latest = resume || continuingFrom != nil ? try Checkpoints.loadLatest(directory: checkpointDirectory) : nil
        if let from = continuingFrom {
            guard let state = latest, state.step >= from else {
                throw FuseTrainError.badCheckpoint(path: checkpointDirectory, reason: "no checkpoint of step \(from) to continue from"
                                                   + (latest.map { " (the newest is step \($0.step))" } ?? "") + "; the finished run's last checkpoint is needed")
            }
            try restore(state, into: parameters, checkSettings: state.step > from)
            startStep = state.step; cursor = state.cursor; resumedFrom = state.step
        } else if let state = latest {
            try restore(state, into: parameters)
            startStep = state.step
            cursor = state.cursor
            resumedFrom = state.step
        } else if !resume {
            try? fm.removeItem(atPath: checkpointDirectory)
        }
        try willStart?(startStep, parameters)
        var log = try MetricsLog(path: metricsPath, keepThrough: resumedFrom ?? 0)
        var order = SequenceOrder(count: data.sequences.count, seed: settings.seed)
        let start = Date()
        var tokensSeen = 0
        var losses: [Double] = []
        var lastEval: Double?
        var lastLoss: Double?
        for step in startStep..<settings.steps {
            let stepStart = Date()
            var batches: [TrainingBatch] = []
            var tokens = 0
            for k in 0..<settings.gradAccum {
                let indices = (0..<settings.batchSize).map { order.sequence(at: (cursor + k) * settings.batchSize + $0) }
                let sequences = indices.map { data.sequences[$0] }
                batches.append(try batchProvider?(indices) ?? makeBatch(sequences))
                tokens += sequences.reduce(0) { $0 + $1.inputs.count }
            }
            let (meanLoss, norm, lr) = try trainStep(batches, step: step, firstMicroBatch: cursor)
            cursor += settings.gradAccum
            tokensSeen += tokens
            let seconds = Date().timeIntervalSince(stepStart)     // training only: evaluation is not in tokens/s
            let done = step + 1
            if let evalData, done == settings.steps || settings.evalEvery.map({ done % $0 == 0 }) == true {
                lastEval = try evaluate(evalData)
            } else { lastEval = nil }
            let metrics = StepMetrics(step: done, totalSteps: settings.steps, loss: meanLoss, lr: lr, gradNorm: norm, tokens: tokens,
                                      tokensPerSecond: seconds > 0 ? Double(tokens) / seconds : 0,
                                      elapsed: Date().timeIntervalSince(start), evalLoss: lastEval, components: lastComponents)
            try log.append(metrics.json)
            losses.append(meanLoss)
            lastLoss = meanLoss
            try observe?(metrics)
            if let every = settings.saveEvery, done % every == 0 || done == settings.steps {
                try Checkpoints.save(directory: checkpointDirectory, step: done, cursor: cursor, parameters: parameters, optimizer: optimizer,
                                     seed: settings.seed, settings: settings.json, dataFingerprint: dataFingerprint, keep: settings.keepCheckpoints)
            }
        }
        return TrainSummary(steps: settings.steps, resumedFrom: resumedFrom, finalLoss: lastLoss,
                            finalEvalLoss: lastEval, tokens: tokensSeen, seconds: Date().timeIntervalSince(start), losses: losses)
    }

    /// One optimiser step over `batches` (the micro-batches of step `step`, 0-based; the first has global
    /// index `firstMicroBatch`, which seeds dropout): zero the gradients, accumulate each micro-batch's
    /// gradient scaled by 1/count, clip, AdamW with the schedule's lr for this step. Returns the mean
    /// micro-batch loss, the gradient norm before clipping and the lr used.
    public func trainStep(_ batches: [TrainingBatch], step: Int, firstMicroBatch: Int) throws -> (loss: Double, gradNorm: Double, lr: Double) {
        let parameters = model.trainableParameters
        for p in parameters { p.zeroGrad() }
        let scale = Float(1.0 / Double(batches.count))
        var lossSum = 0.0
        var componentSums: [String: Double] = [:]
        for (k, batch) in batches.enumerated() {
            let report = try model.accumulateGradients(batch, loss: loss, scale: scale, step: firstMicroBatch + k)
            lossSum += report.loss
            for (name, value) in report.components { componentSums[name, default: 0] += value }
        }
        let meanLoss = lossSum / Double(batches.count)
        lastComponents = componentSums.mapValues { $0 / Double(batches.count) }
        guard meanLoss.isFinite else { throw FuseTrainError.nonFinite(step: step + 1, what: "the loss (\(meanLoss))") }
        let norm = clipGradientNorm(parameters, maxNorm: settings.clip)
        guard norm.isFinite else { throw FuseTrainError.nonFinite(step: step + 1, what: "the gradient norm (\(norm))") }
        let lr = schedule.lr(step - settings.scheduleStart)
        optimizer.update(parameters, lr: lr)
        return (meanLoss, norm, lr)
    }

    /// Token-weighted mean loss over the whole held-out data, forward only.
    public func evaluate(_ eval: TrainingData) throws -> Double {
        var sum = 0.0, count = 0
        for batch in inOrderBatches(eval, batchSize: settings.batchSize) {
            let r = try model.evaluateLoss(batch, loss: loss)
            sum += r.loss * Double(r.tokens)
            count += r.tokens
        }
        return count > 0 ? sum / Double(count) : .nan
    }

    /// Loads a checkpoint into the parameters and the optimizer. `checkSettings` false: the checkpoint is
    /// the last of an earlier stage, whose settings (step count, schedule) legitimately differ.
    func restore(_ state: CheckpointState, into parameters: [Parameter], checkSettings: Bool = true) throws {
        let path = checkpointDirectory + "/" + Checkpoints.folderName(step: state.step)
        if checkSettings && state.settings != settings.json {
            throw FuseTrainError.badCheckpoint(path: path, reason: "it was written with other settings (\(state.settings.serialized())); "
                                               + "resume with the same flags (now \(settings.json.serialized()))")
        }
        if state.dataFingerprint != dataFingerprint {
            throw FuseTrainError.badCheckpoint(path: path, reason: "it was written for other training data (\(state.dataFingerprint.serialized()), now \(dataFingerprint.serialized())); resume with the same --data, --seq-len and tokenizer")
        }
        guard Set(state.parameters.keys) == Set(parameters.map(\.name)) else {
            let missing = parameters.map(\.name).filter { state.parameters[$0] == nil }.prefix(3)
            throw FuseTrainError.badCheckpoint(path: path, reason: "its parameters do not match the model's trainable ones (missing e.g. \(Array(missing))); resume with the same model and LoRA flags")
        }
        for p in parameters {
            guard let v = state.parameters[p.name], v.count == p.count,
                  state.firstMoments[p.name]?.count == p.count, state.secondMoments[p.name]?.count == p.count else {
                throw FuseTrainError.badCheckpoint(path: path, reason: "parameter \(p.name) or its Adam moments have the wrong size (expected \(p.count) values)")
            }
            p.value = v
        }
        optimizer.restore(step: state.step, first: state.firstMoments, second: state.secondMoments)
    }
}

// MARK: - Metrics log

/// metrics.jsonl: one JSON object per step, flushed per line. On resume the lines after the checkpoint's
/// step are dropped first, so the log of a resumed run reads like that of an uninterrupted one.
struct MetricsLog {
    let path: String
    let handle: FileHandle

    init(path: String, keepThrough step: Int) throws {
        self.path = path
        var kept = ""
        if step > 0, let old = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in old.split(separator: "\n") {
                if let s = (try? JSON.parse(String(line)))?["step"]?.int, s <= step { kept += line + "\n" }
            }
        }
        try writeFileAtomically(path: path, contents: kept)
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw FuseTrainError.unreadable(path: path, reason: "cannot open the metrics log for writing")
        }
        h.seekToEndOfFile()
        handle = h
    }

    mutating func append(_ line: JSON) throws {
        handle.write(Data((line.serialized() + "\n").utf8))
    }
}
