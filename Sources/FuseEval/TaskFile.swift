import Foundation
import FuseIO

/// A JSONL task file: one example per non-empty line, all of one kind (inferred from the keys).
public struct TaskFile: Sendable {
    public let path: String
    public let kind: TaskKind
    public let examples: [TaskExample]
    /// 1-based line number of each example (for error messages).
    public let lines: [Int]

    public init(path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw EvalError.cannotRead(path: path, reason: (error as NSError).localizedDescription)
        }
        try self.init(path: path, bytes: Array(data))
    }

    public init(path: String, bytes: [UInt8]) throws {
        var examples: [TaskExample] = [], lines: [Int] = []
        var kind: TaskKind?
        var lineNumber = 0
        for raw in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = Array(raw)
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            let json: JSON
            do { json = try JSON.parse(line) } catch let e as JSON.ParseError {
                throw EvalError.malformedLine(path: path, line: lineNumber, what: "invalid JSON at column \(e.offset + 1): \(e.message)")
            }
            let example = try TaskFile.example(json, path: path, line: lineNumber)
            if let kind, kind != example.kind {
                throw EvalError.mixedKinds(path: path, line: lineNumber, expected: kind.rawValue, got: example.kind.rawValue)
            }
            kind = example.kind
            examples.append(example); lines.append(lineNumber)
        }
        guard let kind, !examples.isEmpty else { throw EvalError.emptyTask(path: path) }
        self.path = path; self.kind = kind; self.examples = examples; self.lines = lines
    }

    static func input(_ json: JSON, _ key: String, path: String, line: Int) throws -> TaskInput? {
        if let v = json[key] {
            guard let s = v.string else { throw EvalError.malformedLine(path: path, line: line, what: "'\(key)' must be a string") }
            return .text(s)
        }
        if let v = json[key + "_ids"] { return .ids(try ids(v, key + "_ids", path: path, line: line)) }
        return nil
    }

    static func ids(_ v: JSON, _ key: String, path: String, line: Int) throws -> [Int] {
        guard let a = v.array else { throw EvalError.malformedLine(path: path, line: line, what: "'\(key)' must be an array of token ids") }
        return try a.map {
            guard let i = $0.int, i >= 0 else { throw EvalError.malformedLine(path: path, line: line, what: "'\(key)' holds \($0.serialized()), not a token id") }
            return i
        }
    }

    static func example(_ json: JSON, path: String, line: Int) throws -> TaskExample {
        guard json.object != nil else { throw EvalError.malformedLine(path: path, line: line, what: "expected a JSON object") }
        let bad = { (what: String) in EvalError.malformedLine(path: path, line: line, what: what) }
        if let context = try input(json, "context", path: path, line: line) {
            var choices: [TaskInput]
            if let c = json["choices"] {
                guard let a = c.array, a.allSatisfy({ $0.string != nil }) else { throw bad("'choices' must be an array of strings") }
                choices = a.compactMap(\.string).map { .text($0) }
            } else if let c = json["choices_ids"] {
                guard let a = c.array else { throw bad("'choices_ids' must be an array of token id arrays") }
                choices = try a.map { .ids(try ids($0, "choices_ids", path: path, line: line)) }
            } else { throw bad("a multiple-choice example needs 'choices' (or 'choices_ids')") }
            guard choices.count >= 2 else { throw bad("'choices' needs at least 2 entries, got \(choices.count)") }
            guard let answer = json["answer"]?.int else { throw bad("'answer' must be the index of the correct choice") }
            guard answer >= 0, answer < choices.count else { throw bad("'answer' \(answer) is not an index into \(choices.count) choices") }
            var delimiter = " "
            if let d = json["target_delimiter"] {
                guard let text = d.string else { throw bad("'target_delimiter' must be a string") }
                delimiter = text
            }
            return .multipleChoice(context: context, choices: choices, answer: answer, delimiter: delimiter)
        }
        if let prompt = try input(json, "prompt", path: path, line: line) {
            guard let answer = try input(json, "answer", path: path, line: line) else { throw bad("a generation example needs 'answer' (or 'answer_ids')") }
            var stop: [String] = []
            if let s = json["stop"] {
                guard let a = s.array, a.allSatisfy({ $0.string != nil }) else { throw bad("'stop' must be an array of strings") }
                stop = a.compactMap(\.string)
            }
            var maxTokens: Int?
            if let m = json["max_tokens"] {
                guard let v = m.int, v > 0 else { throw bad("'max_tokens' must be a positive integer") }
                maxTokens = v
            }
            return .generation(prompt: prompt, answer: answer, stop: stop, maxTokens: maxTokens)
        }
        if let text = try input(json, "text", path: path, line: line) { return .text(text) }
        throw bad("unknown example: expected 'text' (perplexity), 'context' + 'choices' + 'answer' (multiple choice) or 'prompt' + 'answer' (generation)")
    }
}
