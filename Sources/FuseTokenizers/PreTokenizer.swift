// Pre-tokenizers: tokenizers/src/pre_tokenizers/*.rs. A pre-tokenizer cuts each piece of normalized
// text into smaller pieces; the model then runs on each piece alone.
import FuseIO

/// One piece of text between pipeline stages. `atStart` is true when the piece begins at offset 0
/// of the original input (Metaspace's `prepend_scheme: first` needs it).
public struct Piece: Equatable, Sendable {
    public var bytes: [UInt8]
    public var atStart: Bool
    public init(bytes: [UInt8], atStart: Bool) { self.bytes = bytes; self.atStart = atStart }
}

public protocol PreTokenizer: Sendable {
    func preTokenize(_ pieces: [Piece]) -> [Piece]
}

/// `SplitDelimiterBehavior` of tokenizers/src/tokenizer/normalizer.rs.
enum SplitBehavior: String {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

/// Splits one piece given its matches: (start, end, isMatch) tiling the piece, exactly as
/// `NormalizedString::split` combines them per behavior; empty results are dropped.
func split(_ piece: Piece, _ matches: [(Int, Int, Bool)], _ behavior: SplitBehavior) -> [Piece] {
    var spans: [(Int, Int, Bool)] = [] // (start, end, remove)
    switch behavior {
    case .isolated: spans = matches.map { ($0.0, $0.1, false) }
    case .removed: spans = matches
    case .contiguous:
        var previous = false
        for m in matches {
            if m.2 == previous, !spans.isEmpty { spans[spans.count - 1].1 = m.1 } else { spans.append((m.0, m.1, false)) }
            previous = m.2
        }
    case .mergedWithPrevious:
        var previous = false
        for m in matches {
            if m.2 && !previous, !spans.isEmpty { spans[spans.count - 1].1 = m.1 } else { spans.append((m.0, m.1, false)) }
            previous = m.2
        }
    case .mergedWithNext:
        var previous = false
        for m in matches.reversed() {
            if m.2 && !previous, !spans.isEmpty { spans[spans.count - 1].0 = m.0 } else { spans.append((m.0, m.1, false)) }
            previous = m.2
        }
        spans.reverse()
    }
    var out: [Piece] = []
    out.reserveCapacity(spans.count)
    for (s, e, remove) in spans where !remove && e > s {
        out.append(Piece(bytes: Array(piece.bytes[s..<e]), atStart: piece.atStart && s == 0))
    }
    return out
}

/// Matches of a character predicate: each matching scalar is its own match (pattern.rs, `impl Pattern for F`).
func charMatches(_ bytes: [UInt8], _ isMatch: (UInt32) -> Bool) -> [(Int, Int, Bool)] {
    var out: [(Int, Int, Bool)] = []
    var last = 0
    bytes.withUnsafeBufferPointer { p in
        var i = 0
        while i < p.count {
            let (v, l) = decodeScalar(p, i)
            if isMatch(v) {
                if last < i { out.append((last, i, false)) }
                out.append((i, i + l, true))
                last = i + l
            }
            i += l
        }
    }
    if last < bytes.count { out.append((last, bytes.count, false)) }
    return out
}

/// Matches of a literal string: non-overlapping, leftmost first.
func literalMatches(_ bytes: [UInt8], _ pattern: [UInt8]) -> [(Int, Int, Bool)] {
    var out: [(Int, Int, Bool)] = []
    guard !pattern.isEmpty else { return bytes.isEmpty ? [] : [(0, bytes.count, false)] }
    var last = 0, i = 0
    let m = pattern.count, n = bytes.count
    while i + m <= n {
        if bytes[i] == pattern[0], bytes[i..<(i + m)].elementsEqual(pattern) {
            if last < i { out.append((last, i, false)) }
            out.append((i, i + m, true))
            i += m; last = i
        } else { i += 1 }
    }
    if last < n { out.append((last, n, false)) }
    return out
}

func patternMatches(_ bytes: [UInt8], _ pattern: SpanPattern) -> [(Int, Int, Bool)] {
    var out: [(Int, Int, Bool)] = []
    bytes.withUnsafeBufferPointer { p in pattern.forEachSpan(p) { out.append(($0, $1, true)) } }
    return out
}

/// The JSON `type` names of the pre-tokenizers FuseKit implements.
enum PreTokenizerType: String {
    case sequence = "Sequence", byteLevel = "ByteLevel", split = "Split", metaspace = "Metaspace"
    case bert = "BertPreTokenizer", digits = "Digits", punctuation = "Punctuation"
    case whitespace = "Whitespace", whitespaceSplit = "WhitespaceSplit"
}

func makePreTokenizer(_ json: JSON, path: String, key: String) throws -> PreTokenizer? {
    if json.isNull { return nil }
    let c = try Config(json, path: path, key: key)
    let typeName = try c.string("type")
    guard let type = PreTokenizerType(rawValue: typeName) else {
        throw TokenizerError.unknownType(path: path, key: key + ".type", type: typeName)
    }
    func behavior(_ k: String, default d: SplitBehavior) throws -> SplitBehavior {
        guard let s = try c.optionalString(k) else { return d }
        guard let b = SplitBehavior(rawValue: s) else { throw TokenizerError.badValue(path: path, key: c.sub(k), reason: "unknown split behavior '\(s)'") }
        return b
    }
    switch type {
    case .sequence:
        let items = try c.array("pretokenizers")
        return SequencePreTokenizer(stages: try items.enumerated().compactMap {
            try makePreTokenizer($1, path: path, key: "\(key).pretokenizers[\($0)]")
        })
    case .byteLevel:
        return ByteLevelPreTokenizer(addPrefixSpace: try c.bool("add_prefix_space", default: true),
                                     useRegex: try c.bool("use_regex", default: true))
    case .split:
        let p = try c.value("pattern")
        let kind: SplitPreTokenizer.Kind
        if let s = p["String"]?.string { kind = .literal(Array(s.utf8)) }
        else if let r = p["Regex"]?.string {
            guard let m = knownPattern(r) else { throw TokenizerError.unsupportedPattern(path: path, key: c.sub("pattern"), pattern: r) }
            kind = .pattern(m)
        } else { throw TokenizerError.badValue(path: path, key: c.sub("pattern"), reason: "expected {\"String\": ...} or {\"Regex\": ...}") }
        return SplitPreTokenizer(kind: kind, behavior: try behavior("behavior", default: .isolated), invert: try c.bool("invert", default: false))
    case .metaspace:
        let replacement = try c.string("replacement")
        var scheme = MetaspacePreTokenizer.Prepend(rawValue: try c.optionalString("prepend_scheme") ?? "always")
        if scheme == nil { throw TokenizerError.badValue(path: path, key: c.sub("prepend_scheme"), reason: "expected always, first or never") }
        if try c.optionalBool("add_prefix_space") == false { scheme = .never }
        return MetaspacePreTokenizer(replacement: Array(replacement.utf8), prepend: scheme!, split: try c.bool("split", default: true))
    case .bert: return BertPreTokenizer()
    case .digits: return DigitsPreTokenizer(individual: try c.bool("individual_digits", default: false))
    case .punctuation: return PunctuationPreTokenizer(behavior: try behavior("behavior", default: .isolated))
    case .whitespace: return WhitespacePreTokenizer()
    case .whitespaceSplit: return WhitespaceSplitPreTokenizer()
    }
}

struct SequencePreTokenizer: PreTokenizer {
    var stages: [PreTokenizer]
    func preTokenize(_ pieces: [Piece]) -> [Piece] { stages.reduce(pieces) { $1.preTokenize($0) } }
}

/// pre_tokenizers/byte_level.rs: optional prefix space, GPT-2 split, then each byte becomes the
/// character `bytes_to_unicode` gives it. `mapsBytes` is false when the tokenizer hands raw bytes
/// straight to a byte-level BPE (same ids, no re-encoding).
struct ByteLevelPreTokenizer: PreTokenizer {
    let addPrefixSpace: Bool
    let useRegex: Bool
    var mapsBytes = true

    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        var out: [Piece] = []
        for var piece in pieces {
            if addPrefixSpace && piece.bytes.first != 0x20 { piece.bytes.insert(0x20, at: 0) }
            let parts = useRegex ? split(piece, patternMatches(piece.bytes, GPT2Pattern()), .isolated) : [piece]
            for p in parts { out.append(mapsBytes ? Piece(bytes: ByteLevel.encode(p.bytes), atStart: p.atStart) : p) }
        }
        return out
    }
}

