import ArgumentParser
import Foundation
import FuseEval
import FuseIO
import FuseModels

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a model on a JSONL task (multiple choice, generation exact-match, perplexity) or a text file.",
        discussion: """
        Task files hold one JSON object per line; the kind follows from the keys (README, Task files):
          {"text": "..."}                                          perplexity
          {"context": "...", "choices": ["...", "..."], "answer": 1}  multiple choice: acc, acc_norm
          {"prompt": "...", "answer": "...", "stop": ["\\n"]}         generation: exact_match
        Token-id variants (text_ids, context_ids, choices_ids, prompt_ids, answer_ids) need no tokenizer.
        Examples:
          fusekit eval models/smollm2.gguf --task examples/tasks/multiple_choice.jsonl
          fusekit eval ./merged --perplexity corpus.txt --json
        """)

    @OptionGroup var modelArguments: ModelArguments

    @Option(name: .long, help: "A JSONL task file.")
    var task: String?

    @Option(name: .long, help: "A plain text file scored as one perplexity example.")
    var perplexity: String?

    @Option(name: .long, help: "Evaluate only the first N examples.")
    var limit: Int?

    @Option(name: .long, help: "Sequences per forward call when scoring choices.")
    var batchSize = 8

    @Flag(name: .long, help: "Print each example's result.")
    var verbose = false

    @OptionGroup var runOptions: RunOptions

    mutating func validate() throws {
        if (task == nil) == (perplexity == nil) { throw ValidationError("give exactly one of --task and --perplexity") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        runOptions.apply()
        let taskFile: TaskFile
        if let task { taskFile = try TaskFile(path: task) } else {
            let path = perplexity ?? ""
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw EvalError.cannotRead(path: path, reason: "not a readable UTF-8 text file")
            }
            guard !text.isEmpty else { throw EvalError.emptyTask(path: path) }
            taskFile = try TaskFile(path: path, bytes: Array(JSON.object([("text", .string(text))]).serialized().utf8))
        }
        let (model, codec) = try modelArguments.load()
        var evaluator = Evaluator(model: model, codec: codec, batchSize: batchSize, limit: limit)
        let progress = Progress("eval", quiet: runOptions.quiet || runOptions.json)
        evaluator.progress = { progress.update($0, $1) }
        let start = Date()
        let report = try evaluator.run(taskFile)
        let seconds = Date().timeIntervalSince(start)
        if runOptions.json {
            printJSON(.object([
                ("task", .string(report.task)), ("kind", .string(report.kind.rawValue)), ("examples", .int(report.examples)),
                ("metrics", .object(report.metrics.sorted { $0.key < $1.key }.map { ($0.key, .double($0.value)) })),
                ("seconds", .double(seconds)),
            ]))
            return
        }
        if verbose { report.details.forEach { print($0) } }
        print("\(report.task) (\(report.kind.rawValue), \(report.examples) examples, \(formatSeconds(seconds)))")
        for (k, v) in report.metrics.sorted(by: { $0.key < $1.key }) { print("  " + k.padding(toLength: 18, withPad: " ", startingAt: 0) + String(format: "%.6g", v)) }
    }
}
