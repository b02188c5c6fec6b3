import FuseIO

extension GGUFVocabulary {
    /// The vocabulary stored in a GGUF file's `tokenizer.ggml.*` keys (formats-and-models.md §6).
    public init(gguf file: GGUFFile) throws {
        let m = file.metadata
        func key(_ k: String) -> GGUFValue? { m["tokenizer.ggml." + k] }
        guard let model = key("model")?.string else {
            throw TokenizerError.missingKey(path: file.path, key: "tokenizer.ggml.model")
        }
        guard let tokens = key("tokens")?.stringArray else {
            throw TokenizerError.missingKey(path: file.path, key: "tokenizer.ggml.tokens (an array of strings)")
        }
        self.init(architecture: file.architecture, model: model, pre: key("pre")?.string, tokens: tokens,
                  scores: key("scores")?.floatArray, tokenTypes: key("token_type")?.intArray.map { $0.map { Int32(truncatingIfNeeded: $0) } },
                  merges: key("merges")?.stringArray, bosID: key("bos_token_id")?.int, eosID: key("eos_token_id")?.int,
                  unkID: key("unknown_token_id")?.int, padID: key("padding_token_id")?.int,
                  addBOS: key("add_bos_token")?.bool, addEOS: key("add_eos_token")?.bool,
                  addSpacePrefix: key("add_space_prefix")?.bool, chatTemplate: m["tokenizer.chat_template"]?.string)
    }

    public init(ggufPath path: String) throws { try self.init(gguf: GGUFFile(path: path)) }
}
