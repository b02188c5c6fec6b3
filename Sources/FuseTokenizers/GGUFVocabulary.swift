// Vocabularies stored in GGUF metadata (`tokenizer.ggml.*`) and the tokenizer they describe.
//
// The GGUF reader (FuseIO) fills a `GGUFVocabulary`; this file turns it into the same tokenizer that
// transformers builds from the file (transformers 5.23 integrations/gguf/gguf_tokenizer_mapping.py),
// so the GGUF route and the tokenizer.json that `fusekit convert` writes give identical ids:
//
//   gpt2   byte-level BPE; tokens outside the byte alphabet are respelled in it; merges from the
//          file (or derived from the vocabulary); pre `llama-bpe`/`llama3`/... -> Llama 3 split.
//   llama  SentencePiece BPE with byte fallback; merges derived from the vocabulary: every split of
//          a token into two tokens, ordered by the token's score (Gemma: by its position in the file,
//          after respelling all-space tokens as `▁`s).
// Tokens of type CONTROL become special added tokens, USER_DEFINED plain added tokens, both matched
// whole before the model (llama.cpp does the same).
import FuseIO

/// Token types of `tokenizer.ggml.token_type` (llama.cpp `llama_token_type`).
public enum GGUFTokenType: Int32 {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

public struct GGUFVocabulary: Equatable, Sendable {
    /// `general.architecture`; selects Gemma's conversion for `llama` vocabularies.
    public var architecture: String?
    /// `tokenizer.ggml.model`: "gpt2" or "llama".
    public var model: String
    /// `tokenizer.ggml.pre`.
    public var pre: String?
    public var tokens: [String]
    public var scores: [Float]?
    public var tokenTypes: [Int32]?
    /// "left right" strings, in rank order.
    public var merges: [String]?
    public var bosID: Int?, eosID: Int?, unkID: Int?, padID: Int?
    public var addBOS: Bool?, addEOS: Bool?
    public var addSpacePrefix: Bool?
    public var chatTemplate: String?

    public init(architecture: String? = nil, model: String, pre: String? = nil, tokens: [String], scores: [Float]? = nil,
                tokenTypes: [Int32]? = nil, merges: [String]? = nil, bosID: Int? = nil, eosID: Int? = nil, unkID: Int? = nil,
                padID: Int? = nil, addBOS: Bool? = nil, addEOS: Bool? = nil, addSpacePrefix: Bool? = nil, chatTemplate: String? = nil) {
        self.architecture = architecture; self.model = model; self.pre = pre; self.tokens = tokens; self.scores = scores
        self.tokenTypes = tokenTypes; self.merges = merges; self.bosID = bosID; self.eosID = eosID; self.unkID = unkID
        self.padID = padID; self.addBOS = addBOS; self.addEOS = addEOS; self.addSpacePrefix = addSpacePrefix; self.chatTemplate = chatTemplate
    }

    /// The tokenizer this vocabulary describes (the one transformers builds from the GGUF file).
    public func makeTokenizer() throws -> Tokenizer { try HFConversion(self).makeTokenizer() }
}

// MARK: - JSON dump (what Tools/fixtures/tokenizer_fixtures.py writes from gguf-py)

extension GGUFVocabulary {
    /// Reads the dump format: an object with this struct's field names.
    public init(json: JSON, path: String = "vocab.json") throws {
        let c = try Config(json, path: path, key: "")
        func ints(_ k: String) throws -> Int? { try c.optionalInt(k) }
        let tokens = try c.array("tokens").enumerated().map { i, t -> String in
            guard let s = t.string else { throw TokenizerError.badValue(path: path, key: "tokens[\(i)]", reason: "expected a string") }
            return s
        }
        var scores: [Float]? = nil
        if c.has("scores") { scores = try c.array("scores").map { Float($0.double ?? .nan) } }
        var types: [Int32]? = nil
        if c.has("tokenTypes") { types = try c.array("tokenTypes").map { Int32($0.int ?? 0) } }
        var merges: [String]? = nil
        if c.has("merges") { merges = try c.array("merges").map { $0.string ?? "" } }
        self.init(architecture: try c.optionalString("architecture"), model: try c.string("model"), pre: try c.optionalString("pre"),
                  tokens: tokens, scores: scores, tokenTypes: types, merges: merges, bosID: try ints("bosID"), eosID: try ints("eosID"),
                  unkID: try ints("unkID"), padID: try ints("padID"), addBOS: try c.optionalBool("addBOS"), addEOS: try c.optionalBool("addEOS"),
                  addSpacePrefix: try c.optionalBool("addSpacePrefix"), chatTemplate: try c.optionalString("chatTemplate"))
    }

