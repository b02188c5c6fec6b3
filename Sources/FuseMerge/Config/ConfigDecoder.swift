import FuseIO
import FuseTensor
import Yams

// MARK: - Parsing the YAML tree into MergeConfig
//
// The tree is walked by hand rather than through Codable so that every error names its key path and line
// and every unknown key gets a "did you mean". Keys are those of mergekit 0.1.5 `config.py`.

extension MergeConfig {
    static let topLevelKeys = ["merge_method", "base_model", "models", "slices", "modules", "parameters", "dtype",
                               "out_dtype", "tokenizer_source", "tokenizer", "chat_template"]

    /// Parses and validates a mergekit YAML config. Structural checks only: models are not opened here
    /// (the planner checks that they exist, their layer counts and shapes).
    public static func parse(yaml text: String) throws -> MergeConfig {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw MergeError.config(path: "", line: nil, message: "malformed YAML: \(error)")
        }
        guard let root, let map = root.mapping else {
            throw MergeError.config(path: "", line: root?.mark?.line, message: "expected a mapping at the top level (merge_method, models, ...)")
        }
        let r = YAMLReader()
        try r.checkKeys(map, allowed: topLevelKeys, path: "")
        guard let methodNode = map["merge_method"] else {
            throw MergeError.config(path: "merge_method", line: nil, message: "missing; name a merge method such as linear, ties or slerp")
        }
        let method = try r.string(methodNode, path: "merge_method")
        guard MethodRegistry.method(named: method) != nil else {
            throw MergeError.unknownMethod(name: method, suggestion: didYouMean(method, among: MethodRegistry.names))
        }
        var config = MergeConfig(mergeMethod: method, sourceText: text)
        if let n = map["base_model"], !n.isNull { config.baseModel = try r.modelReference(n, path: "base_model") }
        if let n = map["models"], !n.isNull { config.models = try r.inputModels(n, path: "models") }
        if let n = map["slices"], !n.isNull { config.slices = try r.outputSlices(n, path: "slices") }
        if let n = map["modules"], !n.isNull {
            guard let m = n.mapping else { throw r.error(n, "modules", "expected a mapping from module name to {models|slices, parameters}") }
            var modules: [(String, OutputModule)] = []
            for (k, v) in m {
                let name = try r.string(k, path: "modules")
                let path = "modules.\(name)"
                guard let vm = v.mapping else { throw r.error(v, path, "expected a mapping with models or slices") }
                try r.checkKeys(vm, allowed: ["models", "slices", "parameters"], path: path)
                var module = OutputModule(models: nil, slices: nil, parameters: [:])
                if let x = vm["models"], !x.isNull { module.models = try r.inputModels(x, path: path + ".models") }
                if let x = vm["slices"], !x.isNull { module.slices = try r.outputSlices(x, path: path + ".slices") }
                if let x = vm["parameters"], !x.isNull { module.parameters = try r.parameters(x, path: path + ".parameters") }
                if (module.models?.isEmpty ?? true) == (module.slices?.isEmpty ?? true) {
                    throw r.error(v, path, "must specify either slices or models to merge")
                }
                modules.append((name, module))
            }
            config.modules = modules
        }
        let present = [config.models?.isEmpty == false, config.slices?.isEmpty == false, config.modules?.isEmpty == false].filter { $0 }.count
        if present != 1 {
            throw MergeError.config(path: "", line: nil, message: "exactly one of 'models', 'slices' or 'modules' must be present and non-empty")
        }
        if let n = map["parameters"], !n.isNull { config.parameters = try r.parameters(n, path: "parameters") }
        if let n = map["dtype"], !n.isNull { config.dtype = try r.dtype(n, path: "dtype") }
        if let n = map["out_dtype"], !n.isNull { config.outDType = try r.dtype(n, path: "out_dtype") }
        if let n = map["tokenizer_source"], !n.isNull { config.tokenizerSource = try r.tokenizerSource(n, path: "tokenizer_source") }
        if let n = map["tokenizer"], !n.isNull { config.tokenizer = try r.tokenizerSettings(n, path: "tokenizer") }
        if config.tokenizerSource != nil && config.tokenizer != nil {
            throw MergeError.config(path: "tokenizer", line: map["tokenizer"]?.mark?.line, message: "cannot specify both tokenizer_source and tokenizer; keep one")
        }
        if let n = map["chat_template"], !n.isNull {
            let t = try r.string(n, path: "chat_template")
            let named = ["auto", "alpaca", "chatml", "llama3", "mistral", "exaone"]
            if !named.contains(t) && !(t.count >= 20 && t.contains("{")) {
                throw r.error(n, "chat_template", "'\(t)' is neither a known template (\(named.joined(separator: ", "))) nor a Jinja template (at least 20 characters with '{')")
            }
            config.chatTemplate = t
        }
        try config.validateSlices()
        return config
    }

    /// Layer ranges must be ordered and non-negative, and all sources in one output slice must have the
    /// same length (mergekit checks this only when planning).
    func validateSlices() throws {
        func check(_ slices: [OutputSlice], _ path: String) throws {
            for (i, s) in slices.enumerated() {
                guard !s.sources.isEmpty else {
                    throw MergeError.config(path: "\(path)[\(i)].sources", line: nil, message: "a slice needs at least one source")
                }
                for (j, src) in s.sources.enumerated() where src.layerRange.start < 0 || src.layerRange.end <= src.layerRange.start {
                    throw MergeError.config(path: "\(path)[\(i)].sources[\(j)].layer_range", line: nil,
                                            message: "[\(src.layerRange.start), \(src.layerRange.end)] is not a half-open range [start, end) with 0 <= start < end")
                }
                let lengths = s.sources.map { $0.layerRange.end - $0.layerRange.start }
                if Set(lengths).count > 1 {
                    throw MergeError.config(path: "\(path)[\(i)].sources", line: nil,
                                            message: "all sources in a slice must have the same number of layers (got \(lengths))")
                }
            }
        }
        try check(slices ?? [], "slices")
        for (name, m) in modules ?? [] { try check(m.slices ?? [], "modules.\(name).slices") }
    }
}

