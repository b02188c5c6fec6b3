import ArgumentParser
import Foundation
import FuseIO
import FuseModels

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt (greedy or sampled), streaming tokens to stdout.",
        discussion: """
        Examples:
          fusekit generate models/smollm2.gguf --prompt "The capital of France is" --max-tokens 20
          fusekit generate models/gemma3-270m.gguf --chat --prompt "Write a haiku" --temperature 0.7 --top-p 0.9 --seed 1
          fusekit generate ./tiny-llama --prompt-ids 1,5,9 --max-tokens 8 --json
        """)

    @OptionGroup var modelArguments: ModelArguments

    @Option(name: .long, help: "Prompt text (needs the model's tokenizer).")
    var prompt: String?

    @Option(name: .long, help: "Prompt as comma-separated token ids.")
    var promptIds: String?

    @Flag(name: .long, help: "Wrap the prompt in the model's chat template (ChatML for SmolLM2, Gemma's turns for Gemma 3).")
    var chat = false

    @Option(name: .long, help: "System message for --chat.")
    var system: String?

    @Option(name: .long, help: "Most new tokens.")
    var maxTokens = 128

    @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Keep the k most likely tokens (0 = off).")
    var topK = 0

    @Option(name: .long, help: "Nucleus sampling: keep the most likely tokens up to this probability (1 = off).")
    var topP: Float = 1

    @Option(name: .long, help: "Penalty for tokens already in the text (1 = off; 1.1-1.3 is typical).")
    var repetitionPenalty: Float = 1

    @Option(name: .long, help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Stop when this text appears (repeatable).")
    var stop: [String] = []

    @Flag(name: .long, help: "Do not stop at the model's end-of-sequence tokens (benchmarks).")
    var ignoreEos = false

    @OptionGroup var runOptions: RunOptions

    mutating func validate() throws {
        if (prompt == nil) == (promptIds == nil) { throw ValidationError("give exactly one of --prompt and --prompt-ids") }
        if maxTokens < 0 { throw ValidationError("--max-tokens must be >= 0") }
        if chat && prompt == nil { throw ValidationError("--chat needs --prompt text") }
        try SamplingOptions(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty).validate()
    }

    func run() throws {
        runOptions.apply()
        let (model, codec) = try modelArguments.load()
        var stops = stop
        var ids: [Int]
        if let promptIds { ids = try parseIDs(promptIds) } else {
            guard let codec else {
                throw ModelError.invalidArgument("FuseKit cannot read the tokenizer of \(modelArguments.model) yet; pass --prompt-ids")
            }
            var text = prompt ?? ""
            if chat {
                guard let template = ChatTemplate.forArchitecture(model.summary.architecture) else {
                    throw ModelError.invalidArgument("no chat template is known for architecture '\(model.summary.architecture)'")
                }
                text = template.render(user: text, system: system)
                stops += template.endOfTurn
            }
            // A chat template spells out its special tokens (Gemma's <bos>), so none are added.
            ids = try codec.encode(text, addSpecialTokens: !chat)
        }
        let options = GenerationOptions(maxTokens: maxTokens,
                                        sampling: SamplingOptions(temperature: temperature, topK: topK, topP: topP,
                                                                  repetitionPenalty: repetitionPenalty, seed: seed),
                                        stopTokenIDs: ignoreEos ? [] : nil, stopStrings: stops)
        let stream = !runOptions.json
        let result = try generate(model: model, prompt: ids, options: options, codec: codec) { piece in
            if stream { FileHandle.standardOutput.write(Data(piece.utf8)) }
        }
        if runOptions.json {
            printJSON(.object([
                ("text", .string(result.text)), ("tokens", .array(result.tokens.map { .int($0) })),
                ("prompt_tokens", .int(result.promptTokens)), ("stop_reason", .string(result.stopReason.rawValue)),
                ("prompt_seconds", .double(result.promptSeconds)), ("decode_seconds", .double(result.decodeSeconds)),
            ]))
            return
        }
        if codec == nil { print(result.tokens.map(String.init).joined(separator: ",")) } else { print() }
        if !runOptions.quiet {
            let rate = result.decodeSeconds > 0 ? Double(max(0, result.tokens.count - 1)) / result.decodeSeconds : 0
            FileHandle.standardError.write(Data(String(format: "%d prompt tokens in %.2fs, %d new tokens (%.1f tok/s), stop: %@\n",
                                                       result.promptTokens, result.promptSeconds, result.tokens.count, rate,
                                                       result.stopReason.rawValue).utf8))
        }
    }
}
