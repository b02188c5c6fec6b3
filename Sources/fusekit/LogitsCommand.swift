import ArgumentParser
import Foundation
import FuseIO
import FuseModels
import FuseTensor

/// `fusekit logits MODEL --input in.safetensors --output out.safetensors` (hidden): the raw logits of
/// token-id batches, for cross-checks against transformers (Tools/checks/runtime_random.py).
struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Write the logits of token-id batches to a safetensors file (for cross-checks).",
        discussion: """
        The input holds, per case NAME, `NAME.ids` [B, T] or [T] (integers) and optionally `NAME.mask`
        [B, T] (1 = real token, 0 = padding). The output holds `NAME.logits` f32 [B, T, V] (every row,
        padding rows included). With --step N the sequences are fed N tokens at a time through the KV
        cache instead of in one call.
        """,
        shouldDisplay: false)

    @Argument(help: "An HF folder, a .safetensors file or a .gguf file.")
    var model: String

    @Option(name: .long, help: "The safetensors file of ids (and masks).")
    var input: String

    @Option(name: .long, help: "The safetensors file to write.")
    var output: String

    @Option(name: .long, help: "Feed this many tokens per forward call (0 = all at once).")
    var step = 0

    @OptionGroup var runOptions: RunOptions

    mutating func validate() throws {
        if step < 0 { throw ValidationError("--step must be 0 or more") }
    }

    func run() throws {
        runOptions.apply()
        let model = try ModelRegistry.load(model)
        let store = try WeightStore(path: input)
        let v = model.summary.vocabularySize
        var results: [(String, Tensor)] = []
        for key in store.names where key.hasSuffix(".ids") {
            let name = String(key.dropLast(4))
            let shape = store.info(key)?.shape ?? []
            let (b, t) = shape.count == 2 ? (shape[0], shape[1]) : (1, shape.first ?? 0)
            let ids = try store.floats(key).map { Int($0) }
            let valid = store.info(name + ".mask") == nil ? nil : try store.floats(name + ".mask").map { $0 != 0 }
            let cache = model.makeCache(batch: b, capacity: t)
            var rows = [[Float]](repeating: [], count: b)
            let chunk = step == 0 ? t : step
            var start = 0
            while start < t {
                let end = min(t, start + chunk)
                var tokens: [Int] = [], flags: [Bool] = []
                for s in 0..<b {
                    tokens += ids[(s * t + start)..<(s * t + end)]
                    if let valid { flags += valid[(s * t + start)..<(s * t + end)] }
                }
                let logits = try model.forward(tokens: tokens, batch: b, valid: valid == nil ? nil : flags, cache: cache, rows: .all)
                let n = end - start
                for s in 0..<b { rows[s] += logits[(s * n * v)..<((s + 1) * n * v)] }
                start = end
            }
            results.append((name + ".logits", try Tensor(floats: rows.flatMap { $0 }, shape: shape.count == 2 ? [b, t, v] : [t, v])))
        }
        try writeSafetensors(path: output, tensors: results)
    }
}
