import Foundation
import FuseIO
import Yams

/// `fusekit transfer SPEC.yml OUT_DIR`:
///
///     teacher: ./gemma-task            # HF folder or .gguf, the larger model
///     student: ./smollm2               # the smaller model that receives the LoRA
///     seeds: seeds.jsonl               # prompt/completion (or eval-style prompt/answer) examples
///     target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]
///     layer_selection: sensitivity     # sensitivity | first | last | random | spread
///     dimension_selection: block       # block | scattered
///     init: transfer                   # transfer | zero (plain LoRA) | random (random B₀A₀ of the same norms)
///     lora: {rank: 16, alpha: 16, dropout: 0.05}
///     train: {data: train.jsonl, eval: test.jsonl, steps: 100, lr: 3e-4, batch_size: 8,
///             grad_accum: 1, seq_len: 256, warmup: 0, weight_decay: 0, clip: 1.0, save_every: 50, eval_every: 50}
///     seed: 0
///
/// Paths are relative to the spec's folder. Every key is checked before any model loads.
public struct TransferSpec: Sendable, Equatable {
    public enum Initialisation: String, Sendable, CaseIterable { case transfer, zero, random }

    public struct Training: Sendable, Equatable {
        public var data: String
        public var eval: String?
        public var steps = 100
        public var lr = 3e-4
        public var batchSize = 8
        public var gradAccum = 1
        public var seqLen = 256
        public var warmup = 0
        public var weightDecay = 0.0
        public var clip: Double? = 1.0
        public var saveEvery: Int?
        public var evalEvery: Int?
    }

    public var teacher: String
    public var student: String
    public var seeds: String
    public var targetModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    public var layerSelection = LayerSelection.sensitivity
    public var dimensionSelection = DimensionSelection.block
    public var initialisation = Initialisation.transfer
    public var rank = 16
    public var alpha: Float = 16
    public var dropout: Float = 0.05
    public var training: Training
    public var seed: UInt64 = 0
    /// At most this many seed samples are used (the release uses 32 per task); nil: all.
    public var maxSeeds: Int?

    static let topKeys = ["teacher", "student", "seeds", "target_modules", "layer_selection", "dimension_selection", "init",
                          "lora", "train", "seed", "max_seeds"]
    static let loraKeys = ["rank", "alpha", "dropout"]
    static let trainKeys = ["data", "eval", "steps", "lr", "batch_size", "grad_accum", "seq_len", "warmup", "weight_decay", "clip", "save_every", "eval_every"]

    /// Parses and validates a spec; relative paths resolve against `directory`.
    public static func parse(yaml text: String, directory: String) throws -> TransferSpec {
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw TransferError.spec(key: "(document)", what: "not valid YAML: \(error)")
        }
        guard let map = root as? [String: Any] else { throw TransferError.spec(key: "(document)", what: "the spec must be a mapping of keys") }
        try checkKeys(map, allowed: topKeys, prefix: "")
        func path(_ key: String, _ value: Any?, required: Bool = true) throws -> String? {
            guard let value else {
                if required { throw TransferError.spec(key: key, what: "missing; give a path") }
                return nil
            }
            guard let s = value as? String, !s.isEmpty else { throw TransferError.spec(key: key, what: "must be a path string") }
            let full = s.hasPrefix("/") ? s : directory + "/" + s
            guard FileManager.default.fileExists(atPath: full) else { throw TransferError.spec(key: key, what: "'\(s)' does not exist (resolved to \(full))") }
            return full
        }
        let lora = try submap(map["lora"], key: "lora", allowed: loraKeys)
        let train = try submap(map["train"], key: "train", allowed: trainKeys)
        guard map["train"] != nil else { throw TransferError.spec(key: "train", what: "missing; give at least train.data") }
        var training = Training(data: try path("train.data", train["data"])!)
        training.eval = try path("train.eval", train["eval"], required: false)
        if let v = train["steps"] { training.steps = try int(v, "train.steps", min: 1) }
        if let v = train["lr"] { training.lr = try double(v, "train.lr", min: 0) }
        if let v = train["batch_size"] { training.batchSize = try int(v, "train.batch_size", min: 1) }
        if let v = train["grad_accum"] { training.gradAccum = try int(v, "train.grad_accum", min: 1) }
        if let v = train["seq_len"] { training.seqLen = try int(v, "train.seq_len", min: 1) }
        if let v = train["warmup"] { training.warmup = try int(v, "train.warmup", min: 0) }
        if let v = train["weight_decay"] { training.weightDecay = try double(v, "train.weight_decay", min: 0) }
        if let v = train["save_every"] { training.saveEvery = try int(v, "train.save_every", min: 1) }
        if let v = train["eval_every"] { training.evalEvery = try int(v, "train.eval_every", min: 1) }
        if let v = train["clip"] { let c = try double(v, "train.clip", min: 0); training.clip = c > 0 ? c : nil }

