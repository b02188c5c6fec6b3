// The model stage: turns one pre-tokenized piece into ids. tokenizers/src/models/mod.rs.
import FuseIO

public protocol Model: AnyObject {
    /// One more than the largest id the model knows.
    var vocabularySize: Int { get }
    func token(_ id: Int) -> [UInt8]?
    func id(_ token: [UInt8]) -> Int?
    /// Appends the ids of one piece.
    func tokenize(_ word: [UInt8], into out: inout [Int32])
}

/// The JSON `type` names of the models FuseKit implements.
enum ModelType: String { case bpe = "BPE", wordPiece = "WordPiece", unigram = "Unigram" }

func makeModel(_ json: JSON, path: String) throws -> Model {
    let c = try Config(json, path: path, key: "model")
    // Old files omit `type`; tokenizers then guesses from the keys. FuseKit guesses only the
    // unambiguous case (vocab object + merges = BPE) and otherwise asks for the type.
    let typeName: String
    if let t = try c.optionalString("type") { typeName = t }
    else if c.has("merges") { typeName = "BPE" }
    else { throw TokenizerError.missingKey(path: path, key: "model.type") }
    guard let type = ModelType(rawValue: typeName) else { throw TokenizerError.unknownType(path: path, key: "model.type", type: typeName) }
    switch type {
    case .bpe:
        let vocab = try c.object("vocab").map { (k, v) -> ([UInt8], Int32) in
            guard let i = v.int, i >= 0, i <= Int(Int32.max) else {
                throw TokenizerError.badValue(path: path, key: "model.vocab.\(k)", reason: "expected a non-negative integer id")
            }
            return (Array(k.utf8), Int32(i))
        }
        var merges: [([UInt8], [UInt8])] = []
        if c.has("merges") {
            for (i, m) in try c.array("merges").enumerated() {
                if let s = m.string {
                    // "left right": tokens never contain the separating space (byte-level and ▁ vocabularies)
                    let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw TokenizerError.badValue(path: path, key: "model.merges[\(i)]", reason: "expected \"left right\", got \(s.debugDescription)") }
                    merges.append((Array(parts[0].utf8), Array(parts[1].utf8)))
                } else if let a = m.array, a.count == 2, let l = a[0].string, let r = a[1].string {
                    merges.append((Array(l.utf8), Array(r.utf8)))
                } else {
                    throw TokenizerError.badValue(path: path, key: "model.merges[\(i)]", reason: "expected \"left right\" or [left, right]")
                }
            }
        }
        if let d = c.json["dropout"], let p = d.double, p > 0 {
            throw TokenizerError.badValue(path: path, key: "model.dropout", reason: "BPE dropout \(p) is random; FuseKit tokenizes deterministically")
        }
        return try BPEModel(vocab: vocab, merges: merges, unk: try c.optionalString("unk_token").map { Array($0.utf8) },
                            fuseUnk: try c.bool("fuse_unk", default: false), byteFallback: try c.bool("byte_fallback", default: false),
                            prefix: try c.optionalString("continuing_subword_prefix").map { Array($0.utf8) },
                            suffix: try c.optionalString("end_of_word_suffix").map { Array($0.utf8) },
                            ignoreMerges: try c.bool("ignore_merges", default: false), path: path)
    case .wordPiece:
        let vocab = try c.object("vocab").map { (k, v) -> ([UInt8], Int32) in
            guard let i = v.int, i >= 0, i <= Int(Int32.max) else {
                throw TokenizerError.badValue(path: path, key: "model.vocab.\(k)", reason: "expected a non-negative integer id")
            }
            return (Array(k.utf8), Int32(i))
        }
        return try WordPieceModel(vocab: vocab, unk: Array(try c.string("unk_token").utf8),
                                  prefix: Array((try c.optionalString("continuing_subword_prefix") ?? "##").utf8),
                                  maxInputCharsPerWord: try c.optionalInt("max_input_chars_per_word") ?? 100, path: path)
    case .unigram:
        var vocab: [([UInt8], Double)] = []
        for (i, e) in try c.array("vocab").enumerated() {
            guard let a = e.array, a.count == 2, let t = a[0].string, case let .number(text) = a[1], let s = serdeJSONDouble(text) else {
                throw TokenizerError.badValue(path: path, key: "model.vocab[\(i)]", reason: "expected [token, score]")
            }
            vocab.append((Array(t.utf8), s))
        }
        return try UnigramModel(vocab: vocab, unkID: try c.optionalInt("unk_id"), byteFallback: try c.bool("byte_fallback", default: false), path: path)
    }
}

