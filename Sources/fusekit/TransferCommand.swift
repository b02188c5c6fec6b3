import ArgumentParser
import Foundation
import FuseIO
import FuseReport
import FuseTransfer

struct TransferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "Parametric knowledge transfer: initialise a student's LoRA from a larger teacher's sensitive weights, then train it.",
        discussion: """
        ParaKnowTransfer (arXiv 2310.11451): sensitivity |θ ⊙ ∂L/∂θ| of the teacher on seed samples picks
        the teacher layers for the student's depth and the block of each matrix to keep; truncated SVD of
        each block initialises the student's LoRA (the student's weights are shifted by −s·B₀A₀ so the
        start is exactly the student), and the LoRA is trained. OUT_DIR gets extraction/ (sensitivity and
        the initial factors), adapter/ (the trained PEFT adapter), delta_adapter/ (−B₀A₀, the base shift
        as a PEFT adapter), merged/ (the student with everything folded in), metrics.jsonl, checkpoints/
        and run.json. The spec's keys: docs/transfer.md.

        Example:
          fusekit transfer examples/transfer/spec.yml out/transfer
          fusekit transfer examples/transfer/spec.yml out/transfer --resume
        """)

    @Argument(help: "Transfer spec (YAML).")
    var spec: String

    @Argument(help: "Output folder.")
    var outDir: String

    @Flag(name: .long, help: "Continue an interrupted run: reuse the extraction and the newest training checkpoint.")
    var resume = false

    @Flag(name: .long, help: "Start over even if OUT_DIR exists (its contents are removed).")
    var force = false

    @OptionGroup var options: RunOptions

    func validate() throws {
        if resume && force { throw ValidationError("--resume continues OUT_DIR's run and --force starts over; give one") }
    }

    func run() throws {
        options.apply()
        let text: String
        do { text = try String(contentsOfFile: spec, encoding: .utf8) } catch {
            throw TransferError.spec(key: "(file)", what: "\(spec): cannot read (\(error.localizedDescription))")
        }
        let directory = (URL(fileURLWithPath: spec).deletingLastPathComponent().path as NSString).standardizingPath
        let parsed = try TransferSpec.parse(yaml: text, directory: directory)
        let fm = FileManager.default
        let existing = (try? fm.contentsOfDirectory(atPath: outDir))?.filter { !$0.hasPrefix(".") } ?? []
        if !existing.isEmpty && !resume {
            guard force else { throw FuseIOError.outputExists(path: outDir) }
            try fm.removeItem(atPath: outDir)
        }
        try fm.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var log = RunLog(command: "transfer")
        log.config = ("fusekit-transfer", text)
        log.inputs = [("teacher", parsed.teacher), ("student", parsed.student), ("data", parsed.seeds), ("data", parsed.training.data)]
            .map { RunLog.Input(role: $0.0, name: $0.1, path: $0.1, identity: modelIdentity(path: $0.1)) }
        try log.write(to: outDir)
        let bar = TrainingProgress(total: parsed.training.steps, quiet: options.quiet)
        let quiet = options.quiet
        do {
            let summary = try TransferRun.run(spec: parsed, outDir: outDir, resume: resume, tokenizer: { path, store in
                try DataArguments.tokenizer(model: path, store: store)
            }, log: { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } }, observe: { bar.update($0) })
            log.status = .complete
            log.finished = Date()
            log.timings = [("sensitivity_seconds", summary.sensitivitySeconds), ("extraction_seconds", summary.extractionSeconds),
                           ("training_seconds", summary.training.seconds), ("total_seconds", Date().timeIntervalSince(log.started))]
            log.measurements = .object([
                ("layer_map", .array(summary.layerMap.map { .int($0) })), ("modules", .int(summary.modules)),
                ("seed_samples", .int(summary.seedSamples)), ("truncation_energy_lost", .double(summary.truncationLoss)),
                ("step0_loss_difference", .double(summary.stepZeroLossDifference)),
                ("final_loss", summary.training.finalLoss.map { .double($0) } ?? .null),
                ("eval_loss", summary.training.finalEvalLoss.map { .double($0) } ?? .null),
                ("losses", .array(summary.training.losses.map { .double($0) })),
            ])
            log.logs = [("metrics", "metrics.jsonl")]
            try log.write(to: outDir)
            if options.json {
                printJSON(log.measurements)
            } else {
                print("transferred \(summary.modules) modules (teacher layers \(summary.layerMap)) and trained \(summary.training.steps) steps"
                      + (summary.training.finalLoss.map { String(format: ", loss %.4f", $0) } ?? "")
                      + (summary.training.finalEvalLoss.map { String(format: ", eval loss %.4f", $0) } ?? "")
                      + String(format: "; step-0 loss change %.2e; wrote %@", summary.stepZeroLossDifference, outDir))
            }
        } catch {
            log.status = .failed
            log.finished = Date()
            try? log.write(to: outDir)
            throw error
        }
    }
}
