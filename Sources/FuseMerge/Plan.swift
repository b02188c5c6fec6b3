import Foundation
import FuseIO
import FuseTensor

// MARK: - Model sources

/// What the planner and executor need from an input model. `WeightStore` conforms; tests use in-memory
/// models.
public protocol ModelSource: AnyObject {
    var tensorNames: [String] { get }
    func tensorInfo(_ name: String) -> TensorInfo?
    /// The stored tensor (zero-copy where possible).
    func loadTensor(_ name: String) throws -> Tensor
    var modelConfig: JSON? { get }
    var folderPath: String? { get }
    /// Drops cached pages of a tensor that will not be read again (keeps RSS bounded); optional.
    func release(_ name: String)
    /// Hints that a tensor will be read soon.
    func prefetch(_ name: String)
    /// Fills `dst` with the tensor as Float32 without mapping it; false when the source cannot (the
    /// executor then converts `loadTensor`'s result).
    func readFloats(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws -> Bool
}

extension ModelSource {
    public func release(_ name: String) {}
    public func prefetch(_ name: String) {}
    public func readFloats(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws -> Bool { false }
}

/// Reads a safetensors tensor with pread in slices and converts each slice to Float32. Copying from the
/// page cache this way avoids a page fault per 4 KiB that touching the memory map costs (1.6 million of
/// them for three 1.1B-parameter bf16 models).
final class PreadReader: @unchecked Sendable {
    static let shared = PreadReader()
    private let lock = NSLock()
    private var descriptors: [String: Int32] = [:]
    /// Bytes read per pread: large enough for few syscalls, small enough to stay in cache.
    static let sliceBytes = 4 << 20

    private func descriptor(_ path: String) -> Int32? {
        lock.lock(); defer { lock.unlock() }
        if let fd = descriptors[path] { return fd }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        descriptors[path] = fd
        return fd
    }

    /// False when the file cannot be opened (the caller falls back to the memory map).
    func read(path: String, range: Range<Int>, dtype: DType, into dst: UnsafeMutableBufferPointer<Float>) throws -> Bool {
        guard let fd = descriptor(path), dtype.isFloat, let out = dst.baseAddress else { return false }
        let width = dtype.blockBytes
        guard range.count == dst.count * width else {
            throw MergeError.io("\(path): tensor byte range \(range) does not hold \(dst.count) \(dtype.rawValue) values")
        }
        let slice = Self.sliceBytes / width * width
        let staging = UnsafeMutableRawPointer.allocate(byteCount: slice, alignment: 64)
        defer { staging.deallocate() }
        var done = 0
        while done < range.count {
            let want = min(slice, range.count - done)
            var got = 0
            while got < want {
                let n = pread(fd, staging + got, want - got, off_t(range.lowerBound + done + got))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw MergeError.io("\(path): read failed at byte \(range.lowerBound + done + got) (\(n < 0 ? String(cString: strerror(errno)) : "unexpected end of file"))") }
                got += n
            }
            try Convert.toFloat32(dtype, from: UnsafeRawPointer(staging), to: out + done / width, count: want / width)
            done += want
        }
        return true
    }
}

extension WeightStore: ModelSource {
    public var tensorNames: [String] { names }
    public func tensorInfo(_ name: String) -> TensorInfo? { info(name) }
    public func loadTensor(_ name: String) throws -> Tensor { try tensor(name) }
    public var modelConfig: JSON? { config }
    public var folderPath: String? { folder }
    public func release(_ name: String) {
        if let (file, range) = location(name) { file.advise(offset: range.lowerBound, count: range.count, willNeed: false) }
    }
    public func prefetch(_ name: String) {
        if let (file, range) = location(name) { file.advise(offset: range.lowerBound, count: range.count, willNeed: true) }
    }
    public func readFloats(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws -> Bool {
        guard let (file, range) = location(name), let info = info(name) else { return false }
        return try PreadReader.shared.read(path: file.path, range: range, dtype: info.dtype, into: dst)
    }
}

// MARK: - The plan

/// One input of one output tensor: which model (index into `MergePlan.models`) and which stored name.
public struct PlannedInput: Equatable, Sendable {
    public var model: Int
    public var tensor: String
}

/// Everything needed to produce one output tensor, decided without reading tensor data.
public struct PlanEntry: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    /// dtype the inputs are converted to and the method's ops are emulated in.
    public var computeDType: DType
    public var outDType: DType
    public var inputs: [PlannedInput]
    /// Index into `inputs` of the base model's tensor, if the method uses one and it has this tensor.
    public var baseIndex: Int?
    public var parameters: ResolvedParameters
    /// Position in [0, 1] used for gradients (0 for pre/post-layer tensors).
    public var t: Double
    /// Token-indexed axis (embeddings, lm_head); rows get permuted when a tokenizer is built.
    public var vocabularyAxis: Int?
    /// Copy the single input instead of running the method (optional tensor present in one model only).
    public var passthrough: Bool