/// models/wordpiece/mod.rs: greedy longest-match-first; a word with an unmatchable rest, or longer
/// than `max_input_chars_per_word` characters, becomes the single unk token.
public final class WordPieceModel: Model {
    let vocab: ByteKeyTable
    let idToToken: [[UInt8]?]
    let unkID: Int32
    let prefix: [UInt8]
    let maxInputCharsPerWord: Int

    public var vocabularySize: Int { idToToken.count }

    init(vocab: [([UInt8], Int32)], unk: [UInt8], prefix: [UInt8], maxInputCharsPerWord: Int, path: String) throws {
        let t = ByteKeyTable(expected: vocab.count)
        var maxID: Int32 = -1
        for (k, v) in vocab { t.insert(k, value: v); maxID = max(maxID, v) }
        var r = [[UInt8]?](repeating: nil, count: Int(maxID) + 1)
        for (k, v) in vocab { r[Int(v)] = k }
        guard let u = t.first(unk) else { throw TokenizerError.unknownToken(path: path, key: "model.unk_token", token: String(decoding: unk, as: UTF8.self)) }
        self.vocab = t; idToToken = r; unkID = u; self.prefix = prefix; self.maxInputCharsPerWord = maxInputCharsPerWord
    }

    public func token(_ id: Int) -> [UInt8]? { id >= 0 && id < idToToken.count ? idToToken[id] : nil }
    public func id(_ token: [UInt8]) -> Int? { vocab.first(token).map(Int.init) }

    public func tokenize(_ word: [UInt8], into out: inout [Int32]) {
        if word.isEmpty { return }
        let starts = charStarts(word)
        if starts.count - 1 > maxInputCharsPerWord { out.append(unkID); return }
        var ids: [Int32] = []
        var startChar = 0
        var buffer: [UInt8] = []
        while startChar < starts.count - 1 {
            var endChar = starts.count - 1
            var found: Int32? = nil
            while startChar < endChar {
                buffer.removeAll(keepingCapacity: true)
                if startChar > 0 { buffer.append(contentsOf: prefix) }
                buffer.append(contentsOf: word[starts[startChar]..<starts[endChar]])
                if let id = vocab.first(buffer) { found = id; break }
                endChar -= 1
            }
            guard let id = found else { out.append(unkID); return }
            ids.append(id)
            startChar = endChar
        }
        out.append(contentsOf: ids)
    }
}

/// Byte offsets of each character start, plus the end.
func charStarts(_ bytes: [UInt8]) -> [Int] {
    var s: [Int] = []
    s.reserveCapacity(bytes.count + 1)
    var i = 0
    while i < bytes.count { s.append(i); i += utf8Length(lead: bytes[i]) }
    s.append(bytes.count)
    return s
}

/// models/unigram/model.rs `encode_optimized`: Viterbi over all vocabulary matches (best total
/// score, the first found kept on ties); a character no token covers costs `min score - 10` as
/// unk, and consecutive unks fuse.
public final class UnigramModel: Model {
    let vocab: ByteKeyTable
    let tokens: [[UInt8]]
    let scores: [Double]
    let unkID: Int?
    let byteFallback: Bool
    let minScore: Double
    let maxTokenBytes: Int
    static let unkPenalty = 10.0

    public var vocabularySize: Int { tokens.count }

    init(vocab: [([UInt8], Double)], unkID: Int?, byteFallback: Bool, path: String) throws {
        let t = ByteKeyTable(expected: vocab.count)
        for (i, (k, _)) in vocab.enumerated() { t.insert(k, value: Int32(i), replace: false) }
        if let u = unkID, !(0..<vocab.count).contains(u) {
            throw TokenizerError.badValue(path: path, key: "model.unk_id", reason: "\(u) is outside the vocabulary of \(vocab.count)")
        }
        self.vocab = t; tokens = vocab.map { $0.0 }; scores = vocab.map { $0.1 }
        self.unkID = unkID; self.byteFallback = byteFallback
        minScore = scores.min() ?? 0
        maxTokenBytes = tokens.map(\.count).max() ?? 0
    }

    public func token(_ id: Int) -> [UInt8]? { id >= 0 && id < tokens.count ? tokens[id] : nil }
    public func id(_ token: [UInt8]) -> Int? { vocab.first(token).map(Int.init) }

