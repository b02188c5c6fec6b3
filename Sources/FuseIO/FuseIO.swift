// FuseIO owns the file formats: safetensors (read through mmap, sharded index, atomic write), GGUF
// (read, dequantize), the HF folder layout, `WeightStore` (one lazy view over any of them) and
// atomic output folders. It must not know about architectures beyond the GGUF -> HF name tables.
import FuseTensor

/// Every error FuseIO raises. Each names the file, and where useful the tensor, key or byte offset,
/// says what is wrong, and what to do.
public enum FuseIOError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case truncated(path: String, what: String, offset: Int, needed: Int, fileSize: Int)
    case corrupt(path: String, what: String)
    case headerTooLarge(path: String, size: UInt64, limit: Int)
    case badJSON(path: String, offset: Int, what: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case badTensor(path: String, tensor: String, what: String)
    case duplicateTensor(path: String, tensor: String)
    case missingTensor(path: String, tensor: String)
    case missingShard(index: String, shard: String, tensor: String)
    case unsupported(path: String, what: String)
    case outputExists(path: String)
    case writeFailed(path: String, reason: String)
    case notAModel(path: String)
    // GGUF (GGUF.swift)
    case duplicateKey(path: String, key: String)
    case badMetadata(path: String, key: String, offset: Int, what: String)
    case countTooLarge(path: String, what: String, offset: Int, count: UInt64, limit: UInt64)
    case overlappingTensors(path: String, tensor: String, other: String, offset: Int)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "\(path): cannot open (\(reason))"
        case let .truncated(path, what, offset, needed, size):
            return "\(path): truncated while reading \(what): needs \(needed) bytes at offset \(offset) but the file has \(size) bytes; the file is incomplete — download or copy it again"
        case let .corrupt(path, what): return "\(path): \(what)"
        case let .headerTooLarge(path, size, limit):
            return "\(path): header length \(size) exceeds the limit of \(limit) bytes; this is not a valid safetensors file or it is corrupt"
        case let .badJSON(path, offset, what): return "\(path): invalid JSON at byte \(offset): \(what)"
        case let .unknownDType(path, tensor, dtype):
            return "\(path): tensor '\(tensor)' has unsupported dtype '\(dtype)'"
        case let .badTensor(path, tensor, what): return "\(path): tensor '\(tensor)': \(what)"
        case let .duplicateTensor(path, tensor): return "\(path): tensor '\(tensor)' appears more than once"
        case let .missingTensor(path, tensor): return "\(path): no tensor named '\(tensor)'"
        case let .missingShard(index, shard, tensor):
            return "\(index): shard '\(shard)' (holding '\(tensor)') does not exist; the checkpoint is incomplete"
        case let .unsupported(path, what): return "\(path): \(what)"
        case let .outputExists(path): return "\(path) already exists; pass --force to replace it"
        case let .writeFailed(path, reason): return "\(path): write failed (\(reason)); nothing was left behind"
        case let .notAModel(path):
            return "\(path): not a model (expected an HF folder with config.json and *.safetensors, a .safetensors file or a .gguf file)"
        case let .duplicateKey(path, key):
            return "\(path): metadata key '\(key)' appears more than once; the file is corrupt — re-convert the model"
        case let .badMetadata(path, key, offset, what):
            return "\(path): metadata key '\(key)' at byte \(offset): \(what)"
        case let .countTooLarge(path, what, offset, count, limit):
            return "\(path): \(what) = \(count) at byte \(offset) exceeds \(limit), the most this file's size allows; the file is corrupt or not a GGUF file"
        case let .overlappingTensors(path, tensor, other, offset):
            return "\(path): the data of tensor '\(tensor)' overlaps tensor '\(other)' at byte \(offset); the file is corrupt — re-convert the model"
        }
    }
}
