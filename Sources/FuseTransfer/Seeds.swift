import Foundation
import FuseEval
import FuseIO
import FuseNN
import FuseTrain

/// Seed samples as one-sequence batches with the loss on the answer only. Accepts FuseTrain's
/// `{"prompt", "completion"}` lines and `fusekit eval` task files (`{"prompt", "answer"}` generation,
/// `{"context", "choices", "answer"}` multiple choice → context + delimiter + correct choice), with
/// text or `_ids` fields. The prompt's extent is the longest common prefix of encode(prompt + answer)
/// with encode(prompt), as FuseTrain does.
public func loadSeedSamples(path: String, encoder: (any TextEncoder)?, eos: Int?, seqLen: Int, limit: Int? = nil) throws -> [TrainingBatch] {
    let firstLine = (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").first { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    var pairs: [(prompt: [Int], answer: [Int])] = []
    if let line = firstLine, let json = try? JSON.parse(String(line)), json["completion"] != nil {
        guard let encoder else { throw TransferError.invalidArgument("\(path): text seed samples need the teacher's tokenizer") }
        let data = try TrainingData.load(path: path, encoder: encoder, eos: eos, seqLen: seqLen)
        return data.sequences.prefix(limit ?? Int.max).map { s in
            TrainingBatch(tokens: s.inputs, batch: 1, length: s.inputs.count, labels: s.labels)
        }
    }
    let task = try TaskFile(path: path)
    func ids(_ input: TaskInput, prefix: String = "") throws -> [Int] {
        switch input {
        case let .ids(v): return v
        case let .text(t):
            guard let encoder else { throw TransferError.invalidArgument("\(path): text seed samples need the teacher's tokenizer") }
            return encoder.encode(prefix + t, addSpecialTokens: false)
        }
    }
    for example in task.examples {
        switch example {
        case let .generation(prompt, answer, _, _):
            if case let .text(p) = prompt, case let .text(a) = answer, let encoder {
                let whole = encoder.encode(p + a, addSpecialTokens: true), head = encoder.encode(p, addSpecialTokens: true)
                let cut = zip(whole, head).prefix { $0 == $1 }.count
                pairs.append((Array(whole[..<cut]), Array(whole[cut...])))
            } else {
                pairs.append((try ids(prompt), try ids(answer)))
            }
        case let .multipleChoice(context, choices, answer, delimiter):
            if case let .text(c) = context, case let .text(a) = choices[answer], let encoder {
                let whole = encoder.encode(c + delimiter + a, addSpecialTokens: true), head = encoder.encode(c, addSpecialTokens: true)
                let cut = zip(whole, head).prefix { $0 == $1 }.count
                pairs.append((Array(whole[..<cut]), Array(whole[cut...])))
            } else {
                pairs.append((try ids(context), try ids(choices[answer])))
            }
        case .text:
            throw TransferError.invalidArgument("\(path): seed samples need an answer to take the loss on; give prompt/completion, prompt/answer or context/choices/answer lines")
        }
    }
    var out: [TrainingBatch] = []
    for (p, a) in pairs.prefix(limit ?? Int.max) {
        var full = p + a
        if let eos { full.append(eos) }
        full = Array(full.prefix(seqLen + 1))
        guard full.count >= 2, p.count < full.count else { continue }
        let inputs = Array(full.dropLast())
        let labels = (0..<inputs.count).map { t in t + 1 >= max(1, p.count) ? full[t + 1] : -1 }
        out.append(TrainingBatch(tokens: inputs, batch: 1, length: inputs.count, labels: labels))
    }
    guard !out.isEmpty else { throw TransferError.noSeedSamples(path: path) }
    return out
}
