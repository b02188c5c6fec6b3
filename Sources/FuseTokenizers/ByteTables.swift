// Hash tables keyed by raw UTF-8 bytes. Swift's `String` compares by canonical equivalence, so
// "é" (U+00E9) and "e\u{301}" would be one key; a vocabulary is byte-exact, so every lookup here
// is on bytes. Lookups take a buffer pointer and allocate nothing.

@inline(__always)
func hashBytes(_ p: UnsafeRawBufferPointer) -> UInt64 {
    // A simple multiply-xorshift over 8-byte words; collisions only cost probes.
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(p.count)
    var i = 0
    let n = p.count
    while i + 8 <= n {
        h = (h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 32
        i += 8
    }
    var tail: UInt64 = 0
    var shift: UInt64 = 0
    while i < n { tail |= UInt64(p[i]) << shift; shift += 8; i += 1 }
    h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
    h ^= h >> 29
    return h
}

/// Byte string -> list of Int32 values, open addressing with linear probing. Used for the
/// vocabulary (one value per key) and for the per-word BPE cache (ids of the word).
final class ByteKeyTable {
    private var keyBytes: [UInt8] = []
    private var keyStart: [Int32] = []
    private var keyLength: [Int32] = []
    private var valueStart: [Int32] = []
    private var valueLength: [Int32] = []
    private var values: [Int32] = []
    private var hashes: [UInt64] = []
    private var slots: [Int32]
    private var mask: Int
    /// Entries stored; a cache is cleared when it reaches `capacityLimit`.
    private(set) var count = 0
    let capacityLimit: Int?

    init(expected: Int = 1024, capacityLimit: Int? = nil) {
        var size = 16
        while size < expected * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        self.capacityLimit = capacityLimit
    }

    func removeAll() {
        keyBytes.removeAll(keepingCapacity: true); keyStart.removeAll(keepingCapacity: true)
        keyLength.removeAll(keepingCapacity: true); valueStart.removeAll(keepingCapacity: true)
        valueLength.removeAll(keepingCapacity: true); values.removeAll(keepingCapacity: true)
        hashes.removeAll(keepingCapacity: true)
        for i in slots.indices { slots[i] = -1 }
        count = 0
    }

    @inline(__always)
    private func findSlot(_ key: UnsafeRawBufferPointer, _ h: UInt64) -> (slot: Int, entry: Int32) {
        var s = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = slots[s]
            if e < 0 { return (s, -1) }
            let ei = Int(e)
            if hashes[ei] == h, Int(keyLength[ei]) == key.count {
                let start = Int(keyStart[ei])
                let equal = keyBytes.withUnsafeBufferPointer { kb -> Bool in
                    key.count == 0 || memcmpBytes(kb.baseAddress! + start, key.baseAddress!, key.count)
                }
                if equal { return (s, e) }
            }
            s = (s + 1) & mask
        }
    }

    /// The entry index for `key`, or nil.
    @inline(__always)
    func entry(_ key: UnsafeRawBufferPointer) -> Int? {
        let (_, e) = findSlot(key, hashBytes(key))
        return e < 0 ? nil : Int(e)
    }

    /// The first value stored for `key` (the id, for a vocabulary).
    @inline(__always)
    func first(_ key: UnsafeRawBufferPointer) -> Int32? {
        guard let e = entry(key) else { return nil }
        return values[Int(valueStart[e])]
    }

    func first(_ key: [UInt8]) -> Int32? { key.withUnsafeBytes { first($0) } }
    func first(_ key: String) -> Int32? { var k = key; return k.withUTF8 { first(UnsafeRawBufferPointer($0)) } }

    /// Appends the values for `key` to `out`; false when absent.
    @inline(__always)
    func appendValues(_ key: UnsafeRawBufferPointer, to out: inout [Int32]) -> Bool {
        guard let e = entry(key) else { return false }
        let s = Int(valueStart[e]), n = Int(valueLength[e])
        out.append(contentsOf: values[s..<(s + n)])
        return true
    }

    /// Inserts or, when `replace`, overwrites. Returns false if the key existed and was kept.
    @discardableResult
    func insert(_ key: UnsafeRawBufferPointer, values newValues: UnsafeBufferPointer<Int32>, replace: Bool = true) -> Bool {
        if let limit = capacityLimit, count >= limit { removeAll() }
        let h = hashBytes(key)
        let (slot, e) = findSlot(key, h)
        if e >= 0 {
            guard replace else { return false }
            let ei = Int(e)
            valueStart[ei] = Int32(values.count); valueLength[ei] = Int32(newValues.count)
            values.append(contentsOf: newValues)
            return true
        }
        keyStart.append(Int32(keyBytes.count)); keyLength.append(Int32(key.count))
        keyBytes.append(contentsOf: key)
        valueStart.append(Int32(values.count)); valueLength.append(Int32(newValues.count))
        values.append(contentsOf: newValues)
        hashes.append(h)
        slots[slot] = Int32(count)
        count += 1
        if count * 2 > slots.count { grow() }
        return true
    }

    func insert(_ key: [UInt8], value: Int32, replace: Bool = true) -> Bool {
        var v = value
        return key.withUnsafeBytes { k in withUnsafePointer(to: &v) { insert(k, values: UnsafeBufferPointer(start: $0, count: 1), replace: replace) } }
    }

    private func grow() {
        let size = slots.count * 2
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        for e in 0..<count {
            var s = Int(truncatingIfNeeded: hashes[e]) & mask
            while slots[s] >= 0 { s = (s + 1) & mask }
            slots[s] = Int32(e)
        }
    }
}

@inline(__always)
func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    let bb = b.assumingMemoryBound(to: UInt8.self)
    var i = 0
    while i + 8 <= n {
        if UnsafeRawPointer(a + i).loadUnaligned(as: UInt64.self) != UnsafeRawPointer(bb + i).loadUnaligned(as: UInt64.self) { return false }
        i += 8
    }
    while i < n { if a[i] != bb[i] { return false }; i += 1 }
    return true
}

/// (left id, right id) -> (rank, merged id), for BPE merges. Open addressing on a 64-bit key.
struct PairTable {
    private var keys: [UInt64]
    private var vals: [UInt64]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(expected: Int) {
        var size = 16
        while size < expected * 2 { size <<= 1 }
        keys = [UInt64](repeating: PairTable.empty, count: size)
        vals = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always) private static func mix(_ k: UInt64) -> Int {
        var h = k &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 31
        return Int(truncatingIfNeeded: h)
    }

    /// A repeated pair overwrites the earlier one: HF collects its merge list into a hash map, so
    /// the last occurrence's rank wins (tokenizers/src/models/bpe/model.rs, `BpeBuilder::build`).
    mutating func insert(left: Int32, right: Int32, rank: Int32, merged: Int32) {
        let k = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var s = PairTable.mix(k) & mask
        while keys[s] != PairTable.empty {
            if keys[s] == k {
                vals[s] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
                return
            }
            s = (s + 1) & mask
        }
        keys[s] = k
        vals[s] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
        count += 1
    }

    /// (rank, merged id) or nil.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> (rank: Int32, merged: Int32)? {
        let k = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var s = PairTable.mix(k) & mask
        while true {
            let key = keys[s]
            if key == k { let v = vals[s]; return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v)) }
            if key == PairTable.empty { return nil }
            s = (s + 1) & mask
        }
    }
}
