// How a tokenizer spells its tokens, and the forms alignment compares.
//
// Two tokenizer families meet in FuseLLM: byte-level BPE (GPT-2, SmolLM2, Llama 3: vocabulary strings
// are bytes mapped to printable characters, "Ġ" = space, "Ċ" = newline) and SentencePiece-style
// (Llama 2, Gemma: real UTF-8 with "▁" for space and "<0xNN>" byte-fallback tokens).
//
// `.release` compares the vocabulary strings as FuseLLM's release does (`others.py`,
// `transform_step_logits`): only the word-start marker is translated ("Ġ" -> "▁"), so "Ċ" never meets
// "\n" and byte-level pieces of non-ASCII characters never meet their SentencePiece spelling.
// `.canonical` (the default) first decodes every token to the bytes it stands for and spells those
// bytes one way for both families: a space is "▁", valid UTF-8 is its characters, any other byte is
// "<0xNN>" (SentencePiece's byte-fallback spelling). Edit distances count Unicode scalars, as Python's
// `editdistance` counts code points.
import Foundation
import FuseTokenizers

public enum SurfaceMode: String, Sendable, CaseIterable {
    case canonical
    case release
}

/// The token family, which fixes the marker and how vocabulary strings map to bytes.
public enum TokenizerStyle: String, Sendable {
    case byteLevel = "byte-level"
    case sentencePiece = "sentencepiece"

    /// The word-start marker as the vocabulary spells it.
    public var marker: Unicode.Scalar { self == .byteLevel ? "\u{0120}" : "\u{2581}" }

    /// "▁" in the vocabulary: SentencePiece; else "Ġ": byte-level; else SentencePiece-like (WordPiece,
    /// char vocabularies keep their strings, which is what the release does for them too).
    public static func detect(_ tokenizer: Tokenizer) -> TokenizerStyle {
        if tokenizer.id(for: "\u{2581}") != nil { return .sentencePiece }
        if tokenizer.id(for: "\u{0120}") != nil { return .byteLevel }
        return .sentencePiece
    }
}

public let canonicalMarker: UInt32 = 0x2581

/// Every token of one vocabulary in the form alignment compares, as Unicode scalar arrays, plus the
/// marker that `.release` strips and translates.
public final class TokenSurfaces: @unchecked Sendable {
    public let style: TokenizerStyle
    public let mode: SurfaceMode
    /// The marker in `strings` (the vocabulary's own in `.release`, "▁" in `.canonical`).
    public let marker: UInt32
    /// Per id: the compared string; empty for ids the tokenizer does not know.
    public let strings: [[UInt32]]
    /// Per id: a special (control) token, left out of sequence alignment.
    public let special: [Bool]

    public init(strings: [[UInt32]], special: [Bool], style: TokenizerStyle, mode: SurfaceMode) {
        self.strings = strings; self.special = special; self.style = style; self.mode = mode
        self.marker = mode == .canonical ? canonicalMarker : style.marker.value
    }

    public convenience init(tokenizer: Tokenizer, mode: SurfaceMode, style: TokenizerStyle? = nil) {
        let style = style ?? TokenizerStyle.detect(tokenizer)
        let n = tokenizer.vocabularySize
        var strings = [[UInt32]](repeating: [], count: n)
        var special = [Bool](repeating: false, count: n)
        for id in 0..<n {
            guard let text = tokenizer.token(for: id) else { continue }
            special[id] = tokenizer.isSpecial(id)
            let scalars = text.unicodeScalars.map(\.value)
            strings[id] = mode == .release || special[id] ? scalars : canonicalForm(scalars, style: style)
        }
        self.init(strings: strings, special: special, style: style, mode: mode)
    }

    public var count: Int { strings.count }

    /// `strings` with every marker removed: what the DTW cost compares (`dist_fn` in the release).
    func stripped(_ id: Int) -> [UInt32] { strings[id].filter { $0 != marker } }
}

/// The canonical spelling of one vocabulary string (see the file header).
public func canonicalForm(_ scalars: [UInt32], style: TokenizerStyle) -> [UInt32] {
    var bytes: [UInt8] = []
    switch style {
    case .byteLevel:
        for s in scalars {
            guard let b = byteLevelDecoder[s] else { return scalars.map { $0 == 0x20 ? canonicalMarker : $0 } }   // not a byte-level string: keep it
            bytes.append(b)
        }
    case .sentencePiece:
        if let b = byteFallbackValue(scalars) { bytes = [b] } else {
            for s in scalars {
                if s == canonicalMarker { bytes.append(0x20); continue }
                guard let u = Unicode.Scalar(s) else { continue }
                bytes.append(contentsOf: Array(String(Character(u)).utf8))
            }
        }
    }
    return spellBytes(bytes)
}

/// "<0xNN>" -> NN.
func byteFallbackValue(_ s: [UInt32]) -> UInt8? {
    guard s.count == 6, s[0] == 0x3C, s[1] == 0x30, s[2] == 0x78, s[5] == 0x3E else { return nil }
    func hex(_ c: UInt32) -> UInt8? {
        switch c { case 0x30...0x39: return UInt8(c - 0x30); case 0x41...0x46: return UInt8(c - 55); case 0x61...0x66: return UInt8(c - 87); default: return nil }
    }
    guard let h = hex(s[3]), let l = hex(s[4]) else { return nil }
    return h << 4 | l
}

/// Valid UTF-8 as its scalars (space as "▁"), every other byte as "<0xNN>".
func spellBytes(_ bytes: [UInt8]) -> [UInt32] {
    var out: [UInt32] = []
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        let need = b < 0x80 ? 1 : (b >> 5 == 0b110 ? 2 : (b >> 4 == 0b1110 ? 3 : (b >> 3 == 0b11110 ? 4 : 0)))
        if need > 0, i + need <= bytes.count, (1..<need).allSatisfy({ bytes[i + $0] & 0xC0 == 0x80 }),
           let s = String(bytes: bytes[i..<(i + need)], encoding: .utf8)?.unicodeScalars.first {
            out.append(s.value == 0x20 ? canonicalMarker : s.value)
            i += need
        } else {
            let hex = Array("0123456789ABCDEF".unicodeScalars)
            out.append(contentsOf: [0x3C, 0x30, 0x78, hex[Int(b >> 4)].value, hex[Int(b & 15)].value, 0x3E])
            i += 1
        }
    }
    return out
}

/// GPT-2's `bytes_to_unicode`, inverted: printable bytes stand for themselves, the other 68 bytes are
/// U+0100 upwards in byte order.
let byteLevelDecoder: [UInt32: UInt8] = {
    var printable = Set<Int>()
    for r in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { for b in r { printable.insert(b) } }
    var map: [UInt32: UInt8] = [:]
    var next: UInt32 = 0x100
    for b in 0..<256 {
        if printable.contains(b) { map[UInt32(b)] = UInt8(b) } else { map[next] = UInt8(b); next += 1 }
    }
    return map
}()
