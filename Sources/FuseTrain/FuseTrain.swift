// FuseTrain owns training and the statistics training-based merges need: AdamW, the warm-up + cosine
// schedule, gradient clipping and accumulation (Optimizer.swift, Schedule.swift), JSONL data loading,
// tokenization, packing and batching (Data.swift), the trainer loop with its metrics log, checkpoints
// and exact resume (Trainer.swift, Checkpoint.swift), output writing (Output.swift), and diagonal
// Fisher / input Gram statistics (Statistics.swift). It trains any `TrainableModel` (FuseNN's contract)
// and must not know about the CLI or about how architectures compute.
import Foundation

/// Every error FuseTrain raises. Each says what failed, where (file:line, key, tensor, step) and what to do.
public enum FuseTrainError: Error, CustomStringConvertible, Equatable {
    /// A data file cannot be read.
    case unreadable(path: String, reason: String)
    /// A JSONL line that is not a JSON object with the expected keys.
    case badLine(path: String, line: Int, key: String?, reason: String)
    /// The data yields nothing to train on (every line empty, every completion truncated away).
    case noData(path: String, reason: String)
    /// A setting out of range (`--seq-len 0`, `--lr -1`).
    case badSetting(name: String, reason: String)
    /// A checkpoint that is missing, corrupt or does not belong to this run.
    case badCheckpoint(path: String, reason: String)
    /// The output folder exists and neither `--force` nor `--resume` was given.
    case outputExists(path: String)
    /// The loss or a gradient became NaN or infinite.
    case nonFinite(step: Int, what: String)
    /// A statistics file that does not match the model or is malformed.
    case badStatistics(path: String, reason: String)
    /// The model cannot do what was asked (a LoRA export without LoRA, an unknown parameter).
    case model(String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read (\(reason))"
        case let .badLine(path, line, key, reason):
            return "\(path):\(line): \(key.map { "'\($0)': " } ?? "")\(reason); each line must be {\"text\": ...} or {\"prompt\": ..., \"completion\": ...}"
        case let .noData(path, reason): return "\(path): nothing to train on (\(reason))"
        case let .badSetting(name, reason): return "\(name): \(reason)"
        case let .badCheckpoint(path, reason): return "\(path): \(reason); delete the checkpoints folder or run without --resume"
        case let .outputExists(path): return "\(path) already exists; pass --resume to continue its run or --force to start over"
        case let .nonFinite(step, what): return "step \(step): \(what) is not finite; lower --lr or check the data"
        case let .badStatistics(path, reason): return "\(path): \(reason)"
        case let .model(message): return message
        }
    }
}
