import CFuseKernels
import FuseTensor

/// RMSNorm over the last dimension. `.llama`: `w * (x * rsqrt(mean(x²) + eps))` (Llama, Qwen2, Mistral);
/// `.onePlusWeight`: `x * rsqrt(...) * (1 + w)` (Gemma, HF stores w zero-centred).
public struct RMSNorm: Sendable {
    public enum Kind: Sendable { case llama, onePlusWeight }
    public let name: String
    /// `[C]`
    public let weight: [Float]
    public let eps: Float
    public let kind: Kind

    public init(name: String, weight: [Float], eps: Float, kind: Kind = .llama, dim: Int) throws {
        guard weight.count == dim else { throw NNError.shapeMismatch(tensor: name, expected: [dim], got: [weight.count]) }
        self.name = name; self.weight = weight; self.eps = eps; self.kind = kind
    }

    /// x, out `[rows, C]` (out may equal x).
    public func forward(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        weight.withUnsafeBufferPointer {
            fk_rmsnorm(x, $0.baseAddress, out, rows, $0.count, eps, kind == .onePlusWeight ? 1 : 0)
        }
    }
    // rmsNormBackward(dOut, x, weight, ...) -> (dx, dWeight) goes here (issue 8).
}

/// LayerNorm with weight and bias (GPT-2): `(x - mean) * rsqrt(var + eps) * w + b`, biased variance.
public struct LayerNorm: Sendable {
    public let name: String
    public let weight: [Float]
    public let bias: [Float]
    public let eps: Float

    public init(name: String, weight: [Float], bias: [Float], eps: Float, dim: Int) throws {
        guard weight.count == dim else { throw NNError.shapeMismatch(tensor: name + ".weight", expected: [dim], got: [weight.count]) }
        guard bias.count == dim else { throw NNError.shapeMismatch(tensor: name + ".bias", expected: [dim], got: [bias.count]) }
        self.name = name; self.weight = weight; self.bias = bias; self.eps = eps
    }

    public func forward(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        weight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in fk_layernorm(x, w.baseAddress, b.baseAddress, out, rows, w.count, eps) }
        }
    }
    // layerNormBackward goes here (issue 8).
}

/// The gated MLP activations: gate = act(gate) * up, element-wise over `[rows, F]`.
public enum Activation: String, Sendable, Codable {
    case silu, geluTanh

    public func gatedForward(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        switch self {
        case .silu: fk_silu_mul(gate, up, count)
        case .geluTanh: fk_gelu_tanh_mul(gate, up, count)
        }
    }

    /// act(x) in place (GPT-2's MLP has no gate).
    public func forward(_ x: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .silu: let ones = [Float](repeating: 1, count: count); ones.withUnsafeBufferPointer { fk_silu_mul(x, $0.baseAddress, count) }
        case .geluTanh: fk_gelu_tanh(x, count)
        }
    }
    // gatedBackward / backward go here (issue 8).
}

/// Token embedding rows gathered from a `[V, C]` table in any stored dtype (dequantized per row).
public struct Embedding: @unchecked Sendable {
    public let name: String
    public let table: Tensor
    public let vocabulary: Int
    public let dim: Int
    let type: UInt32
    let rowBytes: Int

    public init(name: String, table: Tensor) throws {
        guard table.shape.count == 2 else { throw NNError.shapeMismatch(tensor: name, expected: [-1, -1], got: table.shape) }
        guard let t = kernelType(table.dtype) else { throw NNError.unsupportedDType(tensor: name, dtype: table.dtype) }
        guard let rb = table.dtype.byteCount(elements: table.shape[1]) else { throw NNError.unsupportedDType(tensor: name, dtype: table.dtype) }
        self.name = name; self.table = table; self.vocabulary = table.shape[0]; self.dim = table.shape[1]
        self.type = t; self.rowBytes = rb
    }

    /// out[i] = table[ids[i]] * scale, out `[ids.count, C]`.
    public func forward(_ ids: [Int], scale: Float = 1, into out: UnsafeMutablePointer<Float>) throws {
        for (i, id) in ids.enumerated() {
            guard id >= 0, id < vocabulary else { throw NNError.tokenOutOfRange(token: id, vocabulary: vocabulary) }
            fk_dequant_row(type, UnsafeRawPointer(table.buffer.base) + id * rowBytes, out + i * dim, dim)
            if scale != 1 { for k in 0..<dim { out[i * dim + k] *= scale } }
        }
    }
    // embeddingBackward (scatter-add into the rows) goes here (issue 8).
}
