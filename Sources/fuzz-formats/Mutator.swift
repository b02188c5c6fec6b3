// Seeded byte-level mutations of valid seed files, shared by every format's fuzz target.
import FuseTensor

/// Mutates seed files with stacked edits: bit flips, random bytes, inserts, deletes, truncation,
/// splices from another seed, and "interesting" integers (0, 1, powers of two, type ids, sizes
/// near the file size, all-ones, sign bits) written over 1, 2, 4 or 8 bytes. The same seed gives
/// the same sequence of inputs.
struct Mutator {
    var rng: SeededRNG

    static let interesting8: [UInt8] = [0, 1, 2, 3, 4, 7, 8, 9, 12, 13, 16, 31, 32, 33, 63, 64, 127, 128, 255]
    static let interesting32: [UInt32] = [0, 1, 2, 3, 4, 5, 8, 9, 10, 12, 13, 14, 15, 16, 24, 28, 29, 30, 31, 32, 33,
                                          34, 35, 39, 48, 64, 255, 256, 0x0300_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]
    static let interesting64: [UInt64] = [0, 1, 2, 4, 5, 16, 32, 33, 64, 255, 256, 4096, 1 << 31, 1 << 32, 1 << 40,
                                          1 << 62, 1 << 63, 0x7FFF_FFFF_FFFF_FFFF, .max - 1, .max]

    init(seed: UInt64) { rng = SeededRNG(seed: seed) }

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }

    /// One to four stacked edits of `input`; `others` supplies splice material.
    mutating func mutate(_ input: [UInt8], others: [[UInt8]]) -> [UInt8] {
        var bytes = input
        for _ in 0...below(4) { edit(&bytes, others: others) }
        return bytes
    }

    private mutating func edit(_ bytes: inout [UInt8], others: [[UInt8]]) {
        let n = bytes.count
        switch below(10) {
        case 0 where n > 0:                                 // flip one bit
            bytes[below(n)] ^= UInt8(1) << UInt8(below(8))
        case 1 where n > 0:                                 // random byte
            bytes[below(n)] = UInt8(truncatingIfNeeded: rng.next())
        case 2:                                             // insert random bytes
            let count = 1 + below(16)
            bytes.insert(contentsOf: (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: below(n + 1))
        case 3 where n > 0:                                 // delete a range
            let start = below(n)
            bytes.removeSubrange(start..<min(n, start + 1 + below(32)))
        case 4 where n > 0:                                 // truncate
            bytes.removeSubrange(below(n)..<n)
        case 5 where n > 0:                                 // interesting byte
            bytes[below(n)] = Self.interesting8[below(Self.interesting8.count)]
        case 6 where n >= 4:                                // interesting u32
            put(Self.interesting32[below(Self.interesting32.count)], at: below(n - 3), into: &bytes)
        case 7 where n >= 8:                                // interesting u64, or a size near the file's
            var value = Self.interesting64[below(Self.interesting64.count)]
            if below(3) == 0 { value = UInt64(n) &+ UInt64(bitPattern: Int64(below(65) - 32)) }
            put(value, at: below(n - 7), into: &bytes)
        case 8 where n >= 8:                                // bump a small u64 (likely a count, length or offset)
            let at = below(n - 7)
            var value: UInt64 = 0
            for k in 0..<8 { value |= UInt64(bytes[at + k]) << UInt64(8 * k) }
            if value < 1 << 24 { put(value &+ UInt64(bitPattern: Int64(below(9) - 4)) &* (below(4) == 0 ? 1 << 20 : 1), at: at, into: &bytes) }
        case 9 where !others.isEmpty:                       // splice a chunk of another seed
            let other = others[below(others.count)]
            guard !other.isEmpty else { return }
            let from = below(other.count)
            let chunk = other[from..<min(other.count, from + 1 + below(64))]
            let at = below(n + 1)
            bytes.replaceSubrange(at..<min(n, at + chunk.count), with: chunk)
        default:
            break
        }
    }

    private func put<T: FixedWidthInteger>(_ value: T, at offset: Int, into bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (k, b) in raw.enumerated() where offset + k < bytes.count { bytes[offset + k] = b }
        }
    }
}
