// GPT-2's byte <-> unicode map (`bytes_to_unicode`, pre_tokenizers/byte_level.rs): bytes 0x21-0x7E,
// 0xA1-0xAC and 0xAE-0xFF stand for themselves; the other 68 bytes map, in increasing order, to
// U+0100, U+0101, ... U+0143 (space -> U+0120 'Ġ', '\n' -> U+010A 'Ċ').

public enum ByteLevel {
    /// The code point standing for each byte.
    public static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + n
                n += 1
            }
        }
        return table
    }()

    /// UTF-8 of the character for each byte.
    static let byteToUTF8: [[UInt8]] = byteToScalar.map { utf8([$0]) }

    /// Code point -> byte, for the 256 code points in the map; -1 elsewhere (index < 0x144).
    static let scalarToByte: [Int16] = {
        var t = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { t[Int(s)] = Int16(b) }
        return t
    }()

    /// Maps raw bytes to the UTF-8 of their byte-level characters.
    public static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(contentsOf: byteToUTF8[Int(b)]) }
        return out
    }

    /// The bytes a byte-level token stands for, or nil when a character is outside the map
    /// (the decoder then keeps the token's own UTF-8, as HF does).
    public static func decode(_ token: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        for v in scalars(token) {
            guard v < 0x144, scalarToByte[Int(v)] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[Int(v)]))
        }
        return out
    }

    /// True when every character of `token` is in the byte-level alphabet.
    static func isInAlphabet(_ token: String) -> Bool {
        token.unicodeScalars.allSatisfy { $0.value < 0x144 && scalarToByte[Int($0.value)] >= 0 }
    }
}