    public static func == (a: PlanEntry, b: PlanEntry) -> Bool {
        a.name == b.name && a.shape == b.shape && a.computeDType == b.computeDType && a.outDType == b.outDType
            && a.inputs == b.inputs && a.baseIndex == b.baseIndex && a.parameters == b.parameters && a.t == b.t
            && a.vocabularyAxis == b.vocabularyAxis && a.passthrough == b.passthrough
    }
}

/// A merge, decided: one entry per output tensor, in output order. Printable and testable without data.
public struct MergePlan: Sendable, CustomStringConvertible {
    public var method: String
    public var models: [ModelReference]
    public var architecture: String
    public var entries: [PlanEntry]
    /// Output layer count (sum of slice lengths), written to config.json under `layerCountKey`.
    public var layerCount: Int
    public var layerCountKey: String
    /// Layer counts of the other modules of a modular architecture, by config key path (`vision_config.depth`).
    public var otherLayerCounts: [(key: String, count: Int)] = []
    /// Index into `models` of the model whose config.json and side files the output takes.
    public var donor: Int
    public var warnings: [String]

    public var description: String {
        var lines = ["merge_method: \(method)  architecture: \(architecture)  layers: \(layerCount)",
                     "models: " + models.enumerated().map { "[\($0.offset)] \($0.element)" }.joined(separator: ", ")]
        for e in entries {
            let ins = e.inputs.enumerated().map { k, i in (k == e.baseIndex ? "*" : "") + "\(i.model)" }.joined(separator: ",")
            var params = e.parameters.shared.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            for (k, p) in e.parameters.perInput.enumerated() where !p.isEmpty {
                params.append("[\(k)]{" + p.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}")
            }
            lines.append("\(e.name) \(e.outDType.rawValue)\(e.shape) <- [\(ins)]\(e.passthrough ? " passthrough" : "") t=\(e.t) \(params.joined(separator: " "))")
        }
        return lines.joined(separator: "\n")
    }
}

// MARK: - The planner (mergekit `plan.py`)

public struct MergePlanner {
    public let config: MergeConfig
    public let method: any MergeMethod
    /// Opened models, keyed by reference.
    public let sources: [ModelReference: ModelSource]
    public var outDTypeOverride: DType?

    public init(config: MergeConfig, sources: [ModelReference: ModelSource], outDTypeOverride: DType? = nil) throws {
        guard let m = MethodRegistry.method(named: config.mergeMethod) else {
            throw MergeError.unknownMethod(name: config.mergeMethod, suggestion: didYouMean(config.mergeMethod, among: MethodRegistry.names))
        }
        self.config = config
        self.method = m
        self.sources = sources
        self.outDTypeOverride = outDTypeOverride
    }

    private func source(_ m: ModelReference) throws -> ModelSource {
        guard let s = sources[m] else { throw MergeError.missingModel(path: "models", model: m.description) }
        return s
    }

    /// The layer count of a model: its config's key, else the number of distinct layer indices in its names.
    func layerCount(_ m: ModelReference, _ arch: ArchitectureInfo) throws -> Int {
        let s = try source(m)
        if let n = arch.layerCountOverride { return n }
        if !arch.layerCountKey.isEmpty {
            if let n = jsonValue(s.modelConfig, path: arch.layerCountKey)?.int { return n }
            if let n = jsonValue(s.modelConfig?["text_config"], path: arch.layerCountKey)?.int { return n }
        }
        let template = arch.layer.first?.name ?? ""
        var count = 0
        while !template.isEmpty, s.tensorInfo(template.replacingOccurrences(of: "{L}", with: String(count))) != nil { count += 1 }
        return count
    }

