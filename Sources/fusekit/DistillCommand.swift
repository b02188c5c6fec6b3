import ArgumentParser
import Foundation
import FuseDistill
import FuseIO
import FuseReport
import FuseTensor
import FuseTrain

/// `fusekit distill SPEC.yml OUT_DIR` and `fusekit distill capture SPEC.yml OUT_DIR`.
struct DistillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "FuseLLM / FuseChat knowledge fusion across tokenizers: capture, align, fuse, train.",
        discussion: """
        The spec (YAML) names the target, the sources, the corpus and the fusion; Sources/FuseDistill/Spec.swift \
        lists every key and examples/distill/spec.yml uses them all. Captures, vocabulary mappings and fused \
        targets are cached by content (model, corpus, k) under cache_dir (docs/formats.md, "Top-k capture \
        files"), so reruns and --resume recompute nothing that finished.

        Training (λ·CE + (1−λ)·soft-target loss, full or LoRA) writes OUT_DIR/metrics.jsonl (loss, ce, soft \
        per step), checkpoints/ (--resume after a crash or kill -9 continues with the same losses), model/ \
        (an HF folder; LoRA: adapter/ too) and run.json. With fusechat.enabled, one copy of the target is \
        trained per source pair under OUT_DIR/pairs/ and the copies are merged (sce or any merge method) \
        into OUT_DIR/model, with the merge config kept as OUT_DIR/merge.yml.

        corpus.domains (or corpus.held_out) names held-out texts whose perplexity under the target is \
        measured before and after training (run.json, `fusekit report`).

        --add-source MODEL (repeatable) adds a model to a finished run: only it is captured, the fused \
        targets are rebuilt over all sources, and training goes on from the run's last checkpoint \
        (weights, Adam state, step count) for training.epochs more passes with the lr schedule restarted. \
        OUT_DIR/spec.yml then lists the added source; --resume after a crash continues the same stage. \
        A spec with one more source given with --resume does the same.

        Examples:
          fusekit distill examples/distill/spec.yml runs/fuse1
          fusekit distill examples/distill/spec.yml runs/fuse1 --add-source new.gguf
          fusekit distill capture examples/distill/spec.yml captures/
        """,
        subcommands: [DistillRunCommand.self, DistillCaptureCommand.self],
        defaultSubcommand: DistillRunCommand.self)
}

struct DistillArguments: ParsableArguments {
    @Argument(help: "The distill spec (YAML).")
    var spec: String

    @Argument(help: "The output folder.")
    var outDir: String

    @Flag(name: .long, help: "Continue a run whose output folder exists (finished stages are reused).")
    var resume = false

    @Flag(name: .long, help: "Replace an existing output folder.")
    var force = false
}

