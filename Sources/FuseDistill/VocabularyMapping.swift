// Source-to-target vocabulary mapping, FuseLLM's "MinED" (`FuseLLM/src/utils/vocab_mapping.py`,
// type `default`): a source token maps to the target token with the same string (after the marker
// translation the surface mode implies), else to the target token at minimum Levenshtein distance,
// the first minimum winning. The release scans `get_vocab()` in dict order; FuseKit scans target ids
// in ascending order (the same thing for vocabularies stored in id order, and deterministic always).
//
// The full MinED table is |V_s|·|V_t| edit distances (262k × 49k for Gemma 3 -> SmolLM2, hours on
// two cores), so exact matches are resolved for the whole vocabulary up front and MinED entries only
// for the source ids a run actually meets (its captured top-k ids and tokens), then cached on disk
// per tokenizer pair and surface mode (`VocabularyMappingCache`).
import Foundation
import FuseIO
import FuseTensor

public final class VocabularyMapping: @unchecked Sendable {
    public let source: TokenSurfaces
    public let target: TokenSurfaces
    /// Per source id: the target id, or -1 while unresolved (or when the source id is unknown).
    public private(set) var map: [Int32]
    /// Per source id: true when the mapping is an exact string match.
    public private(set) var exact: [Bool]
    /// Target ids grouped by string length (scalars), ascending ids within each bucket.
    private let byLength: [Int: [Int32]]
    private let targetIndex: [[UInt32]: Int32]

    public init(source: TokenSurfaces, target: TokenSurfaces) {
        self.source = source; self.target = target
        var index: [[UInt32]: Int32] = [:]
        var buckets: [Int: [Int32]] = [:]
        for (id, s) in target.strings.enumerated() where !s.isEmpty {
            if index[s] == nil { index[s] = Int32(id) }   // first id wins, as the release's dict lookup of a unique string
            buckets[s.count, default: []].append(Int32(id))
        }
        targetIndex = index; byLength = buckets
        map = [Int32](repeating: -1, count: source.count)
        exact = [Bool](repeating: false, count: source.count)
        for (id, s) in source.strings.enumerated() where !s.isEmpty {
            if let t = index[translated(s)] { map[id] = t; exact[id] = true }
        }
    }

    /// The source string with the source's marker replaced by the target's (`tmp_x` in the release).
    func translated(_ s: [UInt32]) -> [UInt32] {
        source.marker == target.marker ? s : s.map { $0 == source.marker ? target.marker : $0 }
    }

    /// The target id of a source id, resolving MinED on first use. -1 for ids the source does not know.
    public func targetID(_ sourceID: Int) -> Int32 {
        guard sourceID >= 0, sourceID < map.count else { return -1 }
        if map[sourceID] >= 0 { return map[sourceID] }
        resolve([sourceID])
        return map[sourceID]
    }

    /// Resolves MinED for every unresolved id in `ids`, in parallel.
    public func resolve(_ ids: [Int]) {
        let todo = Array(Set(ids.filter { $0 >= 0 && $0 < map.count && map[$0] < 0 && !source.strings[$0].isEmpty })).sorted()
        guard !todo.isEmpty else { return }
        var found = [Int32](repeating: -1, count: todo.count)
        found.withUnsafeMutableBufferPointer { out in
            parallelFor(count: todo.count, chunkSize: 8) { _, r in
                for k in r { out[k] = self.minimumEditDistance(self.translated(self.source.strings[todo[k]])) }
            }
        }
        for (k, id) in todo.enumerated() { map[id] = found[k] }
    }

    /// The first target id (ascending) at minimum Levenshtein distance from `s`. Buckets are visited by
    /// increasing length difference, which bounds the distance from below, so the search stops once
    /// the difference exceeds the best distance found.
    func minimumEditDistance(_ s: [UInt32]) -> Int32 {
        var best = Int.max, bestID = Int32.max
        let lengths = byLength.keys.sorted { (abs($0 - s.count), $0) < (abs($1 - s.count), $1) }
        for len in lengths {
            let gap = abs(len - s.count)
            if gap > best { break }
            for id in byLength[len] ?? [] {
                if gap == best && id > bestID { break }   // can only tie, and a tie keeps the lower id
                let d = editDistance(s, target.strings[Int(id)], bound: best == Int.max ? Int.max / 2 : best)
                if d < best || (d == best && id < bestID) { best = d; bestID = id }
            }
        }
        return bestID == Int32.max ? -1 : bestID
    }

    /// Sets one MinED entry (tests inject the reference's entries for vocabularies they hold in part).
    func assign(source: Int, target: Int32) {
        guard source >= 0, source < map.count, !exact[source] else { return }
        map[source] = target
    }

    /// Entries resolved so far (exact or MinED), for the cache.
    var resolvedCount: Int { map.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    // MARK: - cache

    /// Loads MinED entries from a cache file written by `save(to:)` for the same pair.
    public func load(from path: String, key: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let file = try MappedFile(path: path)
        let bytes = try file.bytes(offset: 0, count: file.size, what: "vocabulary mapping")
        let header = Self.header(key: key)
        guard bytes.count >= header.count + 8, Array(bytes[0..<header.count]) == header else {
            throw DistillError.cache(path: path, message: "not a vocabulary mapping cache for this tokenizer pair (\(key))")
        }
        let count = bytes.loadUnaligned(fromByteOffset: header.count, as: UInt64.self)
        guard count <= UInt64(map.count), bytes.count == header.count + 8 + Int(count) * 8 else {
            throw DistillError.cache(path: path, message: "truncated or corrupt (\(count) entries, \(bytes.count) bytes)")
        }
        for e in 0..<Int(count) {
            let off = header.count + 8 + e * 8
            let s = Int(bytes.loadUnaligned(fromByteOffset: off, as: Int32.self))
            let t = bytes.loadUnaligned(fromByteOffset: off + 4, as: Int32.self)
            guard s >= 0, s < map.count, t >= 0, Int(t) < target.count else {
                throw DistillError.cache(path: path, message: "entry \(e) maps \(s) -> \(t), outside the vocabularies")
            }
            if !exact[s] { map[s] = t }
        }
    }

    /// Writes the resolved MinED entries (exact matches are recomputed on load), atomically.
    public func save(to path: String, key: String) throws {
        var bytes = Self.header(key: key)
        var entries: [(Int32, Int32)] = []
        for s in 0..<map.count where map[s] >= 0 && !exact[s] { entries.append((Int32(s), map[s])) }
        withUnsafeBytes(of: UInt64(entries.count).littleEndian) { bytes.append(contentsOf: $0) }
        for (s, t) in entries {
            withUnsafeBytes(of: s.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: t.littleEndian) { bytes.append(contentsOf: $0) }
        }
        try writeFileAtomically(path: path, bytes: bytes)
    }

    static func header(key: String) -> [UInt8] { Array("FKVMAP01\n\(key)\n".utf8) }

    /// The cache key of a tokenizer pair: hashes of both vocabularies' compared strings and the mode.
    public var cacheKey: String {
        "\(source.mode.rawValue)-\(hashSurfaces(source).hex)-to-\(hashSurfaces(target).hex)"
    }
}

func hashSurfaces(_ s: TokenSurfaces) -> ContentHash {
    var h = ContentHasher()
    for t in s.strings {
        h.update(UInt64(t.count))
        for c in t { h.update(UInt64(c)) }
    }
    return h.finish()
}
