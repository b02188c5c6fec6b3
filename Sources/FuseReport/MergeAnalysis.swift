import CFuseKernels
import Foundation
import FuseIO
import FuseMerge
import FuseTensor

/// Sums over the elements of one tensor (or of a layer's tensors) from which every merge measurement
/// derives. k = number of sources (the non-base inputs); τᵢ = xᵢ − r with r the base (or the mean of
/// the sources when the method has no base), δ = merged − r.
public struct MergeSums: Sendable {
    public var elements = 0
    /// Σ τᵢ τⱼ, k×k row-major (the diagonal is Σ τᵢ²).
    public var gram: [Double]
    /// Σ δ τᵢ.
    public var deltaDot: [Double]
    /// Σ δ².
    public var deltaSquares = 0.0
    /// Σ (merged − xᵢ)² and Σ xᵢ².
    public var distanceSquares: [Double]
    public var sourceSquares: [Double]
    /// Elements whose nonzero task-vector entries do not all share one sign (needs ≥ 2 nonzero).
    public var conflicts = 0
    /// Elements where at least two task vectors are nonzero.
    public var contested = 0
    /// Elements where the merged tensor differs from the base.
    public var changed = 0

    public init(sources k: Int) {
        gram = [Double](repeating: 0, count: k * k)
        deltaDot = [Double](repeating: 0, count: k)
        distanceSquares = [Double](repeating: 0, count: k)
        sourceSquares = [Double](repeating: 0, count: k)
    }

    public var k: Int { deltaDot.count }

    public mutating func add(_ o: MergeSums) {
        elements += o.elements
        for i in gram.indices { gram[i] += o.gram[i] }
        for i in deltaDot.indices {
            deltaDot[i] += o.deltaDot[i]; distanceSquares[i] += o.distanceSquares[i]; sourceSquares[i] += o.sourceSquares[i]
        }
        deltaSquares += o.deltaSquares
        conflicts += o.conflicts; contested += o.contested; changed += o.changed
    }

    /// ‖τᵢ‖.
    public var norms: [Double] { (0..<k).map { gram[$0 * k + $0].squareRoot() } }
    /// cos(τᵢ, τⱼ), k×k (0 where a norm is 0).
    public var cosines: [[Double]] {
        (0..<k).map { i in (0..<k).map { j in cosine(gram[i * k + j], gram[i * k + i], gram[j * k + j]) } }
    }
    /// cos(δ, τᵢ): how far the merge moved toward each source.
    public var mergedCosines: [Double] { (0..<k).map { cosine(deltaDot[$0], deltaSquares, gram[$0 * k + $0]) } }
    /// ‖merged − xᵢ‖ / ‖xᵢ‖.
    public var relativeDistances: [Double] {
        (0..<k).map { sourceSquares[$0] > 0 ? (distanceSquares[$0] / sourceSquares[$0]).squareRoot() : 0 }
    }
    /// Share of all elements with a sign conflict among the task vectors.
    public var conflictRate: Double { elements > 0 ? Double(conflicts) / Double(elements) : 0 }
    /// Share of elements the merge changed relative to the base (the kept fraction of sparsifying methods).
    public var keptFraction: Double { elements > 0 ? Double(changed) / Double(elements) : 0 }
}

func cosine(_ dot: Double, _ aa: Double, _ bb: Double) -> Double {
    let d = (aa * bb).squareRoot()
    return d > 0 ? max(-1, min(1, dot / d)) : 0
}

/// One analysed output tensor.
public struct TensorAnalysis: Sendable {
    public var name: String
    public var layer: Int?
    /// Indices into `MergeAnalysis.models` of the sources (non-base inputs) in input order.
    public var sources: [Int]
    public var sums: MergeSums?
    /// For a tensor copied from one input (passthrough, slices): which model and which of its tensors.
    public var copiedFrom: (model: Int, tensor: String)?
    /// Why the tensor was not measured, when it was not.
    public var skipped: String?
}

/// Everything the report shows about a merge.
public struct MergeAnalysis: Sendable {
    public var method: String
    /// Display names of the plan's models (as written in the config).
    public var models: [String]
    public var base: Int?
    /// "base" when task vectors are taken against the base model, "mean of sources" otherwise.
    public var reference: String
    public var tensors: [TensorAnalysis]
    public var seconds: Double