    public init(contentsOf path: String) throws {
        let m: MappedFile
        do { m = try MappedFile(path: path) } catch { throw TokenizerError.unreadable(path: path, reason: "\(error)") }
        let bytes = try Array(m.bytes(offset: 0, count: m.size, what: "vocabulary"))
        let json: JSON
        do { json = try JSON.parse(bytes) } catch let e as JSON.ParseError {
            throw TokenizerError.unreadable(path: path, reason: "invalid JSON at byte \(e.offset): \(e.message)")
        }
        try self.init(json: json, path: path)
    }
}

// MARK: - the conversion

/// The pieces of the HF tokenizer a GGUF vocabulary converts to; `makeTokenizer` builds it in
/// memory and `TokenizerFiles` writes it as tokenizer.json.
struct HFConversion {
    enum Kind { case byteLevel(llama3Split: Bool), sentencePiece, gemma }
    let kind: Kind
    /// (token text, id) in the order of the file (after respelling).
    let vocab: [(String, Int)]
    let merges: [(String, String)]
    let added: [AddedToken]
    let unkToken: String?
    let bosToken: String?, eosToken: String?, padToken: String?, unkConfigToken: String?
    let addBOS: Bool, addEOS: Bool
    let tokenizerClass: String
    let chatTemplate: String?

    /// llama.cpp pre-tokenizer names transformers maps to the Llama 3 split regex.
    static let llama3Names: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                                           "jina-v5-nano", "dbrx", "smaug-bpe"]
    /// Names for which transformers keeps GPT-2's byte-level split (and llama.cpp's matches up to
    /// its extra digit split for smollm, which transformers' conversion does not apply).
    static let gpt2Names: Set<String> = ["default", "gpt-2", "gpt2", "smollm"]