        var spec = TransferSpec(teacher: try path("teacher", map["teacher"])!, student: try path("student", map["student"])!,
                                seeds: try path("seeds", map["seeds"])!, training: training)
        if let v = map["target_modules"] {
            guard let list = v as? [Any], !list.isEmpty, list.allSatisfy({ $0 is String }) else {
                throw TransferError.spec(key: "target_modules", what: "must be a non-empty list of module names (q_proj, mlp.down_proj, ...)")
            }
            let names = list.compactMap { $0 as? String }
            if let bad = names.first(where: { $0.contains("embed") || $0.contains("lm_head") }) {
                throw TransferError.spec(key: "target_modules", what: "'\(bad)': embeddings and lm_head are not transferred (their rows are tokens of the teacher's vocabulary)")
            }
            spec.targetModules = names
        }
        spec.layerSelection = try choice(map["layer_selection"], "layer_selection", default: spec.layerSelection)
        spec.dimensionSelection = try choice(map["dimension_selection"], "dimension_selection", default: spec.dimensionSelection)
        spec.initialisation = try choice(map["init"], "init", default: spec.initialisation)
        if let v = lora["rank"] { spec.rank = try int(v, "lora.rank", min: 1) }
        spec.alpha = Float(try lora["alpha"].map { try double($0, "lora.alpha", min: 0) } ?? Double(spec.rank))
        if let v = lora["dropout"] {
            let d = try double(v, "lora.dropout", min: 0)
            guard d < 1 else { throw TransferError.spec(key: "lora.dropout", what: "must be in [0, 1), got \(d)") }
            spec.dropout = Float(d)
        }
        if let v = map["seed"] { spec.seed = UInt64(try int(v, "seed", min: 0)) }
        if let v = map["max_seeds"] { spec.maxSeeds = try int(v, "max_seeds", min: 1) }
        return spec
    }

    static func checkKeys(_ map: [String: Any], allowed: [String], prefix: String) throws {
        for key in map.keys.sorted() where !allowed.contains(key) {
            let hint = didYouMean(key, among: allowed).map { " (did you mean '\(prefix)\($0)'?)" } ?? ""
            throw TransferError.spec(key: prefix + key, what: "unknown key\(hint); known keys: \(allowed.joined(separator: ", "))")
        }
    }

    static func submap(_ value: Any?, key: String, allowed: [String]) throws -> [String: Any] {
        guard let value else { return [:] }
        guard let m = value as? [String: Any] else { throw TransferError.spec(key: key, what: "must be a mapping") }
        try checkKeys(m, allowed: allowed, prefix: key + ".")
        return m
    }

    static func int(_ v: Any, _ key: String, min: Int) throws -> Int {
        guard let i = v as? Int, i >= min else { throw TransferError.spec(key: key, what: "must be an integer ≥ \(min), got \(v)") }
        return i
    }

    static func double(_ v: Any, _ key: String, min: Double) throws -> Double {
        let d = (v as? Double) ?? (v as? Int).map(Double.init)
        guard let d, d.isFinite, d >= min else { throw TransferError.spec(key: key, what: "must be a number ≥ \(min), got \(v)") }
        return d
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ v: Any?, _ key: String, default d: T) throws -> T where T.RawValue == String {
        guard let v else { return d }
        let options = T.allCases.map(\.rawValue)
        guard let s = v as? String, let c = T(rawValue: s) else {
            let hint = (v as? String).flatMap { didYouMean($0, among: options) }.map { " (did you mean '\($0)'?)" } ?? ""
            throw TransferError.spec(key: key, what: "'\(v)' is not one of \(options.joined(separator: ", "))\(hint)")
        }
        return c
    }
}
