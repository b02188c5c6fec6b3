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

    enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type", type, factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings", ropeTheta = "rope_theta"
    }

    /// The scaling rule, or an error naming the unsupported type.
    func scaling(key: String) throws -> RoPE.Scaling {
        switch ropeType ?? type ?? "default" {
        case "default": return .none
        case "linear":
            guard let factor else { throw RopeConfigError(key: key, message: "linear scaling needs 'factor'") }
            return .linear(factor: factor)
        case "llama3":
            guard let factor, let lowFreqFactor, let highFreqFactor, let originalMaxPositionEmbeddings else {
                throw RopeConfigError(key: key, message: "llama3 scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
            }
            return .llama3(factor: factor, lowFreqFactor: lowFreqFactor, highFreqFactor: highFreqFactor,
                           originalContext: originalMaxPositionEmbeddings)
        case let other:
            throw RopeConfigError(key: key, message: "rope type '\(other)' is not supported (default, linear, llama3)")
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
