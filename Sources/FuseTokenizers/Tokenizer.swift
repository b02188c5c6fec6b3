// The whole pipeline: tokenizers/src/tokenizer/mod.rs (`encode_single_sequence`, `decode`).
//
//   text --added tokens (raw)--> normalizer --added tokens (normalized)--> pre-tokenizer
//        --> model (per piece) --> post-processor --> ids
//   ids --> token strings (added first, then model) --> decoder --> text
import FuseIO
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

public final class Tokenizer {
    public let normalizer: Normalizer?
    public let preTokenizer: PreTokenizer?
    public let model: Model
    public let postProcessor: PostProcessor?
    public let decoder: Decoder?
    public let addedTokens: [AddedToken]
    let added: AddedVocabulary
    /// Byte-level BPE: the final ByteLevel mapping is folded into the model (raw bytes in).
    private let byteLevelModel: BPEModel?
    /// Set when the pre-tokenizer is only a split by one pattern (then byte-level): spans go
    /// straight from the text to the model without building pieces.
    private let fastSplit: SpanPattern?

    /// One more than the largest id (model vocabulary or added token).
    public var vocabularySize: Int { max(model.vocabularySize, (addedTokens.map(\.id).max() ?? -1) + 1) }

    public init(normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: Model, postProcessor: PostProcessor?,
                decoder: Decoder?, addedTokens: [AddedToken]) {
        self.normalizer = normalizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.addedTokens = addedTokens
        added = AddedVocabulary(tokens: addedTokens, normalizer: normalizer)
        var pre = preTokenizer
        var byteLevel: BPEModel? = nil
        var fast: SpanPattern? = nil
        if let bpe = model as? BPEModel, bpe.acceptsRawBytes {
            if var b = pre as? ByteLevelPreTokenizer {
                b.mapsBytes = false
                pre = b
                byteLevel = bpe
                if b.useRegex && !b.addPrefixSpace { fast = GPT2Pattern() }
            } else if var s = pre as? SequencePreTokenizer, var b = s.stages.last as? ByteLevelPreTokenizer {
                b.mapsBytes = false
                s.stages[s.stages.count - 1] = b
                pre = s
                byteLevel = bpe
                if s.stages.count == 2, !b.useRegex, !b.addPrefixSpace, let sp = s.stages[0] as? SplitPreTokenizer,
                   sp.behavior == .isolated, !sp.invert, case let .pattern(p) = sp.kind {
                    fast = p
                }
            }
        }
        self.preTokenizer = pre
        byteLevelModel = byteLevel
        fastSplit = fast
    }

    /// Loads tokenizer.json bytes; `path` names the file in errors.
    public convenience init(json bytes: [UInt8], path: String = "tokenizer.json") throws {
        let root: JSON
        do { root = try JSON.parse(bytes) } catch let e as JSON.ParseError {
            throw TokenizerError.unreadable(path: path, reason: "invalid JSON at byte \(e.offset): \(e.message)")
        }
        let c = try Config(root, path: path, key: "")
        guard c.has("model") else { throw TokenizerError.missingKey(path: path, key: "model") }
        if c.has("truncation") {
            throw TokenizerError.badValue(path: path, key: "truncation", reason: "truncation is set; FuseKit never truncates silently — remove it from the file")
        }
        let model = try makeModel(try c.value("model"), path: path)
        let normalizer = try makeNormalizer(root["normalizer"] ?? .null, path: path, key: "normalizer")
        let pre = try makePreTokenizer(root["pre_tokenizer"] ?? .null, path: path, key: "pre_tokenizer")
        let post = try makePostProcessor(root["post_processor"] ?? .null, path: path, key: "post_processor", tokenID: { model.id($0) })
        let decoder = try makeDecoder(root["decoder"] ?? .null, path: path, key: "decoder")
        var added: [AddedToken] = []
        if c.has("added_tokens") {
            for (i, t) in try c.array("added_tokens").enumerated() {
                let a = try Config(t, path: path, key: "added_tokens[\(i)]")
                let id = try a.int("id")
                guard id >= 0, id <= Int(Int32.max) else { throw TokenizerError.badValue(path: path, key: a.sub("id"), reason: "id \(id) out of range") }
                let content = try a.string("content")
                guard !content.isEmpty else { throw TokenizerError.badValue(path: path, key: a.sub("content"), reason: "empty added token") }
                added.append(AddedToken(id: id, content: content, special: try a.bool("special", default: false),
                                        lstrip: try a.bool("lstrip", default: false), rstrip: try a.bool("rstrip", default: false),
                                        singleWord: try a.bool("single_word", default: false),
                                        normalized: try a.bool("normalized", default: true)))
            }
        }
        self.init(normalizer: normalizer, preTokenizer: pre, model: model, postProcessor: post, decoder: decoder, addedTokens: added)
    }

