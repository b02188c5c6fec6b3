import Foundation
import FuseIO
import FuseNN
import FuseTensor
import FuseTokenizers

// MARK: - Text to ids

/// Turns text into token ids. `addSpecialTokens` applies the tokenizer's post-processor (the BOS a
/// Llama tokenizer adds, nothing for GPT-2 or SmolLM2), exactly as the model was trained to expect.
public protocol TextEncoder {
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
}

extension Tokenizer: TextEncoder {}

// MARK: - Examples and sequences
//
// A JSONL file holds one example per line, either
//   {"text": "..."}                              causal LM loss on every token, or
//   {"prompt": "...", "completion": "..."}       loss on the completion's tokens only.
// Blank lines are skipped; other keys are ignored. One file holds one kind.
//
// Text examples are packed (HF run_clm's group_texts): each document is encoded with the tokenizer's
// special tokens, followed by EOS when the model has one, the documents are concatenated in file order,
// and the stream is cut into windows of seqLen + 1 tokens that overlap by one, so every token but the
// very first is predicted exactly once. Prompt/completion examples are not packed: each becomes one
// sequence, `encode(prompt + completion)` + EOS, truncated from the right to seqLen + 1 tokens, with
// the labels of the prompt's positions set to -1. The prompt's extent is the longest common prefix of
// that encoding with `encode(prompt)` (as TRL's completion-only collator: tokenizing the two halves
// separately would change the tokens at the seam).

/// One training sequence: `inputs[t]` is fed at position t, `labels[t]` is the id to predict there (the
/// next token) or -1 for no loss.
public struct TrainingSequence: Sendable, Equatable {
    public var inputs: [Int]
    public var labels: [Int]
    public var labelled: Int { labels.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    public init(inputs: [Int], labels: [Int]) { self.inputs = inputs; self.labels = labels }
}

public enum ExampleKind: String, Sendable { case text, promptCompletion = "prompt/completion" }

/// A tokenized JSONL file, cut into sequences of at most `seqLen` positions.
public struct TrainingData: Sendable {
    public let path: String
    public let kind: ExampleKind
    public let sequences: [TrainingSequence]
    /// Examples read (non-blank lines).
    public let examples: Int
    /// Prompt/completion examples dropped because truncation left no completion token.
    public let dropped: Int
    public var labelledTokens: Int { sequences.reduce(0) { $0 + $1.labelled } }

    public init(path: String, kind: ExampleKind, sequences: [TrainingSequence], examples: Int, dropped: Int) {
        self.path = path; self.kind = kind; self.sequences = sequences; self.examples = examples; self.dropped = dropped
    }

    /// Reads and tokenizes `path`. `eos` is appended to every document or completion (nil: nothing).
    public static func load(path: String, encoder: TextEncoder, eos: Int?, seqLen: Int) throws -> TrainingData {
        guard seqLen >= 1 else { throw FuseTrainError.badSetting(name: "--seq-len", reason: "must be at least 1, got \(seqLen)") }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw FuseTrainError.unreadable(path: path, reason: "\(error.localizedDescription); expected a UTF-8 JSONL file")
        }
        let rows = try parseLines(text, path: path)
        guard let kind = rows.first?.kind else { throw FuseTrainError.noData(path: path, reason: "no examples (the file is empty)") }
        var sequences: [TrainingSequence] = []
        var dropped = 0
        switch kind {
        case .text:
            var stream: [Int] = []
            for row in rows {
                var ids = encoder.encode(row.text, addSpecialTokens: true)
                if let eos, ids.last != eos { ids.append(eos) }
                stream += ids
            }
            var start = 0
            while stream.count - start >= 2 {
                let end = min(start + seqLen + 1, stream.count)
                sequences.append(TrainingSequence(inputs: Array(stream[start..<(end - 1)]), labels: Array(stream[(start + 1)..<end])))
                start += seqLen
            }
        case .promptCompletion:
            for row in rows {
                var ids = encoder.encode(row.text + row.completion, addSpecialTokens: true)
                if let eos, ids.last != eos { ids.append(eos) }
                let promptIDs = encoder.encode(row.text, addSpecialTokens: true)
                var promptLength = 0
                while promptLength < min(ids.count, promptIDs.count), ids[promptLength] == promptIDs[promptLength] { promptLength += 1 }
                if ids.count > seqLen + 1 { ids.removeLast(ids.count - seqLen - 1) }
                guard ids.count >= 2 else { dropped += 1; continue }
                let inputs = Array(ids.dropLast())
                // Position t predicts ids[t + 1]: a loss only where that token belongs to the completion.
                let labels = (0..<inputs.count).map { t in t + 1 >= max(promptLength, 1) ? ids[t + 1] : -1 }
                let sequence = TrainingSequence(inputs: inputs, labels: labels)
                if sequence.labelled == 0 { dropped += 1; continue }
                sequences.append(sequence)
            }
        }
        guard !sequences.isEmpty else {
            throw FuseTrainError.noData(path: path, reason: kind == .text ? "the documents hold fewer than 2 tokens in all"
                                        : "every completion was truncated away; raise --seq-len (now \(seqLen))")
        }
        return TrainingData(path: path, kind: kind, sequences: sequences, examples: rows.count, dropped: dropped)
    }