    /// One output slice per `slices` entry, or one covering every model for `models:` (base appended).
    func outputSlices(_ arch: ArchitectureInfo) throws -> (slices: [OutputSlice], module: ParameterSettings) {
        if let modules = config.modules {
            guard modules.count == 1, let only = modules.first else {
                throw MergeError.config(path: "modules", line: nil, message: "\(modules.count) modules given, but \(arch.name) is a single-module architecture; use one module (or models/slices)")
            }
            return (try outputSlices(arch, models: only.module.models, slices: only.module.slices, path: "modules.\(only.name)"), only.module.parameters)
        }
        return (try outputSlices(arch, models: config.models, slices: config.slices, path: ""), [:])
    }

    func outputSlices(_ arch: ArchitectureInfo, models: [InputModel]?, slices: [OutputSlice]?, path: String) throws -> [OutputSlice] {
        if let models, !models.isEmpty {
            var sources: [InputSlice] = []
            for m in models { sources.append(InputSlice(model: m.model, layerRange: (0, try layerCount(m.model, arch)), parameters: m.parameters)) }
            if let base = config.baseModel, !models.contains(where: { $0.model == base }) {
                sources.append(InputSlice(model: base, layerRange: (0, try layerCount(base, arch))))
            }
            let lengths = sources.map { $0.layerRange.end - $0.layerRange.start }
            if Set(lengths).count > 1 {
                throw MergeError.config(path: path.isEmpty ? "models" : path + ".models", line: nil, message: "all models must have the same number of layers (got \(lengths)); use slices to merge layer ranges")
            }
            return [OutputSlice(sources: sources)]
        }
        return slices ?? []
    }

    /// What one module of the output is made of (a single-module architecture has one, unnamed).
    struct ModuleWork {
        var name: String?
        var arch: ArchitectureInfo
        var slices: [OutputSlice]
        var parameters: ParameterSettings
        /// Key-path prefix for errors (`modules.vision_tower.`).
        var path: String
    }

    /// Modules of a modular architecture (mergekit plan.py `_normalize_config`): `models:` applies to
    /// every module, `slices:` only to a single-module architecture, `modules:` names the modules it merges.
    func moduleWork(_ modular: ModularArchitecture) throws -> [ModuleWork] {
        if let modules = config.modules {
            return try modules.map { entry in
                guard let m = modular.modules.first(where: { $0.name == entry.name }) else {
                    let names = modular.modules.map(\.name)
                    let hint = didYouMean(entry.name, among: names).map { "did you mean '\($0)'? " } ?? ""
                    throw MergeError.config(path: "modules.\(entry.name)", line: nil, message: "\(modular.name) has no module '\(entry.name)'; \(hint)(modules: \(names.joined(separator: ", ")))")
                }
                let path = "modules.\(entry.name)"
                return ModuleWork(name: m.name, arch: m.info, slices: try outputSlices(m.info, models: entry.module.models, slices: entry.module.slices, path: path),
                                  parameters: entry.module.parameters, path: path + ".")
            }
        }
        if config.slices?.isEmpty == false, modular.modules.count > 1 {
            throw MergeError.config(path: "slices", line: nil, message: "\(modular.name) has \(modular.modules.count) modules (\(modular.modules.map(\.name).joined(separator: ", "))); give each its slices under 'modules:'")
        }
        return try modular.modules.map {
            ModuleWork(name: $0.name, arch: $0.info, slices: try outputSlices($0.info, models: config.models, slices: config.slices, path: ""),
                       parameters: [:], path: "")
        }
    }

