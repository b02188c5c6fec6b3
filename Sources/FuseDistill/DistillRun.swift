// The `fusekit distill` pipeline: capture -> align -> fuse -> (train). Every stage before training is
// cached under the cache folder by content keys, so a rerun or `--resume` recomputes nothing that
// finished, and a run with one more source captures only the new source:
//
//   CACHE/captures/<model>-<corpus>-k<k>/shard-NNNNN.fktopk     CaptureRunner (one per model)
//   CACHE/vocab/<mode>-<source>-to-<target>.fkvmap               VocabularyMapping (MinED entries)
//   CACHE/fused/<key>/shard-NNNNN.fktopk                          fused targets (flags bit 1)
//   OUT_DIR/spec.yml, OUT_DIR/distill.json                        the run's record
//   OUT_DIR/{metrics.jsonl, checkpoints/, model/, adapter/}       training (Training.swift)
//   OUT_DIR/pairs/pair-NAME/..., OUT_DIR/merge.yml, OUT_DIR/model FuseChat: pairwise trainings, then a merge
import Foundation
import FuseIO
import FuseMerge
import FuseModels
import FuseNN
import FuseTensor
import FuseTokenizers
import FuseTrain

/// A model of the run: a source or the target.
public struct RunModel: Sendable {
    public var name: String
    public var path: String
}

/// Per source: how much of the target's tokenization got an aligned distribution.
public struct AlignmentStats: Sendable, Equatable {
    public var source: String
    /// Target positions that have a next token (every position but the last) and are not special.
    public var targetPositions = 0
    /// Positions whose distribution came from the source (one-to-one DTW link, tokens agree).
    public var alignedPositions = 0
    /// Positions that fell back to a one-hot on the gold next token.
    public var oneHotPositions = 0
    public var sequences = 0
    public var seconds = 0.0
    public var coverage: Double { targetPositions > 0 ? Double(alignedPositions) / Double(targetPositions) : 0 }
    public init(source: String) { self.source = source }
}

/// What a run produced, written to OUT_DIR/distill.json.
public struct DistillReport: Sendable {
    public var sequences = 0
    public var corpusHash = ContentHash(high: 0, low: 0)
    public var captures: [(name: String, folder: String, stats: CaptureStats)] = []
    public var alignment: [AlignmentStats] = []
    /// One fused-targets set per fusion (FuseChat: one per source pair).
    public var fused: [(name: String, folder: String, log: FusionLog)] = []
    /// One training per fused set (empty when training is disabled).
    public var training: [FusionTrainingOutcome] = []
    /// FuseChat's merge of the pairwise targets.
    public var merge: (method: String, output: String, config: String, seconds: Double)?
    /// The run's lineage (Continuation.swift): the initial stage, then one per `--add-source`.
    public var stages: [DistillStage] = []
    /// Held-out perplexity per domain: "before" (the target), then "after" (FuseLLM) or "after pair-NAME"
    /// and "after merge" (FuseChat).
    public var domains: [DomainPerplexity] = []
    public var domainTokens = 0
    /// Wall seconds of each perplexity measurement, by label (0 when "before" came from the cache).
    public var domainSeconds: [(label: String, seconds: Double)] = []

    public init() {}

    static func trainingJSON(_ t: FusionTrainingOutcome) -> JSON {
        let rate = t.summary.seconds > 0 ? Double(t.summary.tokens) / t.summary.seconds : 0
        let components: [(String, JSON)] = t.finalComponents.sorted { $0.key < $1.key }.map { ($0.key, JSON.double($0.value)) }
        let pairs: [(String, JSON)] = [
            ("name", .string(t.name)), ("directory", .string(t.directory)), ("model", .string(t.model)),
            ("adapter", t.adapter.map { JSON.string($0) } ?? .null), ("steps", .int(t.summary.steps)),
            ("resumed_from", t.summary.resumedFrom.map { JSON.int($0) } ?? .null), ("tokens", .int(t.summary.tokens)),
            ("seconds", .double(t.summary.seconds)), ("tokens_per_second", .double(rate)),
            ("final_loss", t.summary.finalLoss.map { JSON.double($0) } ?? .null), ("final_components", .object(components)),
        ]
        return .object(pairs)
    }

