import Foundation
import FuseTensor

// A PEFT LoRA adapter folder, as peft 0.21 `save_pretrained` writes it (formats-and-models.md):
//
//   adapter_config.json          {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_rslora": false,
//                                 "target_modules": ["q_proj", ...] or a regex string, "fan_in_fan_out": false,
//                                 "rank_pattern": {"q_proj": 4}, "alpha_pattern": {...}, "modules_to_save": [...]}
//   adapter_model.safetensors    base_model.model.<module>.lora_A.weight        (r × in)
//                                base_model.model.<module>.lora_B.weight        (out × r)
//                                base_model.model.<module>.lora_embedding_A     (r × vocab)   embeddings
//                                base_model.model.<module>.lora_embedding_B     (dim × r)
//                                base_model.model.<name>                        whole tensors: modules_to_save
//                                                                              (e.g. lm_head.weight) and saved
//                                                                              embedding base layers
//                                                                              (<module>.base_layer.weight)
//
// The update of a module is ΔW = scale · B·A (transposed when fan_in_fan_out, for GPT-2's Conv1D, and
// for embeddings, whose weight is vocab × dim), scale = alpha / r, or alpha / √r with use_rslora; r and
// alpha come from rank_pattern / alpha_pattern when a key matches the module name as peft's
// `get_pattern_key` does: the regex `(.*\.)?(KEY)$`, first matching key in file order.
// `adapter_model.bin` (pickle) is not read: convert it with peft (load, then `save_pretrained`).

/// adapter_config.json, decoded once. Keys FuseKit does not use are kept in `extra` and written back.
public struct PEFTConfig: Sendable, Equatable {
    public var r: Int
    public var loraAlpha: Double
    public var useRslora: Bool
    /// Module-name suffixes, as in the usual list form.
    public var targetModules: [String]
    /// The string form of target_modules (a regex over full module names), when the file used it.
    public var targetModulesRegex: String?
    public var fanInFanOut: Bool
    /// Pattern → rank / alpha, in file order (peft takes the first key that matches).
    public var rankPattern: [(String, Int)]
    public var alphaPattern: [(String, Double)]
    public var modulesToSave: [String]
    public var baseModelNameOrPath: String?
    public var taskType: String?
    /// Every other key of the file, written back unchanged.
    public var extra: [(String, JSON)]

    public init(r: Int, loraAlpha: Double, targetModules: [String], useRslora: Bool = false, fanInFanOut: Bool = false,
                rankPattern: [(String, Int)] = [], alphaPattern: [(String, Double)] = [], modulesToSave: [String] = [],
                baseModelNameOrPath: String? = nil, taskType: String? = "CAUSAL_LM") {
        self.r = r; self.loraAlpha = loraAlpha; self.useRslora = useRslora; self.targetModules = targetModules
        self.targetModulesRegex = nil; self.fanInFanOut = fanInFanOut; self.rankPattern = rankPattern
        self.alphaPattern = alphaPattern; self.modulesToSave = modulesToSave
        self.baseModelNameOrPath = baseModelNameOrPath; self.taskType = taskType; self.extra = []
    }

    public static func == (x: PEFTConfig, y: PEFTConfig) -> Bool {
        x.r == y.r && x.loraAlpha == y.loraAlpha && x.useRslora == y.useRslora && x.targetModules == y.targetModules
            && x.targetModulesRegex == y.targetModulesRegex && x.fanInFanOut == y.fanInFanOut
            && x.rankPattern.map(\.0) == y.rankPattern.map(\.0) && x.rankPattern.map(\.1) == y.rankPattern.map(\.1)
            && x.alphaPattern.map(\.0) == y.alphaPattern.map(\.0) && x.alphaPattern.map(\.1) == y.alphaPattern.map(\.1)
            && x.modulesToSave == y.modulesToSave && x.baseModelNameOrPath == y.baseModelNameOrPath && x.taskType == y.taskType
    }

    /// peft's `get_pattern_key`: the first key K with `(.*\.)?(K)$` matching the whole module name.
    static func patternKey<V>(_ pattern: [(String, V)], module: String) -> V? {
        for (key, value) in pattern {
            guard let re = try? NSRegularExpression(pattern: "^(.*\\.)?(\(key))$") else { continue }
            if re.firstMatch(in: module, range: NSRange(module.startIndex..., in: module)) != nil { return value }
        }
        return nil
    }

