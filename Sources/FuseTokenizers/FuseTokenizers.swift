// FuseTokenizers owns text <-> token ids: the tokenizer.json pipeline of HF `tokenizers` (normalizer,
// pre-tokenizer, model, post-processor, decoder, added tokens), the vocabularies stored in GGUF
// metadata (`GGUFVocabulary`), and the reverse conversion of a GGUF vocabulary to HF tokenizer files.
// It works on UTF-8 bytes and must not know about tensors, weights or architectures' math.
//
// Exactness is the contract: ids equal HF `tokenizers` 0.23 on the fixture corpus (see
// Tools/fixtures/tokenizer_fixtures.py). Each stage lives in its own file and mirrors the Rust file
// of huggingface/tokenizers named at its top; ties and edge cases follow that code, not intuition.

/// Every error FuseTokenizers raises. Each says what failed, where (file, JSON key path, token,
/// byte offset) and what to do.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The tokenizer file could not be read or is not JSON.
    case unreadable(path: String, reason: String)
    /// A required key is missing, e.g. `model` or `model.vocab`.
    case missingKey(path: String, key: String)
    /// A key has the wrong JSON type or an impossible value.
    case badValue(path: String, key: String, reason: String)
    /// A `type` this implementation does not know; nothing falls back silently.
    case unknownType(path: String, key: String, type: String)
    /// A regex pattern in a Split pre-tokenizer or Replace normalizer that FuseKit has no matcher for.
    case unsupportedPattern(path: String, key: String, pattern: String)
    /// `merges` names a token that is not in the vocabulary (entry index, the token).
    case mergeUnknownToken(path: String, index: Int, token: String)
    /// The result of a merge is not in the vocabulary.
    case mergeResultMissing(path: String, index: Int, merged: String)
    /// A token the configuration names (unk, a post-processor special token) is not in the vocabulary.
    case unknownToken(path: String, key: String, token: String)
    /// The text to encode is not valid UTF-8 (byte offset of the first bad byte).
    case invalidUTF8(offset: Int)
    /// An id to decode is outside the vocabulary.
    case idOutOfRange(id: Int, vocabularySize: Int)
    /// A GGUF vocabulary that cannot be turned into a tokenizer.
    case badVocabulary(what: String)
    /// A GGUF vocabulary kind (`tokenizer.ggml.model`) or pre-tokenizer name that FuseKit does not support.
    case unsupportedVocabulary(what: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read the tokenizer (\(reason))"
        case let .missingKey(path, key): return "\(path): required key '\(key)' is missing; the tokenizer file is incomplete"
        case let .badValue(path, key, reason): return "\(path): '\(key)': \(reason)"
        case let .unknownType(path, key, type):
            return "\(path): '\(key)' has type '\(type)', which FuseKit does not implement; no fallback is used because it would give different ids"
        case let .unsupportedPattern(path, key, pattern):
            return "\(path): '\(key)' uses the regex \(pattern.debugDescription), which FuseKit has no exact matcher for (supported: the GPT-2 and Llama 3 split patterns and plain strings)"
        case let .mergeUnknownToken(path, index, token):
            return "\(path): merges[\(index)] names '\(token)', which is not in the vocabulary; the merges and vocabulary do not belong together"
        case let .mergeResultMissing(path, index, merged):
            return "\(path): merges[\(index)] produces '\(merged)', which is not in the vocabulary"
        case let .unknownToken(path, key, token): return "\(path): '\(key)' names token '\(token)', which is not in the vocabulary"
        case let .invalidUTF8(offset): return "input text is not valid UTF-8 (first bad byte at offset \(offset)); convert the file to UTF-8"
        case let .idOutOfRange(id, size): return "token id \(id) is outside the vocabulary (valid ids: 0..<\(size))"
        case let .badVocabulary(what): return "GGUF vocabulary: \(what)"
        case let .unsupportedVocabulary(what): return "GGUF vocabulary: \(what)"
        }
    }
}
