import CFuseKernels
import Foundation

/// Rotary position embedding, rotate_half convention (transformers' `apply_rotary_pos_emb`), with the
/// inverse frequencies of transformers' `ROPE_INIT_FUNCTIONS` computed in f32 as it does.
public struct RoPE: Sendable {
    /// How the frequencies are scaled (`rope_scaling.rope_type` / `rope_parameters.rope_type`).
    public enum Scaling: Sendable, Equatable {
        case none
        /// Position interpolation: inv_freq / factor.
        case linear(factor: Float)
        /// Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth ramp between.
        case llama3(factor: Float, lowFreqFactor: Float, highFreqFactor: Float, originalContext: Float)
    }

    /// Rotated size per head (D, or a prefix of it).
    public let dim: Int
    /// `[D/2]`
    public let inverseFrequencies: [Float]
    /// Multiplies cos and sin (1 for the scalings above).
    public let attentionScaling: Float

    public init(dim: Int, base: Double, scaling: Scaling = .none) throws {
        guard dim > 0, dim % 2 == 0, dim <= 1024 else { throw NNError.invalidArgument("rotary dimension \(dim) must be even and at most 1024") }
        let b = Float(base)
        var inv = (0..<(dim / 2)).map { k in 1 / powf(b, Float(2 * k) / Float(dim)) }
        switch scaling {
        case .none: break
        case let .linear(factor): inv = inv.map { $0 / factor }
        case let .llama3(factor, low, high, original):
            let lowWavelen = original / low, highWavelen = original / high
            inv = inv.map { f in
                let wavelen = 2 * Float.pi / f
                let scaled = wavelen > lowWavelen ? f / factor : f
                let smooth = (original / wavelen - low) / (high - low)
                let smoothed = (1 - smooth) * scaled / factor + smooth * scaled
                let medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen)
                return medium ? smoothed : scaled
            }
        }
        self.dim = dim; self.inverseFrequencies = inv; self.attentionScaling = 1
    }

    /// Rotates `heads` head vectors of size D (= `dim`) per token in place; x `[rows, ld]`, heads
    /// contiguous from column 0, `positions[r]` the position of row r.
    public func forward(_ x: UnsafeMutablePointer<Float>, rows: Int, ld: Int, heads: Int, positions: [Int32]) {
        positions.withUnsafeBufferPointer { p in
            inverseFrequencies.withUnsafeBufferPointer { f in
                fk_rope(x, rows, ld, heads, dim, p.baseAddress, f.baseAddress, attentionScaling)
            }
        }
    }
    // ropeBackward (the rotation by −θ) goes here (issue 8).
}