    /// Rank of one module (rank_pattern, else r).
    public func rank(module: String) -> Int { PEFTConfig.patternKey(rankPattern, module: module) ?? r }

    /// The factor ΔW = scale·B·A uses for one module: alpha / r, or alpha / √r with use_rslora.
    public func scale(module: String) -> Double {
        let r = Double(rank(module: module))
        let alpha = PEFTConfig.patternKey(alphaPattern, module: module) ?? loraAlpha
        return useRslora ? alpha / r.squareRoot() : alpha / r
    }

    static let knownKeys: Set<String> = ["peft_type", "r", "lora_alpha", "use_rslora", "target_modules", "fan_in_fan_out",
                                         "rank_pattern", "alpha_pattern", "modules_to_save", "base_model_name_or_path",
                                         "task_type"]

    /// Decodes adapter_config.json; `path` names the file in errors.
    public init(json: JSON, path: String) throws {
        func bad(_ key: String, _ what: String) -> FuseIOError {
            FuseIOError.corrupt(path: path, what: "'\(key)': \(what)")
        }
        guard case let .object(pairs) = json else { throw FuseIOError.corrupt(path: path, what: "not a JSON object") }
        let peftType = json["peft_type"]?.string ?? "LORA"
        guard peftType == "LORA" else {
            throw FuseIOError.unsupported(path: path, what: "peft_type '\(peftType)': only LORA adapters are supported")
        }
        if json["use_dora"]?.bool == true {
            throw FuseIOError.unsupported(path: path, what: "use_dora: DoRA adapters are not supported; merge them with peft's merge_and_unload")
        }
        guard let r = json["r"]?.int, r >= 1 else { throw bad("r", "must be an integer >= 1") }
        var alpha = Double(r)
        if let a = json["lora_alpha"], !a.isNull {
            guard let x = a.double else { throw bad("lora_alpha", "must be a number") }
            alpha = x
        }
        self.init(r: r, loraAlpha: alpha, targetModules: [])
        useRslora = json["use_rslora"]?.bool ?? false
        fanInFanOut = json["fan_in_fan_out"]?.bool ?? false
        switch json["target_modules"] {
        case let .string(s)?: targetModulesRegex = s
        case let .array(a)?:
            targetModules = try a.map { guard let s = $0.string else { throw bad("target_modules", "must hold strings") }; return s }
        case .null?, nil: break
        default: throw bad("target_modules", "must be a list of module names or a regex string")
        }
        for (k, v) in json["rank_pattern"]?.object ?? [] {
            guard let n = v.int, n >= 1 else { throw bad("rank_pattern.\(k)", "must be an integer >= 1") }
            rankPattern.append((k, n))
        }
        for (k, v) in json["alpha_pattern"]?.object ?? [] {
            guard let x = v.double else { throw bad("alpha_pattern.\(k)", "must be a number") }
            alphaPattern.append((k, x))
        }
        if let m = json["modules_to_save"], !m.isNull {
            guard let a = m.array else { throw bad("modules_to_save", "must be a list of module names") }
            modulesToSave = try a.map { guard let s = $0.string else { throw bad("modules_to_save", "must hold strings") }; return s }
        }
        baseModelNameOrPath = json["base_model_name_or_path"]?.string
        taskType = json["task_type"]?.string
        extra = pairs.filter { !PEFTConfig.knownKeys.contains($0.0) }
    }