    public func plan() throws -> MergePlan {
        // Architecture from the base (or first) model's config, else inferred from tensor names.
        let refs = config.referencedModels
        guard let first = refs.first else { throw MergeError.config(path: "models", line: nil, message: "no models") }
        let donorRef = config.baseModel ?? first
        let donorSource = try source(donorRef)
        var warnings: [String] = []
        let works: [ModuleWork]
        let archName: String
        if let modular = ModularArchitecture.lookup(config: donorSource.modelConfig) {
            works = try moduleWork(modular)
            archName = modular.name
        } else {
            let arch = ArchitectureInfo.lookup(config: donorSource.modelConfig) ?? ArchitectureInfo.infer(names: donorSource.tensorNames)
            if ArchitectureInfo.lookup(config: donorSource.modelConfig) == nil {
                warnings.append("architecture not in FuseKit's table; inferred layer structure from tensor names")
            }
            let (slices, moduleParameters) = try outputSlices(arch)
            works = [ModuleWork(name: nil, arch: arch, slices: slices, parameters: moduleParameters, path: "")]
            archName = arch.name
        }
        try checkParameterNames(modules: works.map(\.parameters), warnings: &warnings)
        var models: [ModelReference] = []
        func index(_ m: ModelReference) -> Int {
            if let i = models.firstIndex(of: m) { return i }
            models.append(m); return models.count - 1
        }
        for r in refs { _ = index(r) }

        var entries: [PlanEntry] = []
        var layerCounts: [(key: String, count: Int)] = []
        for work in works {
            let arch = work.arch, slices = work.slices
            // Validate ranges against each model's layer count and the method's contract, before any data.
            for (i, s) in slices.enumerated() {
                for (j, src) in s.sources.enumerated() {
                    let n = try layerCount(src.model, arch)
                    if src.layerRange.end > n {
                        throw MergeError.config(path: "\(work.path)slices[\(i)].sources[\(j)].layer_range", line: nil,
                                                message: "[\(src.layerRange.start), \(src.layerRange.end)] is out of range: \(src.model) has \(n) layers")
                    }
                }
                try checkContract(modelsIn: s.sources.map(\.model), base: s.baseModel ?? config.baseModel, where: "\(work.path)slices[\(i)]")
            }
            guard let firstSlice = slices.first, let lastSlice = slices.last else {
                throw MergeError.config(path: work.path + "slices", line: nil, message: "no slices")
            }
            var outLayer = 0
            let context = PlanContext(config: config, moduleParameters: work.parameters)
            for w in arch.pre {
                if let e = try planTensor(w, inputs: firstSlice.sources.map { ($0.model, w) }, slice: firstSlice, t: 0, context, &models, &warnings) { entries.append(e) }
            }
            for s in slices {
                let length = s.sources[0].layerRange.end - s.sources[0].layerRange.start
                for k in 0..<length {
                    let t = length > 1 ? Double(k) / Double(length - 1) : 1
                    let outWeights = arch.layerWeights(outLayer)
                    for (wi, w) in outWeights.enumerated() {
                        let ins = s.sources.map { ($0.model, arch.layerWeights($0.layerRange.start + k)[wi]) }
                        if let e = try planTensor(w, inputs: ins, slice: s, t: t, context, &models, &warnings) { entries.append(e) }
                    }
                    outLayer += 1
                }
            }
            for w in arch.post {
                if let e = try planTensor(w, inputs: lastSlice.sources.map { ($0.model, w) }, slice: lastSlice, t: 0, context, &models, &warnings) { entries.append(e) }
            }
            if arch.layerCountOverride == nil && !arch.layerCountKey.isEmpty { layerCounts.append((arch.layerCountKey, outLayer)) }
        }
        // A name planned twice (a module template without a layer index) keeps its last plan, as mergekit's
        // writer keeps the last tensor written under a name.
        var lastIndex: [String: Int] = [:]
        for (k, e) in entries.enumerated() { lastIndex[e.name] = k }
        entries = entries.enumerated().filter { lastIndex[$0.element.name] == $0.offset }.map(\.element)
        let main = layerCounts.first ?? (works.first?.arch.layerCountKey ?? "num_hidden_layers", 0)
        var plan = MergePlan(method: method.name, models: models, architecture: archName, entries: entries,
                             layerCount: main.count, layerCountKey: main.key, donor: index(donorRef), warnings: warnings)
        plan.otherLayerCounts = Array(layerCounts.dropFirst())
        return plan
    }

