import ArgumentParser
import Foundation
import FuseIO
import FuseMerge

struct ApplyLoraCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply-lora",
        abstract: "Merge a PEFT LoRA adapter into its base model (W + scale·B·A) and write an HF folder.",
        discussion: """
        Reads adapter_config.json and adapter_model.safetensors (r, lora_alpha, use_rslora, rank_pattern,
        alpha_pattern, fan_in_fan_out, embeddings, modules_to_save) and computes what peft's
        merge_and_unload gives, tensor by tensor. Tokenizer and generation files are copied from MODEL.

        Example:
          fusekit apply-lora ./base ./adapter ./merged --dtype bf16
        """)

    @Argument(help: "The base model (HF folder, .safetensors or .gguf).")
    var model: String

    @Argument(help: "The PEFT adapter folder.")
    var adapterDir: String

    @Argument(help: "The HF folder to write.")
    var outDir: String

    @Option(name: .long, help: "Load and write the weights in this dtype: bf16, f16 or f32 (default: as stored).")
    var dtype: OutputDType?

    @Option(name: .long, help: "Largest shard, e.g. 5GB (default), 500MB.")
    var outShardSize: ByteSize?

    @Flag(name: .long, help: "Replace OUT_DIR if it exists.")
    var force = false

    @OptionGroup var options: RunOptions

    func run() throws {
        options.apply()
        let progress = Progress("apply-lora", quiet: options.quiet)
        let s = try applyLora(model: model, adapter: adapterDir, outPath: outDir, dtype: dtype?.dtype,
                              maxShardBytes: outShardSize?.bytes ?? 5_000_000_000, force: force,
                              extraFiles: model.hasSuffix(".gguf") ? try ConvertCommand.tokenizerFiles(for: WeightStore(path: model)) : [:]) { progress.update($0, $1, $2) }
        if options.json {
            printJSON(.object([
                ("output", .string(outDir)), ("tensors", .int(s.tensors)), ("adapted_modules", .int(s.adaptedModules)),
                ("replaced_tensors", .int(s.replacedTensors)), ("bytes_written", .int(s.bytesWritten)), ("seconds", .double(s.seconds)),
            ]))
        } else {
            print("wrote \(outDir): \(s.tensors) tensors, \(s.adaptedModules) LoRA modules merged, \(s.replacedTensors) replaced whole, in \(formatSeconds(s.seconds))")
        }
    }
}