    public var json: JSON {
        func number(_ x: Double) -> JSON { x == x.rounded() && abs(x) < 1e15 ? .int(Int(x)) : .double(x) }
        var pairs: [(String, JSON)] = [
            ("peft_type", .string("LORA")), ("task_type", taskType.map(JSON.string) ?? .null),
            ("base_model_name_or_path", baseModelNameOrPath.map(JSON.string) ?? .null),
            ("r", .int(r)), ("lora_alpha", number(loraAlpha)), ("use_rslora", .bool(useRslora)),
            ("target_modules", targetModulesRegex.map(JSON.string) ?? .array(targetModules.map(JSON.string))),
            ("fan_in_fan_out", .bool(fanInFanOut)),
            ("rank_pattern", .object(rankPattern.map { ($0.0, .int($0.1)) })),
            ("alpha_pattern", .object(alphaPattern.map { ($0.0, number($0.1)) })),
            ("modules_to_save", modulesToSave.isEmpty ? .null : .array(modulesToSave.map(JSON.string))),
        ]
        let defaults: [(String, JSON)] = [("lora_dropout", .int(0)), ("bias", .string("none")),
                                          ("init_lora_weights", .bool(true)), ("inference_mode", .bool(true))]
        let present = Set(extra.map(\.0))
        pairs += extra + defaults.filter { !present.contains($0.0) }
        return .object(pairs)
    }
}

/// The two factors of one adapted module. Linear: A is r × in, B is out × r (in × out layout of the
/// weight when fan_in_fan_out). Embedding: A is r × vocab, B is dim × r.
public struct LoraFactors: @unchecked Sendable {
    public var a: Tensor
    public var b: Tensor
    public var isEmbedding: Bool
    public init(a: Tensor, b: Tensor, isEmbedding: Bool = false) { self.a = a; self.b = b; self.isEmbedding = isEmbedding }
    public var rank: Int { a.shape.first ?? 0 }
}

/// A PEFT LoRA adapter: config, factors per module (`model.layers.0.self_attn.q_proj`) and whole tensors
/// under model tensor names (`lm_head.weight`).
public struct PEFTAdapter: @unchecked Sendable {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"
    public static let prefix = "base_model.model."

    public var config: PEFTConfig
    public var factors: [String: LoraFactors]
    public var fullTensors: [String: Tensor]

    public init(config: PEFTConfig, factors: [String: LoraFactors], fullTensors: [String: Tensor] = [:]) {
        self.config = config; self.factors = factors; self.fullTensors = fullTensors
    }

    /// Modules in a stable order (sorted by name).
    public var modules: [String] { factors.keys.sorted() }

