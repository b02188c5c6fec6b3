// The model's tokenizer as the runtime's TokenCodec. Compiled once FuseTokenizers is part of the
// package (the tokenizer issue); until then `fusekit generate/eval` take token ids only.
#if canImport(FuseTokenizers)
import Foundation
import FuseIO
import FuseModels
import FuseTokenizers

struct TokenizerCodec: TokenCodec {
    let tokenizer: Tokenizer
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] { tokenizer.encode(text, addSpecialTokens: addSpecialTokens) }
    func decode(_ ids: [Int]) -> String { (try? tokenizer.decode(ids, skipSpecialTokens: true)) ?? "" }
}

/// tokenizer.json of an HF folder (or beside a .safetensors file), or the vocabulary of a .gguf file;
/// nil when the model has neither.
func loadCodec(modelPath: String) throws -> TokenCodec? {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: modelPath, isDirectory: &isDir) else { return nil }
    if !modelPath.hasSuffix(".gguf") {
        let folder = isDir.boolValue ? modelPath : URL(fileURLWithPath: modelPath).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: folder + "/tokenizer.json") else { return nil }
        return TokenizerCodec(tokenizer: try Tokenizer(contentsOf: folder))
    }
    let file = try GGUFFile(path: modelPath)
    let m = file.metadata
    guard let model = m["tokenizer.ggml.model"]?.string, let tokens = m["tokenizer.ggml.tokens"]?.stringArray else { return nil }
    let vocabulary = GGUFVocabulary(
        architecture: file.architecture, model: model, pre: m["tokenizer.ggml.pre"]?.string, tokens: tokens,
        scores: m["tokenizer.ggml.scores"]?.floatArray, tokenTypes: m["tokenizer.ggml.token_type"]?.intArray?.map { Int32($0) },
        merges: m["tokenizer.ggml.merges"]?.stringArray, bosID: m["tokenizer.ggml.bos_token_id"]?.int,
        eosID: m["tokenizer.ggml.eos_token_id"]?.int, unkID: m["tokenizer.ggml.unknown_token_id"]?.int,
        padID: m["tokenizer.ggml.padding_token_id"]?.int, addBOS: m["tokenizer.ggml.add_bos_token"]?.bool,
        addEOS: m["tokenizer.ggml.add_eos_token"]?.bool, addSpacePrefix: m["tokenizer.ggml.add_space_prefix"]?.bool,
        chatTemplate: m["tokenizer.chat_template"]?.string)
    return TokenizerCodec(tokenizer: try vocabulary.makeTokenizer())
}
#endif
