import Foundation
import FuseIO
import FuseNN
import FuseTensor

/// Sensitivity S_θ = Σ over seed samples of |θ ⊙ ∂L/∂θ| (first-order estimate of the loss change if
/// the weight were zeroed), one array per tensor in HF names and layout.
public struct Sensitivity {
    public var scores: [String: [Float]]
    public var shapes: [String: [Int]]
    /// Seed samples accumulated.
    public var samples: Int

    public init(scores: [String: [Float]], shapes: [String: [Int]], samples: Int) {
        self.scores = scores; self.shapes = shapes; self.samples = samples
    }

    /// Runs `model` forward and backward on each sample (loss on its labelled positions only) and adds
    /// |θ ⊙ g| for every parameter whose name passes `include`. Only the model's own gradient buffers
    /// and one score array per included tensor are held; gradients are cleared after every sample.
    public static func compute(model: any TrainableModel, samples: [TrainingBatch], include: (String) -> Bool = { _ in true },
                               progress: ((Int, Int) -> Void)? = nil) throws -> Sensitivity {
        guard !samples.isEmpty else { throw TransferError.noSeedSamples(path: "seed samples") }
        let params = model.trainableParameters.filter { include($0.name) }
        guard !params.isEmpty else { throw TransferError.invalidArgument("no teacher parameter matches the target modules") }
        var scores = [String: [Float]](), shapes = [String: [Int]]()
        for p in params { scores[p.name] = [Float](repeating: 0, count: p.count); shapes[p.name] = p.shape }
        for p in model.trainableParameters { p.zeroGrad() }
        for (i, batch) in samples.enumerated() {
            progress?(i, samples.count)
            _ = try model.accumulateGradients(batch, loss: .crossEntropy, scale: 1, step: 0)
            for p in params {
                scores[p.name]!.withUnsafeMutableBufferPointer { s in
                    p.value.withUnsafeBufferPointer { v in
                        p.grad.withUnsafeBufferPointer { g in
                            for j in 0..<s.count { s[j] += abs(v[j] * g[j]) }
                        }
                    }
                }
            }
            for p in model.trainableParameters { p.zeroGrad() }
        }
        progress?(samples.count, samples.count)
        return Sensitivity(scores: scores, shapes: shapes, samples: samples.count)
    }

    /// Sum of the scores of each decoder layer's tensors (`model.layers.N.`), by layer index.
    public func layerTotals() -> [Int: Double] {
        var out: [Int: Double] = [:]
        for (name, s) in scores {
            guard let l = decoderLayer(of: name) else { continue }
            out[l, default: 0] += s.reduce(0.0) { $0 + Double($1) }
        }
        return out
    }

    /// Saves the scores as one safetensors file (f32, HF names; metadata `samples`).
    public func save(to path: String) throws {
        let tensors = try scores.keys.sorted().map { ($0, try Tensor(floats: scores[$0]!, shape: shapes[$0]!)) }
        try writeSafetensors(path: path, tensors: tensors, metadata: ["format": "fusekit-sensitivity", "samples": String(samples)])
    }

    public static func load(from path: String) throws -> Sensitivity {
        let file = try SafetensorsFile(path: path)
        var scores = [String: [Float]](), shapes = [String: [Int]]()
        for t in file.tensors {
            scores[t.name] = try file.tensor(t.name).floats()
            shapes[t.name] = t.shape
        }
        return Sensitivity(scores: scores, shapes: shapes, samples: Int(file.metadata["samples"] ?? "") ?? 0)
    }
}

/// The decoder layer index in an HF tensor name (`model.layers.12.mlp.up_proj.weight` → 12).
public func decoderLayer(of name: String) -> Int? {
    guard let r = name.range(of: "layers.") else { return nil }
    return Int(name[r.upperBound...].prefix { $0.isNumber })
}
