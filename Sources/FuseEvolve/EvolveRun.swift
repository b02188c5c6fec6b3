import Foundation
import FuseIO
import FuseMerge
import FuseModels
import FuseTensor

/// What the CLI passes besides the spec.
public struct EvolveOptions {
    /// Overrides the spec's seed (`--seed`).
    public var seed: UInt64?
    public var resume = false
    public var force = false
    /// Models to add to a finished run (`--add-source`), which then continues from its checkpoint.
    public var addSources: [String] = []
    /// Scores candidates; default: in this process.
    public var evaluator: CandidateEvaluator
    /// One line per generation (progress on stderr).
    public var progress: ((String) -> Void)?
    /// Stops with `EvolveRun.Interrupted` after this many fresh evaluations in this process (tests use
    /// it to stand for kill -9: nothing is written after the last checkpoint but the fitness cache).
    public var interruptAfterEvaluations: Int?
    /// Memory budget of weight-space search (`--max-memory`): individuals beyond it wait in their
    /// checkpoint files and are read back when needed (nil: the whole population stays in memory).
    public var maxMemoryBytes: Int?

    public init(evaluator: CandidateEvaluator) { self.evaluator = evaluator }
}

/// The result of a run (`--json`, and the measurements of the run.json the CLI writes).
public struct EvolveSummary {
    public var search: String
    public var seed: UInt64
    public var generations: Int
    public var evaluations: Int
    public var bestDev: Double
    public var heldOut: Double?
    public var model: String
    public var recipe: String?
    public var seconds: Double
    public var peakMemoryBytes: Int
    /// Trials of this process whose scoring stopped early (they could not beat their parent).
    public var earlyStops = 0
    /// Seconds spent per part of the run, in this process: `evaluate` (the evaluator, model loads
    /// included), `load_model` (the in-process evaluator's share of it spent loading candidates),
    /// `materialize` (candidates made ready for scoring: tensors handed to an in-memory store, or a
    /// folder written for workers), `trial`, `merge`, `checkpoint`, `restore` (`--resume` reading the
    /// population's files and rebuilding its trials from their recipes).
    public var timings: [(String, Double)] = []
    /// Weight space under --max-memory: individuals written out early, and read back.
    public var spills = 0, reloads = 0
    public var json: JSON {
        var pairs: [(String, JSON)] = [
            ("command", .string("evolve")), ("search", .string(search)), ("seed", .number(String(seed))),
            ("generations", .int(generations)), ("evaluations", .int(evaluations)), ("best_dev", .double(bestDev)),
            ("held_out", heldOut.map { .double($0) } ?? .null), ("model", .string(model)),
        ]
        if let recipe { pairs.append(("recipe", .string(recipe))) }
        pairs += [("seconds", .double(seconds)), ("peak_memory_bytes", .int(peakMemoryBytes)), ("early_stops", .int(earlyStops))]
        pairs.append(("timings", .object(timings.map { ($0.0, .double($0.1)) })))
        pairs += [("spills", .int(spills)), ("reloads", .int(reloads))]
        return .object(pairs)
    }
}

/// A candidate to score: weights held in memory, or a merge recipe built in memory through FuseMerge.
enum Candidate {
    case weights(WeightSet)
    case recipe(MergeConfig)

    var key: String {
        switch self {
        case let .weights(w): return w.hash
        case let .recipe(c): var h = StableHasher(); h.combine(c.sourceText); return "recipe-" + h.hex
        }
    }
}

/// One `fusekit evolve` run over OUT_DIR: state.json, cache.jsonl, log.jsonl, population/ind-*.safetensors,
/// and at the end model/ (an HF folder as `fusekit merge` writes it) and recipe.yml (recipe search);
/// the CLI adds run.json in FuseReport's schema.
public final class EvolveRun {
    /// Thrown by `interruptAfterEvaluations`.
    public struct Interrupted: Error {}

    let spec: EvolveSpec
    let options: EvolveOptions
    let outDir: String
    var state: RunState
    var cache: FitnessCache
    let log: GenerationLog
    let donor: WeightStore
    let start = Date()
    var freshEvaluations = 0
    /// Trials whose scoring stopped early (they could not beat their parent).
    var earlyStops = 0
    /// Seconds per part of the run (EvolveSummary.timings), and the population's spill counts.
    var timings: [String: Double] = [:]
    var spills = 0, reloads = 0
    var lastProgress = Date()
    let scratch: String
    /// True when this run made OUT_DIR (it is removed again if the run fails before its first checkpoint).
    private(set) var createdOutput = false
    /// The folder --force replaced, kept aside until this run's first checkpoint.
    private(set) var displaced: String?