/// Typed reads of YAML nodes with key-path errors.
struct YAMLReader {
    func error(_ node: Node?, _ path: String, _ message: String) -> MergeError {
        .config(path: path, line: node?.mark?.line, message: message)
    }

    func checkKeys(_ map: Node.Mapping, allowed: [String], path: String) throws {
        for (k, _) in map {
            let key = k.string ?? "?"
            if !allowed.contains(key) {
                let hint = didYouMean(key, among: allowed).map { "; did you mean '\($0)'?" } ?? ""
                let p = path.isEmpty ? key : "\(path).\(key)"
                throw MergeError.config(path: p, line: k.mark?.line, message: "unknown key '\(key)'\(hint) (allowed here: \(allowed.joined(separator: ", ")))")
            }
        }
    }

    func string(_ node: Node, path: String) throws -> String {
        guard let s = node.scalar?.string else { throw error(node, path, "expected a string") }
        return s
    }

    func int(_ node: Node, path: String) throws -> Int {
        guard node.scalar != nil, let i = node.int else { throw error(node, path, "expected an integer") }
        return i
    }

    func scalar(_ node: Node, path: String) throws -> Scalar {
        guard let s = node.scalar else { throw error(node, path, "expected a number, boolean or string") }
        if s.style == .plain {
            switch Resolver.default.resolveTag(of: node) {
            case .bool: if let b = node.bool { return .bool(b) }
            case .int: if let i = node.int { return .number(Double(i)) }
            case .float: if let d = node.float { return .number(d) }
            case .null: throw error(node, path, "expected a value, got null")
            default: break
            }
        }
        return .string(s.string)
    }

    func dtype(_ node: Node, path: String) throws -> DType {
        let raw = try string(node, path: path)
        let name = raw.hasPrefix("torch.") ? String(raw.dropFirst(6)) : raw
        let table: [String: DType] = ["float32": .f32, "float": .f32, "fp32": .f32, "float16": .f16, "half": .f16, "fp16": .f16,
                                      "bfloat16": .bf16, "bf16": .bf16, "f32": .f32, "f16": .f16]
        guard let d = table[name] else {
            let hint = didYouMean(name, among: ["float32", "float16", "bfloat16"]).map { "; did you mean '\($0)'?" } ?? ""
            throw error(node, path, "unknown dtype '\(raw)'\(hint) (use float32, float16 or bfloat16)")
        }
        return d
    }

