/// The chat formats of the two real models (formats-and-models.md §4), rendered for one user turn
/// with the generation prompt. Full Jinja templates belong to the tokenizer module; these two are
/// what `fusekit generate --chat` needs.
public enum ChatTemplate: String, Sendable, CaseIterable {
    /// ChatML (SmolLM2): a default system turn when none is given, `<|im_start|>role\ncontent<|im_end|>\n`.
    case chatML = "chatml"
    /// Gemma 3: `<bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n`; a system message
    /// is prepended to the first user turn.
    case gemma

    public static let smolLMDefaultSystem = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

    /// The template for an architecture (`model_type`).
    public static func forArchitecture(_ modelType: String) -> ChatTemplate? {
        switch modelType {
        case "llama", "mistral", "qwen2": return .chatML
        case "gemma3", "gemma3_text": return .gemma
        default: return nil
        }
    }

    public func render(user: String, system: String? = nil) -> String {
        switch self {
        case .chatML:
            let sys = system ?? ChatTemplate.smolLMDefaultSystem
            return "<|im_start|>system\n\(sys)<|im_end|>\n<|im_start|>user\n\(user)<|im_end|>\n<|im_start|>assistant\n"
        case .gemma:
            let text = system.map { $0 + "\n\n" + user } ?? user
            return "<bos><start_of_turn>user\n\(text)<end_of_turn>\n<start_of_turn>model\n"
        }
    }

    /// Strings that end an assistant turn (besides the model's eos ids).
    public var endOfTurn: [String] {
        switch self {
        case .chatML: return ["<|im_end|>"]
        case .gemma: return ["<end_of_turn>"]
        }
    }
}
