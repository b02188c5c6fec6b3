import ArgumentParser
import Foundation
import FuseDistill
import FuseIO
import FuseTensor

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

        Examples:
          fusekit distill examples/distill/spec.yml runs/fuse1
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

    @OptionGroup var runOptions: RunOptions

    func run() throws {
        runOptions.apply()
        let spec = try DistillSpec.load(path: arguments.spec)
        let cache = cacheDir ?? spec.cacheDirectory ?? DistillRun.defaultCacheDirectory()
        let run = DistillRun(spec: spec, cacheDirectory: cache)
        attach(run, quiet: runOptions.quiet || runOptions.json)
        let report = try run.run(outDirectory: arguments.outDir, resume: arguments.resume, force: arguments.force)
        printReport(report, spec: spec, json: runOptions.json)
    }
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
}
