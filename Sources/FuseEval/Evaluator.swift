import Foundation
import FuseModels
import FuseNN

/// Results of one task: metric name -> value, plus per-example details for reports.
public struct EvalReport: Sendable {
    public let task: String
    public let kind: TaskKind
    public let examples: Int
    /// perplexity: `token_perplexity`, `nll_per_token`, `tokens` (+ `bits_per_byte`, `byte_perplexity` for text);
    /// multiple_choice: `acc`, `acc_norm`; generation: `exact_match`.
    public let metrics: [String: Double]
    /// Per example: log-likelihoods of the choices, or the generated text / ids.
    public let details: [String]
}

/// Runs task files against a model. `codec` turns text fields into tokens (nil: only `*_ids` fields).
public struct Evaluator {
    public let model: any CausalLanguageModel
    public let codec: TokenCodec?
    /// Sequences per forward call for multiple-choice scoring.
    public var batchSize: Int
    /// Evaluate only the first N examples.
    public var limit: Int?
    /// Token id prepended to perplexity windows so the first token is predicted too (default: BOS).
    public var prefixToken: Int?
    /// Positions per forward call when scoring long sequences (bounds the logits held at once).
    public var sliceTokens = 512
    /// Called after each example with (done, total).
    public var progress: ((Int, Int) -> Void)?

    public init(model: any CausalLanguageModel, codec: TokenCodec? = nil, batchSize: Int = 8, limit: Int? = nil) {
        self.model = model; self.codec = codec; self.batchSize = max(1, batchSize); self.limit = limit
        self.prefixToken = model.summary.bosTokenID
    }

    public func run(_ task: TaskFile) throws -> EvalReport {
        let n = min(task.examples.count, limit ?? .max)
        guard n > 0 else { throw EvalError.invalidArgument("--limit must be at least 1") }
        let name = URL(fileURLWithPath: task.path).deletingPathExtension().lastPathComponent
        switch task.kind {
        case .perplexity: return try perplexity(task, n, name)
        case .multipleChoice: return try multipleChoice(task, n, name)
        case .generation: return try exactMatch(task, n, name)
        }
    }

    // MARK: - log-likelihood

    /// log p(target[i] | row i) for each (row, target): log-softmax in f64 over the row's logits.
    static func logProb(_ logits: ArraySlice<Float>, _ target: Int) -> Double {
        var mx = -Double.infinity
        for v in logits { mx = max(mx, Double(v)) }
        var z = 0.0
        for v in logits { z += exp(Double(v) - mx) }
        return Double(logits[logits.startIndex + target]) - mx - log(z)
    }

    /// Sum of log p(continuation | context) for each (context, continuation) pair, batched with right padding.

    /// Scores use f32 activations even for batches small enough for the 8-bit decode kernels.
    public func logLikelihoods(_ pairs: [([Int], [Int])]) throws -> [Double] {
        let saved = Linear.quantizeActivations
        Linear.quantizeActivations = false
        defer { Linear.quantizeActivations = saved }
        let v = model.summary.vocabularySize, context = model.summary.contextLength
        var out = [Double](repeating: 0, count: pairs.count)
        // Longest first so each batch pads little; batches capped at 64 M logits.
        let order = pairs.indices.sorted { pairs[$0].0.count + pairs[$0].1.count > pairs[$1].0.count + pairs[$1].1.count }
        var i = 0
        while i < order.count {
            // The last continuation token is only predicted, never fed.
            let longest = pairs[order[i]].0.count + pairs[order[i]].1.count - 1
            guard longest <= context else { throw ModelError.promptTooLong(tokens: longest, context: context) }
            let fit = max(1, min(batchSize, (64 << 20) / max(1, min(longest, sliceTokens) * v)))
            let group = Array(order[i..<min(order.count, i + fit)])
            var tokens: [Int] = [], valid: [Bool] = []
            for k in group {
                let seq = pairs[k].0 + pairs[k].1.dropLast()
                tokens += seq + [Int](repeating: 0, count: longest - seq.count)
                valid += [Bool](repeating: true, count: seq.count) + [Bool](repeating: false, count: longest - seq.count)
            }
            // Positions run through the model in slices of `sliceTokens` against the KV cache, so a
            // long window never materialises more than a slice of logits per sequence.
            let cache = model.makeCache(batch: group.count, capacity: longest)
            var sums = [Double](repeating: 0, count: group.count)
            var start = 0
            while start < longest {
                let width = min(sliceTokens, longest - start)
                var sliceTokens: [Int] = [], sliceValid: [Bool] = []
                for b in 0..<group.count {
                    sliceTokens += tokens[(b * longest + start)..<(b * longest + start + width)]
                    sliceValid += valid[(b * longest + start)..<(b * longest + start + width)]
                }
                let logits = try model.forward(tokens: sliceTokens, batch: group.count, valid: sliceValid, cache: cache, rows: .all)
                for (b, k) in group.enumerated() {
                    let (ctx, cont) = pairs[k]
                    for (j, target) in cont.enumerated() {
                        let position = ctx.count + j - 1   // logits of the previous position predict target
                        guard position >= start, position < start + width else { continue }
                        let row = b * width + position - start
                        sums[b] += Evaluator.logProb(logits[(row * v)..<((row + 1) * v)], target)
                    }
                }
                start += width
            }
            for (b, k) in group.enumerated() { out[k] = sums[b] }
            i += group.count
        }
        return out
    }

