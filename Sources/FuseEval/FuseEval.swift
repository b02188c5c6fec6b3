// FuseEval owns evaluation: perplexity on text, multiple-choice log-likelihood (acc and acc_norm as
// lm-evaluation-harness computes them) and generation exact-match, over JSONL task files (format in
// README.md, examples under examples/tasks/). It must not know about merging; evolution calls it.
import Foundation
import FuseIO
import FuseModels

/// Every error FuseEval raises: file, line and what is wrong.
public enum EvalError: Error, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    case emptyTask(path: String)
    case malformedLine(path: String, line: Int, what: String)
    case mixedKinds(path: String, line: Int, expected: String, got: String)
    case needsTokenizer(path: String, line: Int)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason): return "\(path): cannot read (\(reason))"
        case let .emptyTask(path): return "\(path): the task file has no examples; expected one JSON object per line (see README, Task files)"
        case let .malformedLine(path, line, what): return "\(path):\(line): \(what)"
        case let .mixedKinds(path, line, expected, got):
            return "\(path):\(line): a \(got) example in a \(expected) task; a task file holds one kind"
        case let .needsTokenizer(path, line):
            return "\(path):\(line): the example is text but no tokenizer was given; give token ids (\"*_ids\" fields) or a model with a tokenizer"
        case let .invalidArgument(what): return what
        }
    }
}

/// Text or, when no tokenizer is at hand, token ids.
public enum TaskInput: Equatable, Sendable {
    case text(String)
    case ids([Int])

    func tokens(_ codec: TokenCodec?, path: String, line: Int) throws -> [Int] {
        switch self {
        case let .ids(ids): return ids
        case let .text(s):
            guard let codec else { throw EvalError.needsTokenizer(path: path, line: line) }
            return try codec.encode(s)
        }
    }
    var text: String? { if case let .text(s) = self { return s }; return nil }
}

public enum TaskKind: String, Sendable { case perplexity, multipleChoice = "multiple_choice", generation }

public enum TaskExample: Equatable, Sendable {
    /// `{"text": ...}` or `{"text_ids": [...]}`
    case text(TaskInput)
    /// `{"context": ..., "choices": [...], "answer": i, "target_delimiter": " "}` (or `context_ids` /
    /// `choices_ids`); each continuation is delimiter + choice, as in lm-evaluation-harness.
    case multipleChoice(context: TaskInput, choices: [TaskInput], answer: Int, delimiter: String)
    /// `{"prompt": ..., "answer": ..., "stop": [...], "max_tokens": n}` (or `prompt_ids` / `answer_ids`)
    case generation(prompt: TaskInput, answer: TaskInput, stop: [String], maxTokens: Int?)

    public var kind: TaskKind {
        switch self {
        case .text: return .perplexity
        case .multipleChoice: return .multipleChoice
        case .generation: return .generation
        }
    }
}
