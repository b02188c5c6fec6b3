// Trainable models: every architecture's weights as f32 `Parameter`s under their HF names, a training
// forward composed from FuseNN's differentiable ops (Architectures/*+Training.swift), and the
// `TrainableModel` methods FuseTrain calls, which are the same for every architecture and live here.
// The inference classes (Llama, Gemma3, GPT2) are untouched: generation never pays for training.
import Foundation
import FuseIO
import FuseNN
import FuseTensor

extension ModelRegistry {
    public typealias TrainableLoader = (WeightStore, Data) throws -> any TrainableModel
    /// Trainable architectures by `model_type` (the same names as `architectures`).
    public static let trainableArchitectures: [(modelType: String, load: TrainableLoader)] = [
        ("llama", { try LlamaTrainable(store: $0, configJSON: $1) }),
        ("mistral", { try LlamaTrainable(store: $0, configJSON: $1) }),
        ("qwen2", { try LlamaTrainable(store: $0, configJSON: $1) }),
        ("gemma3_text", { try Gemma3Trainable(store: $0, configJSON: $1) }),
        ("gemma3", { try Gemma3Trainable(store: $0, configJSON: $1) }),
        ("gpt2", { try GPT2Trainable(store: $0, configJSON: $1) }),
    ]

    /// Opens an HF folder, .safetensors file or .gguf file (dequantized to f32) as a trainable model.
    public static func loadTrainable(_ path: String) throws -> any TrainableModel {
        try loadTrainable(store: WeightStore(path: path))
    }

    public static func loadTrainable(store: WeightStore) throws -> any TrainableModel {
        guard let config = store.config else { throw ModelError.noConfig(path: store.path) }
        guard let type = config["model_type"]?.string else {
            throw ModelError.badConfig(path: store.path, what: "no 'model_type' key")
        }
        guard let entry = trainableArchitectures.first(where: { $0.modelType == type }) else {
            throw ModelError.unknownArchitecture(path: store.path, modelType: type, supported: trainableArchitectures.map(\.modelType))
        }
        return try entry.load(store, Data(config.serialized().utf8))
    }
}

/// Reads weights as f32 parameters, checking shape and finiteness, and releases the mapped pages.
struct ParameterReader {
    let reader: WeightReader
    init(store: WeightStore) { reader = WeightReader(store: store) }

    func has(_ name: String) -> Bool { reader.has(name) }

    func callAsFunction(_ name: String, _ shape: [Int]) throws -> Parameter {
        let values = try reader.tensor(name, shape: shape).floats()
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw ModelError.invalidArgument("\(reader.store.path): tensor '\(name)' holds \(values[bad]) at element \(bad); training needs finite weights")
        }
        reader.store.advise(name, willNeed: false)
        return Parameter(name: name, shape: shape, value: values)
    }

    /// A Linear module `name` (`name.weight` `[out, in]`, optional `name.bias` `[out]`).
    func linear(_ name: String, out: Int, in inF: Int, bias: Bool = false) throws -> TrainableLinear {
        try TrainableLinear(module: name, weight: self(name + ".weight", [out, inF]), bias: bias ? self(name + ".bias", [out]) : nil)
    }

    /// A GPT-2 Conv1D module, kept in its HF layout (`weight [in, out]`).
    func conv1D(_ name: String, in inF: Int, out: Int) throws -> TrainableLinear {
        try TrainableLinear(module: name, weight: self(name + ".weight", [inF, out]), bias: self(name + ".bias", [out]), conv1D: true)
    }
}

/// What every trainable architecture shares: its parameter lists, LoRA attachment, and the three
/// entry points, each one training forward (`logits`) away from the loss.
public class TrainableTransformer: TrainableModel {
    public let allParameters: [Parameter]
    public private(set) var trainableParameters: [Parameter]
    /// Linears LoRA can target, in forward order (the tied head is not one of them).
    let linears: [TrainableLinear]
    /// lm_head: its own weight, or the embedding when tied.
    let head: TrainableLinear
    /// final_logit_softcapping (Gemma), 0 = none.
    let logitSoftcap: Float
    /// model_type, for messages.
    let architecture: String
    let contextLength: Int
    private(set) var lora: LoRASettings?

    init(architecture: String, parameters: [Parameter], linears: [TrainableLinear], head: TrainableLinear, logitSoftcap: Float = 0,
         contextLength: Int) {
        self.architecture = architecture; allParameters = parameters; trainableParameters = parameters
        self.linears = linears; self.head = head; self.logitSoftcap = logitSoftcap; self.contextLength = contextLength
    }

    /// The training forward up to the head: the final normalised hidden states `[B*T, C]` (overridden
    /// by each architecture). The head, soft-capping and loss run in blocks in `Tape.headLoss`.
    func hidden(_ tape: Tape, _ p: ParameterBinding, _ batch: TrainingBatch) throws -> Variable {
        throw ModelError.invalidArgument("\(architecture): no training forward")
    }