    /// A parameter name the method does not take: an error when it is a likely typo of one it does
    /// ("did you mean"), otherwise a warning (mergekit ignores unused parameters, and configs carry them).
    func checkParameterNames(modules: [ParameterSettings], warnings: inout [String]) throws {
        let known = method.parameters.map(\.name)
        var levels: [(String, ParameterSettings)] = [("parameters", config.parameters)]
        func add(_ prefix: String, models: [InputModel]?, slices: [OutputSlice]?) {
            for (i, m) in (models ?? []).enumerated() { levels.append(("\(prefix)models[\(i)].parameters", m.parameters)) }
            for (i, s) in (slices ?? []).enumerated() {
                levels.append(("\(prefix)slices[\(i)].parameters", s.parameters))
                for (j, src) in s.sources.enumerated() { levels.append(("\(prefix)slices[\(i)].sources[\(j)].parameters", src.parameters)) }
            }
        }
        add("", models: config.models, slices: config.slices)
        for m in config.modules ?? [] {
            levels.append(("modules.\(m.name).parameters", m.module.parameters))
            add("modules.\(m.name).", models: m.module.models, slices: m.module.slices)
        }
        let shared = Set(method.parameters.filter { $0.scope == .shared }.map(\.name))
        for (path, settings) in levels where path.hasSuffix("].parameters") && (path.contains("models[") || path.contains("sources[")) {
            for name in settings.keys.sorted() where shared.contains(name) {
                warnings.append("\(path).\(name): '\(name)' applies to the whole merge, so a value under one model's parameters is ignored (as in mergekit); move it under parameters")
            }
        }
        for (path, settings) in levels {
            for name in settings.keys.sorted() where !known.contains(name) {
                if let guess = didYouMean(name, among: known) {
                    throw MergeError.config(path: "\(path).\(name)", line: nil, message: "\(method.name) has no parameter '\(name)'; did you mean '\(guess)'?")
                }
                warnings.append("\(path).\(name): \(method.name) does not use '\(name)' (ignored)")
            }
        }
    }

    func checkContract(modelsIn: [ModelReference], base: ModelReference?, where path: String) throws {
        let c = method.contract
        let hasBase = base.map { modelsIn.contains($0) } ?? false
        if c.base == .required && !hasBase {
            throw MergeError.config(path: "base_model", line: nil, message: "\(method.name) needs a base_model (\(path))")
        }
        let count = modelsIn.count, nonBase = count - (c.base != .ignored && hasBase ? 1 : 0)
        if count < c.minInputs { throw MergeError.config(path: path, line: nil, message: "\(method.name) needs at least \(c.minInputs) models, got \(count)") }
        if let m = c.maxInputs, count > m { throw MergeError.config(path: path, line: nil, message: "\(method.name) takes at most \(m) models, got \(count)") }
        if let m = c.minNonBase, nonBase < m { throw MergeError.config(path: path, line: nil, message: "\(method.name) needs at least \(m) models besides the base, got \(nonBase)") }
        if let m = c.maxNonBase, nonBase > m { throw MergeError.config(path: path, line: nil, message: "\(method.name) takes at most \(m) models besides the base, got \(nonBase)") }
    }

    struct PlanContext {
        let config: MergeConfig
        let moduleParameters: ParameterSettings
    }

