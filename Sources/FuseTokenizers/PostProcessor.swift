// Post-processors: tokenizers/src/processors/{template,bert,roberta,sequence}.rs and ByteLevel.
// FuseKit encodes single sequences; a post-processor adds the special tokens around them.
import FuseIO

public protocol PostProcessor: Sendable {
    func process(_ ids: [Int32]) -> [Int32]
}

enum PostProcessorType: String {
    case template = "TemplateProcessing", bert = "BertProcessing", roberta = "RobertaProcessing"
    case byteLevel = "ByteLevel", sequence = "Sequence"
}

func makePostProcessor(_ json: JSON, path: String, key: String, tokenID: ([UInt8]) -> Int?) throws -> PostProcessor? {
    if json.isNull { return nil }
    let c = try Config(json, path: path, key: key)
    let typeName = try c.string("type")
    guard let type = PostProcessorType(rawValue: typeName) else {
        throw TokenizerError.unknownType(path: path, key: key + ".type", type: typeName)
    }
    switch type {
    case .byteLevel: return nil // offsets only; ids unchanged
    case .sequence:
        let items = try c.array("processors")
        return SequencePostProcessor(stages: try items.enumerated().compactMap {
            try makePostProcessor($1, path: path, key: "\(key).processors[\($0)]", tokenID: tokenID)
        })
    case .bert, .roberta:
        // "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]
        func pair(_ k: String) throws -> Int32 {
            guard let a = try c.value(k).array, a.count == 2, let id = a[1].int else {
                throw TokenizerError.badValue(path: path, key: c.sub(k), reason: "expected [token, id]")
            }
            return Int32(id)
        }
        return WrapPostProcessor(prefix: [try pair("cls")], suffix: [try pair("sep")])
    case .template:
        var special: [String: [Int32]] = [:]
        if c.has("special_tokens") {
            for (name, v) in try c.object("special_tokens") {
                guard let ids = v["ids"]?.array else { throw TokenizerError.badValue(path: path, key: c.sub("special_tokens.\(name).ids"), reason: "expected an array of ids") }
                special[name] = try ids.map {
                    guard let i = $0.int else { throw TokenizerError.badValue(path: path, key: c.sub("special_tokens.\(name).ids"), reason: "expected integer ids") }
                    return Int32(i)
                }
            }
        }
        var prefix: [Int32] = [], suffix: [Int32] = []
        var seenSequence = false
        for (i, piece) in try c.array("single").enumerated() {
            if piece["Sequence"] != nil {
                guard piece["Sequence"]?["id"]?.string == "A" else {
                    throw TokenizerError.badValue(path: path, key: c.sub("single[\(i)]"), reason: "a single-sequence template can only use sequence A")
                }
                seenSequence = true
            } else if let name = piece["SpecialToken"]?["id"]?.string {
                guard let ids = special[name] else { throw TokenizerError.unknownToken(path: path, key: c.sub("single[\(i)]"), token: name) }
                if seenSequence { suffix += ids } else { prefix += ids }
            } else {
                throw TokenizerError.badValue(path: path, key: c.sub("single[\(i)]"), reason: "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}")
            }
        }
        return WrapPostProcessor(prefix: prefix, suffix: suffix)
    }
}

/// Special ids before and after the sequence.
public struct WrapPostProcessor: PostProcessor {
    public let prefix: [Int32]
    public let suffix: [Int32]
    public func process(_ ids: [Int32]) -> [Int32] { prefix.isEmpty && suffix.isEmpty ? ids : prefix + ids + suffix }
}

struct SequencePostProcessor: PostProcessor {
    let stages: [PostProcessor]
    func process(_ ids: [Int32]) -> [Int32] { stages.reduce(ids) { $1.process($0) } }
}
