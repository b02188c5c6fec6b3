import ArgumentParser
import Foundation
import FuseIO
import FuseReport

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page showing what each source contributed to a fused model.",
        discussion: """
        RUN_DIR is the output folder of a fusekit merge, evolve, distill, train or transfer run (it holds
        run.json). For a merge the page shows each source's task-vector norm per layer, how much the merge
        moved toward each source, pairwise agreement of the sources, sign conflicts, the share of
        parameters changed, and where each layer came from (the input models must still be where the
        merge found them); for evolve the fitness curves, the winner's lineage and what survives of each
        source; for distill the alignment coverage, MinCE's choices and the loss components; for train
        and transfer the loss curves.

        Examples:
          fusekit report ./merged                       # writes ./merged/report.html
          fusekit report ./merged -o ties.html --json   # also prints the numbers
          fusekit report --compare ./a ./b -o diff.html # two models, tensor by tensor
        """)

    @Argument(help: "A run folder (with run.json).")
    var runDir: String?

    @Option(name: .customLong("compare"), parsing: .upToNextOption, help: "Compare two models (HF folders, .safetensors or .gguf) instead.")
    var compare: [String] = []

    @Option(name: [.short, .customLong("output")], help: "HTML file to write (default RUN_DIR/report.html, or comparison.html).")
    var output: String?

    @OptionGroup var options: RunOptions

    func validate() throws {
        if compare.isEmpty && runDir == nil { throw ValidationError("give a RUN_DIR or --compare A B") }
        if !compare.isEmpty && compare.count != 2 { throw ValidationError("--compare takes exactly two models, got \(compare.count)") }
        if !compare.isEmpty && runDir != nil { throw ValidationError("give either a RUN_DIR or --compare A B, not both") }
    }

    func run() throws {
        options.apply()
        let progress = Progress("report", quiet: options.quiet)
        let report: Report
        let path: String
        if compare.count == 2 {
            report = try Report.compare(compare[0], compare[1]) { progress.update($0, $1, $2) }
            path = output ?? "comparison.html"
        } else {
            let dir = runDir ?? "."
            report = try Report.build(runDirectory: dir) { progress.update($0, $1, $2) }
            path = output ?? dir + "/report.html"
        }
        try report.write(html: path)
        for w in report.page.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        if options.json {
            printJSON(.object([("report", .string(path)), ("summary", .array(report.page.summary.map { .string($0) })),
                               ("warnings", .array(report.page.warnings.map { .string($0) })), ("data", report.json)]))
        } else {
            for line in report.page.summary { print("- " + line) }
            print("wrote \(path) (\(report.page.sections.count) sections, \(report.page.plotCount) plots)")
        }
    }
}