    /// Plans one output tensor (mergekit `plan_tensor` + the task adapter's optional-weight policy).
    func planTensor(_ out: WeightTemplate, inputs: [(ModelReference, WeightTemplate)], slice: OutputSlice, t: Double,
                    _ context: PlanContext, _ models: inout [ModelReference], _ warnings: inout [String]) throws -> PlanEntry? {
        let base = slice.baseModel ?? config.baseModel
        // Resolve which stored name each model has (name or alias).
        var present: [(ref: ModelReference, name: String, info: TensorInfo)] = []
        for (ref, w) in inputs {
            let s = try source(ref)
            if let name = ([w.name] + w.aliases).first(where: { s.tensorInfo($0) != nil }), let info = s.tensorInfo(name) {
                present.append((ref, name, info))
            } else if !out.optional {
                throw MergeError.missingTensor(model: ref.description, tensor: w.name)
            }
        }
        if present.isEmpty { return nil }   // optional weight nobody has (a tied lm_head)

        var passthrough = false
        if present.count < inputs.count {
            let policy = method.optionalTensorPolicy
            let onlyBase = present.count == 1 && present[0].ref == base
            if present.count == 1 && (policy == .passthroughSingleton || (policy == .passthroughBaseSingleton && onlyBase)) {
                passthrough = true
            } else if policy == .baseOrSkip && present.count < method.contract.minInputs {
                if onlyBase { passthrough = true } else {
                    warnings.append("skipping optional weight \(out.name): too few inputs have it")
                    return nil
                }
            } else {
                try checkContract(modelsIn: present.map(\.ref), base: base, where: out.name)
            }
        }
        let shapes = present.map(\.info.shape)
        let aligning = out.vocabularyAxis != nil && (config.tokenizer != nil || config.tokenizerSource != nil)
        if !aligning && Set(shapes.map { $0.description }).count > 1 {
            throw MergeError.shapeMismatch(tensor: out.name, shapes: present.map { ($0.ref.description, $0.info.shape) })
        }
        let usesBase = method.contract.base != .ignored
        let baseIndex = usesBase ? present.firstIndex { $0.ref == base } : nil
        let compute = config.dtype ?? promote(present.map(\.info.dtype))
        let outDType = outDTypeOverride ?? config.outDType ?? (passthrough ? compute : method.resultDType(compute: compute))

        var parameters = ResolvedParameters()
        if !passthrough {
            for spec in method.parameters where spec.scope == .shared {
                parameters.shared[spec.name] = try resolve(spec, levels: [slice.parameters, context.moduleParameters, config.parameters],
                                                           tensor: out.name, t: t, model: nil)
            }
            for p in present {
                var values: [String: Scalar] = [:]
                let own = slice.sources.filter { $0.model == p.ref }.map(\.parameters)
                for spec in method.parameters where spec.scope != .shared {
                    if spec.scope == .nonBase && usesBase && p.ref == base { continue }
                    values[spec.name] = try resolve(spec, levels: own + [slice.parameters, context.moduleParameters, config.parameters],
                                                    tensor: p.name, t: t, model: p.ref)
                }
                parameters.perInput.append(values)
            }
        }
        var planned: [PlannedInput] = []
        for p in present {
            if models.firstIndex(of: p.ref) == nil { models.append(p.ref) }
            planned.append(PlannedInput(model: models.firstIndex(of: p.ref) ?? 0, tensor: p.name))
        }
        return PlanEntry(name: out.name, shape: shapes[0], computeDType: compute, outDType: outDType,
                         inputs: planned,
                         baseIndex: baseIndex, parameters: parameters, t: t, vocabularyAxis: out.vocabularyAxis, passthrough: passthrough)
    }

    /// First level that yields a value wins (mergekit `resolve_parameter`); values are checked against the
    /// parameter's type here, so the executor never meets a bad one.
    func resolve(_ spec: ParameterSpec, levels: [ParameterSettings], tensor: String, t: Double, model: ModelReference?) throws -> Scalar? {
        for level in levels {
            guard let setting = level[spec.name] else { continue }
            guard let v = setting.evaluate(tensorName: tensor, t: t, numeric: spec.kind == .float || spec.kind == .int) else { continue }
            switch spec.kind {
            case .float, .int:
                if let d = v.numericValue { return .number(spec.kind == .int ? d.rounded(.towardZero) : d) }
                if case let .bool(b) = v { return .number(b ? 1 : 0) }
            case .string:
                return .string(v.description)
            case .bool:
                switch v {
                case .bool: return v
                case let .number(d) where d == 0 || d == 1: return .bool(d == 1)
                case let .string(s) where ["true", "false"].contains(s.lowercased()): return .bool(s.lowercased() == "true")
                default: break
                }
            }
            throw MergeError.config(path: "parameters.\(spec.name)", line: nil,
                                    message: "'\(v)' is not a valid \(spec.kind == .bool ? "boolean" : spec.kind == .string ? "string" : "number") for \(spec.name)\(model.map { " of \($0)" } ?? "") at \(tensor)")
        }
        switch spec.defaultValue {
        case let .value(v): return v
        case .absent: return nil
        case .required:
            throw MergeError.config(path: model.map { keyPath(of: $0, in: config).replacingOccurrences(of: ".model", with: "") + ".parameters.\(spec.name)" } ?? "parameters.\(spec.name)", line: nil,
                                    message: "\(method.name) needs '\(spec.name)'\(model.map { " for \($0)" } ?? "") (tensor \(tensor)); "
                                        + (spec.scope == .shared ? "set it under the top-level (or a slice's or module's) parameters: a method-wide parameter under a model's parameters is ignored, as in mergekit"
                                                                 : "set it per model or under top-level parameters"))
        }
    }
}

/// torch.promote_types over float dtypes: equal types stay, bf16 with f16 gives f32, f32 wins.
func promote(_ types: [DType]) -> DType {
    guard var r = types.first else { return .f32 }
    for t in types.dropFirst() where t != r {
        if r == .f64 || t == .f64 { r = .f64 } else { r = .f32 }
    }
    return r.isFloat ? r : .f32
}
