// The model's tokenizer as the runtime's TokenCodec.
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
    guard file.metadata["tokenizer.ggml.model"] != nil else { return nil }
    let vocabulary = try GGUFVocabulary(gguf: file)
    return TokenizerCodec(tokenizer: try vocabulary.makeTokenizer())
}