    func modelReference(_ node: Node, path: String) throws -> ModelReference {
        if let s = node.scalar?.string, node.mapping == nil {
            guard !s.isEmpty else { throw error(node, path, "empty model reference") }
            return ModelReference(parsing: s)
        }
        guard let m = node.mapping else { throw error(node, path, "expected a model path or {model, lora, override_architecture}") }
        try checkKeys(m, allowed: ["model", "lora", "override_architecture"], path: path)
        guard let modelNode = m["model"] else { throw error(node, path + ".model", "missing") }
        var ref: ModelReference
        if let pm = modelNode.mapping {
            try checkKeys(pm, allowed: ["path", "revision"], path: path + ".model")
            guard let p = pm["path"] else { throw error(modelNode, path + ".model.path", "missing") }
            ref = ModelReference(path: try string(p, path: path + ".model.path"))
            if let r = pm["revision"], !r.isNull { ref.revision = try string(r, path: path + ".model.revision") }
        } else {
            ref = ModelReference(parsing: try string(modelNode, path: path + ".model"))
        }
        if let l = m["lora"], !l.isNull {
            if let lm = l.mapping, let p = lm["path"] { ref.lora = try string(p, path: path + ".lora.path") }
            else { ref.lora = try string(l, path: path + ".lora") }
        }
        if let o = m["override_architecture"], !o.isNull { ref.overrideArchitecture = try string(o, path: path + ".override_architecture") }
        return ref
    }

    func inputModels(_ node: Node, path: String) throws -> [InputModel] {
        guard let seq = node.sequence else { throw error(node, path, "expected a list of {model, parameters}") }
        return try seq.enumerated().map { i, item in
            let p = "\(path)[\(i)]"
            guard let m = item.mapping else { throw error(item, p, "expected a mapping with 'model' (and optional 'parameters')") }
            try checkKeys(m, allowed: ["model", "parameters"], path: p)
            guard let model = m["model"] else { throw error(item, p + ".model", "missing") }
            var input = InputModel(model: try modelReference(model, path: p + ".model"))
            if let x = m["parameters"], !x.isNull { input.parameters = try parameters(x, path: p + ".parameters") }
            return input
        }
    }

    func outputSlices(_ node: Node, path: String) throws -> [OutputSlice] {
        guard let seq = node.sequence else { throw error(node, path, "expected a list of {sources: [...]}") }
        return try seq.enumerated().map { i, item in
            let p = "\(path)[\(i)]"
            guard let m = item.mapping else { throw error(item, p, "expected a mapping with 'sources'") }
            try checkKeys(m, allowed: ["sources", "base_model", "residual_weight", "parameters"], path: p)
            guard let sourcesNode = m["sources"], let sources = sourcesNode.sequence else {
                throw error(item, p + ".sources", "missing or not a list")
            }
            var slice = OutputSlice(sources: try sources.enumerated().map { j, s in
                let sp = "\(p).sources[\(j)]"
                guard let sm = s.mapping else { throw error(s, sp, "expected {model, layer_range, parameters}") }
                try checkKeys(sm, allowed: ["model", "layer_range", "parameters"], path: sp)
                guard let model = sm["model"] else { throw error(s, sp + ".model", "missing") }
                guard let range = sm["layer_range"], let rs = range.sequence, rs.count == 2 else {
                    throw error(sm["layer_range"] ?? s, sp + ".layer_range", "expected [start, end]")
                }
                let a = try int(rs[0], path: sp + ".layer_range[0]"), b = try int(rs[1], path: sp + ".layer_range[1]")
                var src = InputSlice(model: try modelReference(model, path: sp + ".model"), layerRange: (a, b))
                if let x = sm["parameters"], !x.isNull { src.parameters = try parameters(x, path: sp + ".parameters") }
                return src
            })
            if let b = m["base_model"], !b.isNull { slice.baseModel = try modelReference(b, path: p + ".base_model") }
            if let w = m["residual_weight"], !w.isNull { slice.residualWeight = w.float }
            if let x = m["parameters"], !x.isNull { slice.parameters = try parameters(x, path: p + ".parameters") }
            return slice
        }
    }

    func parameters(_ node: Node, path: String) throws -> ParameterSettings {
        guard let m = node.mapping else { throw error(node, path, "expected a mapping from parameter name to value") }
        var out: ParameterSettings = [:]
        for (k, v) in m {
            let name = try string(k, path: path)
            out[name] = try setting(v, path: "\(path).\(name)")
        }
        return out
    }

