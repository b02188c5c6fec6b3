// Capture: run one model over the corpus and store its top-k next-token distributions per position
// (CaptureFile.swift), shard by shard. A finished shard is a file renamed into place, so a killed run
// resumes at the first missing shard and recomputes nothing else; the folder name is the cache key
// (model hash, corpus hash, k), so any run with the same three reuses it.
import Foundation
import FuseIO
import FuseModels
import FuseTensor
import FuseTokenizers

public struct CaptureSettings: Sendable {
    public var k: Int
    /// Sequences per shard file.
    public var shardSequences: Int
    /// Upper bound on logits held at once (rows × vocabulary × 4 bytes); sets the batch size.
    public var maxLogitBytes: Int

    public init(k: Int = 10, shardSequences: Int = 64, maxLogitBytes: Int = 512 << 20) {
        self.k = k; self.shardSequences = shardSequences; self.maxLogitBytes = maxLogitBytes
    }
}

/// What a capture did, for logs and benchmarks.
public struct CaptureStats: Sendable {
    public var shardsTotal = 0
    public var shardsReused = 0
    public var tokensComputed = 0
    public var seconds = 0.0
    public var tokensPerSecond: Double { seconds > 0 ? Double(tokensComputed) / seconds : 0 }
}

public final class CaptureRunner {
    public let name: String
    public let modelPath: String
    public let model: any CausalLanguageModel
    public let tokenizer: Tokenizer
    public let modelHash: ContentHash
    public let settings: CaptureSettings
    /// Called with (positions done, positions total) over the shards still to compute.
    public var progress: ((Int, Int) -> Void)?

    public init(name: String, modelPath: String, model: any CausalLanguageModel, tokenizer: Tokenizer, modelHash: ContentHash,
                settings: CaptureSettings) throws {
        self.name = name; self.modelPath = modelPath; self.model = model; self.tokenizer = tokenizer
        self.modelHash = modelHash; self.settings = settings
        let v = model.summary.vocabularySize
        guard settings.k >= 1, settings.k <= v else { throw DistillError.topKTooLarge(model: modelPath, k: settings.k, vocabularySize: v) }
    }

    /// The folder of this model's shards for `corpus` under `cacheDirectory`.
    public static func folder(cacheDirectory: String, modelHash: ContentHash, corpusHash: ContentHash, k: Int) -> String {
        "\(cacheDirectory)/captures/\(modelHash.short)-\(corpusHash.short)-k\(k)"
    }

    public static func shardPath(_ folder: String, _ shard: Int) -> String { folder + String(format: "/shard-%05d.fktopk", shard) }

