import Foundation
import FuseEval
import FuseIO
import FuseModels
import FuseTensor

/// Raw metric values of one candidate, one per task, in spec order.
public typealias TaskValues = [Double]

/// Weighted fitness: Σ w·s·v / Σ w, with s = −1 for lower-is-better metrics, so higher is better.
func fitness(_ values: TaskValues, _ tasks: [FitnessTask]) -> Double {
    let total = tasks.reduce(0) { $0 + $1.weight }
    return zip(values, tasks).reduce(0) { $0 + $1.1.weight * $1.1.sign * $1.0 } / max(total, .leastNormalMagnitude)
}

/// Scores candidate model folders on task lists. The narrow interface between search and evaluation:
/// a folder in (an HF folder as `fusekit merge` writes it), metric values out.
public protocol CandidateEvaluator: AnyObject {
    /// Metric values per folder, per task. Must not depend on how many folders come at once.
    func evaluate(folders: [String], tasks: [FitnessTask]) throws -> [TaskValues]
    /// True when the folders must carry tokenizer files (another process reads them).
    var needsSideFiles: Bool { get }
    /// True when the evaluator scores candidates held in memory (`evaluate(store:tasks:)`); otherwise
    /// the run writes each candidate to a scratch folder.
    var scoresInMemory: Bool { get }
    /// Metric values of one candidate held in memory, per task.
    func evaluate(store: WeightStore, tasks: [FitnessTask]) throws -> TaskValues
}

extension CandidateEvaluator {
    public var scoresInMemory: Bool { false }
    public func evaluate(store: WeightStore, tasks: [FitnessTask]) throws -> TaskValues {
        throw EvolveError.invalidArgument("this evaluator scores folders only; \(store.path) is in memory")
    }
}

/// Loads each candidate in this process and runs FuseEval on it.
public final class InProcessEvaluator: CandidateEvaluator {
    let codec: TokenCodec?
    let batchSize: Int
    public init(codec: TokenCodec?, batchSize: Int = 8) { self.codec = codec; self.batchSize = batchSize }
    public var needsSideFiles: Bool { false }
    public var scoresInMemory: Bool { true }
    /// Seconds spent loading candidates (the rest of `evaluate` is FuseEval's).
    public private(set) var loadSeconds = 0.0

    public func evaluate(folders: [String], tasks: [FitnessTask]) throws -> [TaskValues] {
        try folders.map { try score(try WeightStore(path: $0), tasks) }
    }

    /// Builds the model straight from the candidate's tensors: the same model its folder would give.
    public func evaluate(store: WeightStore, tasks: [FitnessTask]) throws -> TaskValues { try score(store, tasks) }

    /// The last store's model, kept while the store lives (early stopping scores one task at a time).
    private weak var lastStore: WeightStore?
    private var lastModel: (any CausalLanguageModel)?

    func score(_ store: WeightStore, _ tasks: [FitnessTask]) throws -> TaskValues {
        let model: any CausalLanguageModel
        if let last = lastModel, lastStore === store { model = last } else {
            lastModel = nil
            let t0 = Date()
            model = try ModelRegistry.load(store: store)
            loadSeconds += Date().timeIntervalSince(t0)
            lastStore = store; lastModel = model
        }
        return try tasks.map { t in
            let report = try Evaluator(model: model, codec: codec, batchSize: batchSize, limit: t.limit).run(t.task)
            guard let v = report.metrics[t.metric] else {
                throw EvolveError.invalidArgument("\(t.path): the evaluator reported no '\(t.metric)' metric")
            }
            return v
        }
    }
}

/// Runs `COMMAND... FOLDER --task FILE --json --quiet [--limit N]` (by default `fusekit eval`) as up to
/// `workers` processes at once and reads `metrics.<metric>` from each JSON result. A scheduler (Slurm
/// job arrays, Kubernetes Jobs) can run the same command lines on other machines (DESIGN.md, "Beyond
/// one machine").
public final class WorkerEvaluator: CandidateEvaluator {
    let command: [String]
    let workers: Int
    public init(command: [String], workers: Int) { self.command = command; self.workers = max(1, workers) }
    public var needsSideFiles: Bool { true }

