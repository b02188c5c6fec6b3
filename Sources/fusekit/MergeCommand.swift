import ArgumentParser
import Foundation
import FuseIO
import FuseMerge
import FuseReport
import FuseTensor

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge models of one architecture from a mergekit YAML config (a drop-in for mergekit-yaml).",
        discussion: """
        Every mergekit 0.1.5 method: linear, task_arithmetic, ties, dare_ties, dare_linear, breadcrumbs,
        breadcrumbs_ties, della, della_linear, sce, ram, ramplus_tl, slerp, nuslerp, multislerp, karcher,
        model_stock, nearswap, arcee_fusion, passthrough. Tensors stream one at a time; the output folder
        appears whole or not at all.

        Example:
          fusekit merge ties.yml ./merged --out-shard-size 2GB --threads 2
        """)

    @Argument(help: "mergekit YAML config.")
    var config: String

    @Argument(help: "The HF folder to write (must not exist unless --force).")
    var outDir: String

    @Option(name: .long, help: "Seed for random methods (DARE, DELLA); the same seed gives the same bytes with any --threads.")
    var seed: UInt64 = 0

    @Option(name: .customLong("out-shard-size"), help: "Largest shard, e.g. 5GB, 500MB (mergekit's 5B = 5e9 bytes also works).")
    var outShardSize = ByteSize(argument: "5B")!

    @Option(name: .long, help: "Output dtype (overrides the config's out_dtype): bf16, f16 or f32.")
    var dtype: OutputDType?

    @Flag(name: .long, help: "Replace OUT_DIR if it exists.")
    var force = false

    @Flag(name: .customLong("print-plan"), help: "Print the merge plan (one line per output tensor) and exit without merging.")
    var printPlan = false

    @OptionGroup var options: RunOptions

    func run() throws {
        options.apply()
        let text: String
        do { text = try String(contentsOfFile: config, encoding: .utf8) } catch {
            throw MergeError.io("\(config): cannot read the config (\(error.localizedDescription))")
        }
        let parsed = try MergeConfig.parse(yaml: text)
        if printPlan {
            let sources = try openModels(parsed, relativeTo: FileManager.default.currentDirectoryPath)
            print(try MergePlanner(config: parsed, sources: sources, outDTypeOverride: dtype?.dtype).plan())
            return
        }
        var run = MergeRunOptions()
        run.seed = seed
        run.outDType = dtype?.dtype
        run.maxShardBytes = outShardSize.bytes
        run.force = force
        let progress = Progress("merge", quiet: options.quiet)
        let timer = TensorTimer()
        var log = RunLog(command: "merge")
        log.config = ("mergekit-yaml", text)
        let cwd = FileManager.default.currentDirectoryPath
        log.inputs = parsed.referencedModels.map { ref in
            let path = ref.path.hasPrefix("/") ? ref.path : cwd + "/" + ref.path
            return RunLog.Input(role: parsed.baseModel == ref ? "base" : "model", name: ref.description, path: path, identity: modelIdentity(path: path))
        }
        let seed = self.seed
        run.finishOutput = { [log] folder, summary in
            var log = log
            log.status = .complete
            log.finished = Date()
            log.timings = [("total_seconds", summary.seconds)]
            log.measurements = .object([
                ("method", .string(summary.method)), ("tensors", .int(summary.tensors)), ("parameters", .int(summary.parameters)),
                ("bytes_written", .int(summary.bytesWritten)), ("seed", .number(String(seed))),
                ("warnings", .array(summary.warnings.map { .string($0) })),
                ("tensor_seconds", .object(timer.seconds.map { ($0.0, .double($0.1)) })),
            ])
            try log.write(to: folder)
        }
        let summary = try runMerge(config: parsed, outPath: outDir, options: run) { done, total, name in
            timer.mark(name)
            progress.update(done, total, name)
        }
        for w in summary.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        if options.json {
            printJSON(.object([
                ("output", .string(summary.output)), ("method", .string(summary.method)), ("tensors", .int(summary.tensors)),
                ("parameters", .int(summary.parameters)), ("bytes", .int(summary.bytesWritten)),
                ("seconds", .double(summary.seconds)), ("seed", .number(String(seed))),
                ("files", .array(summary.files.map { .string($0) })), ("warnings", .array(summary.warnings.map { .string($0) })),
            ]))
        } else {
            print("merged \(summary.method) into \(outDir): \(summary.tensors) tensors, \(summary.parameters.formatted()) parameters, "
                  + "\(formatBytes(summary.bytesWritten)) in \(formatSeconds(summary.seconds))")
        }
    }
}

/// Wall time per output tensor, from the executor's progress callbacks (each callback names the tensor
/// it starts; the time until the next one is charged to it).
final class TensorTimer: @unchecked Sendable {
    private let lock = NSLock()
    private var current: (String, Date)?
    private(set) var seconds: [(String, Double)] = []

    func mark(_ name: String) {
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        if let (n, t) = current { seconds.append((n, now.timeIntervalSince(t))) }
        current = name.isEmpty ? nil : (name, now)
    }
}