struct DistillRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Capture every model, align the sources to the target, fuse, then train (the default subcommand).")

    @OptionGroup var arguments: DistillArguments

    @Option(name: .long, help: "Cache folder for captures, mappings and fused targets (default: spec cache_dir, $FUSEKIT_CACHE_DIR or ~/.cache/fusekit).")
    var cacheDir: String?

    @Option(name: .customLong("add-source"), help: "Add a model to a finished run: capture only it, fuse again, and train on from the last checkpoint (repeatable).")
    var addSource: [String] = []

    @OptionGroup var runOptions: RunOptions

    mutating func validate() throws {
        if arguments.resume && arguments.force { throw ValidationError("give --resume or --force, not both") }
        if arguments.force && !addSource.isEmpty { throw ValidationError("--add-source continues a finished run; it cannot be combined with --force") }
    }

    func run() throws {
        runOptions.apply()
        let given = try DistillSpec.load(path: arguments.spec)
        let plan = try DistillPlan.make(spec: given, outDirectory: arguments.outDir, resume: arguments.resume, force: arguments.force, adding: addSource)
        let spec = plan.spec
        let cache = cacheDir ?? spec.cacheDirectory ?? DistillRun.defaultCacheDirectory()
        let run = DistillRun(spec: spec, cacheDirectory: cache)
        attach(run, quiet: runOptions.quiet || runOptions.json)
        // run.json: `running` as soon as OUT_DIR exists, `complete` or `failed` at the end.
        var log = RunLog(command: "distill")
        log.config = ("fusekit-distill", (try? String(contentsOfFile: arguments.spec, encoding: .utf8)) ?? "")
        log.inputs = [RunLog.Input(role: "target", name: spec.target, path: spec.target, identity: modelIdentity(path: spec.target))]
            + spec.sources.map { RunLog.Input(role: "source", name: $0.name, path: $0.model, identity: modelIdentity(path: $0.model)) }
            + [RunLog.Input(role: "data", name: spec.corpus.train, path: spec.corpus.train, identity: modelIdentity(path: spec.corpus.train))]
        let out = arguments.outDir
        var outputReady = false
        run.onOutputReady = { [log] dir in outputReady = true; try log.write(to: dir) }
        let report: DistillReport
        do { report = try run.run(outDirectory: out, resume: arguments.resume, force: arguments.force, plan: plan) } catch {
            if outputReady { log.status = .failed; log.finished = Date(); try? log.write(to: out) }
            throw error
        }
        log.status = .complete
        log.finished = Date()
        if let copy = try? String(contentsOfFile: out + "/spec.yml", encoding: .utf8) { log.config = ("fusekit-distill", copy) }   // lists added sources
        log.timings = distillTimings(report) + [("total_seconds", Date().timeIntervalSince(log.started))]
        log.measurements = distillMeasurements(report, spec: spec)
        log.logs = report.training.map { t in
            let relative = t.directory.hasSuffix("/pairs/" + t.name) ? "pairs/\(t.name)/metrics.jsonl" : "metrics.jsonl"
            return (report.training.count == 1 ? "metrics" : "metrics " + t.name, relative)
        } + [("distill", "distill.json")]
        try log.write(to: out)
        printReport(report, spec: spec, json: runOptions.json)
    }
}

/// Seconds per stage, for run.json.
func distillTimings(_ r: DistillReport) -> [(String, Double)] {
    r.captures.map { ("capture_seconds " + $0.name, $0.stats.seconds) }
        + r.alignment.map { ("align_fuse_seconds " + $0.source, $0.seconds) }
        + r.training.map { ("training_seconds " + $0.name, $0.summary.seconds) }
        + (r.merge.map { [("merge_seconds", $0.seconds)] } ?? [])
        + r.domainSeconds.map { ("perplexity_seconds " + $0.label, $0.seconds) }
}

/// run.json's measurements: alignment coverage per source, MinCE choices (or AvgCE mean weights) per
/// candidate, and each training's final loss with its components.
func distillMeasurements(_ r: DistillReport, spec: DistillSpec) -> JSON {
    .object([
        ("fusion", .string(spec.fusion.rawValue)), ("lambda", .double(spec.lambda)), ("sequences", .int(r.sequences)),
        ("alignment_coverage", .object(r.alignment.map { ($0.source, .double($0.coverage)) })),
        ("one_hot_fraction", .object(r.alignment.map { a in
            (a.source, .double(a.targetPositions > 0 ? Double(a.oneHotPositions) / Double(a.targetPositions) : 0)) })),
        ("min_ce_chosen", .object(r.fused.map { f in
            (f.name, .object(f.log.names.enumerated().map { ($1, .int(f.log.chosen[$0])) })) })),
        ("mean_weight", .object(r.fused.map { f in
            (f.name, .object(f.log.names.enumerated().map { ($1, .double(f.log.sequences > 0 ? f.log.weightSums[$0] / Double(f.log.sequences) : 0)) })) })),
        ("training", .object(r.training.map { t in
            (t.name, .object([
                ("steps", .int(t.summary.steps)), ("tokens", .int(t.summary.tokens)),
                ("resumed_from", t.summary.resumedFrom.map { .int($0) } ?? .null),
                ("final_loss", t.summary.finalLoss.map { .double($0) } ?? .null),
            ] + t.finalComponents.sorted { $0.key < $1.key }.map { ("final_" + $0.key, JSON.double($0.value)) }))
        })),
        ("merge", r.merge.map { .object([("method", .string($0.method)), ("output", .string($0.output))]) } ?? .null),
        ("stages", .array(r.stages.map(\.json))),
        ("domain_perplexity", r.domainJSON),
    ])
}

