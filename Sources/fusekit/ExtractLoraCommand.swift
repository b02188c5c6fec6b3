import ArgumentParser
import Foundation
import FuseIO
import FuseMerge

struct ExtractLoraCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract-lora",
        abstract: "Extract a PEFT LoRA adapter from a fine-tuned model and its base by truncated SVD of each weight delta.",
        discussion: """
        B·A is the best rank-R approximation of each linear weight's delta; the summary gives, per module,
        the residual the discarded singular values predict. Changed embeddings are saved whole.

        Example:
          fusekit extract-lora --model ./ft --base ./base ./adapter --rank 16
        """)

    @Option(name: .long, help: "The fine-tuned model.")
    var model: String

    @Option(name: .long, help: "The base model it was tuned from.")
    var base: String

    @Argument(help: "The adapter folder to write.")
    var outDir: String

    @Option(name: .long, help: "LoRA rank.")
    var rank: Int = 32

    @Flag(name: .long, help: "Replace OUT_DIR if it exists.")
    var force = false

    @OptionGroup var options: RunOptions

    mutating func validate() throws {
        if rank < 1 { throw ValidationError("--rank must be at least 1") }
    }

    func run() throws {
        options.apply()
        let progress = Progress("extract-lora", quiet: options.quiet)
        let s = try extractLora(model: model, base: base, outPath: outDir, rank: rank, force: force) { progress.update($0, $1, $2) }
        if options.json {
            printJSON(.object([
                ("output", .string(outDir)), ("rank", .int(s.rank)), ("modules", .int(s.modules)), ("seconds", .double(s.seconds)),
                ("modules_to_save", .array(s.fullModules.map { .string($0) })), ("skipped", .array(s.skipped.map { .string($0) })),
                ("errors", .array(s.errors.map { .object([("module", .string($0.module)), ("delta_norm", .double($0.deltaNorm)),
                                                          ("predicted_residual", .double($0.residual))]) })),
            ]))
        } else {
            let worst = s.errors.map { $0.deltaNorm > 0 ? $0.residual / $0.deltaNorm : 0 }.max() ?? 0
            print("wrote \(outDir): \(s.modules) LoRA modules at rank \(s.rank), worst relative residual \(String(format: "%.3g", worst)) in \(formatSeconds(s.seconds))")
            if !s.skipped.isEmpty { print("not representable as LoRA (changed but 1-D): \(s.skipped.joined(separator: ", "))") }
        }
    }
}
