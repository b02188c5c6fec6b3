// FuseTransfer owns parametric knowledge transfer (ParaKnowTransfer, arXiv 2310.11451; reference:
// shared/reference/fusion-methods.md §7): sensitivity scores |θ ⊙ ∂L/∂θ| of a teacher on seed samples,
// the choice of teacher layers for the student's depth, the reduction of each teacher matrix to the
// student's shape (the contiguous block of maximal sensitivity, or scattered rows and columns), the
// truncated SVD that turns each extracted matrix into a LoRA initialisation, and its injection into
// the student so that the step-0 model equals the student. Training itself is FuseTrain's.
import Foundation

/// Every error FuseTransfer raises: what is wrong, where (spec key, tensor, file) and what to do.
public enum TransferError: Error, CustomStringConvertible, Equatable {
    case spec(key: String, what: String)
    case studentLarger(tensor: String, student: [Int], teacher: [Int])
    case rankTooLarge(tensor: String, rank: Int, shape: [Int])
    case noSeedSamples(path: String)
    case missingModule(model: String, module: String)
    case roleMismatch(String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .spec(key, what): return "spec key '\(key)': \(what)"
        case let .studentLarger(tensor, student, teacher):
            return "'\(tensor)': the student's shape \(student) is larger than the teacher's \(teacher) in some dimension; transfer goes from a larger teacher to a smaller student — swap them or pick other modules"
        case let .rankTooLarge(tensor, rank, shape):
            return "'\(tensor)': LoRA rank \(rank) exceeds the smaller side of its \(shape) matrix; lower lora.rank"
        case let .noSeedSamples(path): return "\(path): no seed samples; sensitivity needs at least one prompt/answer example"
        case let .missingModule(model, module):
            return "\(model): no module matching '\(module)'; check target_modules against `fusekit inspect` of the model"
        case let .roleMismatch(what): return what
        case let .invalidArgument(what): return what
        }
    }
}
