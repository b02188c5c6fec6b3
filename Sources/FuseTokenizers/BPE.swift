// BPE model: tokenizers/src/models/bpe/{model.rs,word.rs}. Covers byte-level BPE (GPT-2, SmolLM2,
// Llama 3) and SentencePiece-style BPE with `▁`, byte fallback and unk fusing (Llama 2, Gemma).

/// A BPE vocabulary with ranked merges.
///
/// `bpe(word)` starts from the word's characters (or, for byte-level input, its bytes) and
/// repeatedly merges the adjacent pair with the lowest rank, leftmost first on ties; HF uses a
/// min-heap with lazy deletion over (rank, position) (word.rs `merge_all`), which picks the same
/// pair at every step. Short words use a linear scan, long ones the heap; both are kept and a test
/// checks they agree. Results are cached per pre-token piece.
public final class BPEModel: Model {
    let vocab: ByteKeyTable
    public let idToToken: [[UInt8]?]
    var merges: PairTable
    let unkID: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let prefix: [UInt8]?
    let suffix: [UInt8]?
    let ignoreMerges: Bool
    /// id of "<0xXX>" for each byte, -1 where absent.
    let byteTokenIDs: [Int32]
    /// id of the byte-level character of each byte, -1 where absent.
    let byteLevelIDs: [Int32]
    /// Word cache, cleared when full (it only saves time).
    let cache = ByteKeyTable(expected: 16384, capacityLimit: 10_000)
    /// Words up to this many symbols merge by linear scan, longer ones through the heap.
    static let linearScanLimit = 48

    public var vocabularySize: Int { idToToken.count }

    /// - Parameters: `vocab` pairs (token, id); `merges` pairs of token strings in rank order.
    init(vocab: [([UInt8], Int32)], merges: [([UInt8], [UInt8])], unk: [UInt8]?, fuseUnk: Bool, byteFallback: Bool,
         prefix: [UInt8]?, suffix: [UInt8]?, ignoreMerges: Bool, path: String) throws {
        let table = ByteKeyTable(expected: vocab.count)
        var maxID: Int32 = -1
        for (tok, id) in vocab {
            guard id >= 0 else { throw TokenizerError.badValue(path: path, key: "model.vocab", reason: "negative id \(id)") }
            table.insert(tok, value: id)
            maxID = max(maxID, id)
        }
        var r = [[UInt8]?](repeating: nil, count: Int(maxID) + 1)
        for (tok, id) in vocab { r[Int(id)] = tok }
        self.vocab = table
        self.idToToken = r
        var pairs = PairTable(expected: merges.count)
        let prefixLength = prefix?.count ?? 0
        for (i, (a, b)) in merges.enumerated() {
            guard let ia = table.first(a) else {
                throw TokenizerError.mergeUnknownToken(path: path, index: i, token: String(decoding: a, as: UTF8.self))
            }
            guard let ib = table.first(b) else {
                throw TokenizerError.mergeUnknownToken(path: path, index: i, token: String(decoding: b, as: UTF8.self))
            }
            let merged = a + (b.count >= prefixLength && prefixLength > 0 && b.starts(with: prefix!) ? Array(b[prefixLength...]) : b)
            guard let im = table.first(merged) else {
                throw TokenizerError.mergeResultMissing(path: path, index: i, merged: String(decoding: merged, as: UTF8.self))
            }
            pairs.insert(left: ia, right: ib, rank: Int32(i), merged: im)
        }
        self.merges = pairs
        if let unk {
            guard let id = table.first(unk) else {
                throw TokenizerError.unknownToken(path: path, key: "model.unk_token", token: String(decoding: unk, as: UTF8.self))
            }
            unkID = id
        } else { unkID = nil }
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.prefix = prefix?.isEmpty == true ? nil : prefix
        self.suffix = suffix?.isEmpty == true ? nil : suffix
        self.ignoreMerges = ignoreMerges
        byteTokenIDs = (0..<256).map { b in table.first(Array(byteToken(UInt8(b)).utf8)) ?? -1 }
        byteLevelIDs = (0..<256).map { b in table.first(ByteLevel.byteToUTF8[b]) ?? -1 }
    }

    public func token(_ id: Int) -> [UInt8]? { id >= 0 && id < idToToken.count ? idToToken[id] : nil }
    public func id(_ token: [UInt8]) -> Int? { vocab.first(token).map(Int.init) }

    /// True when raw bytes can stand for byte-level characters: no prefix/suffix decorates symbols
    /// and whole-word lookups are off. A word with a byte whose character is not in the vocabulary
    /// still takes the character path (unk and byte fallback as HF does them).
    var acceptsRawBytes: Bool { prefix == nil && suffix == nil && !ignoreMerges }

    public func tokenize(_ word: [UInt8], into out: inout [Int32]) {
        word.withUnsafeBufferPointer { tokenize($0, byteLevel: false, into: &out) }
    }

    /// Tokenizes one piece. With `byteLevel`, `word` is raw bytes standing for their byte-level
    /// characters (the ByteLevel pre-tokenizer's mapping is folded into the initial symbols).
    func tokenize(_ word: UnsafeBufferPointer<UInt8>, byteLevel: Bool, into out: inout [Int32]) {
        if word.isEmpty { return }
        let key = UnsafeRawBufferPointer(word)
        if cache.appendValues(key, to: &out) { return }
        var symbols: [Int32] = []
        var rawBytes = byteLevel && acceptsRawBytes
        if rawBytes {
            symbols.reserveCapacity(word.count)
            for b in word {
                let id = byteLevelIDs[Int(b)]
                if id < 0 { rawBytes = false; symbols.removeAll(); break }
                symbols.append(id)
            }
        }
        if !rawBytes {
            let text = byteLevel ? ByteLevel.encode(Array(word)) : Array(word)
            if ignoreMerges, let id = vocab.first(text) {
                out.append(id)
                return
            }
            symbols = initialSymbols(text)
        }
        mergeAll(&symbols)
        symbols.withUnsafeBufferPointer { cache.insert(key, values: $0) }
        out.append(contentsOf: symbols)
    }