    /// Whether `path` is an adapter folder (has adapter_config.json).
    public static func isAdapter(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path + "/" + configFile)
    }

    // MARK: reading

    /// Reads an adapter folder. The factors borrow the memory map of adapter_model.safetensors.
    public static func read(path: String) throws -> PEFTAdapter {
        let fm = FileManager.default
        let configPath = path + "/" + configFile
        guard fm.fileExists(atPath: configPath) else {
            throw FuseIOError.cannotOpen(path: path, reason: "no \(configFile): not a PEFT adapter folder")
        }
        let config = try PEFTConfig(json: readJSONFile(configPath), path: configPath)
        let weightsPath = path + "/" + weightsFile
        guard fm.fileExists(atPath: weightsPath) else {
            if fm.fileExists(atPath: path + "/adapter_model.bin") {
                throw FuseIOError.unsupported(path: path + "/adapter_model.bin",
                    what: "pickled adapters are not read; convert with peft: PeftModel.from_pretrained(base, dir).save_pretrained(dir, safe_serialization=True)")
            }
            throw FuseIOError.cannotOpen(path: weightsPath, reason: "no such file; an adapter folder needs \(weightsFile)")
        }
        let file = try SafetensorsFile(path: weightsPath)
        var halves: [String: (a: Tensor?, b: Tensor?, embedding: Bool)] = [:]
        var full: [String: Tensor] = [:]
        let suffixes: [(String, Bool, Bool)] = [(".lora_A.weight", true, false), (".lora_B.weight", false, false),
                                                (".lora_embedding_A", true, true), (".lora_embedding_B", false, true)]
        for info in file.tensors {
            guard info.name.hasPrefix(prefix) else {
                throw FuseIOError.badTensor(path: weightsPath, tensor: info.name,
                    what: "PEFT tensor names start with '\(prefix)'; this file was not written by peft's save_pretrained")
            }
            let name = String(info.name.dropFirst(prefix.count))
            if name.hasSuffix(".lora_magnitude_vector") || name.contains(".lora_magnitude_vector.") {
                throw FuseIOError.unsupported(path: weightsPath, what: "tensor '\(info.name)' is a DoRA magnitude; DoRA adapters are not supported")
            }
            let tensor = try file.tensor(info.name)
            if let (suffix, isA, isEmbedding) = suffixes.first(where: { name.hasSuffix($0.0) }) {
                let module = String(name.dropLast(suffix.count))
                var h = halves[module] ?? (nil, nil, isEmbedding)
                guard h.embedding == isEmbedding, (isA ? h.a : h.b) == nil else {
                    throw FuseIOError.duplicateTensor(path: weightsPath, tensor: info.name)
                }
                if isA { h.a = tensor } else { h.b = tensor }
                halves[module] = h
            } else if name.contains(".lora_") {
                throw FuseIOError.unsupported(path: weightsPath, what: "tensor '\(info.name)' belongs to a LoRA variant FuseKit does not read (lora_bias, DoRA, ...); merge it with peft's merge_and_unload")
            } else if name.hasSuffix(".base_layer.weight") {
                full[String(name.dropLast(".base_layer.weight".count)) + ".weight"] = tensor
            } else {
                full[name] = tensor
            }
        }
        var factors: [String: LoraFactors] = [:]
        for (module, h) in halves {
            let (aName, bName) = h.embedding ? ("lora_embedding_A", "lora_embedding_B") : ("lora_A.weight", "lora_B.weight")
            guard let a = h.a, let b = h.b else {
                let missing = prefix + module + "." + (h.a == nil ? aName : bName)
                throw FuseIOError.missingTensor(path: weightsPath, tensor: missing)
            }
            let r = config.rank(module: module)
            guard a.shape.count == 2, b.shape.count == 2, a.shape[0] == b.shape[1] else {
                throw FuseIOError.badTensor(path: weightsPath, tensor: prefix + module + "." + aName,
                    what: "factor shapes A \(a.shape) and B \(b.shape) do not multiply (A is r × in, B is out × r)")
            }
            guard a.shape[0] == r else {
                throw FuseIOError.badTensor(path: weightsPath, tensor: prefix + module + "." + aName,
                    what: "has rank \(a.shape[0]) but \(configFile) gives r = \(r) for this module (r / rank_pattern); fix the config")
            }
            guard a.dtype.isFloat, b.dtype.isFloat else {
                throw FuseIOError.unknownDType(path: weightsPath, tensor: prefix + module + "." + aName, dtype: a.dtype.rawValue)
            }
            factors[module] = LoraFactors(a: a, b: b, isEmbedding: h.embedding)
        }
        return PEFTAdapter(config: config, factors: factors, fullTensors: full)
    }

    // MARK: writing

    /// The tensors of adapter_model.safetensors, under peft's names.
    public var namedTensors: [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for module in modules {
            let f = factors[module]! // invariant: from keys
            let (aName, bName) = f.isEmbedding ? ("lora_embedding_A", "lora_embedding_B") : ("lora_A.weight", "lora_B.weight")
            out.append((PEFTAdapter.prefix + module + "." + aName, f.a))
            out.append((PEFTAdapter.prefix + module + "." + bName, f.b))
        }
        for name in fullTensors.keys.sorted() { out.append((PEFTAdapter.prefix + name, fullTensors[name]!)) } // invariant: from keys
        return out
    }

    /// Writes adapter_config.json and adapter_model.safetensors into `directory`, which must exist
    /// (normally the temporary folder of an `AtomicOutputDirectory`); each file is written atomically.
    public func write(into directory: String) throws {
        try writeSafetensors(path: directory + "/" + PEFTAdapter.weightsFile, tensors: namedTensors, metadata: ["format": "pt"])
        try writeFileAtomically(path: directory + "/" + PEFTAdapter.configFile, contents: config.json.serialized(indent: 2) + "\n")
    }

    /// Writes the adapter as a new folder `path`, atomically: all of it or nothing; an existing folder
    /// is replaced only with `force`.
    public func write(to path: String, force: Bool) throws {
        let out = try AtomicOutputDirectory(finalPath: path, force: force)
        do {
            try write(into: out.tempPath)
            try out.commit()
        } catch {
            out.abandon()
            throw error
        }
    }
}
