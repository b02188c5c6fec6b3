// FuseDistill owns distribution-space fusion of language models with different tokenizers
// (FuseLLM, arXiv 2401.10491; FuseChat, arXiv 2402.16107): the top-k capture store (what each source
// predicts at each of its positions, CaptureFile.swift), token alignment (DTW over token strings with
// edit-distance cost, DTW.swift; MinED vocabulary mapping, VocabularyMapping.swift; aligned
// distributions, Alignment.swift), the fusion functions MinCE and AvgCE (Fusion.swift) and the
// `fusekit distill` spec and pipeline (Spec.swift, DistillRun.swift), and fusion training through
// FuseTrain with FuseChat's pairwise-then-merge variant (Training.swift, `DistillRun.trainingStage`).
//
// Position convention, everywhere in this module: the distribution stored at position t of a
// sequence is the model's prediction for token t+1 (the row of logits after reading token t).
import Foundation

/// Every error FuseDistill raises: what failed, where (file, YAML key path, sequence) and what to do.
public enum DistillError: Error, CustomStringConvertible, Equatable {
    /// The spec at `path` has a bad value at `key` (a dotted key path, `sources[1].model`).
    case spec(path: String, key: String, line: Int?, message: String)
    case corpus(path: String, message: String)
    case invalidUTF8(path: String, offset: Int)
    case tokenizer(model: String, message: String)
    case captureFile(path: String, message: String)
    case captureMismatch(path: String, what: String, expected: String, found: String)
    case topKTooLarge(model: String, k: Int, vocabularySize: Int)
    case sequenceTooLong(model: String, sequence: Int, tokens: Int, context: Int)
    case nonFinite(model: String, sequence: Int, position: Int)
    case invalidArgument(String)
    case cache(path: String, message: String)
    case outputExists(path: String)

    public var description: String {
        switch self {
        case let .spec(path, key, line, message):
            let at = line.map { " (line \($0))" } ?? ""
            return "\(path): \(key.isEmpty ? "top level" : key)\(at): \(message)"
        case let .corpus(path, message): return "\(path): \(message)"
        case let .invalidUTF8(path, offset):
            return "\(path): invalid UTF-8 at byte \(offset); convert the corpus to UTF-8 (iconv -f LATIN1 -t UTF-8) or drop that file"
        case let .tokenizer(model, message): return "\(model): tokenizer: \(message)"
        case let .captureFile(path, message): return "\(path): \(message); delete the file to capture it again"
        case let .captureMismatch(path, what, expected, found):
            return "\(path): \(what) is \(found) but this run needs \(expected); the capture belongs to another model, corpus or k (delete it or point cache_dir elsewhere)"
        case let .topKTooLarge(model, k, vocabularySize):
            return "\(model): top-k \(k) is larger than the vocabulary (\(vocabularySize) tokens); lower k"
        case let .sequenceTooLong(model, sequence, tokens, context):
            return "\(model): sequence \(sequence) has \(tokens) tokens but the context is \(context); lower corpus.block_tokens"
        case let .nonFinite(model, sequence, position):
            return "\(model): non-finite logits at sequence \(sequence), position \(position); the model or its quantization is broken"
        case let .invalidArgument(what): return what
        case let .cache(path, message): return "\(path): \(message); delete the file to rebuild it"
        case let .outputExists(path): return "\(path) already exists; pass --force to replace it or --resume to continue it"
        }
    }
}