    /// One symbol per character, with unk and byte fallback as `BPE::merge_word` does them
    /// (including its order: a pending unk is flushed only before a known character).
    func initialSymbols(_ text: [UInt8]) -> [Int32] {
        var symbols: [Int32] = []
        var pendingUnk = false
        var i = 0
        let n = text.count
        var buffer: [UInt8] = []
        while i < n {
            let l = utf8Length(lead: text[i])
            let end = min(i + l, n)
            buffer.removeAll(keepingCapacity: true)
            if i > 0, let prefix { buffer.append(contentsOf: prefix) }
            buffer.append(contentsOf: text[i..<end])
            if end == n, let suffix { buffer.append(contentsOf: suffix) }
            if let id = vocab.first(buffer) {
                if pendingUnk, let u = unkID { symbols.append(u); pendingUnk = false }
                symbols.append(id)
            } else {
                var handled = false
                if byteFallback {
                    let ids = buffer.map { byteTokenIDs[Int($0)] }
                    if !ids.contains(-1) { symbols.append(contentsOf: ids); handled = true }
                }
                if !handled, let u = unkID {
                    if pendingUnk && !fuseUnk { symbols.append(u) }
                    pendingUnk = true
                }
            }
            i = end
        }
        if pendingUnk, let u = unkID { symbols.append(u) }
        return symbols
    }

    func mergeAll(_ s: inout [Int32]) {
        if s.count < 2 { return }
        if s.count <= BPEModel.linearScanLimit { mergeLinear(&s) } else { mergeHeap(&s) }
    }

    /// Reference merge loop: scan for the lowest-ranked adjacent pair, leftmost on ties.
    func mergeLinear(_ s: inout [Int32]) {
        var ranks = [Int32](repeating: .max, count: s.count - 1)
        var results = [Int32](repeating: -1, count: s.count - 1)
        for k in 0..<(s.count - 1) {
            if let m = merges.lookup(s[k], s[k + 1]) { ranks[k] = m.rank; results[k] = m.merged }
        }
        while !ranks.isEmpty {
            var best = 0
            var bestRank = ranks[0]
            for k in 1..<ranks.count where ranks[k] < bestRank { best = k; bestRank = ranks[k] }
            if bestRank == .max { break }
            s[best] = results[best]
            s.remove(at: best + 1)
            ranks.remove(at: best); results.remove(at: best)
            if best > 0 {
                if let m = merges.lookup(s[best - 1], s[best]) { ranks[best - 1] = m.rank; results[best - 1] = m.merged }
                else { ranks[best - 1] = .max }
            }
            if best < ranks.count {
                if let m = merges.lookup(s[best], s[best + 1]) { ranks[best] = m.rank; results[best] = m.merged }
                else { ranks[best] = .max }
            }
        }
    }

    /// word.rs `merge_all`: a min-heap of (rank, position) over a linked list of symbols.
    func mergeHeap(_ s: inout [Int32]) {
        let n = s.count
        var next = (0..<n).map { $0 + 1 }
        var prev = (0..<n).map { $0 - 1 }
        next[n - 1] = -1
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        for k in 0..<(n - 1) {
            if let m = merges.lookup(s[k], s[k + 1]) { heap.push(UInt64(UInt32(m.rank)) << 32 | UInt64(k)) }
        }
        while let top = heap.pop() {
            let rank = Int32(top >> 32), pos = Int(top & 0xFFFF_FFFF)
            guard alive[pos], next[pos] >= 0 else { continue }
            let right = next[pos]
            guard let m = merges.lookup(s[pos], s[right]), m.rank == rank else { continue }
            s[pos] = m.merged
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[next[right]] = pos }
            if prev[pos] >= 0, let m2 = merges.lookup(s[prev[pos]], s[pos]) {
                heap.push(UInt64(UInt32(m2.rank)) << 32 | UInt64(prev[pos]))
            }
            if next[pos] >= 0, let m2 = merges.lookup(s[pos], s[next[pos]]) {
                heap.push(UInt64(UInt32(m2.rank)) << 32 | UInt64(pos))
            }
        }
        var out: [Int32] = []
        out.reserveCapacity(n)
        var k = 0
        while k >= 0 { out.append(s[k]); k = next[k] }
        s = out
    }
}

/// The text of a byte-fallback token, "<0x0A>" (two uppercase hex digits).
func byteToken(_ b: UInt8) -> String {
    let hex = Array("0123456789ABCDEF")
    return "<0x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)]) + ">"
}

/// Binary min-heap of UInt64 keys.
struct MinHeap {
    private var a: [UInt64] = []
    mutating func push(_ x: UInt64) {
        a.append(x)
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if a[p] <= a[i] { break }
            a.swapAt(p, i); i = p
        }
    }
    mutating func pop() -> UInt64? {
        guard let first = a.first else { return nil }
        let last = a.removeLast()
        if !a.isEmpty {
            a[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < a.count, a[l] < a[m] { m = l }
                if r < a.count, a[r] < a[m] { m = r }
                if m == i { break }
                a.swapAt(m, i); i = m
            }
        }
        return first
    }
}