    var mergeJSON: JSON {
        guard let m = merge else { return .null }
        return .object([("method", .string(m.method)), ("output", .string(m.output)), ("config", .string(m.config)), ("seconds", .double(m.seconds))])
    }

    public func json(spec: DistillSpec) -> JSON {
        .object([
            ("format", .string("fusekit-distill/1")),
            ("spec", .string(spec.path)),
            ("corpus", .object([("train", .string(spec.corpus.train)), ("sequences", .int(sequences)), ("hash", .string(corpusHash.hex)),
                                ("block_tokens", .int(spec.corpus.blockTokens))])),
            ("k", .int(spec.k)), ("fusion", .string(spec.fusion.rawValue)), ("lambda", .double(spec.lambda)),
            ("alignment_mode", .object([("vocabulary", .string(spec.vocabulary.rawValue)), ("surface", .string(spec.surface.rawValue))])),
            ("captures", .array(captures.map { c in .object([
                ("model", .string(c.name)), ("folder", .string(c.folder)), ("shards", .int(c.stats.shardsTotal)),
                ("shards_reused", .int(c.stats.shardsReused)), ("tokens_computed", .int(c.stats.tokensComputed)),
                ("seconds", .double(c.stats.seconds)), ("tokens_per_second", .double(c.stats.tokensPerSecond)),
            ]) })),
            ("alignment", .array(alignment.map { a in .object([
                ("source", .string(a.source)), ("target_positions", .int(a.targetPositions)), ("aligned_positions", .int(a.alignedPositions)),
                ("one_hot_positions", .int(a.oneHotPositions)), ("coverage", .double(a.coverage)), ("seconds", .double(a.seconds)),
                ("tokens_per_second", .double(a.seconds > 0 ? Double(a.targetPositions) / a.seconds : 0)),
            ]) })),
            ("fused", .array(fused.map { f in .object([
                ("name", .string(f.name)), ("folder", .string(f.folder)), ("sequences", .int(f.log.sequences)),
                ("positions", .int(f.log.positions)), ("positions_with_target", .int(f.log.presentPositions)),
                ("candidates", .array(f.log.names.enumerated().map { i, n in .object([
                    ("name", .string(n)), ("min_ce_chosen", .int(f.log.chosen[i])),
                    ("mean_weight", .double(f.log.sequences > 0 ? f.log.weightSums[i] / Double(f.log.sequences) : 0)),
                ]) })),
            ]) })),
            ("training", .array(training.map(Self.trainingJSON))),
            ("merge", mergeJSON),
            ("stages", .array(stages.map(\.json))),
            ("domain_perplexity", domainJSON),
        ])
    }

    /// `{"domain_tokens": N, "domains": [{"name", "path", "tokens", "perplexity": {"before": x, "after": y}}]}`
    /// (docs/formats.md, "Distill runs"); null when the spec has no domains.
    public var domainJSON: JSON {
        guard !domains.isEmpty else { return .null }
        return .object([("domain_tokens", .int(domainTokens)), ("domains", .array(domains.map(\.json)))])
    }
}

public final class DistillRun {
    public let spec: DistillSpec
    public let cacheDirectory: String
    /// (stage, done, total) for a progress bar; stage is "capture NAME", "align+fuse NAME".
    public var progress: ((String, Int, Int) -> Void)?
    /// Every training step, with its stage ("train fused", "train pair-NAME"); an error it throws stops the run there.
    public var trainingProgress: ((String, StepMetrics) throws -> Void)?
    /// Called once OUT_DIR exists, before training (the CLI writes its `running` run.json there).
    public var onOutputReady: ((String) throws -> Void)?
    /// Sees each training's first step and the parameters it starts from (name, step, parameters).
    public var trainingWillStart: ((String, Int, [Parameter]) throws -> Void)?
    /// One-line messages for stderr.
    public var log: ((String) -> Void)?
    public var threads: Int?

    public init(spec: DistillSpec, cacheDirectory: String) {
        self.spec = spec; self.cacheDirectory = cacheDirectory
    }

    /// The default cache: `$FUSEKIT_CACHE_DIR`, else `~/.cache/fusekit`.
    public static func defaultCacheDirectory() -> String {
        if let d = ProcessInfo.processInfo.environment["FUSEKIT_CACHE_DIR"], !d.isEmpty { return d }
        return (ProcessInfo.processInfo.environment["HOME"] ?? ".") + "/.cache/fusekit"
    }

