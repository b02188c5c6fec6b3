import Foundation
import FuseIO
import FuseMerge
import FuseTensor

/// The weight-space population and its checkpoint. Each individual is one f32 safetensors file in
/// OUT_DIR/population/ named by the hash of its values, written when a checkpoint first needs it, so a
/// generation that replaces two individuals writes two files, not the whole population (the files of
/// individuals no longer in the population are deleted once the state that drops them is saved).
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
    private var resident: [WeightSet?] = []
    private var lastUse: [Int] = []
    private var clock = 0
    /// Individuals written out early (before a checkpoint asked for them) to stay within the budget.
    private(set) var spills = 0
    /// Individuals read back from their files.
    private(set) var reloads = 0
    /// Files of replaced individuals are written here in the background while the next trials are
    /// scored; `checkpoint` waits for them. Its error, if any, is kept for `checkpoint` to throw.
    private let writer = DispatchQueue(label: "fusekit.evolve.population-files")
    private var writeError: Error?

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

    func append(_ w: WeightSet) throws {
        hashes.append(w.hash); resident.append(w); lastUse.append(tick())
        try enforceBudget(keeping: [count - 1])
    }

    /// Replaces individual k (the old one's file, if any, stays until the next checkpoint drops it).
    func replace(_ k: Int, with w: WeightSet) throws {
        hashes[k] = w.hash; resident[k] = w; lastUse[k] = tick()
        let path = path(k), folder = folder
        writer.async {
            guard self.writeError == nil, !FileManager.default.fileExists(atPath: path) else { return }
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try w.writeSafetensors(path: path, dtype: .f32, sync: false)
            } catch { self.writeError = error }
        }
        try enforceBudget(keeping: [k])
    }

    /// Waits for the background writes; rethrows the first that failed.
    func finishWrites() throws {
        if let error = writer.sync(execute: { writeError }) { throw error }
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

    /// Writes the file of every individual that has none yet; returns the file names in population order.
    func checkpoint() throws -> [String] {
        try finishWrites()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for k in indices where !FileManager.default.fileExists(atPath: path(k)) {
            guard let w = resident[k] else {
                throw EvolveError.state(path: path(k), message: "individual \(k) was spilled but its file is gone; start over with --force")
            }
            try w.writeSafetensors(path: path(k), dtype: .f32, sync: false)
        }
        return hashes.map(Self.fileName)
    }

    /// Deletes the files of individuals no longer in the population (call after the state is saved).
    func removeUnreferenced() {
        let keep = Set(hashes.map(Self.fileName))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix("ind-") && !keep.contains(name) {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    /// The population of a checkpoint: the files are checked against their hashes as they are read.
    static func restore(files: [String], folder: String, layout: WeightLayout, config: JSON?, maxResident: Int?) throws -> Population {
        let p = Population(layout: layout, folder: folder, config: config, maxResident: maxResident)
        for name in files {
            guard name.hasPrefix("ind-"), name.hasSuffix(".safetensors") else {
                throw EvolveError.state(path: folder, message: "'\(name)' is not a population file name; the state is corrupt — start over with --force")
            }
            let hash = String(name.dropFirst(4).dropLast(12))
            let w = try read(path: folder + "/" + name, layout: layout, expectedHash: hash)
            p.hashes.append(hash); p.resident.append(w); p.lastUse.append(p.tick())
            try p.enforceBudget(keeping: [p.count - 1])
        }
        return p
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
            try finishWrites()
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: path(k)) { try w.writeSafetensors(path: path(k), dtype: .f32, sync: false) }
            resident[k] = nil
            spills += 1
        }
    }

    private func tick() -> Int { clock += 1; return clock }
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