    var statePath: String { outDir + "/state.json" }
    var seed: UInt64 { state.seed }

    /// Runs (or resumes) the search and writes the outputs.
    public static func run(spec: EvolveSpec, outDir: String, options: EvolveOptions) throws -> EvolveSummary {
        let run = try EvolveRun(spec: spec, outDir: outDir, options: options)
        defer { try? FileManager.default.removeItem(atPath: run.scratch) }
        do { return try run.execute() } catch {
            // A run that fails before its first checkpoint (bad models, say) leaves nothing behind.
            if run.createdOutput && !FileManager.default.fileExists(atPath: run.statePath) {
                try? FileManager.default.removeItem(atPath: run.outDir)
                if let aside = run.displaced { _ = rename(aside, run.outDir) }
            }
            throw error
        }
    }

    init(spec: EvolveSpec, outDir: String, options: EvolveOptions) throws {
        let out = URL(fileURLWithPath: outDir).standardizedFileURL.path
        self.spec = spec
        self.options = options
        self.outDir = out
        let fm = FileManager.default
        var specHasher = StableHasher()
        specHasher.combine(spec.sourceText)
        let seed = options.seed ?? spec.seed
        let continuing = options.resume || !options.addSources.isEmpty
        if fm.fileExists(atPath: out) && !continuing {
            guard options.force else { throw EvolveError.outputExists(path: out) }
            // Moved aside, not deleted: it comes back if this run fails before its first checkpoint.
            let aside = URL(fileURLWithPath: out).deletingLastPathComponent().path + "/." + URL(fileURLWithPath: out).lastPathComponent + ".replaced-\(getpid())"
            try? fm.removeItem(atPath: aside)
            guard rename(out, aside) == 0 else {
                throw FuseIOError.writeFailed(path: out, reason: "cannot move the existing folder aside: \(String(cString: strerror(errno)))")
            }
            displaced = aside
        }
        if continuing {
            guard fm.fileExists(atPath: out + "/state.json") else {
                throw EvolveError.state(path: out + "/state.json", message: "no run to continue here; run without --resume / --add-source to start one")
            }
            var s = try RunState.load(path: out + "/state.json")
            guard s.specHash == specHasher.hex else {
                throw EvolveError.state(path: out + "/state.json", message: "the spec changed since this run started; resume with the same spec, or start over with --force")
            }
            guard s.seed == seed else {
                throw EvolveError.state(path: out + "/state.json", message: "the run used --seed \(s.seed), not \(seed); resume with the same seed")
            }
            if !options.addSources.isEmpty {
                guard s.finished else {
                    throw EvolveError.state(path: out + "/state.json", message: "--add-source continues a finished run; finish this one first with --resume")
                }
                guard spec.search != .cmaES else {
                    throw EvolveError.invalidArgument("--add-source: a recipe search's genome has one gene block per source, so a new source starts a new search; add it to the spec's sources and run again")
                }
                for path in options.addSources where s.sources.contains(path) {
                    throw EvolveError.invalidArgument("--add-source \(path): already a source of this run")
                }
                if Set(options.addSources).count != options.addSources.count {
                    throw EvolveError.invalidArgument("--add-source names the same model twice")
                }
                s.finished = false
            }
            state = s
        } else {
            createdOutput = true
            do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
                throw FuseIOError.writeFailed(path: out, reason: "cannot create the output folder: \(error.localizedDescription)")
            }
            state = RunState(specHash: specHasher.hex, seed: seed, search: spec.search.rawValue, sources: spec.sources,
                             targetGenerations: spec.generations)
        }
        log = GenerationLog(path: out + "/log.jsonl")
        try log.truncate(toGenerations: continuing ? state.generation : -1)
        cache = try FitnessCache(path: out + "/cache.jsonl")
        let donorPath = spec.base ?? spec.sources[0]
        do { donor = try WeightStore(path: donorPath) } catch {
            throw EvolveError.spec(path: spec.base == nil ? "sources[0]" : "base", line: nil, message: "cannot open '\(donorPath)': \(error)")
        }
        let shm = "/dev/shm"
        let useMemory = !options.evaluator.needsSideFiles && access(shm, W_OK) == 0
        if useMemory { Self.removeStaleScratch(in: shm) }
        scratch = (useMemory ? shm + "/fusekit-evolve-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" : out + "/.candidates")
        try? fm.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    /// Writes state.json atomically; the first time, the folder --force replaced is deleted for good.
    func saveState() throws {
        try state.save(path: statePath)
        if let aside = displaced {
            try? FileManager.default.removeItem(atPath: aside)
            displaced = nil
        }
    }