    init(_ v: GGUFVocabulary) throws {
        let n = v.tokens.count
        guard n > 0 else { throw TokenizerError.badVocabulary(what: "tokenizer.ggml.tokens is empty") }
        if let t = v.tokenTypes, t.count != n {
            throw TokenizerError.badVocabulary(what: "tokenizer.ggml.token_type has \(t.count) entries for \(n) tokens")
        }
        if let s = v.scores, s.count != n {
            throw TokenizerError.badVocabulary(what: "tokenizer.ggml.scores has \(s.count) entries for \(n) tokens")
        }
        for (name, id) in [("bos", v.bosID), ("eos", v.eosID), ("unknown", v.unkID), ("padding", v.padID)] {
            if let id, !(0..<n).contains(id) {
                throw TokenizerError.badVocabulary(what: "tokenizer.ggml.\(name)_token_id \(id) is outside the \(n) tokens")
            }
        }
        let types = v.tokenTypes ?? [Int32](repeating: GGUFTokenType.normal.rawValue, count: n)
        let configToken = { (id: Int?) -> String? in id.map { v.tokens[$0] } }
        bosToken = configToken(v.bosID); eosToken = configToken(v.eosID); padToken = configToken(v.padID); unkConfigToken = configToken(v.unkID)
        chatTemplate = v.chatTemplate
        addEOS = v.addEOS ?? false

        var spelled = v.tokens
        var defaults: [String] = []      // the tokenizer class's default special tokens, in transformers' order
        switch v.model {
        case "gpt2":
            let pre = v.pre ?? "default"
            if HFConversion.llama3Names.contains(pre) { kind = .byteLevel(llama3Split: true) }
            else if HFConversion.gpt2Names.contains(pre) { kind = .byteLevel(llama3Split: false) }
            else {
                throw TokenizerError.unsupportedVocabulary(what: "byte-level pre-tokenizer '\(pre)' is not supported (supported: \((HFConversion.gpt2Names.union(HFConversion.llama3Names)).sorted().joined(separator: ", "))); its split regex would give different ids")
            }
            spelled = v.tokens.map { ByteLevel.isInAlphabet($0) ? $0 : String(decoding: ByteLevel.encode(Array($0.utf8)), as: UTF8.self) }
            defaults = ["<|endoftext|>", "<|endoftext|>", "<|endoftext|>"]   // GPT2Tokenizer: bos, eos, unk
            unkToken = nil
            tokenizerClass = "TokenizersBackend"
            addBOS = v.addBOS ?? false
        case "llama":
            if ["gemma", "gemma2", "gemma3"].contains(v.architecture ?? "") {
                kind = .gemma
                spelled = v.tokens.map { t in
                    t.unicodeScalars.contains(" ") && t.unicodeScalars.allSatisfy { HFConversion.pythonSpaces.contains($0.value) } ? String(repeating: "▁", count: t.unicodeScalars.count) : t
                }
                defaults = ["<bos>", "<eos>", "<unk>", "<pad>", "<mask>"]   // GemmaTokenizer: bos, eos, unk, pad, mask
                unkToken = "<unk>"
                tokenizerClass = "GemmaTokenizer"
            } else {
                kind = .sentencePiece
                defaults = ["<s>", "</s>", "<unk>"]                          // LlamaTokenizer: bos, eos, unk
                unkToken = nil
                tokenizerClass = "TokenizersBackend"
                guard v.scores != nil || v.merges != nil else {
                    throw TokenizerError.badVocabulary(what: "a llama (SentencePiece) vocabulary needs tokenizer.ggml.scores or merges")
                }
            }
            // llama.cpp and transformers add BOS to a SentencePiece vocabulary that does not say otherwise
            addBOS = v.addBOS ?? true
        default:
            throw TokenizerError.unsupportedVocabulary(what: "tokenizer.ggml.model '\(v.model)' is not supported (supported: gpt2, llama)")
        }

        // vocab as a Python dict {token: index}: the last index wins, the first position stays
        var order: [String] = []
        var byBytes: [[UInt8]: Int] = [:]
        for (i, t) in spelled.enumerated() {
            let k = Array(t.utf8)
            if byBytes[k] == nil { order.append(t) }
            byBytes[k] = i
        }
        vocab = order.map { ($0, byBytes[Array($0.utf8)]!) }

        // merges
        if let m = v.merges, !m.isEmpty {
            merges = try m.enumerated().map { i, s in
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw TokenizerError.badVocabulary(what: "tokenizer.ggml.merges[\(i)] \(s.debugDescription) is not \"left right\"") }
                return (String(parts[0]), String(parts[1]))
            }
        } else {
            switch kind {
            case .byteLevel: merges = HFConversion.generateMerges(order: order, ids: byBytes, scores: nil)
            case .sentencePiece:
                var scores: [[UInt8]: Double] = [:]
                for (i, t) in spelled.enumerated() { scores[Array(t.utf8)] = Double(v.scores![i]) }
                merges = HFConversion.generateMerges(order: order, ids: byBytes, scores: scores)
            case .gemma:
                var positions: [[UInt8]: Double] = [:]
                for (i, t) in spelled.enumerated() { positions[Array(t.utf8)] = -Double(i) }
                merges = HFConversion.generateMerges(order: order, ids: byBytes, scores: positions)
            }
        }

