import FuseTensor

/// A merge configuration in mergekit's YAML schema (mergekit `config.py`), decoded and validated once at
/// the edge by `MergeConfig.parse`. Exactly one of `models`, `slices` or `modules` is set.
public struct MergeConfig: Sendable {
    public var mergeMethod: String
    public var baseModel: ModelReference?
    public var models: [InputModel]?
    public var slices: [OutputSlice]?
    public var modules: [(name: String, module: OutputModule)]?
    /// Inputs are converted to this before merging; the arithmetic is emulated in it (mergekit runs torch ops in it).
    public var dtype: DType?
    /// Cast just before writing.
    public var outDType: DType?
    public var tokenizerSource: TokenizerSource?
    public var tokenizer: TokenizerSettings?
    public var chatTemplate: String?
    public var parameters: ParameterSettings
    /// The YAML text the config came from, copied into the output as `mergekit_config.yml`.
    public var sourceText: String

    public init(mergeMethod: String, baseModel: ModelReference? = nil, models: [InputModel]? = nil,
                slices: [OutputSlice]? = nil, dtype: DType? = nil, outDType: DType? = nil,
                tokenizerSource: TokenizerSource? = nil, parameters: ParameterSettings = [:], sourceText: String = "") {
        self.mergeMethod = mergeMethod
        self.baseModel = baseModel
        self.models = models
        self.slices = slices
        self.dtype = dtype
        self.outDType = outDType
        self.tokenizerSource = tokenizerSource
        self.parameters = parameters
        self.sourceText = sourceText
    }

    /// Every model the config names, base first when there is one, then in order of appearance.
    public var referencedModels: [ModelReference] {
        var seen: [ModelReference] = []
        func add(_ m: ModelReference?) { if let m, !seen.contains(m) { seen.append(m) } }
        add(baseModel)
        for m in models ?? [] { add(m.model) }
        for s in slices ?? [] { add(s.baseModel); for src in s.sources { add(src.model) } }
        for (_, module) in modules ?? [] {
            for m in module.models ?? [] { add(m.model) }
            for s in module.slices ?? [] { add(s.baseModel); for src in s.sources { add(src.model) } }
        }
        return seen
    }
}

/// `org/name`, a local path, `path@revision`, `path+lora`, or the mapping form.
public struct ModelReference: Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var revision: String?
    public var lora: String?
    public var overrideArchitecture: String?

    public init(path: String, revision: String? = nil, lora: String? = nil, overrideArchitecture: String? = nil) {
        self.path = path
        self.revision = revision
        self.lora = lora
        self.overrideArchitecture = overrideArchitecture
    }

    /// Parses mergekit's string form: `model[@revision][+lora[@revision]]`.
    public init(parsing text: String) {
        var main = text
        var lora: String?
        if let plus = text.firstIndex(of: "+") {
            main = String(text[..<plus])
            lora = String(text[text.index(after: plus)...])
        }
        var revision: String?
        if let at = main.firstIndex(of: "@") {
            revision = String(main[main.index(after: at)...])
            main = String(main[..<at])
        }
        self.init(path: main, revision: revision, lora: lora)
    }

    public var description: String {
        var s = path
        if let revision { s += "@\(revision)" }
        if let lora { s += "+\(lora)" }
        return s
    }
}

public struct InputModel: Sendable {
    public var model: ModelReference
    public var parameters: ParameterSettings
    public init(model: ModelReference, parameters: ParameterSettings = [:]) {
        self.model = model
        self.parameters = parameters
    }
}

public struct InputSlice: Sendable {
    public var model: ModelReference
    /// Half-open [start, end).
    public var layerRange: (start: Int, end: Int)
    public var parameters: ParameterSettings
    public init(model: ModelReference, layerRange: (Int, Int), parameters: ParameterSettings = [:]) {
        self.model = model
        self.layerRange = (layerRange.0, layerRange.1)
        self.parameters = parameters
    }
}

public struct OutputSlice: Sendable {
    public var sources: [InputSlice]
    public var baseModel: ModelReference?
    /// Accepted by mergekit's schema and unused there; kept for round trips.
    public var residualWeight: Double?
    public var parameters: ParameterSettings
    public init(sources: [InputSlice], baseModel: ModelReference? = nil, parameters: ParameterSettings = [:]) {
        self.sources = sources
        self.baseModel = baseModel
        self.parameters = parameters
    }
}

public struct OutputModule: Sendable {
    public var models: [InputModel]?
    public var slices: [OutputSlice]?
    public var parameters: ParameterSettings
}

public enum TokenizerSource: Hashable, Sendable, CustomStringConvertible {
    case union, base
    case model(ModelReference)
    public var description: String {
        switch self {
        case .union: return "union"
        case .base: return "base"
        case let .model(m): return m.description
        }
    }
}

/// The modern `tokenizer:` block.
public struct TokenizerSettings: Sendable {
    public var source: TokenizerSource = .union
    public var tokens: [(token: String, embedding: TokenEmbeddingSource?, force: Bool)] = []
    public var padToMultipleOf: Int?
}

/// Where a listed token's embedding row comes from (`tokenizer.tokens.<tok>.source`).
public enum TokenEmbeddingSource: Sendable {
    case model(ModelReference)
    case modelToken(model: ModelReference, token: String)
    case modelTokenID(model: ModelReference, id: Int)
    case zero
}
