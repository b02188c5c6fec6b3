// The `fusekit distill SPEC.yml` file. Every key is checked here, before any model loads: unknown keys
// get a "did you mean", every error names its key path and line, and paths must exist.
//
//   target: models/smollm2.gguf             # the model trained; GGUF file or HF folder
//   sources:                                # one or more models fused into it (any tokenizer)
//     - model: models/gemma3-270m.gguf
//       name: gemma3                        # optional; default: the file name
//   corpus:
//     train: corpus/train.txt               # UTF-8 text
//     held_out: corpus/held_out.txt         # optional; evaluation after training
//     block_tokens: 256                     # target tokens per sequence (default 256)
//     max_sequences: 2000                   # optional budget
//     domains:                              # optional; held-out text per domain, perplexity before and
//       manpages: corpus/held_out/manpages.txt  # after training (default: one domain "held_out")
//     domain_tokens: 4096                   # target tokens scored per domain (default 4096)
//   k: 10                                   # top-k stored per position (default 10)
//   fusion: minCE                           # minCE | avgCE
//   lambda: 0.9                             # loss = λ·CLM + (1−λ)·fusion
//   temperature: 1.0                        # softmax(logp / T) of each top-k list
//   target_distribution: true               # the target's own top-k is a fusion candidate (default true)
//   alignment:
//     vocabulary: soft                      # soft (MinED, default) | hard (exact match, "EM")
//     surface: canonical                    # canonical (default) | release (FuseLLM's strings)
//   cache_dir: .fusekit-cache               # optional; captures, mappings and fused targets
//   training:                               # FuseTrain (DistillRun.trainingStage, Training.swift)
//     enabled: true
//     mode: full                            # full | lora
//     lr: 1.0e-5
//     epochs: 1
//     batch_size: 8                         # sequences per optimizer step
//     warmup_ratio: 0.008
//     weight_decay: 0.1
//     grad_clip: 1.0
//     loss: ce                              # ce | kl (the soft-target loss)
//     seed: 0
//     save_every: 50                        # checkpoint every N steps (for --resume)
//     lora: {rank: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, v_proj]}
//   fusechat:                               # FuseChat: fuse the target with each source pairwise,
//     enabled: false                        # train one copy per pair, then merge the copies
//     merge_method: sce                     # any FuseMerge method
//     parameters: {select_topk: 0.1}        # the method's global parameters
import Foundation
import FuseIO
import FuseMerge
import Yams

public struct SourceSpec: Equatable, Sendable {
    public var name: String
    public var model: String
}

public struct CorpusSpec: Equatable, Sendable {
    public var train: String
    public var heldOut: String?
    public var blockTokens = 256
    public var maxSequences: Int?
    /// Held-out text per domain (`corpus.domains`, in spec order), scored before and after training.
    /// Without the key, `held_out` is the one domain "held_out"; without either, none.
    public var domains: [DomainSpec] = []
    /// Target tokens scored per domain (the first ones of its text).
    public var domainTokens = 4096
}

/// One held-out domain: a name for the report and a UTF-8 text file.
public struct DomainSpec: Equatable, Sendable {
    public var name: String
    public var path: String
    public init(name: String, path: String) { self.name = name; self.path = path }
}

public struct TrainingSpec: Equatable, Sendable {
    public enum Mode: String, Sendable, CaseIterable { case full, lora }
    public var enabled = true
    public var mode: Mode = .full
    public var lr = 1e-5
    public var epochs = 1
    public var batchSize = 8
    public var warmupRatio = 0.008
    public var weightDecay = 0.1
    public var gradClip = 1.0
    public var loss = "ce"
    public var seed = 0
    public var saveEvery = 50
    public var loraRank = 8
    public var loraAlpha = 16.0
    public var loraDropout = 0.0
    public var loraTargetModules = ["q_proj", "v_proj"]
}

public struct FuseChatSpec: Equatable, Sendable {
    public var enabled = false
    public var mergeMethod = "sce"
    public var parameters: [String: Double] = ["select_topk": 0.1]
}

public struct DistillSpec: Equatable, Sendable {
    public var path: String
    public var target: String
    public var sources: [SourceSpec]
    public var corpus: CorpusSpec
    public var k = 10
    public var fusion: FusionFunction = .minCE
    public var lambda = 0.9
    public var temperature = 1.0
    public var targetDistribution = true
    public var vocabulary: VocabularyAlignment = .soft
    public var surface: SurfaceMode = .canonical
    public var cacheDirectory: String?
    public var training = TrainingSpec()
    public var fuseChat = FuseChatSpec()

    static let topKeys = ["target", "sources", "corpus", "k", "fusion", "lambda", "temperature", "target_distribution",
                          "alignment", "cache_dir", "training", "fusechat"]

