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
        /// YaRN (https://arxiv.org/abs/2309.00071) as transformers' `_compute_yarn_parameters`: dimensions
        /// rotating more than `betaFast` times over the original context keep their frequency, those
        /// under `betaSlow` are divided by factor, a linear ramp between; cos and sin are multiplied
        /// by `attentionFactor`.
        case yarn(factor: Float, originalContext: Double, betaFast: Double, betaSlow: Double, attentionFactor: Float, truncate: Bool)
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
        case .none, .yarn: break
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
        var attentionScaling: Float = 1
        if case let .yarn(factor, original, betaFast, betaSlow, attentionFactor, truncate) = scaling {
            // find_correction_range in f64 as Python does, the ramp and the blend in f32 as torch does.
            func correctionDim(_ rotations: Double) -> Double {
                Double(dim) * log(original / (rotations * 2 * Double.pi)) / (2 * log(base))
            }
            var low = correctionDim(betaFast), high = correctionDim(betaSlow)
            if truncate { low = low.rounded(.down); high = high.rounded(.up) }
            low = max(low, 0); high = min(high, Double(dim - 1))
            if low == high { high += 0.001 }   // transformers: "Prevent singularity"
            let (lo, span) = (Float(low), Float(high - low))
            inv = (0..<(dim / 2)).map { k in
                let position = powf(b, Float(2 * k) / Float(dim))
                let extrapolation = 1 / position, interpolation = 1 / (factor * position)
                let keep = 1 - min(max((Float(k) - lo) / span, 0), 1)
                return interpolation * (1 - keep) + extrapolation * keep
            }
            attentionScaling = attentionFactor
        }
        self.dim = dim; self.inverseFrequencies = inv; self.attentionScaling = attentionScaling
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
