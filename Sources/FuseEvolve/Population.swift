import Foundation
import FuseIO
import FuseMerge
import FuseTensor

/// How an accepted trial was built: its parents (by the hash of their values) and the operator's
/// settings. Trials are deterministic (every random choice comes from a stream named by seed, generation
/// and individual), so this recipe rebuilds the same bytes; a checkpoint stores it instead of the
/// trial's 4 bytes per weight (issue 9: "population as recipes or deltas").
struct IndividualRecipe: Codable, Equatable {
    /// The individual that was mutated and crossed (x_i).
    var target: String
    /// The references (x_r for Evolver; a, b, c for DE/rand/1), in the operator's order.
    var references: [String]
    /// `evolver` or `rand-one`, with its f (F).
    var rule: String
    var f: Float
    var cr: Float
    var unit: String
    var forceOne: Bool
    var seed: UInt64
    /// The random stream's name, `trial/<generation>/<individual>`.
    var stream: String

    init(target: String, references: [String], rule: MutationRule, crossover: CrossoverOptions, seed: UInt64, stream: String) {
        self.target = target; self.references = references
        switch rule {
        case let .evolver(f): self.rule = "evolver"; self.f = f
        case let .randOne(f): self.rule = "rand-one"; self.f = f
        }
        cr = crossover.rate; unit = crossover.unit.rawValue; forceOne = crossover.forceOne
        self.seed = seed; self.stream = stream
    }

    var parents: [String] { [target] + references }

    /// Builds the trial from its parents' values (`values[0]` the target, then the references).
    func build(_ values: [WeightSet]) throws -> WeightSet {
        let mutation: MutationRule
        switch rule {
        case "evolver": mutation = .evolver(f: f)
        case "rand-one": mutation = .randOne(f: f)
        default: throw EvolveError.state(path: "state.json", message: "recipe rule '\(rule)' is unknown; the state is corrupt — start over with --force")
        }
        guard let unit = CrossoverUnit(rawValue: unit), values.count == parents.count, (rule == "evolver") == (references.count == 1),
              rule == "evolver" || references.count == 3 else {
            throw EvolveError.state(path: "state.json", message: "recipe '\(stream)' is malformed; the state is corrupt — start over with --force")
        }
        return makeTrial(target: values[0], references: Array(values.dropFirst()), rule: mutation,
                         crossover: CrossoverOptions(rate: cr, unit: unit, forceOne: forceOne), seed: seed, stream: stream).0
    }
}

/// The weight-space population and its checkpoint. An individual is stored one of two ways:
/// - a file: one f32 safetensors file in OUT_DIR/population/ named by the hash of its values. The
///   starting individuals and added sources get one at the checkpoint after they join, and so does an
///   individual spilled under a memory budget;
/// - a recipe (`IndividualRecipe`): an accepted trial is recorded by how it was built, which costs a
///   few hundred bytes of state.json instead of a 4-byte-per-weight file. `--resume` rebuilds it from
///   its ancestors (replaying the accepted trials that led to it, each checked against its hash).
/// Files and recipes that no individual of the population descends from are dropped once the state
/// that no longer needs them is saved.
///
/// Under a memory budget (`--max-memory`) at most `maxResident` individuals are held in memory as
/// Float32; the others live only in their files and are read back when an operator or merger needs
/// them. Spilling is lossless (the files hold the same f32 values), so a run makes the same decisions
/// and the same bytes with any budget; only its speed and peak memory change.
final class Population {
    let layout: WeightLayout
    let folder: String
    let config: JSON?
    /// Individuals kept in memory (nil: all of them).
    let maxResident: Int?
    private(set) var hashes: [String] = []
    /// How the accepted trials among the population and its ancestors were built, by hash.
    private(set) var recipes: [String: IndividualRecipe] = [:]
    private var resident: [WeightSet?] = []
    private var lastUse: [Int] = []
    private var clock = 0
    /// Individuals written out early (before a checkpoint asked for them) to stay within the budget.
    private(set) var spills = 0
    /// Individuals read back from their files.
    private(set) var reloads = 0

