import ArgumentParser
import Foundation
import FuseIO
import FuseModels
import FuseNN
import FuseReport
import FuseTrain

/// The training data flags `train` and `stats` share.
struct DataArguments: ParsableArguments {
    @Option(name: .long, help: "JSONL training data: {\"text\": ...} per line, or {\"prompt\": ..., \"completion\": ...} (loss on the completion only).")
    var data: String

    @Option(name: .customLong("seq-len"), help: "Tokens per sequence; longer text is packed into windows, longer examples truncated.")
    var seqLen = 256

    /// The model's tokenizer and end-of-sequence id (config.json's eos_token_id, the first when a list).
    static func tokenizer(model: String, store: WeightStore) throws -> (TextEncoder, Int?) {
        let tokenizer = try TokenizerLoader.load(model)
        var eos: Int?
        if let e = store.config?["eos_token_id"] { eos = e.int ?? e.array?.first?.int }
        return (tokenizer, eos)
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune a model (full or LoRA) on JSONL data with AdamW.",
        discussion: """
        AdamW (as torch.optim.AdamW) on a linear warm-up then cosine schedule (as transformers' \
        get_cosine_schedule_with_warmup), global-norm gradient clipping, gradient accumulation.

        OUT_DIR receives metrics.jsonl (one line per step), checkpoints/ (every --save-every steps, \
        with Adam moments and the data cursor: --resume continues with the same losses), and the result: \
        an HF folder for full fine-tuning, a PEFT adapter (adapter_config.json + \
        adapter_model.safetensors) with --lora-rank.

        Examples:
          fusekit train models/smollm2-135m --data facts.jsonl out/facts-lora --lora-rank 8 --steps 300 --lr 2e-4
          fusekit train ./gpt2 --data corpus.jsonl out/gpt2-ft --epochs 1 --eval held-out.jsonl --save-every 50
          fusekit train ./gpt2 --data corpus.jsonl out/gpt2-ft --epochs 1 --save-every 50 --resume
        """)

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var dataArguments: DataArguments

    @Argument(help: "Output folder (metrics, checkpoints, the trained model or adapter).")
    var outDir: String

    @Option(name: .long, help: "Held-out JSONL data, evaluated every --eval-every steps and at the end.")
    var eval: String?
    @Option(name: .customLong("eval-every"), help: "Evaluate every N steps (default: only at the end).")
    var evalEvery: Int?

    @Option(name: .customLong("lora-rank"), help: "Train a LoRA of this rank instead of every weight.")
    var loraRank: Int?
    @Option(name: .customLong("lora-alpha"), help: "LoRA alpha (scale = alpha / rank; default: 2 × rank).")
    var loraAlpha: Double?
    @Option(name: .customLong("lora-dropout"), help: "Dropout on the LoRA input.")
    var loraDropout = 0.0
    @Option(name: .customLong("lora-targets"), help: "Comma-separated module name suffixes to adapt.")
    var loraTargets = "q_proj,v_proj"

    @Option(name: .long, help: "Optimiser steps.")
    var steps: Int?
    @Option(name: .long, help: "Passes over the data (instead of --steps).")
    var epochs: Double?
    @Option(name: .long, help: "Peak learning rate (default: 2e-4 with LoRA, 5e-5 otherwise).")
    var lr: Double?
    @Option(name: .long, help: "Linear warm-up steps.")
    var warmup = 0
    @Option(name: .customLong("weight-decay"), help: "AdamW's decoupled weight decay.")
    var weightDecay = 0.0
    @Option(name: .customLong("batch-size"), help: "Sequences per micro-batch.")
    var batchSize = 4
    @Option(name: .customLong("grad-accum"), help: "Micro-batches per optimiser step.")
    var gradAccum = 1
    @Option(name: .long, help: "Clip the global gradient norm to this (0: no clipping).")
    var clip = 1.0
    @Option(name: .long, help: "Seed of the data order, LoRA initialisation and dropout.")
    var seed: UInt64 = 0
    @Option(name: .customLong("save-every"), help: "Write a checkpoint every N steps (and after the last), for --resume.")
    var saveEvery = 100
    @Flag(name: .long, help: "Continue from the newest checkpoint in OUT_DIR/checkpoints.")
    var resume = false
    @Flag(name: .long, help: "Start over even if OUT_DIR exists (its contents are removed).")
    var force = false

    @OptionGroup var options: RunOptions

    mutating func validate() throws {
        if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
        if let s = steps, s < 1 { throw ValidationError("--steps must be at least 1") }
        if let e = epochs, !(e > 0) { throw ValidationError("--epochs must be > 0") }
        if let r = loraRank, r < 1 { throw ValidationError("--lora-rank must be at least 1") }
        if !(0..<1).contains(loraDropout) { throw ValidationError("--lora-dropout must be in [0, 1)") }
        if batchSize < 1 || gradAccum < 1 { throw ValidationError("--batch-size and --grad-accum must be at least 1") }
        if dataArguments.seqLen < 1 { throw ValidationError("--seq-len must be at least 1") }
        if saveEvery < 1 { throw ValidationError("--save-every must be at least 1") }
        if resume && force { throw ValidationError("--resume continues OUT_DIR's run and --force starts over; give one") }
    }