    func setting(_ node: Node, path: String) throws -> ParameterSetting {
        if node.scalar != nil { return .value(.scalar(try scalar(node, path: path))) }
        if let m = node.mapping { return .conditional([try conditional(m, node: node, path: path)]) }
        guard let seq = node.sequence else { throw error(node, path, "expected a value, a list of values, or a list of {filter, value}") }
        if seq.allSatisfy({ $0.scalar != nil }) {
            return .value(.gradient(try seq.enumerated().map { try scalar($1, path: "\(path)[\($0)]") }))
        }
        return .conditional(try seq.enumerated().map { i, item in
            guard let m = item.mapping else { throw error(item, "\(path)[\(i)]", "expected {filter, value} (do not mix plain values and filtered entries)") }
            return try conditional(m, node: item, path: "\(path)[\(i)]")
        })
    }

    func conditional(_ m: Node.Mapping, node: Node, path: String) throws -> (filter: String?, value: ScalarOrGradient) {
        try checkKeys(m, allowed: ["filter", "value"], path: path)
        guard let v = m["value"] else { throw error(node, path + ".value", "missing") }
        let value: ScalarOrGradient
        if let seq = v.sequence {
            value = .gradient(try seq.enumerated().map { try scalar($1, path: "\(path).value[\($0)]") })
        } else {
            value = .scalar(try scalar(v, path: path + ".value"))
        }
        var filter: String?
        if let f = m["filter"], !f.isNull { filter = try string(f, path: path + ".filter") }
        return (filter, value)
    }

    func tokenizerSource(_ node: Node, path: String) throws -> TokenizerSource {
        if let s = node.scalar?.string {
            if s == "union" { return .union }
            if s == "base" { return .base }
        }
        return .model(try modelReference(node, path: path))
    }

    func tokenizerSettings(_ node: Node, path: String) throws -> TokenizerSettings {
        guard let m = node.mapping else { throw error(node, path, "expected {source, tokens, pad_to_multiple_of}") }
        try checkKeys(m, allowed: ["source", "tokens", "pad_to_multiple_of"], path: path)
        var t = TokenizerSettings()
        if let s = m["source"], !s.isNull { t.source = try tokenizerSource(s, path: path + ".source") }
        if let p = m["pad_to_multiple_of"], !p.isNull { t.padToMultipleOf = try int(p, path: path + ".pad_to_multiple_of") }
        if let tk = m["tokens"], !tk.isNull {
            guard let tm = tk.mapping else { throw error(tk, path + ".tokens", "expected a mapping from token to {source, force}") }
            for (k, v) in tm {
                let token = try string(k, path: path + ".tokens")
                let tp = "\(path).tokens.\(token)"
                guard let vm = v.mapping else { throw error(v, tp, "expected {source, force}") }
                try checkKeys(vm, allowed: ["source", "force"], path: tp)
                var source: TokenEmbeddingSource?
                if let s = vm["source"], !s.isNull {
                    if let sm = s.mapping {
                        try checkKeys(sm, allowed: ["kind", "model", "token", "token_id"], path: tp + ".source")
                        let kind = try string(sm["kind"] ?? s, path: tp + ".source.kind")
                        switch kind {
                        case "zero": source = .zero
                        case "model_token":
                            guard let mn = sm["model"] else { throw error(s, tp + ".source.model", "missing") }
                            let model = try modelReference(mn, path: tp + ".source.model")
                            if let id = sm["token_id"], !id.isNull { source = .modelTokenID(model: model, id: try int(id, path: tp + ".source.token_id")) }
                            else if let tok = sm["token"] { source = .modelToken(model: model, token: try string(tok, path: tp + ".source.token")) }
                            else { throw error(s, tp + ".source", "model_token needs 'token' or 'token_id'") }
                        default:
                            throw error(s, tp + ".source.kind", "unknown kind '\(kind)' (use model_token or zero)")
                        }
                    } else {
                        source = .model(try modelReference(s, path: tp + ".source"))
                    }
                }
                let force = vm["force"]?.bool ?? false
                t.tokens.append((token, source, force))
            }
        }
        return t
    }
}

extension Node {
    var isNull: Bool { scalar != nil && Resolver.default.resolveTag(of: self) == .null && (scalar?.style == .plain) }
}