    public static func load(path: String) throws -> DistillSpec {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw DistillError.spec(path: path, key: "", line: nil, message: "cannot read the spec (\(error.localizedDescription))")
        }
        return try parse(yaml: text, path: path)
    }

    /// Parses and validates; `checkFiles` also requires every model and corpus path to exist.
    public static func parse(yaml text: String, path: String, checkFiles: Bool = true) throws -> DistillSpec {
        let r = SpecReader(path: path)
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw r.fail(nil, "", "malformed YAML: \(error)") }
        guard let root, let map = root.mapping else { throw r.fail(root, "", "expected a mapping with target, sources and corpus") }
        try r.checkKeys(map, topKeys, "")
        guard let targetNode = map["target"] else { throw r.fail(nil, "target", "missing; name the model to train (a .gguf file or HF folder)") }
        let target = try r.modelPath(targetNode, "target", checkFiles)
        guard let sourcesNode = map["sources"] else { throw r.fail(nil, "sources", "missing; list at least one source model") }
        guard let list = sourcesNode.sequence, !list.isEmpty else { throw r.fail(sourcesNode, "sources", "expected a non-empty list of models") }
        var sources: [SourceSpec] = []
        for (i, node) in list.enumerated() {
            let p = "sources[\(i)]"
            if node.scalar != nil {
                let m = try r.modelPath(node, p, checkFiles)
                sources.append(SourceSpec(name: defaultName(m), model: m)); continue
            }
            guard let m = node.mapping else { throw r.fail(node, p, "expected a model path or {model: PATH, name: NAME}") }
            try r.checkKeys(m, ["model", "name"], p)
            guard let mn = m["model"] else { throw r.fail(node, p + ".model", "missing") }
            let model = try r.modelPath(mn, p + ".model", checkFiles)
            let name = try m["name"].map { try r.string($0, p + ".name") } ?? defaultName(model)
            sources.append(SourceSpec(name: name, model: model))
        }
        var names = Set<String>()
        for (i, s) in sources.enumerated() where !names.insert(s.name).inserted {
            throw r.fail(list[i], "sources[\(i)].name", "'\(s.name)' is used twice; give each source a distinct name")
        }
        guard let corpusNode = map["corpus"], let cm = corpusNode.mapping else {
            throw r.fail(map["corpus"], "corpus", "missing; give corpus.train (a UTF-8 text file)")
        }
        try r.checkKeys(cm, ["train", "held_out", "block_tokens", "max_sequences", "domains", "domain_tokens"], "corpus")
        guard let trainNode = cm["train"] else { throw r.fail(corpusNode, "corpus.train", "missing; a UTF-8 text file") }
        var corpus = CorpusSpec(train: try r.filePath(trainNode, "corpus.train", checkFiles))
        if let n = cm["held_out"] { corpus.heldOut = try r.filePath(n, "corpus.held_out", checkFiles) }
        if let n = cm["block_tokens"] { corpus.blockTokens = try r.int(n, "corpus.block_tokens", min: 2, max: 4096) }   // DTW holds a T×T cost matrix per sequence
        if let n = cm["max_sequences"] { corpus.maxSequences = try r.int(n, "corpus.max_sequences", min: 1, max: Int(Int32.max)) }
        if let n = cm["domain_tokens"] { corpus.domainTokens = try r.int(n, "corpus.domain_tokens", min: 2, max: 1 << 24) }
        if let n = cm["domains"] {
            guard let dm = n.mapping, !dm.isEmpty else {
                throw r.fail(n, "corpus.domains", "expected a mapping of domain names to held-out text files, e.g. {manpages: corpus/held_out/manpages.txt}")
            }
            for (k, v) in dm {
                guard let name = k.string, !name.isEmpty else { throw r.fail(k, "corpus.domains", "a domain name must be a non-empty string") }
                if corpus.domains.contains(where: { $0.name == name }) { throw r.fail(k, "corpus.domains.\(name)", "'\(name)' is listed twice; give each domain a distinct name") }
                corpus.domains.append(DomainSpec(name: name, path: try r.filePath(v, "corpus.domains.\(name)", checkFiles)))
            }
        } else if let held = corpus.heldOut {
            corpus.domains = [DomainSpec(name: "held_out", path: held)]
        }

        var spec = DistillSpec(path: path, target: target, sources: sources, corpus: corpus)
        if let n = map["k"] { spec.k = try r.int(n, "k", min: 1, max: 1 << 16) }
        if let n = map["fusion"] {
            let s = try r.string(n, "fusion")
            guard let f = FusionFunction.allCases.first(where: { $0.rawValue.lowercased() == s.lowercased() }) else {
                throw r.fail(n, "fusion", "'\(s)' is not a fusion function; use minCE or avgCE")
            }
            spec.fusion = f
        }
        if let n = map["lambda"] { spec.lambda = try r.double(n, "lambda", min: 0, max: 1) }
        if let n = map["temperature"] { spec.temperature = try r.double(n, "temperature", min: 1e-3, max: 100) }
        if let n = map["target_distribution"] { spec.targetDistribution = try r.bool(n, "target_distribution") }
        if let n = map["cache_dir"] { spec.cacheDirectory = try r.string(n, "cache_dir") }
        if let n = map["alignment"] {
            guard let am = n.mapping else { throw r.fail(n, "alignment", "expected a mapping with vocabulary and surface") }
            try r.checkKeys(am, ["vocabulary", "surface"], "alignment")
            if let v = am["vocabulary"] { spec.vocabulary = try r.choice(v, "alignment.vocabulary", VocabularyAlignment.self) }
            if let v = am["surface"] { spec.surface = try r.choice(v, "alignment.surface", SurfaceMode.self) }
        }
        if let n = map["training"] { spec.training = try training(n, r) }
        if let n = map["fusechat"] { spec.fuseChat = try fuseChat(n, r) }
        if spec.fuseChat.enabled && !spec.targetDistribution {
            throw r.fail(map["target_distribution"], "target_distribution", "FuseChat fuses the target (pivot) with each source, so the target's own distribution is needed; set it to true")
        }
        return spec
    }

    static func defaultName(_ model: String) -> String {
        let last = URL(fileURLWithPath: model).lastPathComponent
        return last.hasSuffix(".gguf") ? String(last.dropLast(5)) : last
    }

    static func training(_ node: Node, _ r: SpecReader) throws -> TrainingSpec {
        guard let m = node.mapping else { throw r.fail(node, "training", "expected a mapping") }
        try r.checkKeys(m, ["enabled", "mode", "lr", "epochs", "batch_size", "warmup_ratio", "weight_decay", "grad_clip", "loss", "seed", "save_every", "lora"], "training")
        var t = TrainingSpec()
        if let n = m["enabled"] { t.enabled = try r.bool(n, "training.enabled") }
        if let n = m["mode"] { t.mode = try r.choice(n, "training.mode", TrainingSpec.Mode.self) }
        if let n = m["lr"] { t.lr = try r.double(n, "training.lr", min: 0, max: 1, openMin: true) }
        if let n = m["epochs"] { t.epochs = try r.int(n, "training.epochs", min: 1, max: 1000) }
        if let n = m["batch_size"] { t.batchSize = try r.int(n, "training.batch_size", min: 1, max: 1 << 20) }
        if let n = m["warmup_ratio"] { t.warmupRatio = try r.double(n, "training.warmup_ratio", min: 0, max: 1) }
        if let n = m["weight_decay"] { t.weightDecay = try r.double(n, "training.weight_decay", min: 0, max: 10) }
        if let n = m["grad_clip"] { t.gradClip = try r.double(n, "training.grad_clip", min: 0, max: 1e6) }
        if let n = m["loss"] {
            t.loss = try r.string(n, "training.loss")
            guard ["ce", "kl"].contains(t.loss) else { throw r.fail(n, "training.loss", "'\(t.loss)' is not a soft-target loss; use ce or kl") }
        }
        if let n = m["seed"] { t.seed = try r.int(n, "training.seed", min: 0, max: Int.max) }
        if let n = m["save_every"] { t.saveEvery = try r.int(n, "training.save_every", min: 1, max: Int.max) }
        if let n = m["lora"] {
            guard let lm = n.mapping else { throw r.fail(n, "training.lora", "expected a mapping with rank, alpha, dropout, target_modules") }
            try r.checkKeys(lm, ["rank", "alpha", "dropout", "target_modules"], "training.lora")
            if let v = lm["rank"] { t.loraRank = try r.int(v, "training.lora.rank", min: 1, max: 65536) }
            if let v = lm["alpha"] { t.loraAlpha = try r.double(v, "training.lora.alpha", min: 0, max: 1e6, openMin: true) }
            if let v = lm["dropout"] { t.loraDropout = try r.double(v, "training.lora.dropout", min: 0, max: 0.999) }
            if let v = lm["target_modules"] {
                guard let seq = v.sequence, !seq.isEmpty else { throw r.fail(v, "training.lora.target_modules", "expected a non-empty list of module names") }
                t.loraTargetModules = try seq.enumerated().map { try r.string($1, "training.lora.target_modules[\($0)]") }
            }
            if t.mode != .lora { throw r.fail(n, "training.lora", "LoRA settings need training.mode: lora") }
        }
        return t
    }

    static func fuseChat(_ node: Node, _ r: SpecReader) throws -> FuseChatSpec {
        guard let m = node.mapping else { throw r.fail(node, "fusechat", "expected a mapping with enabled, merge_method, parameters") }
        try r.checkKeys(m, ["enabled", "merge_method", "parameters"], "fusechat")
        var f = FuseChatSpec()
        if let n = m["enabled"] { f.enabled = try r.bool(n, "fusechat.enabled") }
        if let n = m["merge_method"] {
            f.mergeMethod = try r.string(n, "fusechat.merge_method")
            guard MethodRegistry.method(named: f.mergeMethod) != nil else {
                let hint = didYouMean(f.mergeMethod, among: MethodRegistry.names).map { "; did you mean '\($0)'?" } ?? ""
                throw r.fail(n, "fusechat.merge_method", "unknown merge method '\(f.mergeMethod)'\(hint) (known: \(MethodRegistry.names.joined(separator: ", ")))")
            }
        }
        if let n = m["parameters"] {
            guard let pm = n.mapping else { throw r.fail(n, "fusechat.parameters", "expected a mapping of parameter names to numbers") }
            f.parameters = [:]
            for (k, v) in pm {
                let key = k.string ?? "?"
                f.parameters[key] = try r.double(v, "fusechat.parameters.\(key)", min: -1e9, max: 1e9)
            }
        }
        return f
    }
}