    /// Layer indices that occur, ascending.
    public var layers: [Int] { Array(Set(tensors.compactMap(\.layer))).sorted() }

    /// Sums per source model index over the tensors that match `filter`, projected onto all models.
    public func totals(where filter: (TensorAnalysis) -> Bool) -> ModelSums {
        var out = ModelSums(models: models.count)
        for t in tensors where filter(t) { if let s = t.sums { out.add(s, sources: t.sources) } }
        return out
    }
}

/// MergeSums re-indexed by plan model (sources differ between tensors in slice configs).
public struct ModelSums: Sendable {
    public var elements = 0
    public var squares: [Double]
    public var pair: [Double]
    public var pairSquares: [Double]
    public var deltaDot: [Double]
    public var deltaSquares: [Double]
    public var distanceSquares: [Double]
    public var sourceSquares: [Double]
    public var conflicts = 0
    public var changed = 0
    public var present: [Bool]
    let n: Int

    init(models n: Int) {
        self.n = n
        squares = .init(repeating: 0, count: n); pair = .init(repeating: 0, count: n * n)
        pairSquares = .init(repeating: 0, count: n * n)
        deltaDot = .init(repeating: 0, count: n); deltaSquares = .init(repeating: 0, count: n)
        distanceSquares = .init(repeating: 0, count: n); sourceSquares = .init(repeating: 0, count: n)
        present = .init(repeating: false, count: n)
    }

    mutating func add(_ s: MergeSums, sources: [Int]) {
        elements += s.elements; conflicts += s.conflicts; changed += s.changed
        let k = s.k
        for (a, m) in sources.enumerated() {
            present[m] = true
            squares[m] += s.gram[a * k + a]
            deltaDot[m] += s.deltaDot[a]; deltaSquares[m] += s.deltaSquares
            distanceSquares[m] += s.distanceSquares[a]; sourceSquares[m] += s.sourceSquares[a]
            for (b, m2) in sources.enumerated() {
                pair[m * n + m2] += s.gram[a * k + b]
                pairSquares[m * n + m2] += s.gram[a * k + a]
            }
        }
    }

    public func norm(_ m: Int) -> Double? { present[m] ? squares[m].squareRoot() : nil }
    /// cos(τ_a, τ_b) over the tensors both appear in.
    public func cosine(_ a: Int, _ b: Int) -> Double? {
        guard present[a], present[b] else { return nil }
        return FuseReport.cosine(pair[a * n + b], pairSquares[a * n + b], pairSquares[b * n + a])
    }
    public func mergedCosine(_ m: Int) -> Double? { present[m] ? FuseReport.cosine(deltaDot[m], deltaSquares[m], squares[m]) : nil }
    public func relativeDistance(_ m: Int) -> Double? {
        present[m] && sourceSquares[m] > 0 ? (distanceSquares[m] / sourceSquares[m]).squareRoot() : nil
    }
    public var conflictRate: Double { elements > 0 ? Double(conflicts) / Double(elements) : 0 }
    public var keptFraction: Double { elements > 0 ? Double(changed) / Double(elements) : 0 }
}

/// The decoder layer a tensor belongs to (`model.layers.12.`, `transformer.h.3.`), nil for
/// embeddings, final norms and heads.
public func layerIndex(of name: String) -> Int? {
    for marker in [".layers.", ".h.", ".blocks.", "layers."] {
        guard let r = name.range(of: marker) else { continue }
        let digits = name[r.upperBound...].prefix { $0.isNumber }
        if let n = Int(digits) { return n }
    }
    return nil
}

