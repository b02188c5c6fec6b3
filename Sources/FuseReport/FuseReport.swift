// FuseReport owns the versioned `run.json` every long command writes (RunLog), the analyses that
// explain a fused model (merge: task vectors, conflicts, sparsity, provenance; evolve and distill
// from their logs; two-model comparison), and the self-contained HTML page that shows them. It reads
// weights through FuseIO and re-plans merges with FuseMerge, but does not know how methods compute.
import Foundation

/// Every error FuseReport raises: what is wrong, with which file, and what to do.
public enum ReportError: Error, CustomStringConvertible {
    case missingRunLog(directory: String)
    case badRunLog(path: String, what: String)
    case foreignRunLog(path: String, schema: String?)
    case missingInput(what: String)
    case incompatible(String)
    case io(String)

    public var description: String {
        switch self {
        case let .missingRunLog(directory):
            return "\(directory): no run.json; point `fusekit report` at the output folder of a fusekit merge/train/evolve/distill/transfer run (or use --compare A B for two models)"
        case let .badRunLog(path, what): return "\(path): \(what)"
        case let .foreignRunLog(path, schema):
            return "\(path): not a FuseKit run log (schema \(schema.map { "'\($0)'" } ?? "missing"), expected '\(RunLog.schema)'); it was written by another tool"
        case let .missingInput(what): return what
        case let .incompatible(what): return what
        case let .io(what): return what
        }
    }
}
