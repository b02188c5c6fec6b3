// FuseModels owns the architectures (one file each under Architectures/, composed from FuseNN ops),
// their Codable configs read from config.json (or the config FuseIO derives from GGUF metadata), the
// registry from `model_type` to architecture, and sampling and generation. It must not know about
// merging. Shapes follow the legend in FuseNN.swift (B, T, S, C, H, KVH, D, F, V).
import Foundation
import FuseIO
import FuseNN
import FuseTensor

/// Every error FuseModels raises, with the model path, tensor or config key, and what to do.
public enum ModelError: Error, CustomStringConvertible {
    case noConfig(path: String)
    case unknownArchitecture(path: String, modelType: String, supported: [String])
    case badConfig(path: String, what: String)
    case missingTensor(path: String, tensor: String)
    case misshapenTensor(path: String, tensor: String, expected: [Int], got: [Int])
    case promptTooLong(tokens: Int, context: Int)
    case emptyPrompt
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .noConfig(path): return "\(path): no config.json (or GGUF metadata) describing the architecture"
        case let .unknownArchitecture(path, type, supported):
            return "\(path): unknown architecture model_type '\(type)'; supported: \(supported.joined(separator: ", "))"
        case let .badConfig(path, what): return "\(path): config.json: \(what)"
        case let .missingTensor(path, tensor): return "\(path): missing tensor '\(tensor)'; the checkpoint is incomplete or not of this architecture"
        case let .misshapenTensor(path, tensor, expected, got):
            return "\(path): tensor '\(tensor)' has shape \(got) but the config implies \(expected)"
        case let .promptTooLong(tokens, context):
            return "the prompt has \(tokens) tokens but the model's context is \(context); shorten it"
        case .emptyPrompt: return "the prompt is empty: at least one token is needed"
        case let .invalidArgument(what): return what
        }
    }
}

/// Which rows of logits a forward call returns.
public enum LogitRows: Sendable {
    /// Every row: `[B*T, V]`.
    case all
    /// The last real (unpadded) row of each sequence: `[B, V]` (what generation needs; the head is
    /// skipped for every other row).
    case last
}

/// What callers need to know about a loaded model.
public struct ModelSummary: Sendable {
    public let architecture: String
    public let vocabularySize: Int
    public let contextLength: Int
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    public let hiddenSize: Int
    public let bosTokenID: Int?
    public let eosTokenIDs: [Int]
}

/// A causal language model with a KV cache. Batches are `[B*T]` token ids (row b*T + t), with an
/// optional `[B*T]` flag per token (false = padding).
public protocol CausalLanguageModel: AnyObject, Sendable {
    var summary: ModelSummary { get }
    /// Appends the tokens to `cache` and returns logits for `rows`.
    func forward(tokens: [Int], batch: Int, valid: [Bool]?, cache: KVCache, rows: LogitRows) throws -> [Float]
}

extension CausalLanguageModel {
    /// A cache for `batch` sequences of up to `capacity` tokens (default: the model's context).
    public func makeCache(batch: Int = 1, capacity: Int? = nil) -> KVCache {
        let s = summary
        return KVCache(batch: batch, layers: s.layers, kvHeads: s.kvHeads, headDim: s.headDim,
                       capacity: max(1, min(capacity ?? s.contextLength, s.contextLength)))
    }

    /// Logits for every position of one unpadded sequence, `[T, V]`, from a fresh cache.
    public func logits(_ tokens: [Int]) throws -> [Float] {
        guard !tokens.isEmpty else { throw ModelError.emptyPrompt }
        guard tokens.count <= summary.contextLength else { throw ModelError.promptTooLong(tokens: tokens.count, context: summary.contextLength) }
        return try forward(tokens: tokens, batch: 1, valid: nil, cache: makeCache(capacity: tokens.count), rows: .all)
    }
}

/// Architectures by `model_type`: one line each (STYLE.md: the registry is a plain list).
public enum ModelRegistry {
    public typealias Loader = (WeightStore, Data) throws -> any CausalLanguageModel
    public static let architectures: [(modelType: String, load: Loader)] = [
        ("llama", { try Llama(store: $0, configJSON: $1) }),
        ("mistral", { try Llama(store: $0, configJSON: $1) }),
        ("qwen2", { try Llama(store: $0, configJSON: $1) }),
        ("gemma3_text", { try Gemma3(store: $0, configJSON: $1) }),
        ("gemma3", { try Gemma3(store: $0, configJSON: $1) }),
        ("gpt2", { try GPT2(store: $0, configJSON: $1) }),
    ]

    /// Opens an HF folder, .safetensors file or .gguf file and builds its architecture.
    public static func load(_ path: String) throws -> any CausalLanguageModel {
        try load(store: WeightStore(path: path))
    }

    public static func load(store: WeightStore) throws -> any CausalLanguageModel {
        guard let config = store.config else { throw ModelError.noConfig(path: store.path) }
        guard let type = config["model_type"]?.string else {
            throw ModelError.badConfig(path: store.path, what: "no 'model_type' key")
        }
        guard let entry = architectures.first(where: { $0.modelType == type }) else {
            throw ModelError.unknownArchitecture(path: store.path, modelType: type, supported: architectures.map(\.modelType))
        }
        return try entry.load(store, Data(config.serialized().utf8))
    }
}

/// Decodes a config, turning DecodingError into a message that names the key.
func decodeConfig<C: Decodable>(_ type: C.Type, _ data: Data, path: String) throws -> C {
    do { return try JSONDecoder().decode(C.self, from: data) } catch let DecodingError.keyNotFound(key, ctx) {
        throw ModelError.badConfig(path: path, what: "missing key '\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))'")
    } catch let DecodingError.typeMismatch(_, ctx) {
        throw ModelError.badConfig(path: path, what: "key '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type: \(ctx.debugDescription)")
    } catch let DecodingError.dataCorrupted(ctx) {
        throw ModelError.badConfig(path: path, what: "key '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))': \(ctx.debugDescription)")
    } catch {
        throw ModelError.badConfig(path: path, what: "\(error)")
    }
}
