import ArgumentParser
import Foundation
import FuseModels

/// The model and how its text is tokenized, shared by generate and eval.
struct ModelArguments: ParsableArguments {
    @Argument(help: "An HF folder (config.json + *.safetensors), a .safetensors file or a .gguf file.")
    var model: String

    func load() throws -> (any CausalLanguageModel, TokenCodec?) {
        let m = try ModelRegistry.load(model)
        return (m, try loadCodec(modelPath: model))
    }
}

/// "1, 2,3" -> [1, 2, 3]
func parseIDs(_ text: String) throws -> [Int] {
    try text.split(whereSeparator: { $0 == "," || $0 == " " }).map {
        guard let v = Int($0), v >= 0 else { throw ValidationError("'\($0)' is not a token id") }
        return v
    }
}
