import Foundation
import FuseIO
import FuseNN
import FuseTensor

/// One student module and the teacher matrix it takes its LoRA initialisation from.
public struct ModulePair: Equatable, Sendable {
    /// Student module name without `.weight` (`model.layers.3.self_attn.q_proj`).
    public var student: String
    /// Teacher weight name (`model.layers.7.self_attn.q_proj.weight`).
    public var teacher: String
}

/// Pairs every student linear whose module name ends with a target (`q_proj`, `mlp.down_proj`) with
/// the same role in the teacher layer `layerMap[k]`. Embeddings and lm_head are never paired across
/// vocabularies. Throws when a target matches nothing in the student or the teacher lacks the role.
public func pairModules(student: [String: [Int]], teacher: [String: [Int]], targets: [String], layerMap: [Int]) throws -> [ModulePair] {
    var out: [ModulePair] = []
    for target in targets {
        let matches = student.keys.filter { name in
            guard name.hasSuffix(".weight"), student[name]?.count == 2, let l = decoderLayer(of: name), l < layerMap.count else { return false }
            let module = String(name.dropLast(".weight".count))
            return module.hasSuffix("." + target) || module == target
        }.sorted { (decoderLayer(of: $0)!, $0) < (decoderLayer(of: $1)!, $1) }
        guard !matches.isEmpty else { throw TransferError.missingModule(model: "student", module: target) }
        for name in matches {
            let l = decoderLayer(of: name)!
            let role = name.replacingOccurrences(of: "layers.\(l).", with: "layers.\(layerMap[l]).")
            guard let t = teacher[role] else {
                throw TransferError.roleMismatch("student module '\(name)' has no counterpart '\(role)' in the teacher; the two architectures do not share this role (choose target_modules both have)")
            }
            guard t.count == 2 else { throw TransferError.roleMismatch("teacher tensor '\(role)' is not a matrix (\(t))") }
            out.append(ModulePair(student: String(name.dropLast(".weight".count)), teacher: role))
        }
    }
    return out
}

/// Head sizes of the two models, so q/k/v rows and o_proj columns can be kept in whole heads when
/// both models use the same head size.
public struct HeadLayout: Sendable, Equatable {
    public var teacherHeadDim: Int
    public var studentHeadDim: Int
    public init(teacherHeadDim: Int, studentHeadDim: Int) { self.teacherHeadDim = teacherHeadDim; self.studentHeadDim = studentHeadDim }

    /// (row step, column step) for a module: whole heads where the head sizes agree, single rows or
    /// columns otherwise (a different head size cannot keep heads whole; documented in docs/transfer.md).
    func steps(for module: String) -> (Int, Int) {
        guard teacherHeadDim == studentHeadDim, teacherHeadDim > 0 else { return (1, 1) }
        if module.hasSuffix("q_proj") || module.hasSuffix("k_proj") || module.hasSuffix("v_proj") { return (teacherHeadDim, 1) }
        if module.hasSuffix("o_proj") { return (1, teacherHeadDim) }
        return (1, 1)
    }
}

/// The LoRA initialisation taken from one teacher matrix.
public struct ExtractedModule: Sendable {
    public var pair: ModulePair
    public var selection: MatrixSelection
    /// B₀ = U_r Σ_r, `[out, r]`.
    public var b: [Float]
    /// A₀ = V_rᵀ, `[r, in]`.
    public var a: [Float]
    public var outFeatures: Int
    public var inFeatures: Int
    public var rank: Int
    /// ‖W_ext − B₀A₀‖_F (what the rank truncation dropped) and ‖W_ext‖_F.
    public var residual: Double
    public var norm: Double
}

/// Steps 3 and 4 of the release for every pair: cut the teacher matrix to the student's shape where
/// its sensitivity is largest, then factorise the cut by truncated SVD.
public func extractModules(pairs: [ModulePair], teacherWeights: (String) throws -> [Float], teacherShapes: [String: [Int]],
                           studentShapes: [String: [Int]], sensitivity: Sensitivity, rule: DimensionSelection, rank: Int,
                           heads: HeadLayout, progress: ((Int, Int) -> Void)? = nil) throws -> [ExtractedModule] {
    var out: [ExtractedModule] = []
    for (n, pair) in pairs.enumerated() {
        progress?(n, pairs.count)
        guard let ts = teacherShapes[pair.teacher], let ss = studentShapes[pair.student + ".weight"] else {
            throw TransferError.invalidArgument("shapes of '\(pair.teacher)' / '\(pair.student).weight' are unknown")
        }
        guard let scores = sensitivity.scores[pair.teacher] else {
            throw TransferError.invalidArgument("no sensitivity for teacher tensor '\(pair.teacher)'; compute it with the same target modules")
        }
        let (R, C, r, c) = (ts[0], ts[1], ss[0], ss[1])
        guard r <= R, c <= C else { throw TransferError.studentLarger(tensor: pair.student + ".weight", student: ss, teacher: ts) }
        guard rank <= min(r, c) else { throw TransferError.rankTooLarge(tensor: pair.student + ".weight", rank: rank, shape: ss) }
        var (rowStep, columnStep) = heads.steps(for: pair.student)
        if r % rowStep != 0 || R % rowStep != 0 { rowStep = 1 }
        if c % columnStep != 0 || C % columnStep != 0 { columnStep = 1 }
        let selection = try selectSubmatrix(scores, rows: R, columns: C, keepRows: r, keepColumns: c, rule: rule,
                                            rowStep: rowStep, columnStep: columnStep, name: pair.teacher)
        let w = extract(try teacherWeights(pair.teacher), columns: C, selection: selection)
        let (b, a, residual) = try loraFactors(w, rows: r, columns: c, rank: rank, name: pair.student + ".weight")
        let norm = w.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        out.append(ExtractedModule(pair: pair, selection: selection, b: b, a: a, outFeatures: r, inFeatures: c, rank: rank,
                                   residual: residual, norm: norm))
    }
    progress?(pairs.count, pairs.count)
    return out
}