extension MergeAnalysis {
    /// Re-plans the merge recorded in `runDirectory/run.json` and measures every output tensor
    /// against its inputs, streaming rows like the merge itself (nothing larger than a few chunks of
    /// rows per thread is held).
    public static func analyze(runDirectory: String, log: RunLog,
                               progress: ((Int, Int, String) -> Void)? = nil) throws -> MergeAnalysis {
        guard let config = log.config, config.format == "mergekit-yaml" else {
            throw ReportError.badRunLog(path: runDirectory + "/run.json", what: "the merge run has no mergekit-yaml config to re-plan")
        }
        let parsed = try MergeConfig.parse(yaml: config.text)
        let sources: [ModelReference: ModelSource]
        do { sources = try openModels(parsed, relativeTo: log.workingDirectory) } catch {
            throw ReportError.missingInput(what: "\(runDirectory): cannot open the merge's input models (\(error)); they must still exist where the run found them to analyse the merge")
        }
        let plan = try MergePlanner(config: parsed, sources: sources, outDTypeOverride: nil).plan()
        let merged = try WeightStore(path: runDirectory)
        let ordered = try plan.models.map { m -> any ModelSource in
            guard let s = sources[m] else { throw ReportError.missingInput(what: "model '\(m)' of the plan could not be opened") }
            return s
        }
        return try analyze(plan: plan, sources: ordered, merged: merged, remapsVocabulary: parsed.tokenizerSource != nil || parsed.tokenizer?.source != nil,
                           progress: progress)
    }

    public static func analyze(plan: MergePlan, sources: [any ModelSource], merged: WeightStore, remapsVocabulary: Bool,
                               progress: ((Int, Int, String) -> Void)? = nil) throws -> MergeAnalysis {
        let start = Date()
        let base = plan.entries.lazy.compactMap { e in e.baseIndex.map { e.inputs[$0].model } }.first
        var out: [TensorAnalysis] = []
        let reader = RowReader()
        for (n, entry) in plan.entries.enumerated() {
            progress?(n, plan.entries.count, entry.name)
            var t = TensorAnalysis(name: entry.name, layer: layerIndex(of: entry.name), sources: [])
            let copy = entry.passthrough || entry.inputs.count == 1
            if copy, let only = entry.inputs.first {
                t.copiedFrom = (only.model, only.tensor)
                t.sources = [only.model]
                out.append(t); continue
            }
            if remapsVocabulary && entry.vocabularyAxis != nil {
                t.skipped = "rows re-mapped to the merged vocabulary"
                t.sources = entry.inputs.enumerated().filter { $0.offset != entry.baseIndex }.map(\.element.model)
                out.append(t); continue
            }
            let inputs = try entry.inputs.map { try reader.rows(sources[$0.model], $0.tensor) }
            let result = try reader.rows(merged, entry.name)
            let elements = entry.shape.reduce(1, *)
            guard inputs.allSatisfy({ $0.info.elementCount == elements }), result.info.elementCount == elements else {
                t.skipped = "input shapes differ from the output"
                out.append(t); continue
            }
            let sourceSlots = entry.inputs.indices.filter { $0 != entry.baseIndex }
            t.sources = sourceSlots.map { entry.inputs[$0].model }
            t.sums = try measure(inputs: inputs, sourceSlots: sourceSlots, base: entry.baseIndex, merged: result)
            out.append(t)
        }
        progress?(plan.entries.count, plan.entries.count, "")
        return MergeAnalysis(method: plan.method, models: plan.models.map(\.description), base: base,
                             reference: base != nil ? "base" : "mean of sources", tensors: out,
                             seconds: Date().timeIntervalSince(start))
    }

    /// Streams row chunks of every input and the merged tensor; per-chunk sums are combined in chunk
    /// order, so the numbers do not depend on the thread count.
    static func measure(inputs: [any RowSource], sourceSlots: [Int], base: Int?, merged: any RowSource) throws -> MergeSums {
        let rows = merged.rowCount, perRow = merged.rowElements
        let k = sourceSlots.count
        guard k >= 1, k <= Int(FK_MERGE_STATS_MAX_SOURCES) else {
            throw ReportError.incompatible("the analysis measures 1 to \(FK_MERGE_STATS_MAX_SOURCES) sources per tensor, this tensor has \(k)")
        }
        let rowsPerChunk = max(1, (1 << 18) / max(1, perRow))
        let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
        var partial = [MergeSums](repeating: MergeSums(sources: k), count: chunks)
        try partial.withUnsafeMutableBufferPointer { slots in
            let slots = slots
            try parallelForThrowing(count: rows, chunkSize: rowsPerChunk) { _, range in
                let n = range.count * perRow
                let x = UnsafeMutablePointer<Float>.allocate(capacity: n * (inputs.count + 1))
                defer { x.deallocate() }
                for (i, src) in inputs.enumerated() {
                    try src.readRows(range, into: x + i * n)
                }
                let m = x + inputs.count * n
                try merged.readRows(range, into: m)
                slots[range.lowerBound / rowsPerChunk] = chunkSums(x: x, n: n, sources: sourceSlots, base: base, merged: m)
            }
        }
        var total = MergeSums(sources: k)
        for p in partial { total.add(p) }
        return total
    }

