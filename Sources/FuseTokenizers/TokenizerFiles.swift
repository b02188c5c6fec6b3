// GGUF vocabulary -> HF tokenizer files (tokenizer.json, tokenizer_config.json,
// special_tokens_map.json), for `fusekit convert`. The files describe the tokenizer that
// `GGUFVocabulary.makeTokenizer()` builds, which is the one transformers' own GGUF conversion builds;
// Tools/fixtures/verify_tokenizer_files.py loads them with HF tokenizers and transformers and checks
// the ids on the fixture corpus.
import FuseIO

public enum TokenizerFiles {
    /// File name -> contents.
    public static func huggingFaceFiles(from vocabulary: GGUFVocabulary) throws -> [String: String] {
        let c = try HFConversion(vocabulary)
        return [
            "tokenizer.json": tokenizerJSON(c).serialized(indent: 2) + "\n",
            "tokenizer_config.json": tokenizerConfig(c).serialized(indent: 2) + "\n",
            "special_tokens_map.json": specialTokensMap(c).serialized(indent: 2) + "\n",
        ]
    }

    static func s(_ x: String?) -> JSON { x.map { JSON.string($0) } ?? .null }

    static func tokenizerJSON(_ c: HFConversion) -> JSON {
        let added = c.added.sorted { $0.id < $1.id }.map { t -> JSON in
            .object([("id", .int(t.id)), ("content", .string(t.content)), ("single_word", .bool(t.singleWord)),
                     ("lstrip", .bool(t.lstrip)), ("rstrip", .bool(t.rstrip)), ("normalized", .bool(t.normalized)),
                     ("special", .bool(t.special))])
        }
        let meta = JSON.object([("String", .string("▁"))])
        let normalizer: JSON, pre: JSON, decoder: JSON
        switch c.kind {
        case let .byteLevel(llama3):
            normalizer = .null
            let byteLevel = { (regex: Bool) -> JSON in
                .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("trim_offsets", .bool(true)), ("use_regex", .bool(regex))])
            }
            pre = llama3 ? .object([("type", .string("Sequence")), ("pretokenizers", .array([
                .object([("type", .string("Split")), ("pattern", .object([("Regex", .string(Llama3Pattern.regex))])),
                         ("behavior", .string("Isolated")), ("invert", .bool(false))]),
                byteLevel(false)]))]) : byteLevel(true)
            decoder = .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)), ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])
        case .sentencePiece:
            normalizer = .null
            pre = .object([("type", .string("Metaspace")), ("replacement", .string("▁")), ("prepend_scheme", .string("first")), ("split", .bool(false))])
            decoder = .object([("type", .string("Sequence")), ("decoders", .array([
                .object([("type", .string("Replace")), ("pattern", meta), ("content", .string(" "))]),
                .object([("type", .string("ByteFallback"))]), .object([("type", .string("Fuse"))]),
                .object([("type", .string("Strip")), ("content", .string(" ")), ("start", .int(1)), ("stop", .int(0))])]))])
        case .gemma:
            normalizer = .object([("type", .string("Replace")), ("pattern", .object([("String", .string(" "))])), ("content", .string("▁"))])
            pre = .object([("type", .string("Split")), ("pattern", .object([("String", .string(" "))])), ("behavior", .string("MergedWithPrevious")), ("invert", .bool(false))])
            decoder = .object([("type", .string("Sequence")), ("decoders", .array([
                .object([("type", .string("Replace")), ("pattern", meta), ("content", .string(" "))]),
                .object([("type", .string("ByteFallback"))]), .object([("type", .string("Fuse"))])]))])
        }
        let idOf = { (name: String) -> Int in
            c.added.first(where: { $0.content == name })?.id ?? c.vocab.first(where: { $0.0 == name })?.1 ?? 0
        }
        func special(_ name: String, _ type: Int) -> JSON { .object([("SpecialToken", .object([("id", .string(name)), ("type_id", .int(type))]))]) }
        func sequence(_ id: String, _ type: Int) -> JSON { .object([("Sequence", .object([("id", .string(id)), ("type_id", .int(type))]))]) }
        let single = c.postPrefix.map { special($0, 0) } + [sequence("A", 0)] + c.postSuffix.map { special($0, 0) }
        let pair = single + c.postPrefix.map { special($0, 1) } + [sequence("B", 1)] + c.postSuffix.map { special($0, 1) }
        var specials: [(String, JSON)] = []
        for name in c.postPrefix + c.postSuffix where !specials.contains(where: { $0.0 == name }) {
            specials.append((name, .object([("id", .string(name)), ("ids", .array([.int(idOf(name))])), ("tokens", .array([.string(name)]))])))
        }
        let post = JSON.object([("type", .string("TemplateProcessing")), ("single", .array(single)), ("pair", .array(pair)), ("special_tokens", .object(specials))])
        let model = JSON.object([
            ("type", .string("BPE")), ("dropout", .null), ("unk_token", s(c.unkToken)),
            ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null),
            ("fuse_unk", .bool(!c.isByteLevel)), ("byte_fallback", .bool(!c.isByteLevel)), ("ignore_merges", .bool(false)),
            ("vocab", .object(c.vocab.map { ($0.0, .int($0.1)) })),
            ("merges", .array(c.merges.map { .array([.string($0.0), .string($0.1)]) })),
        ])
        return .object([("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)),
                        ("normalizer", normalizer), ("pre_tokenizer", pre), ("post_processor", post), ("decoder", decoder), ("model", model)])
    }

    static func tokenizerConfig(_ c: HFConversion) -> JSON {
        var o: [(String, JSON)] = [("add_bos_token", .bool(c.addBOS)), ("add_eos_token", .bool(c.addEOS)),
                                   ("bos_token", s(c.bosToken)), ("eos_token", s(c.eosToken)), ("unk_token", s(c.unkConfigToken)),
                                   ("pad_token", s(c.padToken))]
        if case .gemma = c.kind { o.append(("mask_token", .string("<mask>"))) }
        if let t = c.chatTemplate { o.append(("chat_template", .string(t))) }
        o.append(("tokenizer_class", .string(c.tokenizerClass)))
        return .object(o)
    }

    static func specialTokensMap(_ c: HFConversion) -> JSON {
        .object([("bos_token", c.bosToken), ("eos_token", c.eosToken), ("unk_token", c.unkConfigToken), ("pad_token", c.padToken)]
            .compactMap { k, v in v.map { (k, JSON.string($0)) } })
    }
}