    // MARK: - multiple choice

    /// acc and acc_norm as lm-evaluation-harness computes them: the choice with the highest summed
    /// log-likelihood (first on ties, numpy argmax), and the highest log-likelihood divided by the
    /// choice's length in characters (the choice itself, without the delimiter). Continuation tokens are those of encode(context + choice) after
    /// encode(context) (lm-eval's `_encode_pair`); token-id examples are used as given.
    func multipleChoice(_ task: TaskFile, _ n: Int, _ name: String) throws -> EvalReport {
        var correct = 0, correctNorm = 0, details: [String] = []
        for e in 0..<n {
            guard case let .multipleChoice(context, choices, answer, delimiter) = task.examples[e] else { continue }
            let line = task.lines[e]
            var pairs: [([Int], [Int])] = [], lengths: [Double] = []
            for choice in choices {
                let pair = try encodePair(context, choice, delimiter: delimiter, path: task.path, line: line)
                guard !pair.1.isEmpty else { throw EvalError.malformedLine(path: task.path, line: line, what: "a choice encodes to no tokens") }
                guard !pair.0.isEmpty else { throw EvalError.malformedLine(path: task.path, line: line, what: "the context encodes to no tokens and the model has no BOS token") }
                pairs.append(pair)
                lengths.append(Double(choice.text.map { $0.unicodeScalars.count } ?? pair.1.count))
            }
            let ll = try logLikelihoods(pairs)
            let pick = argmax(ll), pickNorm = argmax(zip(ll, lengths).map { $0 / $1 })
            if pick == answer { correct += 1 }
            if pickNorm == answer { correctNorm += 1 }
            details.append("line \(line): loglik \(ll.map { String(format: "%.4f", $0) }.joined(separator: " ")) pick \(pick) answer \(answer)")
            progress?(e + 1, n)
        }
        return EvalReport(task: name, kind: .multipleChoice, examples: n,
                          metrics: ["acc": Double(correct) / Double(n), "acc_norm": Double(correctNorm) / Double(n)], details: details)
    }

    func encodePair(_ context: TaskInput, _ choice: TaskInput, delimiter: String, path: String, line: Int) throws -> ([Int], [Int]) {
        var ctx: [Int], cont: [Int]
        if case let .text(c) = context, case let .text(choiceText) = choice, let codec {
            // The request is (context, delimiter + choice); lm-eval then moves trailing spaces of the
            // context onto the continuation.
            var c = c, x = delimiter + choiceText
            while c.hasSuffix(" ") { c.removeLast(); x = " " + x }
            ctx = try codec.encode(c)
            let whole = try codec.encode(c + x)
            cont = whole.starts(with: ctx) ? Array(whole[ctx.count...]) : try codec.encode(x)
        } else {
            ctx = try context.tokens(codec, path: path, line: line)
            cont = try choice.tokens(codec, path: path, line: line)
        }
        if let bos = model.summary.bosTokenID, ctx.first != bos, ctx.isEmpty { ctx = [bos] }
        return (ctx, cont)
    }

