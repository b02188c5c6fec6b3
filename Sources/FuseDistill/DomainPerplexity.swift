// Held-out perplexity per domain, before and after training (`corpus.domains` in the spec).
//
// Each domain is a UTF-8 text file (Tools/build-corpus.py writes one per Debian package under
// held_out/). Its first `corpus.domain_tokens` target tokens are scored with FuseEval's perplexity,
// the code behind `fusekit eval MODEL --perplexity FILE`: the text is encoded as FuseEval encodes a
// text example (the target tokenizer, special tokens added), cut to the budget, and scored as token
// ids in lm-evaluation-harness's rolling windows after BOS. A domain shorter than the budget is
// therefore scored exactly as `fusekit eval --perplexity` scores the file.
//
// The "before" numbers (the target as given) are cached by content key like captures:
//   CACHE/perplexity/<model hash>-<token ids hash>.json   {"token_perplexity", "nll_per_token", "tokens"}
// so a rerun, `--resume` or `--add-source` does not score the untouched target again.
import Foundation
import FuseEval
import FuseIO
import FuseModels
import FuseTokenizers

/// One domain's perplexity under each model measured ("before", "after", "after pair-NAME", "after merge").
public struct DomainPerplexity: Sendable, Equatable {
    public var name: String
    public var path: String
    /// Target tokens scored (at most `corpus.domain_tokens`).
    public var tokens: Int
    /// (label, token perplexity), in the order measured.
    public var values: [(label: String, perplexity: Double)]

    public init(name: String, path: String, tokens: Int, values: [(label: String, perplexity: Double)] = []) {
        self.name = name; self.path = path; self.tokens = tokens; self.values = values
    }

    public static func == (a: DomainPerplexity, b: DomainPerplexity) -> Bool {
        a.name == b.name && a.path == b.path && a.tokens == b.tokens
            && a.values.map(\.label) == b.values.map(\.label) && a.values.map(\.perplexity) == b.values.map(\.perplexity)
    }

    public func value(_ label: String) -> Double? { values.first { $0.label == label }?.perplexity }

    var json: JSON {
        .object([("name", .string(name)), ("path", .string(path)), ("tokens", .int(tokens)),
                 ("perplexity", .object(values.map { ($0.label, JSON.double($0.perplexity)) }))])
    }
}

/// Scores held-out domains with FuseEval's perplexity.
public struct DomainScorer {
    public let domains: [DomainSpec]
    public let budget: Int
    /// Each domain's token ids (target tokenizer, cut to the budget), computed once.
    public let ids: [[Int]]

    /// Reads and encodes every domain (UTF-8 checked with the offset of a bad byte).
    public init(domains: [DomainSpec], budget: Int, tokenizer: Tokenizer) throws {
        self.domains = domains; self.budget = budget
        ids = try domains.map { d in
            let list = DomainScorer.encode(try Corpus.readText(d.path), tokenizer: tokenizer, budget: budget)
            guard list.count >= 2 else {
                throw DistillError.corpus(path: d.path, message: "domain '\(d.name)' has \(list.count) token(s); perplexity needs at least 2 (give a longer text)")
            }
            return list
        }
    }

    /// The first `budget` ids of `text` as FuseEval encodes a text example (special tokens added).
    /// Only a prefix of the text is encoded: `charactersPerToken` characters per budgeted token, doubled
    /// until the prefix yields more than the budget (so the cut never lands on a token that a longer
    /// prefix would have merged differently) or holds the whole text.
    public static func encode(_ text: String, tokenizer: Tokenizer, budget: Int) -> [Int] {
        var characters = budget * charactersPerToken
        while true {
            if characters >= text.count { return Array(tokenizer.encode(text, addSpecialTokens: true).prefix(budget)) }
            let ids = tokenizer.encode(String(text.prefix(characters)), addSpecialTokens: true)
            if ids.count > budget { return Array(ids.prefix(budget)) }
            characters *= 2
        }
    }

    /// Characters of text first encoded per budgeted token (English prose runs 3-5 per token).
    static let charactersPerToken = 8

    /// Token perplexity of each domain under `model`, in domain order.
    public func score(_ model: any CausalLanguageModel) throws -> [(tokens: Int, perplexity: Double, nll: Double)] {
        try zip(domains, ids).map { d, list in
            let line = JSON.object([("text_ids", .array(list.map { .int($0) }))]).serialized()
            let task = try TaskFile(path: d.path, bytes: Array(line.utf8))
            let report = try Evaluator(model: model, codec: nil).run(task)
            guard let ppl = report.metrics["token_perplexity"], let nll = report.metrics["nll_per_token"], ppl.isFinite else {
                throw DistillError.invalidArgument("\(d.path): domain '\(d.name)' gave no finite perplexity (\(report.metrics)); the model is broken")
            }
            return (Int(report.metrics["tokens"] ?? 0), ppl, nll)
        }
    }

    /// Scores the model at `path`; with `cacheDirectory`, reads and writes the cache entry per domain
    /// (keyed by the model's content hash and the domain's token ids).
    public func score(modelAt path: String, cacheDirectory: String?) throws -> [(tokens: Int, perplexity: Double, nll: Double)] {
        guard let cacheDirectory else { return try score(try ModelRegistry.load(path)) }
        let modelHash = try hashModel(at: path)
        let files = ids.map { list -> String in
            var h = ContentHasher()
            h.update("perplexity/1 \(list.count)")
            for id in list { h.update(UInt64(id)) }
            return cacheDirectory + "/perplexity/\(modelHash.short)-\(h.finish().short).json"
        }
        let cached: [(tokens: Int, perplexity: Double, nll: Double)?] = files.map { f in
            guard let text = try? String(contentsOfFile: f, encoding: .utf8), let j = try? JSON.parse(text),
                  let t = j["tokens"]?.int, let p = j["token_perplexity"]?.double, let n = j["nll_per_token"]?.double else { return nil }
            return (t, p, n)
        }
        if cached.allSatisfy({ $0 != nil }) { return cached.compactMap { $0 } }
        let fresh = try score(try ModelRegistry.load(path))
        do { try FileManager.default.createDirectory(atPath: cacheDirectory + "/perplexity", withIntermediateDirectories: true) } catch {
            throw DistillError.cache(path: cacheDirectory + "/perplexity", message: "cannot create the folder (\(error.localizedDescription))")
        }
        for (f, r) in zip(files, fresh) {
            let j = JSON.object([("model", .string(path)), ("tokens", .int(r.tokens)), ("token_perplexity", .double(r.perplexity)),
                                 ("nll_per_token", .double(r.nll))])
            try writeFileAtomically(path: f, contents: j.serialized(indent: 2) + "\n")
        }
        return fresh
    }
}
