import Foundation
import FuseIO
import FuseTensor

/// Options of `fusekit merge` (mergekit-yaml's, where they apply).
public struct MergeRunOptions: Sendable {
    public var seed: UInt64 = 0
    /// Overrides the config's out_dtype (`--dtype`).
    public var outDType: DType?
    /// mergekit's `--out-shard-size` default: 5e9 bytes.
    public var maxShardBytes = 5_000_000_000
    public var force = false
    /// README.md model card and mergekit_config.yml (mergekit's --write-model-card, default on).
    public var writeModelCard = true
    /// Copy the donor's tokenizer and generation files (mergekit's --copy-tokenizer, default on).
    public var copyTokenizer = true
    /// fsync the shards before the folder is renamed into place. Off by default, like mergekit: the
    /// rename already guarantees a crash of this process never leaves a partial folder.
    public var syncOutput = false
    /// Called with the temporary output folder once everything else is written, before it is renamed
    /// into place (the CLI writes run.json here).
    public var finishOutput: (@Sendable (_ temporaryFolder: String, _ summary: MergeSummary) throws -> Void)?
    /// dtype `model+lora` references are loaded in before the adapter is merged (mergekit's
    /// `--lora-merge-dtype`); nil keeps each tensor's stored dtype.
    public var loraDType: DType?
    public init() {}
}

public struct MergeSummary: Sendable {
    public var output: String
    public var method: String
    public var tensors: Int
    public var parameters: Int
    public var bytesWritten: Int
    public var seconds: Double
    public var files: [String]
    public var warnings: [String]
}

/// Resolves model references to local folders or files: relative paths against `directory` (the
/// current directory, as mergekit does), hub-style names only when they exist on disk.
/// A `model+lora` reference is the model with the adapter applied at load, in `loraDType` (mergekit's
/// `--lora-merge-dtype`) or each tensor's stored dtype.
public func openModels(_ config: MergeConfig, relativeTo directory: String, loraDType: DType? = nil) throws -> [ModelReference: ModelSource] {
    var out: [ModelReference: ModelSource] = [:]
    for ref in config.referencedModels {
        let path = ref.path.hasPrefix("/") ? ref.path : directory + "/" + ref.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw MergeError.missingModel(path: keyPath(of: ref, in: config), model: ref.path)
        }
        let store: WeightStore
        do { store = try WeightStore(path: path) } catch {
            throw MergeError.io("\(keyPath(of: ref, in: config)): cannot open '\(ref.path)': \(error)")
        }
        guard let lora = ref.lora else { out[ref] = store; continue }
        // `model+lora`: the model with the adapter merged in at load, as mergekit's ModelReference.merged()
        // does with peft's merge_and_unload (here tensor by tensor, without a cached copy).
        let loraPath = lora.hasPrefix("/") ? lora : directory + "/" + lora
        guard PEFTAdapter.isAdapter(loraPath) else {
            throw MergeError.missingModel(path: keyPath(of: ref, in: config) + " (LoRA after '+')", model: lora + " (a PEFT adapter folder with adapter_config.json)")
        }
        do {
            out[ref] = try LoraAppliedSource(base: store, adapter: PEFTAdapter.read(path: loraPath), adapterPath: loraPath, dtype: loraDType)
        } catch {
            throw MergeError.io("\(keyPath(of: ref, in: config)): cannot apply LoRA '\(lora)' to '\(ref.path)': \(error)")
        }
    }
    return out
}

/// Where a model is named in the config, for errors.
func keyPath(of ref: ModelReference, in config: MergeConfig) -> String {
    if config.baseModel == ref { return "base_model" }
    if let i = config.models?.firstIndex(where: { $0.model == ref }) { return "models[\(i)].model" }
    for (i, s) in (config.slices ?? []).enumerated() {
        if let j = s.sources.firstIndex(where: { $0.model == ref }) { return "slices[\(i)].sources[\(j)].model" }
    }
    return "models"
}

