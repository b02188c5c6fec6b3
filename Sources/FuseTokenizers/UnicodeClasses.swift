// Unicode character classes the pre-tokenizers and normalizers need, decided on scalars with the
// standard library's Unicode tables (`Unicode.Scalar.Properties`), and UTF-8 helpers on bytes.

/// Bit flags of one scalar. `letter` is \p{L}, `number` \p{N}, `whitespace` the White_Space
/// property (what Oniguruma's and Rust's \s and `char::is_whitespace` use).
struct CharClass: OptionSet {
    let rawValue: UInt8
    static let letter = CharClass(rawValue: 1)
    static let number = CharClass(rawValue: 2)
    static let whitespace = CharClass(rawValue: 4)
    static let punctuation = CharClass(rawValue: 8)      // \p{P}
    static let alphabetic = CharClass(rawValue: 16)      // Alphabetic property (Rust is_alphabetic)
    static let mark = CharClass(rawValue: 32)            // \p{M}
    static let decimal = CharClass(rawValue: 64)         // \p{Nd}
    static let connector = CharClass(rawValue: 128)      // \p{Pc}
}

enum Unicode_ {
    /// HF tokenizers' BERT normalizer and pre-tokenizer and its Punctuation pre-tokenizer ask the
    /// unicode_categories crate (0.1.1, Unicode 8.0 tables) for punctuation and non-spacing marks: a
    /// character assigned later is neither there. Found by Tools/checks/tokenizer_random.py
    /// --codepoints (U+0897, U+1ABF, U+2E52... are kept whole, not split off or stripped).
    static func assignedByUnicode8(_ v: UInt32) -> Bool {
        guard let s = Unicode.Scalar(v), let age = s.properties.age else { return false }
        return age.major < 8 || (age.major == 8 && age.minor == 0)
    }

    /// The crate's `is_punctuation`: P* as of Unicode 8.0 (U+166D and U+111C9 were Po then).
    static func isPunctuation8(_ v: UInt32) -> Bool {
        if v == 0x166D || v == 0x111C9 { return true }
        return classes(v).contains(.punctuation) && assignedByUnicode8(v)
    }

    /// The crate's `is_mark_nonspacing`: Mn as of Unicode 8.0 (U+1734 and U+1171E were Mn then,
    /// U+1885, U+1886, U+A9BD and U+111C9 were not).
    static func isNonspacingMark8(_ v: UInt32) -> Bool {
        if v == 0x1734 || v == 0x1171E { return true }
        if v == 0x1885 || v == 0x1886 || v == 0xA9BD || v == 0x111C9 { return false }
        guard let s = Unicode.Scalar(v) else { return false }
        return s.properties.generalCategory == .nonspacingMark && assignedByUnicode8(v)
    }

    /// Classes of the first 0x30000 scalars, filled on first use (covers the BMP and the SMP/SIP).
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 0x30000)
        for v in 0..<0x30000 {
            if let s = Unicode.Scalar(UInt32(v)) { t[v] = compute(s).rawValue }
        }
        return t
    }()

    static func compute(_ s: Unicode.Scalar) -> CharClass {
        let p = s.properties
        var c: CharClass = []
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: c.insert(.letter)
        case .decimalNumber: c.insert(.number); c.insert(.decimal)
        case .letterNumber, .otherNumber: c.insert(.number)
        case .connectorPunctuation: c.insert(.punctuation); c.insert(.connector)
        case .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation, .otherPunctuation:
            c.insert(.punctuation)
        case .nonspacingMark, .spacingMark, .enclosingMark: c.insert(.mark)
        default: break
        }
        if p.isWhitespace { c.insert(.whitespace) }
        if p.isAlphabetic { c.insert(.alphabetic) }
        return c
    }

    @inline(__always)
    static func classes(_ v: UInt32) -> CharClass {
        if v < 0x30000 { return CharClass(rawValue: table[Int(v)]) }
        guard let s = Unicode.Scalar(v) else { return [] }
        return compute(s)
    }
}

// MARK: - UTF-8

/// Decodes the scalar starting at `i` of valid UTF-8; returns (scalar, byte length).
@inline(__always)
func decodeScalar(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (UInt32, Int) {
    let b0 = UInt32(p[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2) }
    if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3) }
    return ((b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6 | UInt32(p[i + 3] & 0x3F), 4)
}

/// Byte length of the UTF-8 sequence starting with lead byte `b`.
@inline(__always)
func utf8Length(lead b: UInt8) -> Int { b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4 }

/// Appends the UTF-8 encoding of scalar `v`.
@inline(__always)
func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
    if v < 0x80 { out.append(UInt8(v)) }
    else if v < 0x800 { out.append(UInt8(0xC0 | v >> 6)); out.append(UInt8(0x80 | v & 0x3F)) }
    else if v < 0x10000 {
        out.append(UInt8(0xE0 | v >> 12)); out.append(UInt8(0x80 | (v >> 6) & 0x3F)); out.append(UInt8(0x80 | v & 0x3F))
    } else {
        out.append(UInt8(0xF0 | v >> 18)); out.append(UInt8(0x80 | (v >> 12) & 0x3F))
        out.append(UInt8(0x80 | (v >> 6) & 0x3F)); out.append(UInt8(0x80 | v & 0x3F))
    }
}

/// Offset of the first byte that makes `bytes` invalid UTF-8, or nil when valid.
func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
    var i = 0
    let n = bytes.count
    while i < n {
        let b = bytes[i]
        if b < 0x80 { i += 1; continue }
        let len: Int
        var minValue: UInt32
        if b & 0xE0 == 0xC0 { len = 2; minValue = 0x80 }
        else if b & 0xF0 == 0xE0 { len = 3; minValue = 0x800 }
        else if b & 0xF8 == 0xF0 { len = 4; minValue = 0x10000 }
        else { return i }
        guard i + len <= n else { return i }
        var v = UInt32(b) & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07)
        for k in 1..<len {
            let c = bytes[i + k]
            guard c & 0xC0 == 0x80 else { return i }
            v = v << 6 | UInt32(c & 0x3F)
        }
        if v < minValue || v > 0x10FFFF || (0xD800...0xDFFF).contains(v) { return i }
        minValue = 0
        i += len
    }
    return nil
}

/// Scalars of valid UTF-8 bytes.
func scalars(_ bytes: [UInt8]) -> [UInt32] {
    var out: [UInt32] = []
    out.reserveCapacity(bytes.count)
    bytes.withUnsafeBufferPointer { p in
        var i = 0
        while i < p.count { let (v, l) = decodeScalar(p, i); out.append(v); i += l }
    }
    return out
}

func utf8(_ scalars: [UInt32]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(scalars.count)
    for v in scalars { appendUTF8(v, to: &out) }
    return out
}

/// Lossy UTF-8 -> String: each maximal invalid subsequence becomes U+FFFD, like Rust's
/// `String::from_utf8_lossy`.
func lossyString(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