/// Typed reads of YAML nodes, each error with the spec path, key path and line.
struct SpecReader {
    let path: String

    func fail(_ node: Node?, _ key: String, _ message: String) -> DistillError {
        .spec(path: path, key: key, line: node?.mark?.line, message: message)
    }

    func checkKeys(_ map: Node.Mapping, _ allowed: [String], _ at: String) throws {
        for (k, _) in map {
            let key = k.string ?? "?"
            guard allowed.contains(key) else {
                let hint = didYouMean(key, among: allowed).map { "; did you mean '\($0)'?" } ?? ""
                throw fail(k, at.isEmpty ? key : "\(at).\(key)", "unknown key '\(key)'\(hint) (allowed here: \(allowed.joined(separator: ", ")))")
            }
        }
    }

    func string(_ n: Node, _ key: String) throws -> String {
        guard let s = n.scalar?.string, !s.isEmpty else { throw fail(n, key, "expected a non-empty string") }
        return s
    }

    func int(_ n: Node, _ key: String, min lo: Int, max hi: Int) throws -> Int {
        guard n.scalar != nil, let v = n.int else { throw fail(n, key, "expected an integer") }
        guard v >= lo, v <= hi else { throw fail(n, key, "\(v) is out of range; expected \(lo)...\(hi)") }
        return v
    }