    func run() throws {
        options.apply()
        let fm = FileManager.default
        let existing = (try? fm.contentsOfDirectory(atPath: outDir))?.filter { !$0.hasPrefix(".") } ?? []
        if !existing.isEmpty && !resume {
            guard force else { throw FuseTrainError.outputExists(path: outDir) }
            try fm.removeItem(atPath: outDir)
        }
        let store = try WeightStore(path: modelArguments.model)
        let model = try ModelRegistry.loadTrainable(store: store)
        let lora = loraRank.map {
            LoRASettings(rank: $0, alpha: Float(loraAlpha ?? Double(2 * $0)), dropout: Float(loraDropout),
                         targetModules: loraTargets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        if let lora { try model.attachLoRA(lora, seed: seed) }
        let (encoder, eos) = try DataArguments.tokenizer(model: modelArguments.model, store: store)
        let data = try TrainingData.load(path: dataArguments.data, encoder: encoder, eos: eos, seqLen: dataArguments.seqLen)
        let evalData = try eval.map { try TrainingData.load(path: $0, encoder: encoder, eos: eos, seqLen: dataArguments.seqLen) }

        var settings = TrainerSettings(
            steps: steps ?? Trainer.steps(epochs: epochs ?? 1, sequences: data.sequences.count, batchSize: batchSize, gradAccum: gradAccum),
            optimizer: AdamWSettings(lr: lr ?? (lora != nil ? 2e-4 : 5e-5), weightDecay: weightDecay))
        settings.batchSize = batchSize
        settings.gradAccum = gradAccum
        settings.warmup = warmup
        settings.clip = clip > 0 ? clip : nil
        settings.seed = seed
        settings.evalEvery = evalEvery
        settings.saveEvery = saveEvery
        let trainer = try Trainer(model: model, data: data, evalData: evalData, settings: settings, outputDirectory: outDir)
        let bar = TrainingProgress(total: settings.steps, quiet: options.quiet)
        if !options.quiet {
            FileHandle.standardError.write(Data(("train: \(data.examples) examples → \(data.sequences.count) sequences, \(data.labelledTokens) labelled tokens"
                + (data.dropped > 0 ? " (\(data.dropped) dropped: nothing left after truncation)" : "")
                + "; \(model.trainableParameters.reduce(0) { $0 + $1.count }.formatted()) trainable parameters, \(settings.steps) steps\n").utf8))
        }
        // run.json: written as `running` first, so a killed run still leaves a report-able record.
        try fm.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var runLog = RunLog(command: "train")
        runLog.inputs = [RunLog.Input(role: "model", name: modelArguments.model, path: modelArguments.model, identity: modelIdentity(path: modelArguments.model)),
                         RunLog.Input(role: "data", name: dataArguments.data, path: dataArguments.data, identity: modelIdentity(path: dataArguments.data))]
        runLog.logs = [("metrics", "metrics.jsonl")]
        try runLog.write(to: outDir)
        let summary: TrainSummary
        do { summary = try trainer.run(resume: resume) { bar.update($0) } } catch {
            runLog.status = .failed; runLog.finished = Date()
            try? runLog.write(to: outDir)
            throw error
        }
        runLog.status = .complete
        runLog.finished = Date()
        runLog.timings = [("training_seconds", summary.seconds), ("total_seconds", Date().timeIntervalSince(runLog.started))]
        runLog.measurements = .object([
            ("kind", .string(lora != nil ? "lora" : "full")), ("steps", .int(summary.steps)),
            ("resumed_from", summary.resumedFrom.map { .int($0) } ?? .null), ("tokens", .int(summary.tokens)),
            ("final_loss", summary.finalLoss.map { .double($0) } ?? .null), ("eval_loss", summary.finalEvalLoss.map { .double($0) } ?? .null),
        ])
        try runLog.write(to: outDir)

        // The result, next to the log and checkpoints.
        if let lora {
            try writeLoRAAdapter(model, settings: lora, baseModel: modelArguments.model, to: outDir)
        } else {
            try writeFullModel(model, to: outDir, config: store.config, sideFiles: store.folder,
                               extraFiles: try ConvertCommand.tokenizerFiles(for: store))
        }
        let rate = summary.seconds > 0 ? Double(summary.tokens) / summary.seconds : 0
        if options.json {
            printJSON(.object([
                ("output", .string(outDir)), ("kind", .string(lora != nil ? "lora" : "full")), ("steps", .int(summary.steps)),
                ("resumed_from", summary.resumedFrom.map { .int($0) } ?? .null),
                ("final_loss", summary.finalLoss.map { .double($0) } ?? .null),
                ("eval_loss", summary.finalEvalLoss.map { .double($0) } ?? .null),
                ("tokens", .int(summary.tokens)), ("seconds", .double(summary.seconds)), ("tokens_per_s", .double(rate)),
                ("metrics", .string(trainer.metricsPath)),
            ]))
        } else {
            var line = "wrote \(outDir) (\(lora != nil ? "PEFT adapter" : "HF folder")): \(summary.steps) steps"
            if let r = summary.resumedFrom { line += " (resumed at \(r))" }
            if let l = summary.finalLoss { line += String(format: ", loss %.4f", l) }
            if let e = summary.finalEvalLoss { line += String(format: ", eval loss %.4f", e) }
            line += ", \(Int(rate)) tokens/s, \(formatSeconds(summary.seconds))"
            print(line)
        }
    }
}

/// Training progress on stderr: a redrawn bar with loss, tokens/s and ETA on a terminal, a plain line
/// every few seconds otherwise.
final class TrainingProgress {
    let total: Int
    let enabled: Bool
    /// The stage shown first on each line ("train", "train pair-gemma3").
    let label: String
    let tty = isatty(2) != 0
    let start = Date()
    var lastPrint = Date.distantPast
    var firstStep: Int?

    init(total: Int, quiet: Bool, label: String = "train") { self.total = total; self.enabled = !quiet; self.label = label }

    func update(_ m: StepMetrics) {
        guard enabled else { return }
        let now = Date()
        let finished = m.step >= total
        guard finished || m.evalLoss != nil || now.timeIntervalSince(lastPrint) > (tty ? 0.2 : 10) else { return }
        lastPrint = now
        if firstStep == nil { firstStep = m.step - 1 }
        let done = m.step - (firstStep ?? 0)
        let elapsed = now.timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - m.step) : 0
        var detail = String(format: "loss %.4f lr %.2e %.0f tok/s", m.loss, m.lr, m.tokensPerSecond)
        if let e = m.evalLoss { detail += String(format: " eval %.4f", e) }
        if tty {
            let width = 24, filled = Int(Double(m.step) / Double(total) * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let text = "\r\(label) \(bar) \(m.step)/\(total) \(detail) eta \(formatSeconds(eta))"
            FileHandle.standardError.write(Data((text + "\u{1B}[K" + (finished ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data("\(label): step \(m.step)/\(total) \(detail) elapsed \(formatSeconds(elapsed)) eta \(formatSeconds(eta))\n".utf8))
        }
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Compute a model's diagonal Fisher or its linear layers' input Gram matrices on JSONL data.",
        discussion: """
        The files feed the fisher and regmean merge methods (docs/merge.md); their layout is in \
        docs/formats.md ("Statistics files"). Examples are run one at a time: per-example squared \
        gradients for the (empirical) Fisher, no padding rows in the Grams.

        Examples:
          fusekit stats ./math-ft --data math-train.jsonl --fisher math.fisher.safetensors --limit 256
          fusekit stats ./code-ft --data code-train.jsonl --gram code.gram.safetensors
        """)

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var dataArguments: DataArguments

    @Option(name: .long, help: "Write the diagonal Fisher here.")
    var fisher: String?
    @Option(name: .long, help: "Write the input Gram matrices here.")
    var gram: String?
    @Option(name: .long, help: "Use at most N sequences (in file order).")
    var limit: Int?
    @Flag(name: .long, help: "Replace the output file if it exists.")
    var force = false

    @OptionGroup var options: RunOptions

    mutating func validate() throws {
        if (fisher == nil) == (gram == nil) { throw ValidationError("give exactly one of --fisher OUT.safetensors or --gram OUT.safetensors") }
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        options.apply()
        let out = fisher ?? gram ?? ""
        if FileManager.default.fileExists(atPath: out) && !force { throw FuseIOError.outputExists(path: out) }
        let store = try WeightStore(path: modelArguments.model)
        let model = try ModelRegistry.loadTrainable(store: store)
        let (encoder, eos) = try DataArguments.tokenizer(model: modelArguments.model, store: store)
        let data = try TrainingData.load(path: dataArguments.data, encoder: encoder, eos: eos, seqLen: dataArguments.seqLen)
        let progress = Progress(fisher != nil ? "fisher" : "gram", quiet: options.quiet)
        let summary = fisher != nil
            ? try computeFisher(model, data: data, limit: limit, modelPath: modelArguments.model, to: out) { progress.update($0, $1) }
            : try computeGram(model, data: data, limit: limit, modelPath: modelArguments.model, to: out) { progress.update($0, $1) }
        if options.json {
            printJSON(.object([("output", .string(out)), ("kind", .string(summary.kind.rawValue)), ("examples", .int(summary.examples)),
                               ("tensors", .int(summary.tensors)), ("seconds", .double(summary.seconds))]))
        } else {
            print("wrote \(out): \(summary.kind.rawValue) of \(summary.tensors) tensors over \(summary.examples) examples in \(formatSeconds(summary.seconds))")
        }
    }
}