    /// Captures every missing shard and returns the folder; existing shards are checked and kept.
    @discardableResult
    public func run(corpus: Corpus, cacheDirectory: String) throws -> (folder: String, stats: CaptureStats) {
        let folder = Self.folder(cacheDirectory: cacheDirectory, modelHash: modelHash, corpusHash: corpus.hash, k: settings.k)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw DistillError.invalidArgument("\(folder): cannot create the capture folder (\(error.localizedDescription))")
        }
        let per = settings.shardSequences
        let shards = (corpus.sequences.count + per - 1) / per
        var stats = CaptureStats()
        stats.shardsTotal = shards
        var todo: [Int] = []
        for s in 0..<shards {
            let path = Self.shardPath(folder, s)
            let first = s * per, count = min(per, corpus.sequences.count - first)
            if FileManager.default.fileExists(atPath: path) {
                try CaptureShard(path: path).check(modelHash: modelHash, corpusHash: corpus.hash, k: settings.k, firstSequence: first, sequenceCount: count)
                stats.shardsReused += 1
            } else { todo.append(s) }
        }
        // Tokenize what is left up front: the total drives progress and catches over-long sequences early.
        var tokenized: [Int: [[Int]]] = [:]
        var total = 0
        for s in todo {
            let first = s * per, count = min(per, corpus.sequences.count - first)
            tokenized[s] = try (first..<(first + count)).map { i in
                let ids = tokenizer.encode(corpus.sequences[i], addSpecialTokens: true)
                guard ids.count <= model.summary.contextLength else {
                    throw DistillError.sequenceTooLong(model: modelPath, sequence: i, tokens: ids.count, context: model.summary.contextLength)
                }
                guard !ids.isEmpty else { throw DistillError.corpus(path: corpus.path, message: "sequence \(i) has no tokens for \(modelPath)") }
                return ids
            }
            total += tokenized[s]!.reduce(0) { $0 + $1.count } // invariant: set just above
        }
        let start = Date()
        var done = 0
        for s in todo {
            let seqs = tokenized[s] ?? []
            let captured = try capture(seqs, firstSequence: s * per) { n in done += n; self.progress?(done, total) }
            try CaptureWriter.write(path: Self.shardPath(folder, s), k: settings.k, vocabularySize: model.summary.vocabularySize,
                                    modelHash: modelHash, corpusHash: corpus.hash, firstSequence: s * per, sequences: captured)
        }
        stats.tokensComputed = total
        stats.seconds = Date().timeIntervalSince(start)
        return (folder, stats)
    }

    /// Top-k of every position of `sequences`, batched by length under the logits budget.
    public func capture(_ sequences: [[Int]], firstSequence: Int, tokensDone: (Int) -> Void = { _ in }) throws -> [CapturedSequence] {
        let V = model.summary.vocabularySize, k = settings.k
        var out = [CapturedSequence?](repeating: nil, count: sequences.count)
        let order = sequences.indices.sorted { sequences[$0].count > sequences[$1].count }   // longest first: little padding
        var next = 0
        while next < order.count {
            let T = sequences[order[next]].count
            let batch = max(1, min(order.count - next, settings.maxLogitBytes / max(1, T * V * 4)))
            let members = Array(order[next..<(next + batch)])
            next += batch
            var tokens = [Int](repeating: 0, count: batch * T), valid = [Bool](repeating: false, count: batch * T)
            for (b, i) in members.enumerated() {
                for (t, id) in sequences[i].enumerated() { tokens[b * T + t] = id; valid[b * T + t] = true }
            }
            let cache = model.makeCache(batch: batch, capacity: T)
            let logits = try model.forward(tokens: tokens, batch: batch, valid: batch > 1 ? valid : nil, cache: cache, rows: .all)
            guard logits.count == batch * T * V else {
                throw DistillError.invalidArgument("\(modelPath): forward returned \(logits.count) logits for \(batch)×\(T) rows of \(V)")
            }
            for (b, i) in members.enumerated() {
                let n = sequences[i].count
                var ids = [Int32](repeating: 0, count: n * k), lps = [Float](repeating: 0, count: n * k), ce = [Float](repeating: 0, count: n)
                var bad = -1
                let seq = sequences[i]
                logits.withUnsafeBufferPointer { lp in
                    ids.withUnsafeMutableBufferPointer { idp in
                        lps.withUnsafeMutableBufferPointer { lpp in
                            ce.withUnsafeMutableBufferPointer { cep in
                                parallelFor(count: n, chunkSize: 16) { _, r in
                                    for t in r {
                                        let row = lp.baseAddress! + (b * T + t) * V // invariant: count checked above
                                        guard let top = topK(row, count: V, k: k) else { cep[t] = .nan; continue }   // reported below
                                        for e in 0..<k { idp[t * k + e] = top.ids[e]; lpp[t * k + e] = top.logits[e] - top.logPartition }
                                        cep[t] = t + 1 < n ? top.logPartition - row[seq[t + 1]] : 0
                                    }
                                }
                            }
                        }
                    }
                }
                bad = ce.firstIndex(where: { $0.isNaN }) ?? -1
                if bad >= 0 { throw DistillError.nonFinite(model: modelPath, sequence: firstSequence + i, position: bad) }
                out[i] = CapturedSequence(tokens: seq.map(Int32.init), topIDs: ids, topLogProbs: lps, crossEntropy: ce)
                tokensDone(n)
            }
        }
        return out.map { $0! } // invariant: every index is in `order` once
    }
}