struct SplitPreTokenizer: PreTokenizer {
    enum Kind: Sendable { case literal([UInt8]), pattern(SpanPattern) }
    let kind: Kind
    let behavior: SplitBehavior
    let invert: Bool

    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { piece -> [Piece] in
            if piece.bytes.isEmpty { return [] }
            var m: [(Int, Int, Bool)]
            switch kind {
            case let .literal(s): m = literalMatches(piece.bytes, s)
            case let .pattern(p): m = patternMatches(piece.bytes, p)
            }
            if invert { m = m.map { ($0.0, $0.1, !$0.2) } }
            return split(piece, m, behavior)
        }
    }
}

/// pre_tokenizers/metaspace.rs.
struct MetaspacePreTokenizer: PreTokenizer {
    enum Prepend: String { case always, first, never }
    let replacement: [UInt8]
    let prepend: Prepend
    let split: Bool

    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { piece -> [Piece] in
            var b = replaceAll(piece.bytes, [0x20], replacement)
            let startsWith = b.count >= replacement.count && b[0..<replacement.count].elementsEqual(replacement)
            switch prepend {
            case .always: if !startsWith { b = replacement + b }
            case .first: if !startsWith && piece.atStart { b = replacement + b }
            case .never: break
            }
            let p = Piece(bytes: b, atStart: piece.atStart)
            if !split { return b.isEmpty ? [] : [p] }
            return FuseTokenizers.split(p, literalMatches(b, replacement), .mergedWithNext)
        }
    }
}