    /// Scratch folders of runs killed with -9 hold model-sized files in memory (tmpfs); those whose
    /// process is gone are removed.
    static func removeStaleScratch(in folder: String) {
        let prefix = "fusekit-evolve-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count).split(separator: "-").first ?? "") else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(atPath: folder + "/" + name) }
        }
    }

    func execute() throws -> EvolveSummary {
        let result: (model: String, recipe: String?, best: Double, heldOut: Double?)
        switch spec.search {
        case .evolver, .de: result = try WeightSearch(run: self).search()
        case .cmaES: result = try RecipeSearch(run: self).search()
        case .greedySoup: result = try GreedySoup(run: self).search()
        }
        state.finished = true
        try saveState()
        var summary = EvolveSummary(search: spec.search.rawValue, seed: seed, generations: state.generation, evaluations: state.evaluations,
                                    bestDev: result.best, heldOut: result.heldOut, model: result.model, recipe: result.recipe,
                                    seconds: Date().timeIntervalSince(start), peakMemoryBytes: peakResidentBytes())
        summary.earlyStops = earlyStops
        summary.timings = currentTimings
        summary.spills = spills; summary.reloads = reloads
        return summary
    }

    static let timingOrder = ["evaluate", "load_model", "materialize", "trial", "merge", "checkpoint", "restore"]

    /// The seconds per part of the run so far, in `timingOrder`.
    var currentTimings: [(String, Double)] {
        var t = timings
        if let e = options.evaluator as? InProcessEvaluator { t["load_model"] = e.loadSeconds }
        return Self.timingOrder.compactMap { k in t[k].map { (k, $0) } }
    }

    /// Runs `body`, adding its wall time to `timings[key]`.
    func timed<T>(_ key: String, _ body: () throws -> T) rethrows -> T {
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { timings[key, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        return try body()
    }

    // MARK: - Evaluation

    /// A candidate ready to be scored: in memory for an evaluator that can score it there, otherwise
    /// written as an HF folder under the scratch folder (which `discard` removes).
    enum Prepared {
        case store(WeightStore)
        case folder(String)
    }

    func prepare(_ candidate: Candidate, key: String) throws -> Prepared {
        let weights: WeightSet
        switch candidate {
        case let .weights(w): weights = w
        case let .recipe(config): weights = try timed("merge") { try mergeRecipe(config) }
        }
        return try timed("materialize") {
            if options.evaluator.scoresInMemory {
                let tensors = try weights.layout.names.indices.map { k in
                    (weights.layout.names[k], try Tensor(sharing: weights.tensors[k], shape: weights.layout.shapes[k]))
                }
                return .store(try WeightStore(tensors: tensors, config: try modelConfig(dtype: .f32), path: "candidate \(key)"))
            }
            return .folder(try write(weights, key: key.replacingOccurrences(of: ":", with: "-")))
        }
    }

    func discard(_ prepared: Prepared) {
        if case let .folder(f) = prepared { try? FileManager.default.removeItem(atPath: f) }
    }

    /// Metric values of prepared candidates on `tasks`.
    func score(_ prepared: [Prepared], _ tasks: [FitnessTask]) throws -> [TaskValues] {
        try timed("evaluate") {
            let folders = prepared.compactMap { p -> String? in if case let .folder(f) = p { return f }; return nil }
            if folders.count == prepared.count { return try options.evaluator.evaluate(folders: folders, tasks: tasks) }
            return try prepared.map { p in
                switch p {
                case let .store(s): return try options.evaluator.evaluate(store: s, tasks: tasks)
                case let .folder(f): return try options.evaluator.evaluate(folders: [f], tasks: tasks).first ?? []
                }
            }
        }
    }

    private func write(_ weights: WeightSet, key: String) throws -> String {
        let folder = scratch + "/" + key
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try weights.writeSafetensors(path: folder + "/model.safetensors", dtype: .f32)
        try writeModelConfig(to: folder, dtype: .f32)
        if options.evaluator.needsSideFiles, let f = donor.folder { try copySideFiles(from: f, to: folder) }
        return folder
    }

    func writeModelConfig(to folder: String, dtype: DType) throws {
        try writeFileAtomically(path: folder + "/config.json", contents: try modelConfig(dtype: dtype).serialized(indent: 2) + "\n")
    }

    /// The donor's config.json with the result's dtype.
    func modelConfig(dtype: DType) throws -> JSON {
        guard case var .object(pairs)? = donor.config else {
            throw EvolveError.incompatibleModels("\(donor.path): no config.json to describe the result's architecture")
        }
        pairs.removeAll { $0.0 == "torch_dtype" || $0.0 == "dtype" }
        pairs.append(("dtype", .string(torchDTypeName(dtype))))
        return .object(pairs)
    }

    /// A recipe merged in memory by FuseMerge (planner + streaming executor into an in-memory sink).
    func mergeRecipe(_ config: MergeConfig) throws -> WeightSet {
        let sources = try openModels(config, relativeTo: "/")
        let plan = try MergePlanner(config: config, sources: sources).plan()
        let ordered: [ModelSource] = try plan.models.map { m in
            guard let s = sources[m] else { throw MergeError.missingModel(path: "models", model: m.description) }
            return s
        }
        let sink = InMemorySink()
        var exec = ExecutionOptions(seed: seed)
        exec.prefetchBudgetBytes = 256 << 20
        try MergeExecutor(plan: plan, sources: ordered, options: exec).run(into: sink)
        let layout = WeightLayout(names: sink.tensors.map(\.0), shapes: sink.tensors.map(\.1.shape))
        return WeightSet(layout: layout, tensors: try sink.tensors.map { try $0.1.floats() })
    }

    /// Dev fitness of each candidate; cached ones cost nothing. Counts toward the budget.
    func dev(_ candidates: [Candidate]) throws -> [Double] {
        state.evaluations += candidates.count
        return try values(candidates, tasks: spec.dev, set: "dev").map { fitness($0, spec.dev) }
    }

    /// Dev fitness of one candidate that only matters if it beats `parent` strictly: tasks are scored one
    /// at a time, and scoring stops as soon as perfect scores on the rest could not lift the fitness
    /// above `parent` (nil then). A stopped candidate is never cached, so a resumed run decides alike.
    func dev(_ candidate: Candidate, mustBeat parent: Double) throws -> Double? {
        guard spec.earlyStop, spec.dev.count > 1, cache[candidate.key + ":dev"] == nil else { return try dev([candidate])[0] }
        state.evaluations += 1
        if let limit = options.interruptAfterEvaluations, freshEvaluations + 1 > limit { throw Interrupted() }
        let key = candidate.key + ":dev"
        let prepared = try prepare(candidate, key: key)
        defer { discard(prepared) }
        freshEvaluations += 1
        let total = spec.dev.reduce(0) { $0 + $1.weight }
        var done = 0.0, values: TaskValues = []
        for (k, task) in spec.dev.enumerated() {
            let v = try score([prepared], [task])
            guard v.count == 1, v[0].count == 1 else { throw EvolveError.invalidArgument("the evaluator returned \(v) for one candidate and one task") }
            values.append(Self.finite(v[0][0], task))
            done += task.weight * task.sign * values[k]
            let rest = spec.dev[(k + 1)...].reduce(0) { $0 + $1.weight * $1.bestPossible }
            if k + 1 < spec.dev.count && (done + rest) / total <= parent {
                earlyStops += 1
                return nil
            }
        }
        cache.store(key, values)
        reportWithinGeneration()
        return fitness(values, spec.dev)
    }

    /// Held-out fitness (logged, never used to choose); nil without held-out tasks.
    func heldOut(_ candidate: Candidate) throws -> Double? {
        guard !spec.heldOut.isEmpty else { return nil }
        return fitness(try values([candidate], tasks: spec.heldOut, set: "held_out")[0], spec.heldOut)
    }

    func values(_ candidates: [Candidate], tasks: [FitnessTask], set: String) throws -> [TaskValues] {
        let keys = candidates.map { $0.key + ":" + set }
        var missing: [Int] = []
        for (k, key) in keys.enumerated() where cache[key] == nil && !missing.contains(where: { keys[$0] == key }) { missing.append(k) }
        if !missing.isEmpty {
            if let limit = options.interruptAfterEvaluations, freshEvaluations + missing.count > limit { throw Interrupted() }
            let results: [TaskValues]
            if options.evaluator.scoresInMemory {
                // One candidate in memory at a time.
                results = try missing.map { k in try score([try prepare(candidates[k], key: keys[k])], tasks)[0] }
            } else {
                let prepared = try missing.map { try prepare(candidates[$0], key: keys[$0]) }
                defer { prepared.forEach(discard) }
                results = try score(prepared, tasks)
            }
            guard results.count == missing.count, results.allSatisfy({ $0.count == tasks.count }) else {
                throw EvolveError.invalidArgument("the evaluator returned \(results.count) results for \(missing.count) candidates of \(tasks.count) tasks")
            }
            for (k, v) in zip(missing, results) { cache.store(keys[k], zip(v, tasks).map { Self.finite($0, $1) }) }
            freshEvaluations += missing.count
            reportWithinGeneration()
        }
        return keys.map { cache[$0] ?? [] }
    }

    /// A NaN or infinite metric (a broken candidate's perplexity, say) becomes the worst finite value
    /// for that metric, so the candidate ranks last and the state stays valid JSON.
    /// Large enough to lose to any real metric, small enough that weight (at most 1e9) times it stays finite.
    static let worstMetric = 1e200

    static func finite(_ v: Double, _ task: FitnessTask) -> Double {
        if v.isFinite { return v }
        return task.sign < 0 ? worstMetric : -worstMetric
    }

    /// True when `count` more dev evaluations fit the budget.
    func budgetAllows(_ count: Int) -> Bool { spec.budget.map { state.evaluations + count <= $0 } ?? true }

    // MARK: - Output

    /// Writes `weights` as OUT_DIR/model, an HF folder like `fusekit merge` writes (replacing an earlier one).
    func writeModel(_ weights: WeightSet, description: String) throws -> String {
        let path = outDir + "/model"
        let out = try AtomicOutputDirectory(finalPath: path, force: true)
        do {
            try weights.writeSafetensors(path: out.tempPath + "/model.safetensors", dtype: spec.outDType)
            try writeModelConfig(to: out.tempPath, dtype: spec.outDType)
            if let f = donor.folder { try copySideFiles(from: f, to: out.tempPath) }
            try writeFileAtomically(path: out.tempPath + "/README.md", contents: modelCard(description))
            try out.commit()
        } catch { out.abandon(); throw error }
        return path
    }

    /// The README.md of model/: what was searched, from which sources, and how to reproduce it.
    func modelCard(_ description: String) -> String {
        var s = "---\nlibrary_name: transformers\ntags:\n- fusekit\n- evolve\n---\n# evolved\n\n"
        s += "Made by `fusekit evolve` (\(spec.search.rawValue), seed \(seed), \(state.generation) generations, "
        s += "\(state.evaluations) dev evaluations): \(description)\n\n## Sources\n\n"
        s += state.sources.enumerated().map { "\($0). \($1)\n" }.joined()
        if let base = spec.base { s += "\nBase: \(base)\n" }
        s += "\n## Spec\n\n```yaml\n" + spec.sourceText.trimmingCharacters(in: .whitespacesAndNewlines) + "\n```\n"
        return s
    }

    /// Within a long generation, a progress line at most every `progressInterval` seconds.
    func reportWithinGeneration() {
        let now = Date()
        guard now.timeIntervalSince(lastProgress) >= Self.progressInterval else { return }
        lastProgress = now
        options.progress?("evolve: generation \(state.generation + 1)/\(state.targetGenerations) in progress, "
                          + "\(state.evaluations) evaluations, elapsed \(Self.seconds(now.timeIntervalSince(start)))")
    }
    static let progressInterval = 10.0

    /// One log line and one progress line per generation.
    func record(_ entry: [(String, JSON)], best: Double, median: Double, heldOut: Double?) throws {
        let elapsed = Date().timeIntervalSince(start)
        var pairs: [(String, JSON)] = [("generation", .int(state.generation)), ("evaluations", .int(state.evaluations)),
                                       ("best", .double(best)), ("median", .double(median)),
                                       ("held_out", heldOut.map { .double($0) } ?? .null)]
        pairs += entry
        pairs.append(("seconds", .double(elapsed)))
        pairs.append(("timings", .object(currentTimings.map { ($0.0, .double($0.1)) })))
        try log.append(.object(pairs))
        let done = max(1, state.generation)
        let eta = state.generation > 0 ? elapsed / Double(done) * Double(max(0, state.targetGenerations - state.generation)) : 0
        var line = String(format: "evolve: generation %d/%d  best %.4f  median %.4f", state.generation, state.targetGenerations, best, median)
        if let heldOut { line += String(format: "  held-out %.4f", heldOut) }
        line += "  evaluations \(state.evaluations)  elapsed \(Self.seconds(elapsed))  eta \(Self.seconds(eta))"
        options.progress?(line)
    }

    static func seconds(_ s: Double) -> String { s < 60 ? String(format: "%.1fs", s) : String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
}

/// The largest resident set this process had (VmHWM), in bytes; 0 where /proc is absent.
func peakResidentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.split(separator: " ").compactMap { Int($0) }
        return (digits.first ?? 0) * 1024
    }
    return 0
}

func median(_ v: [Double]) -> Double {
    guard !v.isEmpty else { return .nan }
    let s = v.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
