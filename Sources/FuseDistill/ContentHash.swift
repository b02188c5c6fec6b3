// A stable 128-bit content hash for cache keys (model files, corpora, vocabularies). Not
// cryptographic: it guards against using a capture with the wrong model or corpus, not against an
// adversary. Two independent 64-bit multiply-xorshift lanes over 8-byte words.
import Foundation
import FuseIO

public struct ContentHash: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }
    /// 32 hex digits.
    public var hex: String { String(format: "%016llx%016llx", high, low) }
    /// The first 16 hex digits, for folder names.
    public var short: String { String(format: "%016llx", high) }
    public var description: String { hex }
}

public struct ContentHasher {
    private var a: UInt64 = 0x243F_6A88_85A3_08D3
    private var b: UInt64 = 0x1319_8A2E_0370_7344
    private var n: UInt64 = 0

    public init() {}

    @inline(__always) public mutating func update(_ w: UInt64) {
        a = (a ^ w) &* 0x9E37_79B9_7F4A_7C15; a ^= a >> 29
        b = (b &+ w ^ 0xD6E8_FEB8_6659_FD93) &* 0xBF58_476D_1CE4_E5B9; b ^= b >> 31
        n &+= 1
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        let words = bytes.count / 8
        for i in 0..<words { update(bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        var tail: UInt64 = 0
        for i in (words * 8)..<bytes.count { tail = tail << 8 | UInt64(bytes[i]) }
        update(tail ^ UInt64(bytes.count) << 56)
    }

    public mutating func update(_ string: String) {
        var s = string
        s.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    public func finish() -> ContentHash {
        func mix(_ x: UInt64) -> UInt64 { var s = SplitMixState(x); return s.next() }
        return ContentHash(high: mix(a ^ n), low: mix(b ^ (n << 1)))
    }
}

private struct SplitMixState {
    var state: UInt64
    init(_ s: UInt64) { state = s }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The hash of a file's bytes (a whole GGUF, or every file of an HF folder in name order).
public func hashModel(at path: String) throws -> ContentHash {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw DistillError.invalidArgument("\(path): no such model file or folder")
    }
    var h = ContentHasher()
    let files: [String]
    if isDir.boolValue {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        files = names.filter { $0.hasSuffix(".json") || $0.hasSuffix(".safetensors") || $0.hasSuffix(".gguf") }.sorted().map { path + "/" + $0 }
    } else { files = [path] }
    for f in files {
        h.update(URL(fileURLWithPath: f).lastPathComponent)
        let m = try MappedFile(path: f)
        h.update(try m.bytes(offset: 0, count: m.size, what: "model bytes"))
    }
    return h.finish()
}