/// Runs a whole merge into an HF folder at `outPath`, atomically: the planned shards, config.json,
/// tokenizer files, README.md model card and mergekit_config.yml.
public func runMerge(config: MergeConfig, outPath: String, options: MergeRunOptions,
                     workingDirectory: String = FileManager.default.currentDirectoryPath,
                     progress: ((Int, Int, String) -> Void)? = nil) throws -> MergeSummary {
    let start = Date()
    let sources = try openModels(config, relativeTo: workingDirectory, loraDType: options.loraDType)
    let planner = try MergePlanner(config: config, sources: sources, outDTypeOverride: options.outDType)
    var plan = try planner.plan()
    let ordered: [ModelSource] = try plan.models.map { m in
        guard let s = sources[m] else { throw MergeError.missingModel(path: "models", model: m.description) }
        return s
    }
    var vocabulary: VocabularyAlignment?
    if let source = config.tokenizer?.source ?? config.tokenizerSource {
        let v = try VocabularyAlignment.build(source: source, config: config, plan: plan, sources: ordered, workingDirectory: workingDirectory)
        plan = v.adjust(plan)
        vocabulary = v
    }
    let out = try AtomicOutputDirectory(finalPath: outPath, force: options.force)
    do {
        let infos = plan.entries.map { TensorInfo(name: $0.name, dtype: $0.outDType, shape: $0.shape) }
        let writer = try ShardedSafetensorsWriter(directory: out.tempPath, tensors: infos, maxShardBytes: options.maxShardBytes,
                                                  metadata: ["format": "pt"])
        var exec = ExecutionOptions(seed: options.seed)
        exec.prefetchBudgetBytes = 512 << 20
        exec.workingDirectory = workingDirectory
        let executor = try MergeExecutor(plan: plan, sources: ordered, options: exec, rowMapper: vocabulary)
        try executor.run(into: writer, progress: progress)
        try writer.finish(sync: options.syncOutput)

        let donor = ordered[plan.donor]
        if var cfg = donor.modelConfig, case var .object(pairs) = cfg {
            func set(_ key: String, _ value: JSON) {
                if let i = pairs.firstIndex(where: { $0.0 == key }) { pairs[i].1 = value } else { pairs.append((key, value)) }
            }
            for (key, count) in [(plan.layerCountKey, plan.layerCount)] + plan.otherLayerCounts.map({ ($0.key, $0.count) }) {
                let path = key.split(separator: ".").map(String.init)
                if path.count == 1 { set(key, .int(count)) } else if let i = pairs.firstIndex(where: { $0.0 == path[0] }) {
                    pairs[i].1 = settingPath(pairs[i].1, Array(path.dropFirst()), .int(count))
                }
            }
            // As mergekit's `_model_out_config`: out_dtype, else dtype, else the donor's own dtype as written,
            // even where the method's result is another type (ramplus_tl and arcee_fusion write f32 tensors).
            // transformers 5 saves the key as `dtype`.
            // transformers 5 refuses a config whose `layer_types` (Qwen2, Qwen3, Gemma...) does not have one
            // entry per layer. mergekit 0.1.5 leaves the list as it is and fails to save such a config; the
            // output layers of a slices merge take the donor's entries at their source layer indices.
            if let slices = config.slices, let i = pairs.firstIndex(where: { $0.0 == "layer_types" }),
               case let .array(types) = pairs[i].1, !types.isEmpty, types.count != plan.layerCount {
                var rebuilt: [JSON] = []
                for slice in slices {
                    guard let r = slice.sources.first?.layerRange else { continue }
                    for layer in r.start..<r.end { rebuilt.append(types[min(layer, types.count - 1)]) }
                }
                if rebuilt.count == plan.layerCount { pairs[i].1 = .array(rebuilt) }
            }
            let floatTypes = Set(infos.map(\.dtype).filter(\.isFloat))
            let donorDType = pairs.first { $0.0 == "dtype" }?.1 ?? pairs.first { $0.0 == "torch_dtype" }?.1
            let chosen = (options.outDType ?? config.outDType ?? config.dtype).map { JSON.string(torchDTypeName($0)) }
                ?? donorDType ?? (floatTypes.count == 1 ? floatTypes.first.map { JSON.string(torchDTypeName($0)) } : nil)
            if let chosen {
                pairs.removeAll { $0.0 == "torch_dtype" }
                set("dtype", chosen)
            }
            if let v = vocabulary { set("vocab_size", .int(v.outputCount)) }
            cfg = .object(pairs)
            try writeFileAtomically(path: out.tempPath + "/config.json", contents: cfg.serialized(indent: 2) + "\n")
        }
        if options.writeModelCard {
            try writeFileAtomically(path: out.tempPath + "/mergekit_config.yml", contents: config.sourceText)
            try writeFileAtomically(path: out.tempPath + "/README.md", contents: modelCard(config: config, plan: plan))
        }
        if let v = vocabulary {
            try v.writeTokenizer(to: out.tempPath)
        } else if options.copyTokenizer, let folder = donor.folderPath {
            try copySideFiles(from: folder, to: out.tempPath)
        }
        if let setting = config.chatTemplate,
           let template = try ChatTemplate.resolve(setting, inputs: ordered.map(\.folderPath)) {
            try ChatTemplate.write(template, to: out.tempPath)
        }
        var summary = MergeSummary(output: outPath, method: plan.method, tensors: infos.count,
                                   parameters: infos.reduce(0) { $0 + $1.elementCount }, bytesWritten: infos.reduce(0) { $0 + $1.byteCount },
                                   seconds: Date().timeIntervalSince(start), files: [], warnings: plan.warnings)
        try options.finishOutput?(out.tempPath, summary)
        summary.files = (try? FileManager.default.contentsOfDirectory(atPath: out.tempPath).sorted()) ?? []
        try out.commit()
        return summary
    } catch {
        out.abandon()
        throw error
    }
}

