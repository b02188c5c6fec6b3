// llama.cpp's SentencePiece tokenizer for `tokenizer.ggml.model = llama` (llama-vocab.cpp,
// `llm_tokenizer_spm`), offered as `GGUFVocabulary.makeTokenizer(flavor: .llamaCpp)`:
//   1. optional "▁" prefix (add_space_prefix), every " " -> "▁";
//   2. start from UTF-8 characters; repeatedly merge the adjacent pair whose concatenation is a
//      token with the highest score (leftmost on ties), until none is;
//   3. a symbol that is not a token becomes its bytes as "<0xXX>" tokens, else unk.
// Specials (CONTROL, USER_DEFINED, UNKNOWN) are cut out first, longest first.
// No llama.cpp binary is available to the fixtures, so this flavor is checked against the HF
// route (which transformers derives from the same vocabulary) rather than against llama.cpp.

public final class SentencePieceModel: Model {
    let vocab: ByteKeyTable
    let tokens: [[UInt8]]
    let scores: [Float]
    let unkID: Int32?
    let byteTokenIDs: [Int32]

    public var vocabularySize: Int { tokens.count }

    init(tokens: [String], scores: [Float], unkID: Int?) {
        let t = ByteKeyTable(expected: tokens.count)
        for (i, s) in tokens.enumerated() { t.insert(Array(s.utf8), value: Int32(i), replace: false) }
        vocab = t
        self.tokens = tokens.map { Array($0.utf8) }
        self.scores = scores
        self.unkID = unkID.map(Int32.init)
        byteTokenIDs = (0..<256).map { b in t.first(Array(byteToken(UInt8(b)).utf8)) ?? -1 }
    }

    public func token(_ id: Int) -> [UInt8]? { id >= 0 && id < tokens.count ? tokens[id] : nil }
    public func id(_ token: [UInt8]) -> Int? { vocab.first(token).map(Int.init) }

    public func tokenize(_ text: [UInt8], into out: inout [Int32]) {
        if text.isEmpty { return }
        // symbols as byte ranges in a linked list
        var start: [Int] = [], length: [Int] = []
        var i = 0
        while i < text.count { let l = min(utf8Length(lead: text[i]), text.count - i); start.append(i); length.append(l); i += l }
        let n = start.count
        var prev = (0..<n).map { $0 - 1 }, next = (0..<n).map { $0 + 1 }
        next[n - 1] = -1
        // max-heap on (score, -left): store as min-heap of (inverted score bits, left, right length snapshot)
        struct Bigram { let score: Float; let left: Int; let size: Int }
        var heap: [Bigram] = []
        func better(_ a: Bigram, _ b: Bigram) -> Bool { a.score > b.score || (a.score == b.score && a.left < b.left) }
        func push(_ x: Bigram) {
            heap.append(x); var k = heap.count - 1
            while k > 0 { let p = (k - 1) / 2; if better(heap[k], heap[p]) { heap.swapAt(k, p); k = p } else { break } }
        }
        func pop() -> Bigram? {
            guard let top = heap.first else { return nil }
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last; var k = 0
                while true {
                    let l = 2 * k + 1, r = l + 1; var m = k
                    if l < heap.count, better(heap[l], heap[m]) { m = l }
                    if r < heap.count, better(heap[r], heap[m]) { m = r }
                    if m == k { break }
                    heap.swapAt(k, m); k = m
                }
            }
            return top
        }
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let size = length[l] + length[r]
            text.withUnsafeBytes { p in
                if let id = vocab.first(UnsafeRawBufferPointer(rebasing: p[start[l]..<(start[l] + size)])) {
                    push(Bigram(score: scores[Int(id)], left: l, size: size))
                }
            }
        }
        for k in 1..<max(n, 1) { tryAdd(k - 1, k) }
        while let b = pop() {
            let l = b.left, r = next[l]
            guard r >= 0, length[l] > 0, length[r] > 0, length[l] + length[r] == b.size else { continue }
            length[l] += length[r]; length[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            tryAdd(prev[l], l)
            tryAdd(l, next[l])
        }
        var k = 0
        while k >= 0 {
            let piece = Array(text[start[k]..<(start[k] + length[k])])
            if let id = vocab.first(piece) { out.append(id) }
            else {
                for b in piece {
                    let id = byteTokenIDs[Int(b)]
                    if id >= 0 { out.append(id) } else if let u = unkID { out.append(u) }
                }
            }
            k = next[k]
        }
    }
}

/// llama.cpp's text handling around `SentencePieceModel`: " " -> "▁" and an optional leading "▁".
struct SentencePieceNormalizer: Normalizer {
    let addSpacePrefix: Bool
    func normalize(_ text: [UInt8]) -> [UInt8] {
        let t = replaceAll(text, [0x20], Array("▁".utf8))
        return addSpacePrefix ? Array("▁".utf8) + t : t
    }
}

public enum GGUFTokenizerFlavor: Sendable {
    /// What transformers builds from the file (and what `fusekit convert` writes): the default.
    case transformers
    /// llama.cpp's algorithms for `llama` vocabularies (score-driven SentencePiece merging);
    /// `gpt2` vocabularies are the same in both flavors.
    case llamaCpp
}

extension GGUFVocabulary {
    public func makeTokenizer(flavor: GGUFTokenizerFlavor) throws -> Tokenizer {
        guard flavor == .llamaCpp, model == "llama" else { return try makeTokenizer() }
        guard let scores, scores.count == tokens.count else {
            throw TokenizerError.badVocabulary(what: "llama.cpp's SentencePiece tokenizer needs one score per token")
        }
        let types = tokenTypes ?? []
        var added: [AddedToken] = []
        for (i, t) in tokens.enumerated() where i < types.count {
            switch GGUFTokenType(rawValue: types[i]) {
            case .control?, .unknown?: added.append(AddedToken(id: i, content: t, special: true))
            case .userDefined?: added.append(AddedToken(id: i, content: t, special: false))
            default: break
            }
        }
        let model = SentencePieceModel(tokens: tokens, scores: scores, unkID: unkID)
        let decoder = SequenceDecoder(stages: [ReplaceDecoder(pattern: Array("▁".utf8), content: [0x20]), ByteFallbackDecoder(), FuseDecoder()])
        let prefix: [Int32] = (addBOS ?? true) ? [bosID].compactMap { $0.map(Int32.init) } : []
        let suffix: [Int32] = (addEOS ?? false) ? [eosID].compactMap { $0.map(Int32.init) } : []
        // llama.cpp adds the space prefix only before the first fragment of the text
        return Tokenizer(normalizer: nil, preTokenizer: LlamaCppSpacePrefix(enabled: addSpacePrefix ?? true), model: model,
                         postProcessor: WrapPostProcessor(prefix: prefix, suffix: suffix), decoder: decoder, addedTokens: added)
    }
}

/// Replaces spaces with "▁" and, for the fragment at the start of the text, prepends "▁".
struct LlamaCppSpacePrefix: PreTokenizer {
    let enabled: Bool
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.map { Piece(bytes: SentencePieceNormalizer(addSpacePrefix: enabled && $0.atStart).normalize($0.bytes), atStart: $0.atStart) }
    }
}