        // added tokens, in the order transformers adds them; new ids continue after the vocabulary
        var added: [AddedToken] = []
        var addedIndex: [[UInt8]: Int] = [:]
        var nextID = n
        func add(_ content: String, special: Bool) {
            let key = Array(content.utf8)
            if let k = addedIndex[key] {
                if special && !added[k].special { added[k].special = true }
                return
            }
            let id: Int
            if let i = byBytes[key] { id = i } else { id = nextID; nextID += 1 }
            addedIndex[key] = added.count
            added.append(AddedToken(id: id, content: content, special: special, normalized: false))
        }
        for d in defaults { add(d, special: true) }
        let byteLevel: Bool
        if case .byteLevel = kind { byteLevel = true } else { byteLevel = false }
        for (t, type) in zip(v.tokens, types) where type == GGUFTokenType.control.rawValue {
            if !byteLevel || ByteLevel.isInAlphabet(t) { add(t, special: true) }
        }
        for (t, type) in zip(v.tokens, types) where type == GGUFTokenType.userDefined.rawValue {
            if byBytes[Array(t.utf8)] != nil || addedIndex[Array(t.utf8)] != nil { add(t, special: false) }
        }
        for t in [bosToken, eosToken, unkConfigToken, padToken].compactMap({ $0 }) { add(t, special: true) }
        self.added = added
    }

    /// Python's `str.isspace` on one scalar (what `t.strip()` removes).
    static let pythonSpaces: Set<UInt32> = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680,
                                            0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
                                            0x2028, 0x2029, 0x202F, 0x205F, 0x3000]

    /// transformers `generate_merges`: every split of every token into two vocabulary tokens; per
    /// token sorted by the halves' ids; then all sorted by (score, left length, right length),
    /// descending when scores are given, else ascending by the token's id. Stable throughout.
    static func generateMerges(order: [String], ids: [[UInt8]: Int], scores: [[UInt8]: Double]?) -> [(String, String)] {
        struct Candidate { let left: String, right: String, score: Double, leftLength: Int, rightLength: Int, seq: Int }
        var all: [Candidate] = []
        for token in order {
            let chars = Array(token.unicodeScalars)
            if chars.count < 2 { continue }
            let key = Array(token.utf8)
            let score = scores?[key] ?? Double(ids[key]!)
            var local: [(String, String, Int, Int)] = []
            for cut in 1..<chars.count {
                var l = String.UnicodeScalarView(); l.append(contentsOf: chars[0..<cut])
                var r = String.UnicodeScalarView(); r.append(contentsOf: chars[cut...])
                let ls = String(l), rs = String(r)
                if let li = ids[Array(ls.utf8)], let ri = ids[Array(rs.utf8)] { local.append((ls, rs, li, ri)) }
            }
            local.sort { ($0.2, $0.3) < ($1.2, $1.3) }   // Swift's sort is stable
            for (ls, rs, _, _) in local {
                all.append(Candidate(left: ls, right: rs, score: score, leftLength: cut(ls), rightLength: cut(rs), seq: all.count))
            }
        }
        let descending = scores != nil
        all.sort { a, b in
            if a.score != b.score { return descending ? a.score > b.score : a.score < b.score }
            if a.leftLength != b.leftLength { return descending ? a.leftLength > b.leftLength : a.leftLength < b.leftLength }
            if a.rightLength != b.rightLength { return descending ? a.rightLength > b.rightLength : a.rightLength < b.rightLength }
            return a.seq < b.seq
        }
        return all.map { ($0.left, $0.right) }
        func cut(_ s: String) -> Int { s.unicodeScalars.count }
    }

    // MARK: building

    var postPrefix: [String] { addBOS ? [bosToken].compactMap { $0 } : [] }
    var postSuffix: [String] { addEOS ? [eosToken].compactMap { $0 } : [] }

    func makeTokenizer() throws -> Tokenizer {
        let path = "GGUF vocabulary"
        let model = try BPEModel(vocab: vocab.map { (Array($0.0.utf8), Int32($0.1)) },
                                 merges: merges.map { (Array($0.0.utf8), Array($0.1.utf8)) },
                                 unk: unkToken.map { Array($0.utf8) }, fuseUnk: !isByteLevel, byteFallback: !isByteLevel,
                                 prefix: nil, suffix: nil, ignoreMerges: false, path: path)
        let normalizer: Normalizer?
        let pre: PreTokenizer?
        let decoder: Decoder
        switch kind {
        case let .byteLevel(llama3):
            normalizer = nil
            pre = llama3 ? SequencePreTokenizer(stages: [SplitPreTokenizer(kind: .pattern(Llama3Pattern()), behavior: .isolated, invert: false),
                                                         ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: false)])
                         : ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true)
            decoder = ByteLevelDecoder()
        case .sentencePiece:
            normalizer = nil
            pre = MetaspacePreTokenizer(replacement: Array("▁".utf8), prepend: .first, split: false)
            decoder = SequenceDecoder(stages: [ReplaceDecoder(pattern: Array("▁".utf8), content: [0x20]), ByteFallbackDecoder(), FuseDecoder(),
                                               StripDecoder(content: 0x20, start: 1, stop: 0)])
        case .gemma:
            normalizer = ReplaceNormalizer(pattern: [0x20], content: Array("▁".utf8))
            pre = SplitPreTokenizer(kind: .literal([0x20]), behavior: .mergedWithPrevious, invert: false)
            decoder = SequenceDecoder(stages: [ReplaceDecoder(pattern: Array("▁".utf8), content: [0x20]), ByteFallbackDecoder(), FuseDecoder()])
        }
        func ids(_ names: [String]) -> [Int32] {
            names.compactMap { name in added.first(where: { $0.content == name }).map { Int32($0.id) } ?? model.id(Array(name.utf8)).map(Int32.init) }
        }
        let post = WrapPostProcessor(prefix: ids(postPrefix), suffix: ids(postSuffix))
        return Tokenizer(normalizer: normalizer, preTokenizer: pre, model: model, postProcessor: post, decoder: decoder, addedTokens: added)
    }

    var isByteLevel: Bool { if case .byteLevel = kind { return true }; return false }
}
