// Normalizers: tokenizers/src/normalizers/*.rs. Each maps the UTF-8 bytes of one piece of text to
// new bytes. Offsets are not tracked: FuseKit reports ids and pieces, not character spans.
import Foundation
import FuseIO

public protocol Normalizer: Sendable {
    func normalize(_ text: [UInt8]) -> [UInt8]
}

/// The JSON `type` names of tokenizer.json normalizers that FuseKit implements.
enum NormalizerType: String {
    case sequence = "Sequence", bert = "BertNormalizer", replace = "Replace", prepend = "Prepend"
    case strip = "Strip", stripAccents = "StripAccents", lowercase = "Lowercase"
    case nfc = "NFC", nfd = "NFD", nfkc = "NFKC", nfkd = "NFKD"
}

func makeNormalizer(_ json: JSON, path: String, key: String) throws -> Normalizer? {
    if json.isNull { return nil }
    let c = try Config(json, path: path, key: key)
    let typeName = try c.string("type")
    guard let type = NormalizerType(rawValue: typeName) else {
        throw TokenizerError.unknownType(path: path, key: key + ".type", type: typeName)
    }
    switch type {
    case .sequence:
        let items = try c.array("normalizers")
        return SequenceNormalizer(normalizers: try items.enumerated().compactMap {
            try makeNormalizer($1, path: path, key: "\(key).normalizers[\($0)]")
        })
    case .bert:
        return BertNormalizer(cleanText: try c.bool("clean_text", default: true),
                              handleChineseChars: try c.bool("handle_chinese_chars", default: true),
                              stripAccents: try c.optionalBool("strip_accents"),
                              lowercase: try c.bool("lowercase", default: true))
    case .replace:
        let pattern = try c.pattern("pattern")
        return ReplaceNormalizer(pattern: Array(pattern.utf8), content: Array(try c.string("content").utf8))
    case .prepend: return PrependNormalizer(prefix: Array(try c.string("prepend").utf8))
    case .strip: return StripNormalizer(left: try c.bool("strip_left", default: true), right: try c.bool("strip_right", default: true))
    case .stripAccents: return StripAccentsNormalizer()
    case .lowercase: return LowercaseNormalizer()
    case .nfc: return UnicodeNormalizer(form: .nfc)
    case .nfd: return UnicodeNormalizer(form: .nfd)
    case .nfkc: return UnicodeNormalizer(form: .nfkc)
    case .nfkd: return UnicodeNormalizer(form: .nfkd)
    }
}

struct SequenceNormalizer: Normalizer {
    let normalizers: [Normalizer]
    func normalize(_ text: [UInt8]) -> [UInt8] { normalizers.reduce(text) { $1.normalize($0) } }
}

/// normalizers/replace.rs with a plain string pattern: every non-overlapping occurrence, left to right.
struct ReplaceNormalizer: Normalizer {
    let pattern: [UInt8]
    let content: [UInt8]
    func normalize(_ text: [UInt8]) -> [UInt8] { replaceAll(text, pattern, content) }
}

func replaceAll(_ text: [UInt8], _ pattern: [UInt8], _ content: [UInt8]) -> [UInt8] {
    guard !pattern.isEmpty, text.count >= pattern.count else { return text }
    var out: [UInt8] = []
    out.reserveCapacity(text.count + 16)
    var i = 0
    let first = pattern[0], m = pattern.count, n = text.count
    while i < n {
        if text[i] == first, i + m <= n, text[i..<(i + m)].elementsEqual(pattern) {
            out.append(contentsOf: content)
            i += m
        } else {
            out.append(text[i]); i += 1
        }
    }
    return out
}

/// normalizers/prepend.rs: prepends unless the piece is empty.
struct PrependNormalizer: Normalizer {
    let prefix: [UInt8]
    func normalize(_ text: [UInt8]) -> [UInt8] { text.isEmpty ? text : prefix + text }
}

/// normalizers/strip.rs: removes leading/trailing whitespace (`char::is_whitespace`).
struct StripNormalizer: Normalizer {
    let left: Bool, right: Bool
    func normalize(_ text: [UInt8]) -> [UInt8] {
        var s = scalars(text)
        if right { while let l = s.last, Unicode_.classes(l).contains(.whitespace) { s.removeLast() } }
        if left {
            var k = 0
            while k < s.count, Unicode_.classes(s[k]).contains(.whitespace) { k += 1 }
            s.removeFirst(k)
        }
        return utf8(s)
    }
}

/// normalizers/strip.rs `StripAccents`: drops combining marks (\p{M}).
struct StripAccentsNormalizer: Normalizer {
    func normalize(_ text: [UInt8]) -> [UInt8] { utf8(scalars(text).filter { !Unicode_.classes($0).contains(.mark) }) }
}

/// Per-scalar full lowercase mapping, no context (NormalizedString::lowercase).
struct LowercaseNormalizer: Normalizer {
    func normalize(_ text: [UInt8]) -> [UInt8] { lowercased(text) }
}

func lowercased(_ text: [UInt8]) -> [UInt8] {
    if text.allSatisfy({ $0 < 0x80 }) { return text.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 32 : $0 } }
    var out: [UInt8] = []
    out.reserveCapacity(text.count)
    for v in scalars(text) {
        if v < 0x80 { out.append(v >= 0x41 && v <= 0x5A ? UInt8(v + 32) : UInt8(v)); continue }
        guard let s = Unicode.Scalar(v) else { continue }
        out.append(contentsOf: Array(s.properties.lowercaseMapping.utf8))
    }
    return out
}

