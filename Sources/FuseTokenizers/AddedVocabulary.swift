// Added and special tokens: tokenizers/src/tokenizer/added_vocabulary.rs. They are cut out of the
// text before the normalizer (tokens with `normalized: false`, matched on the raw text) or right
// after it (`normalized: true`, matched on the normalized text), leftmost-longest, and each becomes
// its id whole. `single_word` rejects a match glued to word characters; `lstrip`/`rstrip` swallow
// the whitespace beside the token.

public struct AddedToken: Equatable, Sendable {
    public var id: Int
    public var content: String
    public var special: Bool
    public var lstrip = false
    public var rstrip = false
    public var singleWord = false
    public var normalized = false
    public init(id: Int, content: String, special: Bool, lstrip: Bool = false, rstrip: Bool = false,
                singleWord: Bool = false, normalized: Bool = false) {
        self.id = id; self.content = content; self.special = special
        self.lstrip = lstrip; self.rstrip = rstrip; self.singleWord = singleWord; self.normalized = normalized
    }
}

/// A byte trie for leftmost-longest matching of many strings.
struct MatchTrie {
    private var transitions: [Int: Int32] = [:]   // node << 8 | byte -> child
    private var terminal: [Int32] = [-1]           // node -> token index or -1
    private var firstBytes = [Bool](repeating: false, count: 256)
    var isEmpty: Bool { terminal.count == 1 }

    mutating func insert(_ key: [UInt8], value: Int32) {
        guard let f = key.first else { return }
        firstBytes[Int(f)] = true
        var node = 0
        for b in key {
            let k = node << 8 | Int(b)
            if let c = transitions[k] { node = Int(c) } else {
                terminal.append(-1)
                let c = terminal.count - 1
                transitions[k] = Int32(c)
                node = c
            }
        }
        terminal[node] = value
    }

    /// Non-overlapping leftmost-longest matches: (start, end, value).
    func matches(_ text: [UInt8]) -> [(Int, Int, Int32)] {
        var out: [(Int, Int, Int32)] = []
        if isEmpty { return out }
        var i = 0
        let n = text.count
        while i < n {
            if !firstBytes[Int(text[i])] { i += 1; continue }
            var node = 0, k = i
            var best: (Int, Int32)? = nil
            while k < n, let c = transitions[node << 8 | Int(text[k])] {
                node = Int(c); k += 1
                if terminal[node] >= 0 { best = (k, terminal[node]) }
            }
            if let (end, v) = best { out.append((i, end, v)); i = end } else { i += 1 }
        }
        return out
    }
}

/// One span of text after added-token extraction: either an added token's id or text to tokenize.
enum Segment {
    case token(Int32)
    case text(Piece)
}

final class AddedVocabulary {
    let tokens: [AddedToken]
    private var raw = MatchTrie()
    private var normalizedTrie = MatchTrie()
    /// id -> index in `tokens`.
    let byID: [Int: Int]
    /// The contents of the special tokens (`special_tokens_set`).
    let specialContents: Set<[UInt8]>
    /// id -> the token's text as decoding shows it (the normalized form for normalized tokens).
    let decodedText: [Int: [UInt8]]

    init(tokens: [AddedToken], normalizer: Normalizer?) {
        self.tokens = tokens
        var byID: [Int: Int] = [:]
        var decoded: [Int: [UInt8]] = [:]
        for (i, t) in tokens.enumerated() {
            byID[t.id] = i
            let content = Array(t.content.utf8)
            if t.normalized {
                let n = normalizer?.normalize(content) ?? content
                normalizedTrie.insert(n, value: Int32(i))
                decoded[t.id] = n
            } else {
                raw.insert(content, value: Int32(i))
                decoded[t.id] = content
            }
        }
        self.byID = byID
        specialContents = Set(tokens.filter(\.special).map { Array($0.content.utf8) })
        decodedText = decoded
    }

    func isSpecial(_ id: Int) -> Bool { byID[id].map { tokens[$0].special } ?? false }

    /// Whether `text` is the content of a special token. HF's decode skips by text
    /// (`is_special_token(&token)`), so a model id spelled like one ("<unk>" at id 0 of a Unigram
    /// vocabulary that also has "<unk>" as a special added token) is skipped too.
    func isSpecialText(_ text: [UInt8]) -> Bool { specialContents.contains(text) }

    /// Cuts `piece` at the added tokens of one trie, applying each token's flags.
    private func split(_ piece: Piece, _ trie: MatchTrie) -> [Segment] {
        let text = piece.bytes
        if trie.isEmpty { return text.isEmpty ? [] : [.text(piece)] }
        var out: [Segment] = []
        var startOffset = 0
        for (s0, e0, v) in trie.matches(text) {
            let t = tokens[Int(v)]
            var start = s0, stop = e0
            if t.singleWord {
                let startSpace = start == 0 || !endsWithWordChar(text, start)
                let stopSpace = stop == text.count || !startsWithWordChar(text, stop)
                if !startSpace || !stopSpace { continue }
            }
            if t.lstrip { start = max(leadingWhitespaceStart(text, start), startOffset) }
            if t.rstrip { stop = trailingWhitespaceEnd(text, stop) }
            if startOffset < start {
                out.append(.text(Piece(bytes: Array(text[startOffset..<start]), atStart: piece.atStart && startOffset == 0)))
            }
            out.append(.token(Int32(t.id)))
            startOffset = stop
        }
        if startOffset < text.count {
            out.append(.text(Piece(bytes: Array(text[startOffset...]), atStart: piece.atStart && startOffset == 0)))
        }
        return out
    }

    /// `extract_and_normalize`: raw-text tokens, then the normalizer on what is left, then
    /// normalized-text tokens.
    func extractAndNormalize(_ text: [UInt8], normalizer: Normalizer?) -> [Segment] {
        var out: [Segment] = []
        for seg in split(Piece(bytes: text, atStart: true), raw) {
            guard case let .text(p) = seg else { out.append(seg); continue }
            let n = normalizer.map { Piece(bytes: $0.normalize(p.bytes), atStart: p.atStart) } ?? p
            if n.bytes.isEmpty { continue }
            out.append(contentsOf: split(n, normalizedTrie))
        }
        return out
    }
}

// MARK: - the regexes of added_vocabulary.rs: \w$, ^\w, \s*$, ^\s*

private func lastScalar(_ t: [UInt8], before end: Int) -> (UInt32, Int)? {
    guard end > 0 else { return nil }
    var s = end - 1
    while s > 0, t[s] & 0xC0 == 0x80 { s -= 1 }
    return t.withUnsafeBufferPointer { (decodeScalar($0, s).0, s) }
}

func endsWithWordChar(_ t: [UInt8], _ end: Int) -> Bool {
    guard let (v, _) = lastScalar(t, before: end) else { return false }
    return isWordChar(v)
}

func startsWithWordChar(_ t: [UInt8], _ start: Int) -> Bool {
    guard start < t.count else { return false }
    return t.withUnsafeBufferPointer { isWordChar(decodeScalar($0, start).0) }
}

/// Start of the whitespace run ending at `end`.
func leadingWhitespaceStart(_ t: [UInt8], _ end: Int) -> Int {
    var e = end
    while let (v, s) = lastScalar(t, before: e), isWhitespace(v) { e = s }
    return e
}

/// End of the whitespace run starting at `start`.
func trailingWhitespaceEnd(_ t: [UInt8], _ start: Int) -> Int {
    var i = start
    while i < t.count {
        let (v, l) = t.withUnsafeBufferPointer { decodeScalar($0, i) }
        if !isWhitespace(v) { break }
        i += l
    }
    return i
}
