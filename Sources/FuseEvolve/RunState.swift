import Foundation
import FuseIO
import FuseTensor

/// OUT_DIR/state.json: everything a run needs to continue after a crash, written atomically at the end
/// of every generation (format in docs/formats.md, "Evolve logs"). Random choices are derived from
/// (seed, generation, individual, tensor), so the RNG state is the seed and the generation counter.
/// A weight-space population is checkpointed beside it in population.safetensors (`ind<k>/<tensor>`),
/// its hash recorded here.
struct RunState: Codable, Equatable {
    static let format = "fusekit-evolve-state"
    static let currentVersion = 1

    var format = RunState.format
    var version = RunState.currentVersion
    /// Hash of the spec text: --resume refuses a changed spec.
    var specHash: String
    var seed: UInt64
    var search: String
    /// Sources in population order (spec sources, then any --add-source).
    var sources: [String]
    /// Generations completed (0: the initial population is scored).
    var generation = 0
    /// Generations to run in all (the spec's, plus the spec's again after each --add-source).
    var targetGenerations: Int
    /// Dev evaluations requested so far (cache hits included, so the count does not depend on crashes).
    var evaluations = 0
    var finished = false

    // Weight space
    var scores: [Double]?
    var populationScore: Double?
    var lineage: [[String]]?
    var populationHash: String?
    /// The checkpoint file (a new name per generation, so a crash between writing it and this state
    /// leaves the previous pair intact).
    var populationFile: String?
    /// The population's files in OUT_DIR/population/, one per individual in population order, each
    /// named by the hash of its values (the current format; `populationFile` is the earlier one).
    var populationFiles: [String]?
    /// How the individuals without a file were built (accepted trials and their ancestors), by hash;
    /// `--resume` rebuilds them from these.
    var populationRecipes: [String: IndividualRecipe]?

    // Recipe space
    var cma: CMAES?
    var bestGenome: [Double]?
    var bestScore: Double?
    var bestRecipe: String?
    var bestLineage: String?

    // Greedy soup
    var order: [Int]?
    var soup: [Int]?
    var tried: Int?

    static func load(path: String) throws -> RunState {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw EvolveError.state(path: path, message: "cannot read the run state (\(error.localizedDescription)); run without --resume to start over")
        }
        let state: RunState
        do { state = try JSONDecoder().decode(RunState.self, from: data) } catch {
            throw EvolveError.state(path: path, message: "the run state is corrupt (\(error)); nothing was changed — restore it, or start over with --force")
        }
        guard state.format == format, state.version == currentVersion else {
            throw EvolveError.state(path: path, message: "format '\(state.format)' version \(state.version) is not \(format) version \(currentVersion)")
        }
        return state
    }

    func save(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data = try encoder.encode(self)
        try writeFileAtomically(path: path, bytes: Array(data))
    }
}

/// Writes and reads a population checkpoint: one safetensors file, tensors named `ind<k>/<name>`, in f32.
enum PopulationCheckpoint {
    static func load(path: String, layout: WeightLayout, count: Int, expectedHash: String?) throws -> [WeightSet] {
        let store: WeightStore
        do { store = try WeightStore(path: path) } catch {
            throw EvolveError.state(path: path, message: "cannot read the population checkpoint (\(error)); start over with --force")
        }
        var population: [WeightSet] = []
        for k in 0..<count {
            var tensors: [[Float]] = []
            for (j, name) in layout.names.enumerated() {
                let key = "ind\(k)/\(name)"
                guard let info = store.info(key), info.shape == layout.shapes[j] else {
                    throw EvolveError.state(path: path, message: "the checkpoint lacks '\(key)' with shape \(layout.shapes[j]); it is corrupt or from other sources — start over with --force")
                }
                tensors.append(try store.floats(key))
            }
            population.append(WeightSet(layout: layout, tensors: tensors))
        }
        if let expectedHash, populationHash(population) != expectedHash {
            throw EvolveError.state(path: path, message: "the population checkpoint does not match state.json (hash differs); it is corrupt — start over with --force")
        }
        return population
    }

    static func populationHash(_ population: [WeightSet]) -> String { populationHash(population.map(\.hash)) }

    static func populationHash(_ hashes: [String]) -> String {
        var h = StableHasher()
        for hash in hashes { h.combine(hash) }
        return h.hex
    }
}

/// OUT_DIR/log.jsonl: one JSON object per generation (docs/formats.md, "Evolve logs"). On resume the
/// lines of generations after the checkpoint are dropped, so the log equals an uninterrupted run's.
struct GenerationLog {
    let path: String

    func truncate(toGenerations g: Int) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let kept = text.split(separator: "\n").filter { line in
            guard let json = try? JSON.parse(String(line)), let lineGeneration = json["generation"]?.int else { return false }
            return lineGeneration <= g
        }
        try writeFileAtomically(path: path, contents: kept.map { $0 + "\n" }.joined())
    }

    func append(_ entry: JSON) throws {
        let line = entry.serialized() + "\n"
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw FuseIOError.writeFailed(path: path, reason: "cannot open the log for appending")
        }
        defer { try? h.close() }
        h.seekToEndOfFile()
        h.write(Data(line.utf8))
    }
}