    /// Hidden states, head and loss of one batch on `tape`.
    func loss(_ tape: Tape, _ p: ParameterBinding, _ batch: TrainingBatch, _ loss: TrainingLoss, scale: Float) throws -> LossReport {
        try tape.headLoss(hidden(tape, p, batch), head, p, softcap: logitSoftcap, labels: batch.labels, soft: batch.soft,
                          loss: loss, gradScale: scale)
    }

    /// Every parameter a forward reads: the model's and the LoRA factors.
    private var boundParameters: [Parameter] {
        allParameters + linears.compactMap(\.lora).flatMap { [$0.a, $0.b] }
    }

    public func attachLoRA(_ settings: LoRASettings, seed: UInt64) throws {
        guard lora == nil else { throw ModelError.invalidArgument("LoRA is already attached to this \(architecture) model") }
        guard settings.rank > 0 else { throw ModelError.invalidArgument("LoRA rank \(settings.rank) must be positive") }
        guard settings.alpha.isFinite, settings.alpha > 0 else { throw ModelError.invalidArgument("LoRA alpha \(settings.alpha) must be positive") }
        guard settings.dropout >= 0, settings.dropout < 1 else { throw ModelError.invalidArgument("LoRA dropout \(settings.dropout) must lie in [0, 1)") }
        guard !settings.targetModules.isEmpty else { throw ModelError.invalidArgument("LoRA needs at least one target module") }
        // PEFT's suffix rule: a module matches a key when its name equals it or ends with "." + key.
        func matches(_ module: String, _ key: String) -> Bool { module == key || module.hasSuffix("." + key) }
        for key in settings.targetModules where !linears.contains(where: { matches($0.module, key) }) {
            let kinds = Array(Set(linears.map { $0.module.split(separator: ".").suffix(2).joined(separator: ".") })).sorted()
            throw ModelError.invalidArgument("LoRA target module '\(key)' matches no linear layer of this \(architecture) model; its linear modules end in: \(kinds.joined(separator: ", "))")
        }
        var adapters: [Parameter] = []
        for linear in linears where settings.targetModules.contains(where: { matches(linear.module, $0) }) {
            let adapter = LoRAAdapter.initialised(module: linear.module, inFeatures: linear.inFeatures, outFeatures: linear.outFeatures,
                                                  settings: settings, seed: seed)
            linear.lora = adapter
            adapters += [adapter.a, adapter.b]
        }
        lora = settings
        trainableParameters = adapters
    }

    /// Checks the batch's sizes before anything is allocated from them.
    func validate(_ batch: TrainingBatch) throws {
        let n = batch.batch * batch.length
        guard batch.batch > 0, batch.length > 0 else {
            throw ModelError.invalidArgument("a training batch needs at least one sequence of one token (got \(batch.batch) x \(batch.length))")
        }
        guard batch.tokens.count == n else {
            throw ModelError.invalidArgument("batch has \(batch.tokens.count) tokens for \(batch.batch) sequences of \(batch.length)")
        }
        guard batch.labels.count == n else {
            throw ModelError.invalidArgument("batch has \(batch.labels.count) labels for \(n) positions")
        }
        guard batch.length <= contextLength else { throw ModelError.promptTooLong(tokens: batch.length, context: contextLength) }
    }

    public func accumulateGradients(_ batch: TrainingBatch, loss: TrainingLoss, scale: Float, step: Int) throws -> LossReport {
        try validate(batch)
        let tape = Tape(recording: true, step: step)
        return try withBoundParameters(boundParameters, trainable: trainableParameters) { p in
            let report = try self.loss(tape, p, batch, loss, scale: scale)
            tape.backward()
            return report
        }
    }

    public func evaluateLoss(_ batch: TrainingBatch, loss: TrainingLoss) throws -> LossReport {
        try validate(batch)
        let tape = Tape(recording: false)
        return try withBoundParameters(boundParameters, trainable: []) { p in
            try self.loss(tape, p, batch, loss, scale: 1)
        }
    }

    public func visitLinearInputs(_ batch: TrainingBatch, _ visit: (_ weight: String, _ x: UnsafePointer<Float>, _ rows: Int, _ width: Int) -> Void) throws {
        try validate(batch)
        try withoutActuallyEscaping(visit) { visit in
            let tape = Tape(recording: false)
            tape.linearInputVisitor = visit
            try withBoundParameters(boundParameters, trainable: []) { p in
                let h = try self.hidden(tape, p, batch)
                if self.head.visible { visit(self.head.weight.name, h.data, h.rows, h.cols) }
            }
        }
    }
}

/// Position of each row b*T + t of a batch: t.
func trainingPositions(_ batch: TrainingBatch) -> [Int32] {
    (0..<(batch.batch * batch.length)).map { Int32($0 % batch.length) }
}
