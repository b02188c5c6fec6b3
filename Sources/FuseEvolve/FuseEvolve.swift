// FuseEvolve owns evolutionary fusion: the `evolve` spec, weight-space search (Evolver, arXiv
// 2406.12208, in both forms of its released code, and classic DE/rand/1/bin), recipe search with an own
// CMA-ES (the approach of arXiv 2403.13187), greedy soup, the fitness cache, the resumable run state,
// worker processes and the per-generation log. Merges go through FuseMerge (the same planner and
// executor as `fusekit merge`); scores come from FuseEval. It must not know about file formats: models
// are read through WeightStore / ModelSource and written through FuseIO's writers.
// Algorithms and defaults: shared/reference/fusion-methods.md §3 and §4. Log format: docs/formats.md,
// "Evolve logs".
import Foundation

/// Every error FuseEvolve raises: the spec key path (and line) or file, what is wrong, and what to do.
public enum EvolveError: Error, CustomStringConvertible {
    /// A bad spec value at `path` (a YAML key path such as `fitness.dev[1].weight`).
    case spec(path: String, line: Int?, message: String)
    /// Sources that cannot share one weight space (different tensors or shapes).
    case incompatibleModels(String)
    /// The run state in OUT_DIR cannot be used (missing, corrupt, from another spec).
    case state(path: String, message: String)
    /// OUT_DIR exists and neither --resume nor --force was given.
    case outputExists(path: String)
    /// A worker process failed or printed something that is not a result.
    case worker(command: String, message: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .spec(path, line, message):
            let at = line.map { " (line \($0))" } ?? ""
            return path.isEmpty ? "spec\(at): \(message)" : "spec: \(path)\(at): \(message)"
        case let .incompatibleModels(message): return message
        case let .state(path, message): return "\(path): \(message)"
        case let .outputExists(path):
            return "\(path) already exists; pass --resume to continue its run or --force to start over"
        case let .worker(command, message): return "worker `\(command)`: \(message)"
        case let .invalidArgument(message): return message
        }
    }
}

/// A stable 64-bit hash of bytes (FNV-1a over 8-byte words, then a SplitMix finaliser): fitness cache
/// keys and population checksums. Swift's Hasher is seeded per process, so it cannot be used here.
struct StableHasher {
    private var h: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        let words = bytes.count / 8
        var w = 0
        while w < words { h = (h ^ bytes.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)) &* 0x0000_0100_0000_01B3; w += 1 }
        for i in (words * 8)..<bytes.count { h = (h ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01B3 }
        h = (h ^ UInt64(bytes.count)) &* 0x0000_0100_0000_01B3
    }
    mutating func combine(_ s: String) { var s = s; s.withUTF8 { combine(UnsafeRawBufferPointer($0)) } }
    var value: UInt64 {
        var z = h &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    var hex: String { let s = String(value, radix: 16); return String(repeating: "0", count: 16 - s.count) + s }
}