    public func tokenize(_ word: [UInt8], into out: inout [Int32]) {
        let n = word.count
        if n == 0 { return }
        var bestScore = [Double](repeating: 0, count: n + 1)
        var startsAt = [Int](repeating: -1, count: n + 1)
        var bestID = [Int](repeating: 0, count: n + 1)
        let unkScore = minScore - UnigramModel.unkPenalty
        word.withUnsafeBytes { p in
            var s = 0
            while s < n {
                let base = bestScore[s]
                let charLength = utf8Length(lead: word[s])
                var hasSingle = false
                var e = s + 1
                // common-prefix search: every vocabulary entry that starts here
                while e <= min(n, s + maxTokenBytes) {
                    if let id = vocab.first(UnsafeRawBufferPointer(rebasing: p[s..<e])) {
                        let cand = base + scores[Int(id)]
                        if startsAt[e] < 0 || cand > bestScore[e] { bestScore[e] = cand; startsAt[e] = s; bestID[e] = Int(id) }
                        if e - s == charLength { hasSingle = true }
                    }
                    e += 1
                }
                if !hasSingle {
                    let t = s + charLength
                    let cand = base + unkScore
                    if startsAt[t] < 0 || cand > bestScore[t] { bestScore[t] = cand; startsAt[t] = s; bestID[t] = unkID ?? -1 }
                }
                s += charLength
            }
        }
        // backtrack; consecutive unk pieces fuse into one
        var pieces: [(Int, Int, Bool)] = []
        var e = n
        while e > 0 {
            let s = startsAt[e]
            let isUnk = unkID != nil && bestID[e] == unkID!
            if isUnk, let last = pieces.last, last.2 { pieces[pieces.count - 1].0 = s } else { pieces.append((s, e, isUnk)) }
            e = s
        }
        for (s, e, isUnk) in pieces.reversed() {
            let text = Array(word[s..<e])
            if !isUnk, let id = vocab.first(text) { out.append(id); continue }
            if let id = vocab.first(text) { out.append(id); continue }
            if byteFallback {
                let ids = text.map { vocab.first(Array(byteToken($0).utf8)) }
                if !ids.contains(nil) { out.append(contentsOf: ids.map { $0! }); continue }
            }
            if let u = unkID { out.append(Int32(u)) }
        }
    }
}

/// Parses a JSON number the way serde_json does by default (its "best-effort" float parsing, without
/// the `float_roundtrip` feature): the decimal digits are gathered into a u64 significand (digits
/// past its range are dropped), converted to f64, then multiplied or divided once by a power of
/// ten. That can differ from the correctly rounded value by one ulp, and Unigram's Viterbi ties
/// depend on those last bits, so HF tokenizers' scores are reproduced bit for bit.
func serdeJSONDouble(_ text: String) -> Double? {
    let b = Array(text.utf8)
    var i = 0
    var positive = true
    if i < b.count, b[i] == UInt8(ascii: "-") { positive = false; i += 1 }
    func isDigit(_ k: Int) -> Bool { k < b.count && b[k] >= 0x30 && b[k] <= 0x39 }
    func overflows(_ s: UInt64, _ d: UInt64) -> Bool { s >= UInt64.max / 10 && (s > UInt64.max / 10 || d > UInt64.max % 10) }
    guard isDigit(i) else { return nil }
    var significand: UInt64 = 0
    var exponent = 0
    if b[i] == 0x30 { i += 1 } else {
        while isDigit(i) {
            let d = UInt64(b[i] - 0x30)
            if overflows(significand, d) { exponent += 1 } else { significand = significand * 10 + d }
            i += 1
        }
    }
    if i < b.count, b[i] == UInt8(ascii: ".") {
        i += 1
        var overflowed = exponent > 0
        while isDigit(i) {
            let d = UInt64(b[i] - 0x30)
            if !overflowed && overflows(significand, d) { overflowed = true }
            if !overflowed { significand = significand * 10 + d; exponent -= 1 }
            i += 1
        }
    }
    if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
        i += 1
        var positiveExponent = true
        if i < b.count, b[i] == UInt8(ascii: "+") { i += 1 } else if i < b.count, b[i] == UInt8(ascii: "-") { positiveExponent = false; i += 1 }
        var e = 0
        while isDigit(i) { e = min(e * 10 + Int(b[i] - 0x30), 1_000_000); i += 1 }
        exponent += positiveExponent ? e : -e
    }
    guard i == b.count else { return nil }
    var f = Double(significand)
    while true {
        let a = abs(exponent)
        if a < powersOfTen.count {
            if exponent >= 0 { f *= powersOfTen[a] } else { f /= powersOfTen[a] }
            break
        }
        if f == 0 { break }
        if exponent >= 0 { return nil }
        f /= 1e308
        exponent += 308
    }
    return positive ? f : -f
}

/// 1e0 ... 1e308, each the correctly rounded double (serde_json's POW10 table).
let powersOfTen: [Double] = (0...308).map { Double("1e\($0)")! }
