// Decoders: tokenizers/src/decoders/*.rs. A decoder maps the list of token strings to new strings
// (`decode_chain`); the results are concatenated. Tokens here are UTF-8 bytes, so ByteLevel and
// ByteFallback can carry partial characters until the end.
import FuseIO

public protocol Decoder: Sendable {
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]]
}

enum DecoderType: String {
    case byteLevel = "ByteLevel", byteFallback = "ByteFallback", fuse = "Fuse", strip = "Strip", replace = "Replace"
    case metaspace = "Metaspace", wordPiece = "WordPiece", bpe = "BPEDecoder", sequence = "Sequence"
}

func makeDecoder(_ json: JSON, path: String, key: String) throws -> Decoder? {
    if json.isNull { return nil }
    let c = try Config(json, path: path, key: key)
    let typeName = try c.string("type")
    guard let type = DecoderType(rawValue: typeName) else { throw TokenizerError.unknownType(path: path, key: key + ".type", type: typeName) }
    switch type {
    case .byteLevel: return ByteLevelDecoder()
    case .byteFallback: return ByteFallbackDecoder()
    case .fuse: return FuseDecoder()
    case .strip:
        let content = Array(try c.string("content").unicodeScalars)
        guard content.count == 1 else { throw TokenizerError.badValue(path: path, key: c.sub("content"), reason: "expected one character") }
        return StripDecoder(content: content[0].value, start: try c.optionalInt("start") ?? 0, stop: try c.optionalInt("stop") ?? 0)
    case .replace: return ReplaceDecoder(pattern: Array(try c.pattern("pattern").utf8), content: Array(try c.string("content").utf8))
    case .metaspace:
        var scheme = try c.optionalString("prepend_scheme") ?? "always"
        if try c.optionalBool("add_prefix_space") == false { scheme = "never" }
        return MetaspaceDecoder(replacement: Array(try c.string("replacement").utf8), stripFirst: scheme != "never")
    case .wordPiece: return WordPieceDecoder(prefix: Array((try c.optionalString("prefix") ?? "##").utf8), cleanup: try c.bool("cleanup", default: true))
    case .bpe: return BPEDecoder(suffix: Array((try c.optionalString("suffix") ?? "</w>").utf8))
    case .sequence:
        let items = try c.array("decoders")
        return SequenceDecoder(stages: try items.enumerated().compactMap { try makeDecoder($1, path: path, key: "\(key).decoders[\($0)]") })
    }
}

struct SequenceDecoder: Decoder {
    let stages: [Decoder]
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] { stages.reduce(tokens) { $1.decodeChain($0) } }
}

/// All tokens' bytes (a token outside the byte alphabet keeps its own UTF-8), as one string.
struct ByteLevelDecoder: Decoder {
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        var out: [UInt8] = []
        for t in tokens { out.append(contentsOf: ByteLevel.decode(t) ?? t) }
        return [Array(lossyString(out).utf8)]
    }
}

/// Runs of "<0xXX>" tokens become their bytes when those form valid UTF-8, else one U+FFFD per byte.
struct ByteFallbackDecoder: Decoder {
    static func byteValue(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c { case 0x30...0x39: return c - 0x30; case 0x41...0x46: return c - 55; case 0x61...0x66: return c - 87; default: return nil }
        }
        guard let h = hex(t[3]), let l = hex(t[4]) else { return nil }
        return h << 4 | l
    }

    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var pending: [UInt8] = []
        func flush() {
            if pending.isEmpty { return }
            if firstInvalidUTF8(pending) == nil { out.append(pending) }
            else { for _ in pending { out.append([0xEF, 0xBF, 0xBD]) } }
            pending.removeAll()
        }
        for t in tokens {
            if let b = ByteFallbackDecoder.byteValue(t) { pending.append(b) } else { flush(); out.append(t) }
        }
        flush()
        return out
    }
}

struct FuseDecoder: Decoder {
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] { [tokens.flatMap { $0 }] }
}

/// Removes up to `start` leading and `stop` trailing `content` characters from each token.
struct StripDecoder: Decoder {
    let content: UInt32, start: Int, stop: Int
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        tokens.map { t in
            let chars = scalars(t)
            var lo = 0
            for (i, c) in chars.prefix(start).enumerated() { if c == content { lo = i + 1 } else { break } }
            var hi = chars.count
            for i in 0..<min(stop, chars.count) { let k = chars.count - i - 1; if chars[k] == content { hi = k } else { break } }
            return lo < hi ? utf8(Array(chars[lo..<hi])) : []
        }
    }
}

struct ReplaceDecoder: Decoder {
    let pattern: [UInt8], content: [UInt8]
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] { tokens.map { replaceAll($0, pattern, content) } }
}

/// The replacement character becomes a space, except on the first token when a prefix was prepended.
struct MetaspaceDecoder: Decoder {
    let replacement: [UInt8], stripFirst: Bool
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        tokens.enumerated().map { i, t in
            if i == 0 && stripFirst { return replaceAll(t, replacement, []) }
            return replaceAll(t, replacement, [0x20])
        }
    }
}

struct WordPieceDecoder: Decoder {
    let prefix: [UInt8], cleanup: Bool
    static let cleanups: [(String, String)] = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                                               (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        tokens.enumerated().map { i, t0 in
            var t = t0
            if i != 0 {
                if t.starts(with: prefix) { t = Array(t[prefix.count...]) } else { t = [0x20] + t }
            }
            if cleanup { for (a, b) in WordPieceDecoder.cleanups { t = replaceAll(t, Array(a.utf8), Array(b.utf8)) } }
            return t
        }
    }
}

/// The suffix becomes a space, except on the last token.
struct BPEDecoder: Decoder {
    let suffix: [UInt8]
    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        tokens.enumerated().map { i, t in replaceAll(t, suffix, i == tokens.count - 1 ? [] : [0x20]) }
    }
}
