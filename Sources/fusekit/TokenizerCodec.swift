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

/// The model's tokenizer as a codec; nil when the model has none.
func loadCodec(modelPath: String) throws -> TokenCodec? {
    try TokenizerLoader.find(modelPath).map { TokenizerCodec(tokenizer: $0) }
}
