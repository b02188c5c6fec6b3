import Foundation
import FuseIO
import FuseMerge
import FuseTensor

/// The tensors every individual of a weight-space population has: names in model order, shapes.
public struct WeightLayout: Equatable, Sendable {
    public let names: [String]
    public let shapes: [[Int]]
    public func count(_ k: Int) -> Int { shapes[k].reduce(1, *) }
    public var parameterCount: Int { names.indices.reduce(0) { $0 + count($1) } }
}

/// One individual of weight-space search: every tensor as Float32, in `layout` order. The whole model
/// is held (tiny and 135M-parameter models fit; DESIGN.md "Beyond one machine" for larger ones).
public struct WeightSet: Sendable {
    public let layout: WeightLayout
    public let tensors: [[Float]]
    /// The hash, computed once (a trial's is asked for by the fitness cache, the population and the
    /// recipe of its children; each pass reads every weight).
    private let hashMemo = HashMemo()

    public init(layout: WeightLayout, tensors: [[Float]]) {
        self.layout = layout; self.tensors = tensors
    }

    /// Reads every tensor of `source` as Float32. `path` names the model in errors.
    public static func load(_ source: ModelSource, path: String) throws -> WeightSet {
        var names: [String] = [], shapes: [[Int]] = [], tensors: [[Float]] = []
        for name in source.tensorNames {
            guard let info = source.tensorInfo(name) else { continue }
            guard info.dtype.isFloat || info.dtype.isQuantized else {
                throw EvolveError.incompatibleModels("\(path): tensor '\(name)' has dtype \(info.dtype.rawValue); weight-space search needs floating-point or quantized weights")
            }
            let t = try source.loadTensor(name)
            names.append(name); shapes.append(info.shape); tensors.append(try t.floats())
        }
        guard !names.isEmpty else { throw EvolveError.incompatibleModels("\(path): the model holds no tensors") }
        return WeightSet(layout: WeightLayout(names: names, shapes: shapes), tensors: tensors)
    }

    /// Checks that `other` has the same tensors and shapes; the error names the first difference.
    func checkCompatible(_ other: WeightSet, _ mine: String, _ theirs: String) throws {
        if layout == other.layout { return }
        let a = Dictionary(uniqueKeysWithValues: zip(layout.names, layout.shapes))
        let b = Dictionary(uniqueKeysWithValues: zip(other.layout.names, other.layout.shapes))
        for name in layout.names where b[name] == nil {
            throw EvolveError.incompatibleModels("'\(theirs)' has no tensor '\(name)' that '\(mine)' has; weight-space search needs models of one architecture and size")
        }
        for name in other.layout.names where a[name] == nil {
            throw EvolveError.incompatibleModels("'\(theirs)' has a tensor '\(name)' that '\(mine)' lacks; weight-space search needs models of one architecture and size")
        }
        for name in layout.names where a[name] != b[name] {
            throw EvolveError.incompatibleModels("tensor '\(name)': shape \(a[name] ?? []) in '\(mine)' but \(b[name] ?? []) in '\(theirs)'; weight-space search needs models with identical shapes (fine-tunes of one base)")
        }
    }

    /// The same tensors in `layout`'s order (sources may store them in different orders). Call only
    /// after `checkCompatible`, which guarantees every name is present.
    func reordered(to target: WeightLayout) -> WeightSet {
        if layout == target { return self }
        let index = Dictionary(uniqueKeysWithValues: layout.names.enumerated().map { ($1, $0) })
        return WeightSet(layout: target, tensors: target.names.map { tensors[index[$0] ?? 0] })
    }

    /// A stable hash of the values (the fitness cache key of a weight-space candidate).
    public var hash: String { hashMemo.value(computeHash) }

    private func computeHash() -> String {
        var h = StableHasher()
        for (k, t) in tensors.enumerated() {
            h.combine(layout.names[k])
            t.withUnsafeBytes { h.combine($0) }
        }
        return h.hex
    }

    /// Writes the tensors as one safetensors file in `dtype`.
    /// `sync: false` for population checkpoints: they must survive kill -9, which the page cache does;
    /// a power loss can tear the newest ones, which resume detects by their hashes and refuses.
    func writeSafetensors(path: String, dtype: DType, sync: Bool = true) throws {
        let named: [(String, Tensor)] = try layout.names.indices.map { k in
            let f = try Tensor(sharing: tensors[k], shape: layout.shapes[k])
            return (layout.names[k], dtype == .f32 ? f : try f.converted(to: dtype))
        }
        try FuseIO.writeSafetensors(path: path, tensors: named, metadata: ["format": "pt"], sync: sync)
    }
}

/// A value computed once and shared by the copies of the struct that holds it.
private final class HashMemo: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: String?
    func value(_ compute: () -> String) -> String {
        lock.lock(); defer { lock.unlock() }
        if let cached { return cached }
        let v = compute()
        cached = v
        return v
    }
}

/// A population as a `ModelSource` for FuseMerge: individual k is model `ind<k>`, so a merger is an
/// ordinary mergekit config over them (STYLE.md: search has no merge path of its own).
final class InMemoryModel: ModelSource {
    let weights: WeightSet
    let config: JSON?
    let index: [String: Int]
    init(_ weights: WeightSet, config: JSON?) {
        self.weights = weights
        self.config = config
        index = Dictionary(uniqueKeysWithValues: weights.layout.names.enumerated().map { ($1, $0) })
    }
    var tensorNames: [String] { weights.layout.names }
    func tensorInfo(_ name: String) -> TensorInfo? {
        index[name].map { TensorInfo(name: name, dtype: .f32, shape: weights.layout.shapes[$0]) }
    }
    func loadTensor(_ name: String) throws -> Tensor {
        guard let k = index[name] else { throw EvolveError.incompatibleModels("in-memory individual has no tensor '\(name)'") }
        return try Tensor(sharing: weights.tensors[k], shape: weights.layout.shapes[k])
    }
    var modelConfig: JSON? { config }
    var folderPath: String? { nil }
    func readFloats(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws -> Bool {
        guard let k = index[name], weights.tensors[k].count == dst.count else { return false }
        _ = dst.update(fromContentsOf: weights.tensors[k])
        return true
    }
}