/// pre_tokenizers/bert.rs: split on whitespace (removed), then isolate punctuation.
struct BertPreTokenizer: PreTokenizer {
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { split($0, charMatches($0.bytes, isWhitespace), .removed) }
            .flatMap { split($0, charMatches($0.bytes, isBertPunctuation), .isolated) }
    }
}

struct DigitsPreTokenizer: PreTokenizer {
    let individual: Bool
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { split($0, charMatches($0.bytes) { Unicode_.classes($0).contains(.number) }, individual ? .isolated : .contiguous) }
    }
}

struct PunctuationPreTokenizer: PreTokenizer {
    let behavior: SplitBehavior
    func preTokenize(_ pieces: [Piece]) -> [Piece] { pieces.flatMap { split($0, charMatches($0.bytes, isBertPunctuation), behavior) } }
}

/// `\w+|[^\w\s]+`, the rest removed.
struct WhitespacePreTokenizer: PreTokenizer {
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { piece -> [Piece] in
            let s = scalars(piece.bytes)
            var m: [(Int, Int, Bool)] = []
            var off = 0, i = 0
            var offsets: [Int] = []
            for v in s { offsets.append(off); off += v < 0x80 ? 1 : v < 0x800 ? 2 : v < 0x10000 ? 3 : 4 }
            offsets.append(off)
            var last = 0
            while i < s.count {
                let w = isWordChar(s[i]), ws = isWhitespace(s[i])
                if ws { i += 1; continue }
                var k = i + 1
                while k < s.count, isWordChar(s[k]) == w, !isWhitespace(s[k]) { k += 1 }
                if last < offsets[i] { m.append((last, offsets[i], false)) }
                m.append((offsets[i], offsets[k], true))
                last = offsets[k]; i = k
            }
            if last < off { m.append((last, off, false)) }
            return split(piece, m.map { ($0.0, $0.1, !$0.2) }, .removed)
        }
    }
}

struct WhitespaceSplitPreTokenizer: PreTokenizer {
    func preTokenize(_ pieces: [Piece]) -> [Piece] { pieces.flatMap { split($0, charMatches($0.bytes, isWhitespace), .removed) } }
}

func isWhitespace(_ v: UInt32) -> Bool { Unicode_.classes(v).contains(.whitespace) }

/// `char::is_ascii_punctuation || char::is_punctuation` (ASCII symbols count, Unicode P* does), the
/// latter from the unicode_categories crate: punctuation assigned by Unicode 8.0 only.
func isBertPunctuation(_ v: UInt32) -> Bool {
    if v < 0x80 { return (0x21...0x2F).contains(v) || (0x3A...0x40).contains(v) || (0x5B...0x60).contains(v) || (0x7B...0x7E).contains(v) }
    return Unicode_.isPunctuation8(v)
}

/// Regex `\w`: Alphabetic, marks, decimal numbers, connector punctuation (and Join_Control).
func isWordChar(_ v: UInt32) -> Bool {
    let c = Unicode_.classes(v)
    return c.contains(.alphabetic) || c.contains(.mark) || c.contains(.decimal) || c.contains(.connector) || v == 0x200C || v == 0x200D
}