struct DistillCaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Only capture: store each model's top-k next-token distributions over the corpus in OUT_DIR.",
        discussion: "OUT_DIR becomes a cache folder: point the spec's cache_dir (or --cache-dir) at it to reuse the captures.")

    @OptionGroup var arguments: DistillArguments
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        runOptions.apply()
        let spec = try DistillSpec.load(path: arguments.spec)
        if FileManager.default.fileExists(atPath: arguments.outDir), !arguments.resume, !arguments.force {
            throw DistillError.outputExists(path: arguments.outDir)
        }
        let run = DistillRun(spec: spec, cacheDirectory: arguments.outDir)
        attach(run, quiet: runOptions.quiet || runOptions.json)
        var report = DistillReport()
        let (_, corpus) = try run.loadCorpus()
        report.sequences = corpus.sequences.count; report.corpusHash = corpus.hash
        _ = try run.capture(corpus: corpus, report: &report)
        try writeFileAtomically(path: arguments.outDir + "/capture.json", contents: report.json(spec: spec).serialized(indent: 2) + "\n")
        printReport(report, spec: spec, json: runOptions.json)
    }
}

private func attach(_ run: DistillRun, quiet: Bool) {
    var bars: [String: Progress] = [:]
    run.progress = { stage, done, total in
        let bar = bars[stage] ?? Progress(stage, quiet: quiet)
        bars[stage] = bar
        let elapsed = Date().timeIntervalSince(bar.start)
        bar.update(done, total, elapsed > 0 && stage.hasPrefix("capture") ? String(format: "%.0f tok/s", Double(done) / elapsed) : "")
    }
    var trainingBars: [String: TrainingProgress] = [:]
    run.trainingProgress = { stage, m in
        let bar = trainingBars[stage] ?? TrainingProgress(total: m.totalSteps, quiet: quiet, label: stage)
        trainingBars[stage] = bar
        bar.update(m)
    }
    if !quiet { run.log = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
}

private func printReport(_ report: DistillReport, spec: DistillSpec, json: Bool) {
    if json { printJSON(report.json(spec: spec)); return }
    print("corpus: \(report.sequences) sequences")
    for c in report.captures {
        print(String(format: "capture %@: %d tokens, %.0f tokens/s, %d/%d shards reused", c.name, c.stats.tokensComputed,
                     c.stats.tokensPerSecond, c.stats.shardsReused, c.stats.shardsTotal))
    }
    for a in report.alignment {
        print(String(format: "align %@: %.1f%% of %d target positions aligned, %.1f%% one-hot", a.source, 100 * a.coverage,
                     a.targetPositions, a.targetPositions > 0 ? 100 * Double(a.oneHotPositions) / Double(a.targetPositions) : 0))
    }
    for f in report.fused {
        let choices = f.log.names.enumerated().map { "\($1) \(f.log.chosen[$0])" }.joined(separator: ", ")
        print("fused \(f.name): \(f.log.sequences) sequences -> \(f.folder)" + (spec.fusion == .minCE ? " (MinCE chose: \(choices))" : ""))
    }
    for t in report.training {
        let parts = t.finalComponents.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: ", ")
        print("trained \(t.name): \(t.summary.steps) steps" + (t.summary.resumedFrom.map { " (resumed at \($0))" } ?? "")
              + (t.summary.finalLoss.map { String(format: ", loss %.4f", $0) } ?? "") + (parts.isEmpty ? "" : " (\(parts))")
              + String(format: ", %.0f tokens/s -> %@", t.summary.seconds > 0 ? Double(t.summary.tokens) / t.summary.seconds : 0, t.model))
    }
    if let m = report.merge { print("merged the pairwise targets with \(m.method) -> \(m.output) (config \(m.config))") }
    if let stage = report.stages.last, stage.kind == .addSource {
        print("stage \(stage.index): added \(stage.added.map(\.name).joined(separator: ", "))"
              + (stage.continuedFrom.map { from in ", trained on from step \(from)" + (stage.lastStep.map { " to \($0)" } ?? "") } ?? ""))
    }
    for d in report.domains {
        print("held-out perplexity \(d.name) (\(d.tokens) tokens): " + d.values.map { String(format: "%@ %.3f", $0.label, $0.perplexity) }.joined(separator: ", "))
    }
}
