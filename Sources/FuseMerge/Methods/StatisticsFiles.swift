import Foundation
import FuseIO
import FuseTensor

/// The per-model statistics files that `fisher` and `regmean` name in their parameters (written by
/// `fusekit stats`; layout in docs/formats.md, "Statistics files"). Opened once per path (memory-mapped)
/// and shared by every tensor of a merge. Relative paths resolve against the merge's working directory
/// (`MergeGroup.workingDirectory`, the current directory by default), as model paths do.
final class StatisticsFiles: @unchecked Sendable {
    static let shared = StatisticsFiles()
    private let lock = NSLock()
    private var files: [String: SafetensorsFile] = [:]

    func file(_ path: String, kind: String, method: String, tensor: String, directory: String?) throws -> SafetensorsFile {
        let full = path.hasPrefix("/") ? path : (directory ?? FileManager.default.currentDirectoryPath) + "/" + path
        lock.lock(); defer { lock.unlock() }
        if let f = files[full] { return f }
        guard FileManager.default.fileExists(atPath: full) else {
            throw MergeError.method(name: method, tensor: tensor, message: "statistics file \(path) does not exist; make it with `fusekit stats MODEL --data FILE.jsonl --\(kind) \(path)`")
        }
        let f: SafetensorsFile
        do { f = try SafetensorsFile(path: full) } catch {
            throw MergeError.method(name: method, tensor: tensor, message: "cannot read statistics file \(path): \(error)")
        }
        if let k = f.metadata["fusekit_statistics"], k != kind {
            throw MergeError.method(name: method, tensor: tensor, message: "\(path) holds \(k) statistics, but \(method) needs \(kind) statistics")
        }
        files[full] = f
        return f
    }

    /// The statistics tensor `name` as Float32, checked to hold `count` values; nil when the file has none.
    func floats(_ path: String, kind: String, method: String, name: String, count: Int, directory: String?) throws -> [Float]? {
        let f = try file(path, kind: kind, method: method, tensor: name, directory: directory)
        guard let info = f.info(name) else { return nil }
        guard info.elementCount == count else {
            throw MergeError.method(name: method, tensor: name, message: "\(path) has \(name) with shape \(info.shape) (\(info.elementCount) values), expected \(count); the statistics belong to another model")
        }
        let values = try f.tensor(name).floats()
        return values
    }

    /// Forgets every opened file (tests rewrite files under the same path).
    func reset() { lock.lock(); files = [:]; lock.unlock() }
}