    public func evaluate(folders: [String], tasks: [FitnessTask]) throws -> [TaskValues] {
        var jobs: [(Int, Int, [String])] = []
        for (c, folder) in folders.enumerated() {
            for (t, task) in tasks.enumerated() {
                var args = command + [folder, "--task", task.path, "--json", "--quiet"]
                if let limit = task.limit { args += ["--limit", String(limit)] }
                jobs.append((c, t, args))
            }
        }
        var results = [[Double]](repeating: [Double](repeating: .nan, count: tasks.count), count: folders.count)
        var next = 0
        while next < jobs.count {
            let batch = jobs[next..<min(jobs.count, next + workers)]
            let running = try batch.map { job -> (Process, Pipe, Pipe, (Int, Int, [String])) in
                let p = Process(), out = Pipe(), err = Pipe()
                p.executableURL = URL(fileURLWithPath: job.2[0])
                p.arguments = Array(job.2.dropFirst())
                p.standardOutput = out
                p.standardError = err
                do { try p.run() } catch { throw EvolveError.worker(command: job.2.joined(separator: " "), message: "cannot start: \(error)") }
                return (p, out, err, job)
            }
            for (p, out, err, job) in running {
                // stderr is drained on its own thread so a chatty worker cannot block on a full pipe.
                let errData = ErrorText()
                let drained = DispatchSemaphore(value: 0)
                DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); drained.signal() }
                let data = out.fileHandleForReading.readDataToEndOfFile()
                drained.wait()
                let errText = String(decoding: errData.data, as: UTF8.self)
                p.waitUntilExit()
                let line = job.2.joined(separator: " ")
                guard p.terminationStatus == 0 else {
                    throw EvolveError.worker(command: line, message: "exit status \(p.terminationStatus): \(errText.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
                let metric = tasks[job.1].metric
                guard let json = try? JSON.parse(Array(data)), let v = json["metrics"]?[metric]?.double else {
                    throw EvolveError.worker(command: line, message: "expected a JSON object with metrics.\(metric) on stdout, got \(String(decoding: data.prefix(200), as: UTF8.self).debugDescription)")
                }
                results[job.0][job.1] = v
            }
            next += batch.count
        }
        return results
    }
}

final class ErrorText: @unchecked Sendable { var data = Data() }

/// Dev and held-out values already measured, keyed by (genome hash, set). Appended to
/// OUT_DIR/cache.jsonl after every evaluation, so a run killed mid-generation does not pay again for
/// what it measured; a torn last line (the kill came mid-write) is dropped when read back.
final class FitnessCache {
    private(set) var values: [String: TaskValues] = [:]
    let path: String?
    private var handle: FileHandle?

    init(path: String?) throws {
        self.path = path
        guard let path else { return }
        if FileManager.default.fileExists(atPath: path) {
            let data = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
            let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            for (k, line) in lines.enumerated() {
                guard let json = try? JSON.parse(Array(line)), let key = json["key"]?.string,
                      let list = json["values"]?.array?.compactMap(\.double) else {
                    if k == lines.count - 1 && data.last != UInt8(ascii: "\n") { break }
                    throw EvolveError.state(path: path, message: "line \(k + 1) is not a cache entry; the file is corrupt (delete it to re-evaluate)")
                }
                values[key] = list
            }
            // Rewrite without a torn tail so appends start on a fresh line.
            let clean = values.sorted { $0.key < $1.key }.map { Self.line($0.key, $0.value) }.joined()
            try writeFileAtomically(path: path, contents: clean)
        } else {
            FileManager.default.createFile(atPath: path, contents: nil)
        }
        handle = FileHandle(forWritingAtPath: path)
        handle?.seekToEndOfFile()
    }

    static func line(_ key: String, _ v: TaskValues) -> String {
        JSON.object([("key", .string(key)), ("values", .array(v.map { .double($0) }))]).serialized() + "\n"
    }

    subscript(key: String) -> TaskValues? { values[key] }

    func store(_ key: String, _ v: TaskValues) {
        values[key] = v
        handle?.write(Data(Self.line(key, v).utf8))
    }
}