/// normalizers/unicode.rs: NFC, NFD, NFKC, NFKD (Foundation's Unicode tables).
struct UnicodeNormalizer: Normalizer {
    enum Form { case nfc, nfd, nfkc, nfkd }
    let form: Form
    func normalize(_ text: [UInt8]) -> [UInt8] { unicodeNormalize(text, form) }
}

/// HF tokenizers normalizes with the unicode-normalization-alignments crate, whose tables are Unicode
/// 9.0: a scalar assigned later has no decomposition and combining class 0 there, and composes with
/// nothing. Foundation's tables are newer, so such scalars are kept verbatim and the runs between them
/// normalized on their own (Tools/checks/tokenizer_random.py: U+32FF, U+1F16C, U+1FBF0... under NFKC,
/// U+11938 under NFD, and the order of marks such as U+1DF6).
func unicodeNormalize(_ text: [UInt8], _ form: UnicodeNormalizer.Form) -> [UInt8] {
    if text.allSatisfy({ $0 < 0x80 }) { return text }
    let s = String(decoding: text, as: UTF8.self)
    func newerThanUnicode9(_ u: Unicode.Scalar) -> Bool {
        guard u.value >= 0x300, let age = u.properties.age else { return false }
        return age.major > 9
    }
    guard !s.unicodeScalars.contains(where: newerThanUnicode9) else {
        var out: [UInt8] = [], run = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if newerThanUnicode9(u) {
                out += unicodeNormalize(Array(String(run).utf8), form)
                out += Array(String(u).utf8)
                run = String.UnicodeScalarView()
            } else {
                run.append(u)
            }
        }
        return out + unicodeNormalize(Array(String(run).utf8), form)
    }
    let r: String
    switch form {
    // NFC as composition of NFD: Foundation's precomposedStringWithCanonicalMapping leaves an LV syllable
    // followed by a trailing jamo (U+AC00 U+11B5) apart, which Unicode (and HF) compose to U+AC0E.
    case .nfc: r = s.decomposedStringWithCanonicalMapping.precomposedStringWithCanonicalMapping
    case .nfd: r = s.decomposedStringWithCanonicalMapping
    // NFKC as composition of NFKD (its definition): Foundation's precomposedStringWithCompatibilityMapping
    // turns U+1100 U+11173 into U+ADF8, which HF does not.
    case .nfkc: r = s.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
    case .nfkd: r = s.decomposedStringWithCompatibilityMapping
    }
    return Array(r.utf8)
}

/// normalizers/bert.rs.
struct BertNormalizer: Normalizer {
    let cleanText: Bool, handleChineseChars: Bool, stripAccents: Bool?, lowercase: Bool

    static func isChinese(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B920...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }

    /// Where bert.rs's `is_control` (the unicode_categories crate's `char::is_other`) holds: Cc, Cf and
    /// Co as that crate's tables have them. Unassigned code points (Cn) are not in them, nor are the
    /// format characters newer Unicode added (U+0890, U+0891, U+08E2, U+110CD, U+13430...): HF keeps
    /// both, so Swift's own general categories would drop them wrongly. Listed from tokenizers 0.23.3
    /// by normalizing every code point (Tools/checks/tokenizer_random.py found the difference).
    static let otherRanges: [ClosedRange<UInt32>] = [
        0x0...0x8, 0xB...0xC, 0xE...0x1F, 0x7F...0x9F, 0xAD...0xAD, 0x600...0x605, 0x61C...0x61C, 0x6DD...0x6DD,
        0x70F...0x70F, 0x180E...0x180E, 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2064, 0x2066...0x206F,
        0xE000...0xF8FF, 0xFEFF...0xFEFF, 0xFFF9...0xFFFB, 0x110BD...0x110BD, 0x1BCA0...0x1BCA3, 0x1D173...0x1D17A,
        0xE0001...0xE0001, 0xE0020...0xE007F, 0xF0000...0xFFFFD, 0x100000...0x10FFFD,
    ]

    static func isOther(_ v: UInt32) -> Bool {
        if v < 0x80 { return v < 0x20 || v == 0x7F }
        return otherRanges.contains { $0.contains(v) }
    }

    func normalize(_ text: [UInt8]) -> [UInt8] {
        var s = scalars(text)
        if cleanText {
            s = s.compactMap { v in
                if v == 0 || v == 0xFFFD { return nil }
                if v != 9 && v != 10 && v != 13 && BertNormalizer.isOther(v) { return nil }
                if v == 9 || v == 10 || v == 13 || Unicode_.classes(v).contains(.whitespace) { return 0x20 }
                return v
            }
        }
        if handleChineseChars {
            var out: [UInt32] = []
            out.reserveCapacity(s.count)
            for v in s { if BertNormalizer.isChinese(v) { out += [0x20, v, 0x20] } else { out.append(v) } }
            s = out
        }
        var bytes = utf8(s)
        if stripAccents ?? lowercase {
            bytes = unicodeNormalize(bytes, .nfd)
            bytes = utf8(scalars(bytes).filter { !Unicode_.isNonspacingMark8($0) })   // the unicode_categories crate's
        }
        if lowercase { bytes = lowercased(bytes) }
        return bytes
    }
}