/// `json` with the value at a key path (inside existing objects) replaced or added.
func settingPath(_ json: JSON, _ path: [String], _ value: JSON) -> JSON {
    guard let key = path.first, case var .object(pairs) = json else { return json }
    let inner = path.count == 1 ? value : settingPath(pairs.first { $0.0 == key }?.1 ?? .object([]), Array(path.dropFirst()), value)
    if let i = pairs.firstIndex(where: { $0.0 == key }) { pairs[i].1 = inner } else { pairs.append((key, inner)) }
    return .object(pairs)
}

/// The README.md model card, in mergekit's layout (front matter, method, models, configuration).
func modelCard(config: MergeConfig, plan: MergePlan) -> String {
    let method = MethodRegistry.method(named: config.mergeMethod)
    let bases = plan.models.map(\.path)
    var s = "---\nbase_model:\n" + bases.map { "- \($0)\n" }.joined() + "library_name: transformers\ntags:\n- mergekit\n- merge\n- fusekit\n---\n"
    s += "# merged\n\nThis is a merge of pre-trained language models created with FuseKit (`fusekit merge`, compatible with [mergekit](https://github.com/arcee-ai/mergekit)).\n\n"
    s += "## Merge Details\n### Merge Method\n\n"
    let link = method?.referenceURL.map { "[\(method?.prettyName ?? config.mergeMethod)](\($0))" } ?? (method?.prettyName ?? config.mergeMethod)
    if let base = config.baseModel { s += "This model was merged using the \(link) merge method using \(base.path) as a base.\n\n" }
    else { s += "This model was merged using the \(link) merge method.\n\n" }
    s += "### Models Merged\n\nThe following models were included in the merge:\n"
    for m in plan.models where m != config.baseModel { s += "* \(m.path)\n" }
    s += "\n### Configuration\n\nThe following YAML configuration was used to produce this model:\n\n```yaml\n"
    s += config.sourceText.trimmingCharacters(in: .whitespacesAndNewlines) + "\n```\n"
    return s
}