    /// The sums of one chunk: x holds each input's n values back to back (one C pass, fuse_report.h).
    static func chunkSums(x: UnsafeMutablePointer<Float>, n: Int, sources: [Int], base: Int?, merged m: UnsafeMutablePointer<Float>) -> MergeSums {
        let k = sources.count
        var s = MergeSums(sources: k)
        s.elements = n
        var gram = [Double](repeating: 0, count: k * k), deltaDot = [Double](repeating: 0, count: k)
        var distance = [Double](repeating: 0, count: k), squares = [Double](repeating: 0, count: k)
        var deltaSquares = 0.0
        var conflicts: Int64 = 0, contested: Int64 = 0, changed: Int64 = 0
        let pointers: [UnsafePointer<Float>?] = sources.map { UnsafePointer(x + $0 * n) }
        let basePointer: UnsafePointer<Float>? = base.map { UnsafePointer(x + $0 * n) }
        _ = pointers.withUnsafeBufferPointer { p in
            fk_merge_stats(p.baseAddress, Int32(k), basePointer, m, n, &gram, &deltaDot, &deltaSquares, &distance, &squares,
                           &conflicts, &contested, &changed)
        }
        s.gram = gram; s.deltaDot = deltaDot; s.distanceSquares = distance; s.sourceSquares = squares
        s.deltaSquares = deltaSquares
        s.conflicts = Int(conflicts); s.contested = Int(contested); s.changed = Int(changed)
        return s
    }
}

/// Rows of a safetensors tensor read with pread instead of through the memory map: the analysis
/// touches every byte of several models once, and faulting them in through the map would both cost a
/// page fault per 4 KiB and count every page in the resident set.
struct PreadRows: RowSource, @unchecked Sendable {
    let info: TensorInfo
    let fd: Int32
    let path: String
    let offset: Int
    let rowBytes: Int

    /// Nil where the tensor is not a plain float tensor in a safetensors file (GGUF, quantized).
    init?(store: WeightStore, name: String, descriptors reader: RowReader) {
        guard let (file, range) = store.location(name), let info = store.info(name), info.dtype.isFloat,
              let fd = reader.open(file.path) else { return nil }
        let rows = info.shape.count >= 2 ? info.shape[0] : 1
        guard rows > 0, let rb = info.dtype.byteCount(elements: info.elementCount / rows), rb * rows == range.count else { return nil }
        self.info = info; self.fd = fd; self.path = file.path; self.offset = range.lowerBound; self.rowBytes = rb
    }

    func readRows(_ rows: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
        let bytes = rows.count * rowBytes
        let staging = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        defer { staging.deallocate() }
        var got = 0
        while got < bytes {
            let n = pread(fd, staging + got, bytes - got, off_t(offset + rows.lowerBound * rowBytes + got))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw ReportError.io("\(path): read failed in tensor '\(info.name)' (\(n < 0 ? String(cString: strerror(errno)) : "unexpected end of file"))")
            }
            got += n
        }
        try Convert.toFloat32(info.dtype, from: UnsafeRawPointer(staging), to: dst, count: rows.count * (info.elementCount / max(1, rowCount)))
    }
}

/// How the analyses read rows: safetensors float tensors with pread (`PreadRows`), other stored tensors
/// (GGUF) through the store, other merge inputs (`model+lora`) by loading the tensor. Holds the open
/// read-only descriptors, closed together when the analysis ends.
final class RowReader: @unchecked Sendable {
    func rows(_ source: any ModelSource, _ name: String) throws -> any RowSource {
        guard let store = source as? WeightStore else { return StoredRows(name: name, tensor: try source.loadTensor(name)) }
        return try PreadRows(store: store, name: name, descriptors: self) ?? store.rows(name)
    }

    private var fds: [String: Int32] = [:]
    private let lock = NSLock()

    func open(_ path: String) -> Int32? {
        lock.lock(); defer { lock.unlock() }
        if let fd = fds[path] { return fd }
        let fd = Foundation.open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        fds[path] = fd
        return fd
    }

    deinit { for fd in fds.values { close(fd) } }
}