/// Steps 5 and 6 of the release: the student (with LoRA already attached by `attachLoRA(settings)`)
/// gets W_S ← W_S − s·B₀A₀ and its LoRA factors start at (B₀, A₀), so the step-0 model is the student.
public func inject(_ modules: [ExtractedModule], into student: any TrainableModel, scale s: Float) throws {
    var byName: [String: Parameter] = [:]
    for p in student.allParameters { byName[p.name] = p }
    for p in student.trainableParameters { byName[p.name] = p }
    for m in modules {
        let base = m.pair.student + ".weight"
        guard let w = byName[base], let a = byName[m.pair.student + ".lora_A.weight"], let b = byName[m.pair.student + ".lora_B.weight"] else {
            throw TransferError.missingModule(model: "student (LoRA attached)", module: m.pair.student)
        }
        guard w.shape == [m.outFeatures, m.inFeatures], a.shape == [m.rank, m.inFeatures], b.shape == [m.outFeatures, m.rank] else {
            throw TransferError.invalidArgument("'\(m.pair.student)': LoRA shapes A \(a.shape), B \(b.shape) and weight \(w.shape) do not match rank \(m.rank) of a \(m.outFeatures)×\(m.inFeatures) extraction; attach LoRA with lora.rank")
        }
        // W -= s · B₀ A₀  (sgemm: [out, r] × [r, in])
        var product = [Float](repeating: 0, count: m.outFeatures * m.inFeatures)
        BLAS.sgemm(transA: false, transB: false, m: m.outFeatures, n: m.inFeatures, k: m.rank, alpha: s,
                   a: m.b, lda: m.rank, b: m.a, ldb: m.inFeatures, beta: 0, c: &product, ldc: m.inFeatures)
        for j in 0..<product.count { w.value[j] -= product[j] }
        a.value = m.a
        b.value = m.b
    }
}

/// Saves the extracted factors (PEFT names without the `base_model.model.` prefix:
/// `<module>.lora_A.weight` / `.lora_B.weight`), with metadata `modules` (per module: teacher tensor,
/// kept rows and columns — `[first, count]` when contiguous, else the full index list — score, and
/// the truncation residual) and `layer_map` (teacher layer per student layer).
public func saveExtraction(_ modules: [ExtractedModule], layerMap: [Int], to path: String) throws {
    var tensors: [(String, Tensor)] = []
    var entries: [(String, JSON)] = []
    func indices(_ xs: [Int]) -> JSON {
        isContiguous(xs) ? .object([("first", .int(xs.first ?? 0)), ("count", .int(xs.count))]) : .array(xs.map { .int($0) })
    }
    for m in modules {
        tensors.append((m.pair.student + ".lora_A.weight", try Tensor(floats: m.a, shape: [m.rank, m.inFeatures])))
        tensors.append((m.pair.student + ".lora_B.weight", try Tensor(floats: m.b, shape: [m.outFeatures, m.rank])))
        entries.append((m.pair.student, .object([
            ("teacher", .string(m.pair.teacher)), ("rows", indices(m.selection.rows)), ("columns", indices(m.selection.columns)),
            ("score", .double(m.selection.score)), ("residual", .double(m.residual)), ("norm", .double(m.norm)),
        ])))
    }
    try writeSafetensors(path: path, tensors: tensors, metadata: [
        "format": "fusekit-transfer-init", "modules": JSON.object(entries).serialized(),
        "layer_map": JSON.array(layerMap.map { .int($0) }).serialized(),
    ])
}

/// Reads what `saveExtraction` wrote.
public func loadExtraction(from path: String) throws -> (modules: [ExtractedModule], layerMap: [Int]) {
    let file = try SafetensorsFile(path: path)
    guard file.metadata["format"] == "fusekit-transfer-init", let text = file.metadata["modules"], let meta = try? JSON.parse(text),
          let entries = meta.object else {
        throw TransferError.invalidArgument("\(path): not a FuseKit transfer extraction (metadata 'format' / 'modules' missing); delete it to extract again")
    }
    let layerMap = (file.metadata["layer_map"].flatMap { try? JSON.parse($0) }?.array ?? []).compactMap(\.int)
    func indices(_ j: JSON?) -> [Int] {
        if let first = j?["first"]?.int, let count = j?["count"]?.int { return Array(first..<(first + count)) }
        return j?.array?.compactMap(\.int) ?? []
    }
    let modules = try entries.map { module, e -> ExtractedModule in
        let a = try file.tensor(module + ".lora_A.weight"), b = try file.tensor(module + ".lora_B.weight")
        guard a.shape.count == 2, b.shape.count == 2, a.shape[0] == b.shape[1] else {
            throw TransferError.invalidArgument("\(path): factors of '\(module)' have shapes \(a.shape) and \(b.shape)")
        }
        return ExtractedModule(pair: ModulePair(student: module, teacher: e["teacher"]?.string ?? ""),
                               selection: MatrixSelection(rows: indices(e["rows"]), columns: indices(e["columns"]), score: e["score"]?.double ?? 0),
                               b: try b.floats(), a: try a.floats(), outFeatures: b.shape[0], inFeatures: a.shape[1], rank: a.shape[0],
                               residual: e["residual"]?.double ?? 0, norm: e["norm"]?.double ?? 0)
    }
    return (modules, layerMap)
}

func isContiguous(_ xs: [Int]) -> Bool { zip(xs, xs.dropFirst()).allSatisfy { $1 == $0 + 1 } }
