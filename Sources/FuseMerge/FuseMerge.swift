// FuseMerge owns weight-space merging: the mergekit YAML schema (`MergeConfig`), the planner that turns
// a config into a `MergePlan` (one entry per output tensor, no tensor data read), the method registry
// (one file per method under Methods/), the streaming executor, vocabulary alignment for
// `tokenizer_source`, the HF output folder, and LoRA extraction. The math of every method follows
// mergekit 0.1.5 (shared/reference/mergekit.md); where FuseKit differs it says so beside the code.
// It must not know about runtime internals (forward passes, training).
import FuseTensor
import FuseIO

/// Every error FuseMerge raises. Config errors carry the YAML key path (`models[1].parameters.weight`)
/// and, when known, the line; the message says what is wrong and what to do.
public enum MergeError: Error, CustomStringConvertible {
    /// Malformed or invalid configuration at `path` (a YAML key path).
    case config(path: String, line: Int?, message: String)
    case unknownMethod(name: String, suggestion: String?)
    case missingModel(path: String, model: String)
    case shapeMismatch(tensor: String, shapes: [(model: String, shape: [Int])])
    case missingTensor(model: String, tensor: String)
    case method(name: String, tensor: String, message: String)
    case unsupported(String)
    case io(String)

    public var description: String {
        switch self {
        case let .config(path, line, message):
            let at = line.map { " (line \($0))" } ?? ""
            return path.isEmpty ? "config\(at): \(message)" : "config: \(path)\(at): \(message)"
        case let .unknownMethod(name, suggestion):
            let hint = suggestion.map { "; did you mean '\($0)'?" } ?? ""
            return "config: merge_method: unknown method '\(name)'\(hint) (known: \(MethodRegistry.names.joined(separator: ", ")))"
        case let .missingModel(path, model):
            return "config: \(path): model '\(model)' not found; FuseKit reads local HF folders, .safetensors or .gguf files (download hub models first)"
        case let .shapeMismatch(tensor, shapes):
            let list = shapes.map { "\($0.model): \($0.shape)" }.joined(separator: ", ")
            return "tensor '\(tensor)': shapes differ between models (\(list)); only embedding rows may differ, and only with tokenizer_source set"
        case let .missingTensor(model, tensor):
            return "model '\(model)' has no tensor '\(tensor)' (nor an alias of it); the models must share one architecture"
        case let .method(name, tensor, message):
            return "\(name) on '\(tensor)': \(message)"
        case let .unsupported(message): return message
        case let .io(message): return message
        }
    }
}