    /// Loads `path`: a tokenizer.json file, or a folder holding one.
    public convenience init(contentsOf path: String) throws {
        var file = path
        if isDirectory(path) { file = (path.hasSuffix("/") ? path : path + "/") + "tokenizer.json" }
        let bytes: [UInt8]
        do {
            let m = try MappedFile(path: file)
            bytes = m.size == 0 ? [] : Array(try m.bytes(offset: 0, count: m.size, what: "tokenizer.json"))
        } catch {
            throw TokenizerError.unreadable(path: file, reason: "\(error)")
        }
        try self.init(json: bytes, path: file)
    }

    // MARK: - encode

    /// Ids of `text`, with the post-processor's special tokens when `addSpecialTokens`.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        encodeValid(Array(text.utf8), addSpecialTokens: addSpecialTokens).map(Int.init)
    }

    /// Ids of UTF-8 bytes; invalid UTF-8 is an error naming the offset.
    public func encode(utf8 bytes: [UInt8], addSpecialTokens: Bool = true) throws -> [Int] {
        if let bad = firstInvalidUTF8(bytes) { throw TokenizerError.invalidUTF8(offset: bad) }
        return encodeValid(bytes, addSpecialTokens: addSpecialTokens).map(Int.init)
    }

    /// Ids as Int32, for callers that store many.
    public func encodeIDs(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        encodeValid(Array(text.utf8), addSpecialTokens: addSpecialTokens)
    }

    func encodeValid(_ bytes: [UInt8], addSpecialTokens: Bool) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(bytes.count / 3 + 4)
        for seg in added.extractAndNormalize(bytes, normalizer: normalizer) {
            switch seg {
            case let .token(id): ids.append(id)
            case let .text(piece): tokenizePiece(piece, into: &ids)
            }
        }
        if addSpecialTokens, let post = postProcessor { return post.process(ids) }
        return ids
    }

    private func tokenizePiece(_ piece: Piece, into ids: inout [Int32]) {
        if let fast = fastSplit, let bpe = byteLevelModel {
            piece.bytes.withUnsafeBufferPointer { p in
                fast.forEachSpan(p) { s, e in bpe.tokenize(UnsafeBufferPointer(rebasing: p[s..<e]), byteLevel: true, into: &ids) }
            }
            return
        }
        let pieces = preTokenizer?.preTokenize([piece]) ?? [piece]
        for p in pieces where !p.bytes.isEmpty {
            if let bpe = byteLevelModel {
                p.bytes.withUnsafeBufferPointer { bpe.tokenize($0, byteLevel: true, into: &ids) }
            } else {
                model.tokenize(p.bytes, into: &ids)
            }
        }
    }

    // MARK: - decode

    /// The token text of `id` as the vocabulary spells it (byte-level tokens keep their
    /// byte-level characters, e.g. "Ġthe"), or nil when the id is unknown.
    public func token(for id: Int) -> String? { tokenBytes(id).map { String(decoding: $0, as: UTF8.self) } }

    func tokenBytes(_ id: Int) -> [UInt8]? { added.decodedText[id] ?? model.token(id) }

    /// The id of a token string (added tokens first), or nil.
    public func id(for token: String) -> Int? {
        if let i = addedTokens.first(where: { $0.content == token }) { return i.id }
        return model.id(Array(token.utf8))
    }

    public func isSpecial(_ id: Int) -> Bool { added.isSpecial(id) }

    /// Text of `ids`. Unknown ids are an error (HF drops them silently).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws -> String {
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let t = tokenBytes(id) else { throw TokenizerError.idOutOfRange(id: id, vocabularySize: vocabularySize) }
            if skipSpecialTokens && (added.isSpecial(id) || added.isSpecialText(t)) { continue }
            tokens.append(t)
        }
        guard let decoder else {
            var out: [UInt8] = []
            for (i, t) in tokens.enumerated() { if i > 0 { out.append(0x20) }; out.append(contentsOf: t) }
            return lossyString(out)
        }
        return lossyString(decoder.decodeChain(tokens).flatMap { $0 })
    }
}

func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}