    init(layout: WeightLayout, folder: String, config: JSON?, maxResident: Int?) {
        self.layout = layout; self.folder = folder; self.config = config
        self.maxResident = maxResident.map { max(1, $0) }
    }

    /// Models besides the population that weight-space search holds at once, in individuals: the trial,
    /// the candidate written for scoring (tmpfs counts as memory) and the model loaded from it.
    static let workingSet = 3

    var count: Int { hashes.count }
    var indices: Range<Int> { 0..<count }
    var bytesPerIndividual: Int { layout.parameterCount * MemoryLayout<Float>.size }

    static func fileName(_ hash: String) -> String { "ind-\(hash).safetensors" }
    func path(_ k: Int) -> String { folder + "/" + Self.fileName(hashes[k]) }

    /// Adds an individual that no recipe describes (a source, a starting average, an added source); the
    /// next checkpoint writes its file.
    func append(_ w: WeightSet) throws {
        hashes.append(w.hash); resident.append(w); lastUse.append(tick())
        try enforceBudget(keeping: [count - 1])
    }

    /// Replaces individual k with an accepted trial and the recipe that built it. The old individual
    /// stays recoverable: it has a recipe or a file, or (an added source replaced before its first
    /// checkpoint) gets its file now.
    func replace(_ k: Int, with w: WeightSet, recipe: IndividualRecipe) throws {
        if recipes[hashes[k]] == nil, let old = resident[k] { try writeFile(k, old) }
        let hash = w.hash
        // Recorded whatever files exist (which depend on spills), so the state is the same bytes with
        // any memory budget. A trial equal to one of its parents (no coordinate changed) keeps that
        // one's record, so no recipe names itself.
        if recipes[hash] == nil && !recipe.parents.contains(hash) { recipes[hash] = recipe }
        hashes[k] = hash; resident[k] = w; lastUse[k] = tick()
        try enforceBudget(keeping: [k])
    }

    private func hasFile(_ hash: String) -> Bool { FileManager.default.fileExists(atPath: folder + "/" + Self.fileName(hash)) }

    /// Writes individual k's file (values `w`) unless it is already on disk.
    private func writeFile(_ k: Int, _ w: WeightSet) throws {
        guard !hasFile(hashes[k]) else { return }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try w.writeSafetensors(path: path(k), dtype: .f32, sync: false)
    }

    /// Individual k: from memory, or read back from its file (and kept if the budget allows).
    func individual(_ k: Int) throws -> WeightSet {
        lastUse[k] = tick()
        if let w = resident[k] { return w }
        let w = try Self.read(path: path(k), layout: layout, expectedHash: hashes[k])
        reloads += 1
        if maxResident.map({ residentCount < $0 }) ?? true { resident[k] = w }
        return w
    }

    /// Every individual as a FuseMerge model source: resident ones in memory, spilled ones streamed
    /// from their files tensor by tensor (a merger never needs the whole population in memory).
    func sources() -> [ModelSource] {
        indices.map { k in
            if let w = resident[k] { return InMemoryModel(w, config: config) }
            return SpilledModel(path: path(k), config: config)
        }
    }

    /// Makes the population recoverable from disk: writes the file of every individual that has
    /// neither file nor recipe (the sources and starting averages at generation 0, added sources), and
    /// keeps only the recipes the population descends from. Returns the file names in population order
    /// (an individual stored as a recipe has no file under its name) and the recipes to save with the
    /// state.
    func checkpoint() throws -> (files: [String], recipes: [String: IndividualRecipe]) {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for k in indices where recipes[hashes[k]] == nil && !hasFile(hashes[k]) {
            guard let w = resident[k] else {
                throw EvolveError.state(path: path(k), message: "individual \(k) was spilled but its file is gone; start over with --force")
            }
            try writeFile(k, w)
        }
        let needed = ancestry(of: hashes, recipes: recipes)
        recipes = recipes.filter { needed.contains($0.key) }
        return (hashes.map(Self.fileName), recipes)
    }