    func argmax(_ v: [Double]) -> Int {
        var best = 0
        for i in v.indices where v[i] > v[best] { best = i }
        return best
    }

    // MARK: - perplexity

    /// Token perplexity exp(Σ NLL / tokens) with lm-evaluation-harness's rolling windows
    /// (`get_rolling_token_windows` with context_len 1): the first window predicts the first
    /// `context` tokens after `prefixToken` (BOS; without one the first token is context only), each
    /// later window predicts the next `context` tokens conditioned on the tokens just before them, so
    /// every token is scored once with as much context as fits.
    func perplexity(_ task: TaskFile, _ n: Int, _ name: String) throws -> EvalReport {
        var nll = 0.0, count = 0, bytes = 0, details: [String] = []
        let window = model.summary.contextLength
        for e in 0..<n {
            guard case let .text(input) = task.examples[e] else { continue }
            let list = try input.tokens(codec, path: task.path, line: task.lines[e])
            guard list.count >= (prefixToken == nil ? 2 : 1) else {
                throw EvalError.malformedLine(path: task.path, line: task.lines[e], what: "the text has too few tokens to score")
            }
            let first = min(window, list.count)
            var pairs: [([Int], [Int])] = prefixToken.map { [([$0], Array(list[0..<first]))] } ?? [([list[0]], Array(list[1..<first]))]
            var predicted = first
            while predicted < list.count {
                let predLen = min(list.count - predicted, window), end = predicted + predLen
                pairs.append((Array(list[max(0, end - window - 1)..<(end - predLen)]), Array(list[(end - predLen)..<end])))
                predicted += predLen
            }
            let exampleNLL = -(try logLikelihoods(pairs)).reduce(0, +)
            let exampleCount = pairs.reduce(0) { $0 + $1.1.count }
            nll += exampleNLL; count += exampleCount
            if let text = input.text { bytes += text.utf8.count }
            details.append("line \(task.lines[e]): \(exampleCount) tokens, nll/token \(String(format: "%.4f", exampleNLL / Double(exampleCount)))")
            progress?(e + 1, n)
        }
        var metrics = ["token_perplexity": exp(nll / Double(count)), "nll_per_token": nll / Double(count), "tokens": Double(count)]
        if bytes > 0 {
            metrics["bits_per_byte"] = nll / Double(bytes) / log(2)
            metrics["byte_perplexity"] = exp(nll / Double(bytes))
        }
        return EvalReport(task: name, kind: .perplexity, examples: n, metrics: metrics, details: details)
    }

    // MARK: - generation

    /// Greedy generation until a stop string, EOS or max tokens; exact match after trimming whitespace
    /// (token-id examples compare ids).
    func exactMatch(_ task: TaskFile, _ n: Int, _ name: String) throws -> EvalReport {
        var correct = 0, details: [String] = []
        for e in 0..<n {
            guard case let .generation(prompt, answer, stop, maxTokens) = task.examples[e] else { continue }
            let line = task.lines[e]
            let ids = try prompt.tokens(codec, path: task.path, line: line)
            let expectedIDs: [Int]? = { if case let .ids(a) = answer { return a }; return nil }()
            let budget = maxTokens ?? (expectedIDs.map { $0.count } ?? 64)
            let result = try generate(model: model, prompt: ids,
                                      options: GenerationOptions(maxTokens: budget, stopStrings: stop), codec: codec)
            let ok: Bool
            if let expectedIDs {
                let eos = Set(model.summary.eosTokenIDs)
                ok = Array(result.tokens.filter { !eos.contains($0) }) == expectedIDs
                details.append("line \(line): \(result.tokens) \(ok ? "==" : "!=") \(expectedIDs)")
            } else {
                let want = answer.text?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                let got = result.text.trimmingCharacters(in: .whitespacesAndNewlines)
                ok = got == want
                details.append("line \(line): \(got.debugDescription) \(ok ? "==" : "!=") \(want.debugDescription)")
            }
            if ok { correct += 1 }
            progress?(e + 1, n)
        }
        return EvalReport(task: name, kind: .generation, examples: n, metrics: ["exact_match": Double(correct) / Double(n)], details: details)
    }
}