    var targetModel: RunModel { RunModel(name: "target:" + DistillSpec.defaultName(spec.target), path: spec.target) }
    var sourceModels: [RunModel] { spec.sources.map { RunModel(name: $0.name, path: $0.model) } }

    // MARK: - stages

    /// Target tokenizer and the segmented corpus.
    public func loadCorpus() throws -> (Tokenizer, Corpus) {
        let tokenizer = try loadTokenizer(spec.target)
        let corpus = try Corpus.load(path: spec.corpus.train, tokenizer: tokenizer, blockTokens: spec.corpus.blockTokens,
                                     maxSequences: spec.corpus.maxSequences)
        guard !corpus.sequences.isEmpty else { throw DistillError.corpus(path: spec.corpus.train, message: "no text blocks (only whitespace?)") }
        if let held = spec.corpus.heldOut { _ = try Corpus.readText(held) }   // UTF-8 checked now, not after hours of capture
        return (tokenizer, corpus)
    }

    /// Captures every model that needs it (sources, and the target when its distribution is a candidate).
    public func capture(corpus: Corpus, report: inout DistillReport) throws -> [String: (folder: String, hash: ContentHash)] {
        var out: [String: (String, ContentHash)] = [:]
        var models = sourceModels
        if spec.targetDistribution { models.insert(targetModel, at: 0) }
        for m in models {
            let hash = try hashModel(at: m.path)
            let folder = CaptureRunner.folder(cacheDirectory: cacheDirectory, modelHash: hash, corpusHash: corpus.hash, k: spec.k)
            let shards = (corpus.sequences.count + CaptureSettings().shardSequences - 1) / CaptureSettings().shardSequences
            let complete = (0..<shards).allSatisfy { FileManager.default.fileExists(atPath: CaptureRunner.shardPath(folder, $0)) }
            var stats = CaptureStats()
            if complete {   // checked shard by shard in the fusion stage; no need to load the model
                stats.shardsTotal = shards; stats.shardsReused = shards
                log?("capture \(m.name): reusing \(folder)")
            } else {
                let tokenizer = try loadTokenizer(m.path)
                let model = try ModelRegistry.load(m.path)
                let runner = try CaptureRunner(name: m.name, modelPath: m.path, model: model, tokenizer: tokenizer, modelHash: hash,
                                               settings: CaptureSettings(k: spec.k))
                runner.progress = { [weak self] d, t in self?.progress?("capture \(m.name)", d, t) }
                stats = try runner.run(corpus: corpus, cacheDirectory: cacheDirectory).stats
                log?(String(format: "capture %@: %d tokens in %.1fs (%.0f tokens/s), %d of %d shards reused", m.name, stats.tokensComputed,
                            stats.seconds, stats.tokensPerSecond, stats.shardsReused, stats.shardsTotal))
            }
            report.captures.append((m.name, folder, stats))
            out[m.name] = (folder, hash)
        }
        return out
    }

    /// The fusion sets this spec asks for: one over all candidates, or FuseChat's pairs (target + one source).
    func fusionSets() -> [(name: String, sources: [RunModel])] {
        if spec.fuseChat.enabled { return sourceModels.map { ("pair-\($0.name)", [$0]) } }
        return [("fused", sourceModels)]
    }