    func double(_ n: Node, _ key: String, min lo: Double, max hi: Double, openMin: Bool = false) throws -> Double {
        guard n.scalar != nil, let v = n.float ?? n.int.map(Double.init), v.isFinite else { throw fail(n, key, "expected a number") }
        guard v >= lo, v <= hi, !(openMin && v == lo) else { throw fail(n, key, "\(v) is out of range; expected \(openMin ? "(" : "[")\(lo), \(hi)]") }
        return v
    }

    func bool(_ n: Node, _ key: String) throws -> Bool {
        guard n.scalar != nil, let b = n.bool else { throw fail(n, key, "expected true or false") }
        return b
    }

    func choice<E: RawRepresentable & CaseIterable>(_ n: Node, _ key: String, _: E.Type) throws -> E where E.RawValue == String {
        let s = try string(n, key)
        guard let e = E.allCases.first(where: { $0.rawValue == s }) else {
            throw fail(n, key, "'\(s)' is not one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return e
    }

    func modelPath(_ n: Node, _ key: String, _ check: Bool) throws -> String {
        let p = try string(n, key)
        if check {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw fail(n, key, "\(p) does not exist; give a .gguf file or an HF folder (config.json + *.safetensors)")
            }
            if isDir.boolValue, !FileManager.default.fileExists(atPath: p + "/config.json") {
                throw fail(n, key, "\(p) is a folder without config.json; give an HF model folder or a .gguf file")
            }
            if !isDir.boolValue, !p.hasSuffix(".gguf") {
                throw fail(n, key, "\(p) is not a .gguf file; give a .gguf file or an HF folder")
            }
        }
        return p
    }

    func filePath(_ n: Node, _ key: String, _ check: Bool) throws -> String {
        let p = try string(n, key)
        if check {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue else {
                throw fail(n, key, "\(p) is not a file; give a UTF-8 text file (Tools/build-corpus.py builds train.txt, held_out.txt and held_out/<package>.txt)")
            }
        }
        return p
    }
}
