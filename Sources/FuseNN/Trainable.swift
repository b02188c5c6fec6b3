// The contract between models that can be trained (FuseModels' architectures, on FuseNN's
// differentiable ops) and everything that trains or measures them (FuseTrain's loop, Fisher and Gram
// statistics, distillation, transfer). Kept small on purpose: a parameter list, one call that adds
// gradients for a micro-batch, a forward-only loss, and a hook that sees every linear layer's input.
import FuseTensor

/// A trainable f32 tensor with its gradient, named as in the HF checkpoint
/// (`model.layers.0.self_attn.q_proj.weight`), or for LoRA factors
/// `model.layers.0.self_attn.q_proj.lora_A.weight` / `.lora_B.weight` (PEFT's names without the
/// `base_model.model.` prefix).
public final class Parameter: @unchecked Sendable {
    public let name: String
    /// Row-major shape, HF layout (`[out, in]` for linear weights, `[r, in]` lora_A, `[out, r]` lora_B).
    public let shape: [Int]
    public var value: [Float]
    /// Same count as `value`; gradients are added into it until `zeroGrad()`.
    public var grad: [Float]

    public init(name: String, shape: [Int], value: [Float]) {
        precondition(shape.reduce(1, *) == value.count, "parameter \(name): \(value.count) values for shape \(shape)")   // invariant: models build parameters from checked shapes
        self.name = name; self.shape = shape; self.value = value
        self.grad = [Float](repeating: 0, count: value.count)
    }

    public var count: Int { value.count }

    public func zeroGrad() {
        grad.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }
}

/// Sparse soft targets per position (distillation): `k` candidate token ids with their
/// log-probabilities, row-major `[B*T, k]`. Positions where `present` is false carry no soft target.
public struct SparseTargets: Sendable {
    public var k: Int
    public var ids: [Int32]
    public var logProbs: [Float]
    /// `[B*T]`; nil means every position has a target.
    public var present: [Bool]?

    public init(k: Int, ids: [Int32], logProbs: [Float], present: [Bool]? = nil) {
        self.k = k; self.ids = ids; self.logProbs = logProbs; self.present = present
    }
}

/// One micro-batch: B sequences of T tokens, row `b*T + t`.
public struct TrainingBatch: Sendable {
    /// `[B*T]` input ids (pad with any valid id where `labels` is -1).
    public var tokens: [Int]
    public var batch: Int
    public var length: Int
    /// `[B*T]` the id to predict at each position (the next token), -1 for no loss there (padding,
    /// prompt tokens when only the completion is trained).
    public var labels: [Int]
    /// Optional soft targets at the same positions as `labels`.
    public var soft: SparseTargets?

    public init(tokens: [Int], batch: Int, length: Int, labels: [Int], soft: SparseTargets? = nil) {
        self.tokens = tokens; self.batch = batch; self.length = length; self.labels = labels; self.soft = soft
    }

    /// Positions that carry a hard label.
    public var labelledTokens: Int { labels.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}

/// Which loss a step minimises.
public enum TrainingLoss: Sendable, Equatable {
    /// Mean cross-entropy over labelled positions.
    case crossEntropy
    /// `lambda · CE(labels) + (1 − lambda) · soft`, the soft part averaged over positions with a target.
    case mixed(lambda: Float, soft: SoftLoss)
}

/// Soft-target loss against a sparse top-k distribution q (renormalised over its k entries):
/// `.crossEntropy` = −Σ q log p; `.kl` = Σ q (log q − log p).
public enum SoftLoss: String, Sendable, Equatable {
    case crossEntropy = "ce"
    case kl
}

/// The loss of one micro-batch: the total, its parts (`"ce"`, `"soft"`), and how many positions it
/// averaged over.
public struct LossReport: Sendable {
    public var loss: Double
    public var components: [String: Double]
    public var tokens: Int

    public init(loss: Double, components: [String: Double] = [:], tokens: Int) {
        self.loss = loss; self.components = components; self.tokens = tokens
    }
}

/// LoRA settings (PEFT's LoraConfig): `W x + (alpha / rank) · B A dropout(x)`.
public struct LoRASettings: Sendable, Equatable {
    public var rank: Int
    public var alpha: Float
    public var dropout: Float
    /// Module name suffixes as PEFT matches them (`q_proj`, `v_proj`, `mlp.down_proj`, ...).
    public var targetModules: [String]

    public init(rank: Int, alpha: Float, dropout: Float = 0, targetModules: [String]) {
        self.rank = rank; self.alpha = alpha; self.dropout = dropout; self.targetModules = targetModules
    }

    public var scale: Float { alpha / Float(rank) }
}

/// A model that FuseTrain can train and measure.
public protocol TrainableModel: AnyObject {
    /// Every weight in HF names and layout (frozen ones included), as f32 parameters.
    var allParameters: [Parameter] { get }
    /// What the optimiser updates: every weight for full training, only the LoRA factors once
    /// `attachLoRA` has been called.
    var trainableParameters: [Parameter] { get }
    /// Adds LoRA factors (A from a seeded Kaiming-uniform init as PEFT does, B zero) to every linear
    /// whose module name ends with one of `settings.targetModules`, freezing all base weights.
    /// Throws when no module matches. Dropout masks are drawn from (seed, module name, step).
    func attachLoRA(_ settings: LoRASettings, seed: UInt64) throws
    /// Forward and backward on one micro-batch: adds `scale · ∂loss/∂θ` into each trainable
    /// parameter's `grad` and returns the (unscaled) loss. `step` seeds dropout.
    func accumulateGradients(_ batch: TrainingBatch, loss: TrainingLoss, scale: Float, step: Int) throws -> LossReport
    /// The same loss, forward only (no tape, no dropout).
    func evaluateLoss(_ batch: TrainingBatch, loss: TrainingLoss) throws -> LossReport
    /// Forward only; calls `visit` with the input rows `[rows, width]` of every linear layer, named by
    /// its weight (`model.layers.0.mlp.down_proj.weight`), in forward order (RegMean's Gram statistics).
    func visitLinearInputs(_ batch: TrainingBatch, _ visit: (_ weight: String, _ x: UnsafePointer<Float>, _ rows: Int, _ width: Int) -> Void) throws
}