    /// Aligns every source to the target and fuses, shard by shard; returns the fused folders.
    public func fuse(corpus: Corpus, targetTokenizer: Tokenizer, captures: [String: (folder: String, hash: ContentHash)],
                     report: inout DistillReport) throws {
        let targetSurfaces = TokenSurfaces(tokenizer: targetTokenizer, mode: spec.surface)
        var aligners: [String: TokenAligner] = [:]
        var mappingKeys: [String: (String, String)] = [:]
        for m in sourceModels {
            let s = TokenSurfaces(tokenizer: try loadTokenizer(m.path), mode: spec.surface)
            let mapping = VocabularyMapping(source: s, target: targetSurfaces)
            let key = mapping.cacheKey
            let path = cacheDirectory + "/vocab/\(key).fkvmap"
            try mapping.load(from: path, key: key)
            mappingKeys[m.name] = (path, key)
            aligners[m.name] = TokenAligner(mapping: mapping, vocabulary: spec.vocabulary)
        }
        let per = CaptureSettings().shardSequences
        let shardCount = (corpus.sequences.count + per - 1) / per
        var stats = Dictionary(uniqueKeysWithValues: sourceModels.map { ($0.name, AlignmentStats(source: $0.name)) })
        let fusion = Fusion(function: spec.fusion, k: spec.k, temperature: Float(spec.temperature))
        let targetHash = try hashModel(at: spec.target)
        for set in fusionSets() {
            var key = ContentHasher()
            key.update("fused/1 \(spec.fusion.rawValue) \(spec.temperature) \(spec.vocabulary.rawValue) \(spec.surface.rawValue) \(spec.targetDistribution) \(spec.k)")
            key.update(corpus.hash.high); key.update(targetHash.high); key.update(targetHash.low)
            for m in set.sources { if let c = captures[m.name] { key.update(c.hash.high); key.update(c.hash.low) } }
            let fusedHash = key.finish()
            let folder = cacheDirectory + "/fused/\(set.name)-\(fusedHash.short)"
            do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
                throw DistillError.invalidArgument("\(folder): cannot create the fused-targets folder (\(error.localizedDescription))")
            }
            let names = (spec.targetDistribution ? [targetModel.name] : []) + set.sources.map(\.name)
            var fusionLog = FusionLog(names: names)
            for shard in 0..<shardCount {
                let first = shard * per, count = min(per, corpus.sequences.count - first)
                let path = CaptureRunner.shardPath(folder, shard)
                let targetTokens: [[Int32]]
                var targetCaptured: [CapturedSequence]? = nil
                if spec.targetDistribution, let c = captures[targetModel.name] {
                    let sh = try CaptureShard(path: CaptureRunner.shardPath(c.folder, shard))
                    try sh.check(modelHash: c.hash, corpusHash: corpus.hash, k: spec.k, firstSequence: first, sequenceCount: count)
                    let seqs = try (0..<count).map { try sh.sequence($0) }
                    targetCaptured = seqs; targetTokens = seqs.map(\.tokens)
                } else {
                    targetTokens = (first..<(first + count)).map { targetTokenizer.encodeIDs(corpus.sequences[$0], addSpecialTokens: true) }
                }
                var sourceSeqs: [String: [CapturedSequence]] = [:]
                for m in set.sources {
                    guard let c = captures[m.name] else { throw DistillError.invalidArgument("no capture for source \(m.name)") }
                    let sh = try CaptureShard(path: CaptureRunner.shardPath(c.folder, shard))
                    try sh.check(modelHash: c.hash, corpusHash: corpus.hash, k: spec.k, firstSequence: first, sequenceCount: count)
                    sourceSeqs[m.name] = try (0..<count).map { try sh.sequence($0) }
                }
                let done = FileManager.default.fileExists(atPath: path)
                if done {
                    let sh = try CaptureShard(path: path)
                    try sh.check(modelHash: fusedHash, corpusHash: corpus.hash, k: spec.k, firstSequence: first, sequenceCount: count)
                }
                // Align (in parallel over sequences, MinED resolved first) for the stats and, unless the
                // shard is already fused, for the fusion itself.
                var aligned: [String: [AlignedSequence]] = [:]
                for m in set.sources {
                    guard let aligner = aligners[m.name], let seqs = sourceSeqs[m.name] else { continue }
                    let t0 = Date()
                    aligner.prepare(sourceTokens: seqs.flatMap(\.tokens), topIDs: seqs.flatMap(\.topIDs))
                    var results = [AlignedSequence?](repeating: nil, count: count)
                    results.withUnsafeMutableBufferPointer { out in
                        parallelFor(count: count, chunkSize: 1) { _, r in
                            for i in r {
                                out[i] = aligner.alignedSequence(sourceTokens: seqs[i].tokens, targetTokens: targetTokens[i], k: spec.k,
                                                                 topIDs: seqs[i].topIDs, topLogProbs: seqs[i].topLogProbs, meanCE: seqs[i].meanCE)
                            }
                        }
                    }
                    let list = results.compactMap { $0 }
                    aligned[m.name] = list
                    do {   // each source is in exactly one set, so each is counted once
                        var st = stats[m.name] ?? AlignmentStats(source: m.name)
                        for (i, a) in list.enumerated() {
                            st.targetPositions += countTargetPositions(targetTokens[i], targetSurfaces)
                            for (t, e) in a.entries.enumerated() where t + 1 < a.entries.count {   // the last position has no next token
                                if case .distribution = e { st.alignedPositions += 1 } else if case .oneHot = e { st.oneHotPositions += 1 }
                            }
                        }
                        st.sequences += count
                        st.seconds += Date().timeIntervalSince(t0)
                        stats[m.name] = st
                    }
                }
                var fusedSeqs: [CapturedSequence] = []
                for i in 0..<count {
                    var cands: [FusionCandidate] = []
                    if let tc = targetCaptured?[i] {
                        let T = tc.tokens.count, k = spec.k
                        let entries = (0..<T).map { t in AlignedEntry.distribution(ids: Array(tc.topIDs[(t * k)..<((t + 1) * k)]),
                                                                                    logProbs: Array(tc.topLogProbs[(t * k)..<((t + 1) * k)])) }
                        cands.append(FusionCandidate(name: targetModel.name, sequence: AlignedSequence(entries: entries, meanCE: tc.meanCE)))
                    }
                    for m in set.sources { if let a = aligned[m.name]?[i] { cands.append(FusionCandidate(name: m.name, sequence: a)) } }
                    let f = try fusion.fuse(cands, length: targetTokens[i].count)
                    fusionLog.record(f)
                    if !done { fusedSeqs.append(storedForm(f.targets, tokens: targetTokens[i])) }
                }
                if !done {
                    try CaptureWriter.write(path: path, k: spec.k, vocabularySize: targetTokenizer.vocabularySize, modelHash: fusedHash,
                                            corpusHash: corpus.hash, firstSequence: first, sequences: fusedSeqs, flags: CaptureHeader.fusedTargets)
                }
                for m in set.sources {
                    if let (p, k) = mappingKeys[m.name] {
                        try FileManager.default.createDirectory(atPath: cacheDirectory + "/vocab", withIntermediateDirectories: true)
                        try aligners[m.name]?.mapping.save(to: p, key: k)
                    }
                }
                progress?("align+fuse \(set.name)", first + count, corpus.sequences.count)
            }
            report.fused.append((set.name, folder, fusionLog))
        }
        report.alignment = sourceModels.compactMap { stats[$0.name] }
    }

    /// Everything before training, then the training stage, for a new run (`plan` nil or a fresh plan),
    /// `--resume`, or a stage that adds sources (`DistillPlan.make`, Continuation.swift). Writes OUT_DIR
    /// atomically when new; updates distill.json (and spec.yml when sources are added) in place otherwise.
    public func run(outDirectory: String, resume: Bool, force: Bool, plan: DistillPlan? = nil) throws -> DistillReport {
        let plan = try plan ?? DistillPlan.make(spec: spec, outDirectory: outDirectory, resume: resume, force: force, adding: [])
        var report = DistillReport()
        report.stages = plan.earlier + [plan.stage]
        let (tokenizer, corpus) = try loadCorpus()
        let scorer = spec.corpus.domains.isEmpty ? nil : try DomainScorer(domains: spec.corpus.domains, budget: spec.corpus.domainTokens, tokenizer: tokenizer)
        report.sequences = corpus.sequences.count; report.corpusHash = corpus.hash
        log?("corpus: \(corpus.sequences.count) sequences of at most \(spec.corpus.blockTokens) target tokens (hash \(corpus.hash.short))")
        let specText = (try? String(contentsOfFile: spec.path, encoding: .utf8)) ?? ""
        if plan.continuing && plan.stage.kind == .addSource {
            // Recorded before any capture: a kill -9 from here on resumes this stage, even with the original spec.
            let listed = Set(((try? DistillSpec.parse(yaml: specText, path: spec.path, checkFiles: false))?.sources ?? []).map(\.name))
            let missing = (plan.earlier.flatMap(\.added) + plan.stage.added).filter { !listed.contains($0.name) }
            try writeFileAtomically(path: outDirectory + "/spec.yml", contents: missing.isEmpty ? specText : try DistillSpec.text(specText, addingSources: missing, path: spec.path))
            try writeFileAtomically(path: outDirectory + "/distill.json", contents: report.json(spec: spec).serialized(indent: 2) + "\n")
            if !plan.stage.complete { log?("stage \(plan.stage.index): adding " + plan.stage.added.map(\.name).joined(separator: ", ")
                                            + (plan.stage.continuedFrom.map { ", training on from step \($0)" } ?? "")) }
        }
        let captures = try capture(corpus: corpus, report: &report)
        try fuse(corpus: corpus, targetTokenizer: tokenizer, captures: captures, report: &report)
        if let scorer {
            let t0 = Date()
            let before = try scorer.score(modelAt: spec.target, cacheDirectory: cacheDirectory)
            report.domainSeconds.append(("before", Date().timeIntervalSince(t0)))
            report.domainTokens = spec.corpus.domainTokens
            report.domains = zip(spec.corpus.domains, before).map { d, r in DomainPerplexity(name: d.name, path: d.path, tokens: r.tokens, values: [("before", r.perplexity)]) }
            log?("held-out perplexity before training: " + report.domains.map { String(format: "%@ %.3f", $0.name, $0.values.first?.perplexity ?? .nan) }.joined(separator: ", "))
        }
        let json = report.json(spec: spec).serialized(indent: 2) + "\n"
        if plan.continuing {
            try writeFileAtomically(path: outDirectory + "/distill.json", contents: json)
        } else {
            let out = try AtomicOutputDirectory(finalPath: outDirectory, force: force)
            try writeFileAtomically(path: out.tempPath + "/spec.yml", contents: specText)
            try writeFileAtomically(path: out.tempPath + "/distill.json", contents: json)
            try out.commit()
        }
        try onOutputReady?(outDirectory)
        try trainingStage(report: &report, outDirectory: outDirectory, resume: plan.continuing, continuingFrom: plan.stage.continuedFrom)
        if spec.training.enabled {
            if let scorer {
                var models = report.training.map { ("after" + (spec.fuseChat.enabled ? " " + $0.name : ""), $0.model) }
                if let m = report.merge { models.append(("after merge", m.output)) }
                for (label, path) in models {
                    let t0 = Date()
                    let after = try scorer.score(modelAt: path, cacheDirectory: nil)
                    report.domainSeconds.append((label, Date().timeIntervalSince(t0)))
                    for i in report.domains.indices { report.domains[i].values.append((label, after[i].perplexity)) }
                    log?("held-out perplexity \(label): " + report.domains.map { String(format: "%@ %.3f", $0.name, $0.values.last?.perplexity ?? .nan) }.joined(separator: ", "))
                }
            }
        }
        var stage = plan.stage
        stage.complete = true
        stage.lastStep = spec.fuseChat.enabled ? nil : report.training.first?.summary.steps
        report.stages = plan.earlier + [stage]
        try writeFileAtomically(path: outDirectory + "/distill.json", contents: report.json(spec: spec).serialized(indent: 2) + "\n")
        return report
    }

    /// The training stage: the target learns from each fused set (FusionTraining, Training.swift).
    /// - FuseLLM: one set, trained in OUT_DIR (metrics.jsonl, checkpoints/, model/, adapter/ for LoRA).
    /// - FuseChat (`spec.fuseChat.enabled`): one copy of the target per source pair, trained in
    ///   OUT_DIR/pairs/pair-NAME, then merged with FuseMerge (`spec.fuseChat.mergeMethod`, base model the
    ///   target, `spec.fuseChat.parameters` as global parameters) into OUT_DIR/model. The merge config is
    ///   kept as OUT_DIR/merge.yml, so `fusekit merge OUT_DIR/merge.yml DIR` redoes the merge to the same bytes.
    /// With `resume`, each training continues from its newest checkpoint; `continuingFrom` (FuseLLM) makes
    /// the training a new stage from the finished run's checkpoint of that step (Continuation.swift).
    func trainingStage(report: inout DistillReport, outDirectory: String, resume: Bool, continuingFrom: Int? = nil) throws {
        guard spec.training.enabled else { return }
        let out = URL(fileURLWithPath: outDirectory).standardizedFileURL.path
        for set in report.fused {
            let directory = spec.fuseChat.enabled ? out + "/pairs/" + set.name : out
            let stage = "train " + set.name
            log?(String(format: "%@: %@ training, loss %g·CE + %g·%@ against %@", stage, spec.training.mode.rawValue, spec.lambda,
                        1 - spec.lambda, spec.training.loss == "kl" ? "KL" : "soft CE", set.folder))
            let outcome = try FusionTraining.train(targetPath: spec.target, fused: try FusedTargets(folder: set.folder), name: set.name, spec: spec,
                                                   directory: directory, resume: resume, continuingFrom: spec.fuseChat.enabled ? nil : continuingFrom,
                                                   willStart: { [weak self] step, p in try self?.trainingWillStart?(set.name, step, p) }) { [weak self] m in
                try self?.trainingProgress?(stage, m)
            }
            report.training.append(outcome)
        }
        guard spec.fuseChat.enabled else { return }
        let base = try fuseChatBase(outDirectory: out)
        let config = fuseChatMergeConfig(base: base, models: report.training.map(\.model))
        try writeFileAtomically(path: out + "/merge.yml", contents: config)
        let parsed = try MergeConfig.parse(yaml: config)
        var options = MergeRunOptions()
        options.force = true
        options.seed = UInt64(spec.training.seed)
        log?("merge: \(spec.fuseChat.mergeMethod) of \(report.training.count) pairwise targets onto \(base)")
        let stage = "merge " + spec.fuseChat.mergeMethod
        let summary = try runMerge(config: parsed, outPath: out + "/model", options: options, workingDirectory: out) { [weak self] done, total, _ in
            self?.progress?(stage, done, total)
        }
        report.merge = (spec.fuseChat.mergeMethod, summary.output, out + "/merge.yml", summary.seconds)
    }

    /// The merge's base model: the target itself when it is an HF folder; a GGUF target is written once
    /// as an f32 HF folder (OUT_DIR/pairs/base), exactly the weights the pairwise trainings started from.
    func fuseChatBase(outDirectory out: String) throws -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: spec.target, isDirectory: &isDir), isDir.boolValue {
            return URL(fileURLWithPath: spec.target).standardizedFileURL.path
        }
        let folder = out + "/pairs/base"
        if FileManager.default.fileExists(atPath: folder + "/config.json") { return folder }
        let store = try WeightStore(path: spec.target)
        let model = try ModelRegistry.loadTrainable(store: store)
        try replaceAtomically(folder) {
            try writeFullModel(model, to: $0, config: store.config, sideFiles: store.folder, extraFiles: try FusionTraining.tokenizerFiles(store))
        }
        return folder
    }

    /// mergekit YAML: the pairwise targets merged onto the base with the spec's method and parameters.
    func fuseChatMergeConfig(base: String, models: [String]) -> String {
        func quoted(_ s: String) -> String { JSON.string(s).serialized() }
        var lines = ["# FuseChat: the pairwise fusion targets merged onto the target (fusekit distill)",
                     "merge_method: \(spec.fuseChat.mergeMethod)", "base_model: \(quoted(base))", "models:"]
        for m in models { lines.append("  - model: \(quoted(m))") }
        if !spec.fuseChat.parameters.isEmpty {
            lines.append("parameters:")
            for (k, v) in spec.fuseChat.parameters.sorted(by: { $0.key < $1.key }) { lines.append("  \(k): \(v)") }
        }
        lines.append("dtype: float32")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Positions of a target sequence that can carry a soft target from a source: not special, not last.
func countTargetPositions(_ tokens: [Int32], _ s: TokenSurfaces) -> Int {
    var n = 0
    for t in 0..<max(0, tokens.count - 1) where !isSpecial(s, tokens[t]) { n += 1 }
    return n
}

/// Fused targets in the capture layout: absent rows as −inf (f16 cannot hold `paddingLogProb`).
func storedForm(_ t: SparseTargets, tokens: [Int32]) -> CapturedSequence {
    var lps = t.logProbs.map { $0 <= paddingLogProb ? -Float.infinity : $0 }
    if let present = t.present {
        for (i, p) in present.enumerated() where !p { for e in 0..<t.k { lps[i * t.k + e] = -.infinity } }
    }
    return CapturedSequence(tokens: tokens, topIDs: t.ids, topLogProbs: lps, crossEntropy: [Float](repeating: 0, count: tokens.count))
}

/// Reads a fused-targets folder back as training data.
public final class FusedTargets {
    public let folder: String
    public let shards: [CaptureShard]

    public init(folder: String) throws {
        self.folder = folder
        var list: [CaptureShard] = []
        var i = 0
        while FileManager.default.fileExists(atPath: CaptureRunner.shardPath(folder, i)) {
            let s = try CaptureShard(path: CaptureRunner.shardPath(folder, i))
            guard s.header.flags & CaptureHeader.fusedTargets != 0 else {
                throw DistillError.captureFile(path: s.path, message: "a top-k capture, not a fused-targets file")
            }
            list.append(s); i += 1
        }
        guard !list.isEmpty else { throw DistillError.captureFile(path: folder, message: "no fused-targets shards") }
        shards = list
    }

    public var sequenceCount: Int { shards.reduce(0) { $0 + $1.header.sequenceCount } }

    /// Sequence `index` (corpus order): its target tokens and soft targets (`present` false where none).
    public func sequence(_ index: Int) throws -> (tokens: [Int32], targets: SparseTargets) {
        for s in shards where index >= s.header.firstSequence && index < s.header.firstSequence + s.header.sequenceCount {
            let c = try s.sequence(index - s.header.firstSequence)
            let k = s.header.k
            var present = [Bool](repeating: true, count: c.tokens.count)
            var lps = c.topLogProbs
            for t in 0..<c.tokens.count {
                if lps[t * k] == -.infinity { present[t] = false }
                for e in 0..<k where lps[t * k + e] == -.infinity { lps[t * k + e] = paddingLogProb }
            }
            return (c.tokens, SparseTargets(k: k, ids: c.topIDs, logProbs: lps, present: present))
        }
        throw DistillError.invalidArgument("\(folder): no sequence \(index) (the set holds \(sequenceCount))")
    }

    /// Sequences as one right-padded `TrainingBatch`: labels are the next tokens (-1 at the end and on
    /// padding), soft targets at the same rows.
    public func batch(sequences indices: [Int], padID: Int = 0) throws -> TrainingBatch {
        let seqs = try indices.map { try sequence($0) }
        let T = seqs.map(\.tokens.count).max() ?? 0
        let B = seqs.count
        let k = seqs.first?.targets.k ?? 1
        var tokens = [Int](repeating: padID, count: B * T), labels = [Int](repeating: -1, count: B * T)
        var ids = [Int32](repeating: 0, count: B * T * k), lps = [Float](repeating: paddingLogProb, count: B * T * k)
        var present = [Bool](repeating: false, count: B * T)
        for (b, s) in seqs.enumerated() {
            for t in 0..<s.tokens.count {
                tokens[b * T + t] = Int(s.tokens[t])
                if t + 1 < s.tokens.count { labels[b * T + t] = Int(s.tokens[t + 1]) }
                present[b * T + t] = s.targets.present?[t] ?? true
                for e in 0..<k { ids[(b * T + t) * k + e] = s.targets.ids[t * k + e]; lps[(b * T + t) * k + e] = s.targets.logProbs[t * k + e] }
            }
        }
        return TrainingBatch(tokens: tokens, batch: B, length: T, labels: labels, soft: SparseTargets(k: k, ids: ids, logProbs: lps, present: present))
    }
}

/// The tokenizer of a model path: a GGUF file's vocabulary or an HF folder's tokenizer.json.
public func loadTokenizer(_ path: String) throws -> Tokenizer {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw DistillError.tokenizer(model: path, message: "no such file or folder")
    }
    do {
        if path.hasSuffix(".gguf") {
            let file = try GGUFFile(path: path)
            guard file.metadata["tokenizer.ggml.model"] != nil else {
                throw DistillError.tokenizer(model: path, message: "the GGUF file carries no vocabulary (tokenizer.ggml.*); distillation needs token strings")
            }
            return try GGUFVocabulary(gguf: file).makeTokenizer()
        }
        if !isDir.boolValue, path.hasSuffix(".json") { return try Tokenizer(contentsOf: path) }
        let folder = isDir.boolValue ? path : URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: folder + "/tokenizer.json") else {
            throw DistillError.tokenizer(model: path, message: "no tokenizer.json in the folder; distillation needs each model's tokenizer to decode tokens to text")
        }
        return try Tokenizer(contentsOf: folder)
    } catch let e as DistillError { throw e } catch {
        throw DistillError.tokenizer(model: path, message: "\(error)")
    }
}