    /// Deletes the files no individual of the population descends from (call after the state is saved).
    func removeUnreferenced() {
        let keep = Set(ancestry(of: hashes, recipes: recipes).map(Self.fileName))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix("ind-") && !keep.contains(name) {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    /// The population of a checkpoint: individuals with a file are read from it, the others rebuilt
    /// from their recipes; every one is checked against its hash.
    static func restore(files: [String], recipes: [String: IndividualRecipe], folder: String, layout: WeightLayout,
                        config: JSON?, maxResident: Int?) throws -> Population {
        let p = Population(layout: layout, folder: folder, config: config, maxResident: maxResident)
        p.recipes = recipes
        var hashes: [String] = []
        for name in files {
            guard name.hasPrefix("ind-"), name.hasSuffix(".safetensors") else {
                throw EvolveError.state(path: folder, message: "'\(name)' is not a population file name; the state is corrupt — start over with --force")
            }
            hashes.append(String(name.dropFirst(4).dropLast(12)))
        }
        let rebuilt = try rebuild(hashes.filter { !p.hasFile($0) }, folder: folder, layout: layout, recipes: recipes)
        for hash in hashes {
            let w = try rebuilt[hash] ?? read(path: folder + "/" + fileName(hash), layout: layout, expectedHash: hash)
            p.hashes.append(hash); p.resident.append(w); p.lastUse.append(p.tick())
            try p.enforceBudget(keeping: [p.count - 1])
        }
        return p
    }

    /// The values of `roots` from their recipes, replaying the accepted trials they descend from in
    /// dependency order (ancestors read from their files). A value is dropped as soon as nothing left
    /// to build needs it, so the replay holds about one population, not the whole history.
    static func rebuild(_ roots: [String], folder: String, layout: WeightLayout, recipes: [String: IndividualRecipe]) throws -> [String: WeightSet] {
        guard !roots.isEmpty else { return [:] }
        let fileExists = { (h: String) in FileManager.default.fileExists(atPath: folder + "/" + fileName(h)) }
        // Dependency order (post-order of a depth-first walk); nodes with a file are leaves.
        var order: [String] = [], state: [String: Bool] = [:]   // false: entered, true: done
        for root in roots {
            var stack: [(String, Bool)] = [(root, false)]
            while let (h, expanded) = stack.popLast() {
                if expanded { state[h] = true; order.append(h); continue }
                if let s = state[h] {
                    if !s { throw EvolveError.state(path: folder, message: "the recipes of individual \(h) form a cycle; the state is corrupt — start over with --force") }
                    continue
                }
                state[h] = false
                stack.append((h, true))
                if fileExists(h) { continue }
                guard let recipe = recipes[h] else {
                    throw EvolveError.state(path: folder + "/" + fileName(h), message: "individual \(h) has neither a file nor a recipe in state.json; the checkpoint is incomplete — start over with --force")
                }
                for parent in recipe.parents.reversed() where state[parent] != true { stack.append((parent, false)) }
            }
        }
        var uses: [String: Int] = [:]
        for h in order where !fileExists(h) { for parent in recipes[h]!.parents { uses[parent, default: 0] += 1 } }
        for root in roots { uses[root, default: 0] += 1 }
        var values: [String: WeightSet] = [:]
        for h in order {
            if fileExists(h) {
                values[h] = try read(path: folder + "/" + fileName(h), layout: layout, expectedHash: h)
                continue
            }
            let recipe = recipes[h]!
            let w = try recipe.build(recipe.parents.map { values[$0]! })
            guard w.hash == h else {
                throw EvolveError.state(path: folder, message: "rebuilding individual \(h) from its recipe ('\(recipe.stream)') gave other values (\(w.hash)); the state is corrupt or from another FuseKit version — start over with --force")
            }
            values[h] = w
            for parent in recipe.parents {
                uses[parent]! -= 1
                if uses[parent] == 0 { values[parent] = nil }
            }
        }
        return values.filter { roots.contains($0.key) }
    }

    static func read(path: String, layout: WeightLayout, expectedHash: String) throws -> WeightSet {
        let store: WeightStore
        do { store = try WeightStore(path: path) } catch {
            throw EvolveError.state(path: path, message: "cannot read the population file (\(error)); start over with --force")
        }
        var tensors: [[Float]] = []
        for (j, name) in layout.names.enumerated() {
            guard let info = store.info(name), info.shape == layout.shapes[j] else {
                throw EvolveError.state(path: path, message: "the population file lacks '\(name)' with shape \(layout.shapes[j]); it is corrupt or from other sources — start over with --force")
            }
            tensors.append(try store.floats(name))
        }
        let w = WeightSet(layout: layout, tensors: tensors)
        guard w.hash == expectedHash else {
            throw EvolveError.state(path: path, message: "the population file's values do not match its hash; it is corrupt — start over with --force")
        }
        return w
    }

    var residentCount: Int { resident.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    /// Spills least recently used individuals (writing their files first) until the budget holds.
    private func enforceBudget(keeping: Set<Int>) throws {
        guard let limit = maxResident else { return }
        while residentCount > limit {
            guard let k = indices.filter({ resident[$0] != nil && !keeping.contains($0) }).min(by: { lastUse[$0] < lastUse[$1] }),
                  let w = resident[k] else { return }
            try writeFile(k, w)
            resident[k] = nil
            spills += 1
        }
    }

    private func tick() -> Int { clock += 1; return clock }
}

/// Every hash `roots` descend from through `recipes`, the roots included.
func ancestry(of roots: [String], recipes: [String: IndividualRecipe]) -> Set<String> {
    var seen = Set<String>(), stack = roots
    while let h = stack.popLast() {
        guard seen.insert(h).inserted else { continue }
        stack += recipes[h]?.parents ?? []
    }
    return seen
}

/// A spilled individual as a FuseMerge model source: its f32 file read tensor by tensor, with the
/// donor's config (the bare safetensors file has none).
final class SpilledModel: ModelSource {
    let path: String
    let config: JSON?
    private var opened: WeightStore?
    init(path: String, config: JSON?) { self.path = path; self.config = config }
    private func store() throws -> WeightStore {
        if let s = opened { return s }
        let s = try WeightStore(path: path)
        opened = s
        return s
    }
    var tensorNames: [String] { (try? store().names) ?? [] }
    func tensorInfo(_ name: String) -> TensorInfo? { (try? store())?.tensorInfo(name) }
    func loadTensor(_ name: String) throws -> Tensor { try store().loadTensor(name) }
    var modelConfig: JSON? { config }
    var folderPath: String? { nil }
    func readFloats(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws -> Bool {
        try store().readFloats(name, into: dst)
    }
}

/// Parses a byte size as `--max-memory` takes it: a number with an optional unit (B, KB, MB, GB, TB
/// in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024), e.g. 4GB, 1.5GiB, 800MB.
public func parseByteSize(_ text: String) -> Int? {
    let s = text.trimmingCharacters(in: .whitespaces)
    let digits = s.prefix { $0.isNumber || $0 == "." }
    guard let value = Double(digits), value >= 0 else { return nil }
    let units: [String: Double] = ["": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
                                   "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                                   "KIB": 1024, "MIB": 1_048_576, "GIB": 1_073_741_824, "TIB": 1_099_511_627_776]
    guard let scale = units[s.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).uppercased()] else { return nil }
    let bytes = value * scale
    return bytes < Double(Int.max) ? Int(bytes) : nil
}

/// A byte count for messages: 538.1 MB, 4.3 GB (powers of 1000, as `--max-memory` reads GB).
func formatByteCount(_ bytes: Int) -> String {
    let b = Double(bytes)
    if b >= 1e9 { return String(format: "%.1f GB", b / 1e9) }
    if b >= 1e6 { return String(format: "%.1f MB", b / 1e6) }
    if b >= 1e3 { return String(format: "%.1f kB", b / 1e3) }
    return "\(bytes) B"
}
