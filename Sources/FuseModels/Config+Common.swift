import Foundation
import FuseNN

/// `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5): type, factor and the Llama 3
/// fields; `rope_theta` may sit inside (transformers 5) or beside it.
struct RopeParameters: Codable, Equatable {
    var ropeType: String?
    var type: String?
    var factor: Float?
    var lowFreqFactor: Float?
    var highFreqFactor: Float?
    var originalMaxPositionEmbeddings: Float?
    var ropeTheta: Double?
    var betaFast: Double?
    var betaSlow: Double?
    var attentionFactor: Double?
    var mscale: Double?
    var mscaleAllDim: Double?
    var truncate: Bool?
    var partialRotaryFactor: Double?

    enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type", type, factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings", ropeTheta = "rope_theta"
        case betaFast = "beta_fast", betaSlow = "beta_slow", attentionFactor = "attention_factor"
        case mscale, mscaleAllDim = "mscale_all_dim", truncate, partialRotaryFactor = "partial_rotary_factor"
    }

    /// The scaling rule, or an error naming the unsupported type. `contextLength` is
    /// max_position_embeddings (YaRN's factor defaults to it over the original context).
    func scaling(key: String, contextLength: Int) throws -> RoPE.Scaling {
        if let partialRotaryFactor, partialRotaryFactor != 1 {
            throw RopeConfigError(key: key, message: "partial_rotary_factor \(partialRotaryFactor) is not supported (only 1)")
        }
        switch ropeType ?? type ?? "default" {
        case "default": return .none
        // transformers rescales dynamic NTK only past max_position_embeddings (original_max_seq_len), which
        // is also FuseKit's context limit: inside it the frequencies are the default ones.
        case "dynamic": return .none
        case "linear":
            guard let factor else { throw RopeConfigError(key: key, message: "linear scaling needs 'factor'") }
            return .linear(factor: factor)
        case "llama3":
            guard let factor, let lowFreqFactor, let highFreqFactor, let originalMaxPositionEmbeddings else {
                throw RopeConfigError(key: key, message: "llama3 scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
            }
            return .llama3(factor: factor, lowFreqFactor: lowFreqFactor, highFreqFactor: highFreqFactor,
                           originalContext: originalMaxPositionEmbeddings)
        case "yarn":
            guard let original = originalMaxPositionEmbeddings else {
                throw RopeConfigError(key: key, message: "yarn scaling needs original_max_position_embeddings")
            }
            let f = Double(factor ?? Float(contextLength) / original)
            // transformers' get_mscale; Python truthiness: a zero mscale or beta counts as absent.
            func mscaleOf(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * log(scale) + 1 }
            let attention: Double
            if let attentionFactor { attention = attentionFactor } else if let mscale, let mscaleAllDim, mscale != 0, mscaleAllDim != 0 {
                attention = mscaleOf(f, mscale) / mscaleOf(f, mscaleAllDim)
            } else { attention = mscaleOf(f) }
            return .yarn(factor: Float(f), originalContext: Double(original), betaFast: betaFast.flatMap { $0 == 0 ? nil : $0 } ?? 32,
                         betaSlow: betaSlow.flatMap { $0 == 0 ? nil : $0 } ?? 1, attentionFactor: Float(attention), truncate: truncate ?? true)
        case let other:
            throw RopeConfigError(key: key, message: "rope type '\(other)' is not supported (default, linear, dynamic, llama3, yarn)")
        }
    }
}

struct RopeConfigError: Error, CustomStringConvertible {
    let key: String
    let message: String
    var description: String { "\(key): \(message)" }
}

/// A token id field that configs write as a number or a list (`eos_token_id: [1, 106]`).
struct TokenIDs: Codable, Equatable {
    var ids: [Int]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { ids = [] } else if let one = try? c.decode(Int.self) { ids = [one] } else { ids = try c.decode([Int].self) }
    }
    func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(ids) }
}
