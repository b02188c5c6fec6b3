import Foundation
import FuseNN

/// Text in and out of token ids: the tokenizer module plugs in here (FuseModels does not know about
/// tokenizer files). `decode` of a prefix must be a prefix of `decode` of the whole (for streaming).
public protocol TokenCodec {
    /// Token ids of `text`; `addSpecialTokens` adds what the tokenizer's post-processor adds (BOS).
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int]
    func decode(_ ids: [Int]) -> String
}

extension TokenCodec {
    public func encode(_ text: String) throws -> [Int] { try encode(text, addSpecialTokens: true) }
}

public struct GenerationOptions: Sendable {
    public var maxTokens: Int = 128
    public var sampling = SamplingOptions()
    /// Generation ends after any of these ids (default: the model's eos ids).
    public var stopTokenIDs: Set<Int>? = nil
    /// Generation ends when the decoded text contains one of these; the text is cut before it.
    public var stopStrings: [String] = []
    public init(maxTokens: Int = 128, sampling: SamplingOptions = SamplingOptions(), stopTokenIDs: Set<Int>? = nil, stopStrings: [String] = []) {
        self.maxTokens = maxTokens; self.sampling = sampling; self.stopTokenIDs = stopTokenIDs; self.stopStrings = stopStrings
    }
}

public struct GenerationResult: Sendable {
    public enum StopReason: String, Sendable { case maxTokens = "max_tokens", stopToken = "stop_token", stopString = "stop_string", context }
    /// New tokens (the stop token included when one ended generation).
    public var tokens: [Int]
    /// Decoded new text, cut before a stop string (empty without a codec).
    public var text: String
    public var stopReason: StopReason
    public var promptTokens: Int
    public var promptSeconds: Double
    public var decodeSeconds: Double
}

/// Prefill the prompt in one call (logits of its last position only), then decode one token per step
/// against the KV cache. `onText` receives each new piece of text as soon as it is final.
public func generate(model: any CausalLanguageModel, prompt: [Int], options: GenerationOptions,
                     codec: TokenCodec? = nil, onText: ((String) -> Void)? = nil) throws -> GenerationResult {
    guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
    try options.sampling.validate()
    guard options.maxTokens >= 0 else { throw ModelError.invalidArgument("max tokens must be >= 0") }
    let context = model.summary.contextLength
    guard prompt.count <= context else { throw ModelError.promptTooLong(tokens: prompt.count, context: context) }
    let stops = options.stopTokenIDs ?? Set(model.summary.eosTokenIDs)
    let cache = model.makeCache(batch: 1, capacity: min(context, prompt.count + options.maxTokens))
    var sampler = Sampler(options.sampling)
    var history = prompt, generated: [Int] = []
    var emitted = "", reason = GenerationResult.StopReason.maxTokens
    let start = Date()
    var logits = try model.forward(tokens: prompt, batch: 1, valid: nil, cache: cache, rows: .last)
    let promptSeconds = Date().timeIntervalSince(start)
    let holdBack = options.stopStrings.map(\.count).max().map { max(0, $0 - 1) } ?? 0
    while generated.count < options.maxTokens {
        let next = sampler.next(logits: logits[...], history: history)
        generated.append(next); history.append(next)
        if stops.contains(next) { reason = .stopToken; break }
        if let codec {
            let text = codec.decode(generated)
            if let cut = options.stopStrings.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                let final = String(text[..<cut])
                if final.count > emitted.count, final.hasPrefix(emitted) { onText?(String(final.dropFirst(emitted.count))) }
                emitted = final; reason = .stopString; break
            }
            // Emit what can no longer become part of a stop string (and is not a partial UTF-8 character).
            let safe = String(text.dropLast(holdBack))
            if safe.count > emitted.count, safe.hasPrefix(emitted), !safe.hasSuffix("\u{FFFD}") {
                onText?(String(safe.dropFirst(emitted.count))); emitted = safe
            }
        }
        if generated.count == options.maxTokens { break }
        if cache.length >= cache.capacity { reason = .context; break }
        logits = try model.forward(tokens: [next], batch: 1, valid: nil, cache: cache, rows: .last)
    }
    if let codec, reason != .stopString {
        var text = codec.decode(reason == .stopToken ? Array(generated.dropLast()) : generated)
        if text.count >= emitted.count, text.hasPrefix(emitted) { onText?(String(text.dropFirst(emitted.count))) } else { text = emitted }
        emitted = text
    }
    return GenerationResult(tokens: generated, text: emitted, stopReason: reason, promptTokens: prompt.count,
                            promptSeconds: promptSeconds, decodeSeconds: Date().timeIntervalSince(start) - promptSeconds)
}