    struct Row { var kind: ExampleKind; var text: String; var completion: String }

    /// Validates every line before anything is tokenized; errors name file:line and the key.
    static func parseLines(_ text: String, path: String) throws -> [Row] {
        var rows: [Row] = []
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let json: JSON
            do { json = try JSON.parse(line) } catch {
                throw FuseTrainError.badLine(path: path, line: lineNumber, key: nil, reason: "not valid JSON (\(error))")
            }
            guard json.object != nil else {
                throw FuseTrainError.badLine(path: path, line: lineNumber, key: nil, reason: "expected a JSON object")
            }
            func string(_ key: String) throws -> String? {
                guard let v = json[key] else { return nil }
                guard let s = v.string else {
                    throw FuseTrainError.badLine(path: path, line: lineNumber, key: key, reason: "must be a string, got \(v.serialized())")
                }
                return s
            }
            let row: Row
            if let t = try string("text") {
                if json["prompt"] != nil || json["completion"] != nil {
                    throw FuseTrainError.badLine(path: path, line: lineNumber, key: "text", reason: "give either 'text' or 'prompt' and 'completion', not both")
                }
                row = Row(kind: .text, text: t, completion: "")
            } else if let p = try string("prompt") {
                guard let c = try string("completion") else {
                    throw FuseTrainError.badLine(path: path, line: lineNumber, key: "completion", reason: "missing (a 'prompt' needs a 'completion')")
                }
                row = Row(kind: .promptCompletion, text: p, completion: c)
            } else if json["completion"] != nil {
                throw FuseTrainError.badLine(path: path, line: lineNumber, key: "prompt", reason: "missing (a 'completion' needs a 'prompt')")
            } else {
                throw FuseTrainError.badLine(path: path, line: lineNumber, key: "text", reason: "missing")
            }
            if let first = rows.first, first.kind != row.kind {
                throw FuseTrainError.badLine(path: path, line: lineNumber, key: row.kind == .text ? "text" : "prompt",
                                             reason: "this line is a \(row.kind.rawValue) example but earlier lines are \(first.kind.rawValue); one file holds one kind")
            }
            rows.append(row)
        }
        return rows
    }
}

// MARK: - Order and batches

/// The order sequences are visited in: epoch after epoch, each a Fisher-Yates permutation drawn from
/// (seed, "fusekit.train.shuffle", epoch). Position g of the endless stream is sequence
/// `permutation(g / count)[g % count]`, so a run resumed at cursor g sees exactly what it would have.
public struct SequenceOrder: Sendable {
    public let count: Int
    public let seed: UInt64
    public let shuffle: Bool
    private var cachedEpoch = -1
    private var cached: [Int] = []

    public init(count: Int, seed: UInt64, shuffle: Bool = true) {
        self.count = count; self.seed = seed; self.shuffle = shuffle
    }

    public func permutation(epoch: Int) -> [Int] {
        var p = Array(0..<count)
        guard shuffle, count > 1 else { return p }
        var rng = SeededRNG(seed: seed, name: "fusekit.train.shuffle", chunk: epoch)
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            p.swapAt(i, j)
        }
        return p
    }

    public mutating func sequence(at position: Int) -> Int {
        let epoch = position / count
        if epoch != cachedEpoch { cached = permutation(epoch: epoch); cachedEpoch = epoch }
        return cached[position % count]
    }
}

/// The id fed at padded positions (their labels are -1, so any valid id works).
let paddingID = 0

/// Packs sequences into one micro-batch, padded on the right to the longest.
public func makeBatch(_ sequences: [TrainingSequence]) -> TrainingBatch {
    let length = sequences.map(\.inputs.count).max() ?? 0
    var tokens = [Int](repeating: paddingID, count: sequences.count * length)
    var labels = [Int](repeating: -1, count: sequences.count * length)
    for (b, s) in sequences.enumerated() {
        for t in 0..<s.inputs.count {
            tokens[b * length + t] = s.inputs[t]
            labels[b * length + t] = s.labels[t]
        }
    }
    return TrainingBatch(tokens: tokens, batch: sequences.count, length: length, labels: labels)
}

/// Micro-batches in file order over the whole data (evaluation and statistics).
public func inOrderBatches(_ data: TrainingData, batchSize: Int) -> [TrainingBatch] {
    stride(from: 0, to: data.sequences.count, by: max(1, batchSize)).map {
        makeBatch(Array(data.sequences[$0..<min($0 + max(1, batchSize), data.sequences.count)]))
    }
}
