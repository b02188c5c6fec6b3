import Foundation
import FuseIO

/// `run.json`: what every long command (merge, train, evolve, distill, transfer) leaves in its output
/// folder so a report can explain the result later. Versioned; the schema is in docs/formats.md.
///
///     { "schema": "fusekit-run", "version": 1, "command": "merge", "status": "complete",
///       "fusekit_version": "...", "started": ISO-8601, "finished": ISO-8601 | null,
///       "argv": [...], "working_directory": "...",
///       "inputs": [{"role": "model", "name": "as written in the config", "path": "/abs/path",
///                   "identity_sha256": "..."}],
///       "config": {"format": "mergekit-yaml", "text": "..."} | null,
///       "timings": {"total_seconds": 12.5, ...},
///       "measurements": { command-specific },
///       "logs": {"generations": "log.jsonl", ...} }
public struct RunLog {
    public static let schema = "fusekit-run"
    /// The version this build writes and fully understands.
    public static let currentVersion = 1
    public static let fileName = "run.json"

    public enum Status: String, Sendable { case running, complete, failed }

    public struct Input: Sendable, Equatable {
        public var role: String
        public var name: String
        public var path: String
        public var identity: String?
        public init(role: String, name: String, path: String, identity: String?) {
            self.role = role; self.name = name; self.path = path; self.identity = identity
        }
    }

    public var version = RunLog.currentVersion
    public var command: String
    public var status: Status
    public var fusekitVersion = fusekitVersionString
    public var started: Date
    public var finished: Date?
    public var argv: [String] = CommandLine.arguments
    public var workingDirectory = FileManager.default.currentDirectoryPath
    public var inputs: [Input] = []
    /// `format` and `text` of the config the run was made from, when it has one.
    public var config: (format: String, text: String)?
    public var timings: [(String, Double)] = []
    public var measurements: JSON = .object([])
    /// Other log files in the run folder, by what they hold.
    public var logs: [(String, String)] = []
    /// Fields a newer FuseKit wrote that this build does not know (kept for display).
    public var unknownKeys: [String] = []

    public init(command: String, status: Status = .running, started: Date = Date()) {
        self.command = command; self.status = status; self.started = started
    }

    public var json: JSON {
        var pairs: [(String, JSON)] = [
            ("schema", .string(RunLog.schema)), ("version", .int(version)), ("command", .string(command)),
            ("status", .string(status.rawValue)), ("fusekit_version", .string(fusekitVersion)),
            ("started", .string(isoDate(started))), ("finished", finished.map { .string(isoDate($0)) } ?? .null),
            ("argv", .array(argv.map { .string($0) })), ("working_directory", .string(workingDirectory)),
            ("inputs", .array(inputs.map { i in
                .object([("role", .string(i.role)), ("name", .string(i.name)), ("path", .string(i.path)),
                         ("identity_sha256", i.identity.map { .string($0) } ?? .null)])
            })),
        ]
        pairs.append(("config", config.map { .object([("format", .string($0.format)), ("text", .string($0.text))]) } ?? .null))
        pairs.append(("timings", .object(timings.map { ($0.0, .double($0.1)) })))
        pairs.append(("measurements", measurements))
        pairs.append(("logs", .object(logs.map { ($0.0, .string($0.1)) })))
        return .object(pairs)
    }

    /// Writes `run.json` into `directory` atomically (temp file + rename).
    public func write(to directory: String) throws {
        try writeFileAtomically(path: directory + "/" + RunLog.fileName, contents: json.serialized(indent: 1) + "\n")
    }

    /// Reads `directory/run.json`. Throws for a missing, unreadable or foreign file; a newer version
    /// is read as far as its known fields go (`version` tells the caller, `unknownKeys` lists the rest).
    public static func read(from directory: String) throws -> RunLog {
        let path = directory + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { throw ReportError.missingRunLog(directory: directory) }
        let root: JSON
        do { root = try readJSONFile(path) } catch {
            throw ReportError.badRunLog(path: path, what: "not valid JSON (\(error)); the run may have been cut off while writing it")
        }
        guard root.object != nil else { throw ReportError.badRunLog(path: path, what: "the top level is not an object") }
        guard root["schema"]?.string == schema else {
            throw ReportError.foreignRunLog(path: path, schema: root["schema"]?.string)
        }
        guard let version = root["version"]?.int, version >= 1 else {
            throw ReportError.badRunLog(path: path, what: "key 'version' is missing or not a positive integer")
        }
        guard let command = root["command"]?.string else { throw ReportError.badRunLog(path: path, what: "key 'command' is missing") }
        let status = root["status"]?.string.flatMap(Status.init(rawValue:)) ?? .running
        var log = RunLog(command: command, status: status, started: root["started"]?.string.flatMap(parseISODate) ?? Date(timeIntervalSince1970: 0))
        log.version = version
        log.finished = root["finished"]?.string.flatMap(parseISODate)
        log.fusekitVersion = root["fusekit_version"]?.string ?? "unknown"
        log.argv = root["argv"]?.array?.compactMap(\.string) ?? []
        log.workingDirectory = root["working_directory"]?.string ?? directory
        log.inputs = (root["inputs"]?.array ?? []).compactMap { i in
            guard let path = i["path"]?.string else { return nil }
            return Input(role: i["role"]?.string ?? "input", name: i["name"]?.string ?? path, path: path, identity: i["identity_sha256"]?.string)
        }
        if let c = root["config"], let text = c["text"]?.string { log.config = (c["format"]?.string ?? "unknown", text) }
        log.timings = (root["timings"]?.object ?? []).compactMap { k, v in v.double.map { (k, $0) } }
        log.measurements = root["measurements"] ?? .object([])
        log.logs = (root["logs"]?.object ?? []).compactMap { k, v in v.string.map { (k, $0) } }
        let known: Set<String> = ["schema", "version", "command", "status", "fusekit_version", "started", "finished", "argv",
                                  "working_directory", "inputs", "config", "timings", "measurements", "logs"]
        log.unknownKeys = (root.object ?? []).map(\.0).filter { !known.contains($0) }
        return log
    }

    /// Resolves a path recorded in the log against the run's working directory.
    public func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : workingDirectory + "/" + path
    }
}

/// The version string run logs carry.
public let fusekitVersionString = "0.2.0"

func isoDate(_ d: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: d)
}

func parseISODate(_ s: String) -> Date? { ISO8601DateFormatter().date(from: s) }

/// A cheap identity of a model on disk, stable across copies: SHA-256 over config.json and, for each
/// weight file, its name, size, header (safetensors: the JSON header naming every tensor's dtype,
/// shape and offsets; GGUF: the first 4 MiB with metadata and tensor table) and 64 samples of 4 KiB
/// spread evenly over the rest (files under 1 MiB are hashed whole). Reading about 256 KiB per file
/// keeps it instant for any model size; two checkpoints that differ only outside the samples would
/// share an identity, which the schema documents.
public func modelIdentity(path: String) -> String? {
    var hasher = SHA256()
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
    func add(file: String) {
        guard let h = FileHandle(forReadingAtPath: file) else { return }
        defer { try? h.close() }
        let size = Int((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)??.int64Value ?? 0)
        hasher.update("\((file as NSString).lastPathComponent):\(size)\n")
        if size <= 1 << 20 || !(file.hasSuffix(".safetensors") || file.hasSuffix(".gguf")) {
            if let all = try? h.readToEnd() { hasher.update(all) }
            return
        }
        var headerEnd = 0
        if file.hasSuffix(".safetensors") {
            guard let head = try? h.read(upToCount: 8), head.count == 8 else { return }
            let n = head.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            headerEnd = 8 + Int(min(n, UInt64(size)))
        } else {
            headerEnd = min(size, 4 << 20)
        }
        try? h.seek(toOffset: 0)
        if let header = try? h.read(upToCount: headerEnd) { hasher.update(header) }
        let samples = 64, window = 4096
        let span = size - headerEnd
        guard span > 0 else { return }
        for k in 0..<samples {
            let offset = headerEnd + Int(Double(span - min(span, window)) * Double(k) / Double(samples - 1))
            try? h.seek(toOffset: UInt64(offset))
            if let d = try? h.read(upToCount: window) { hasher.update(d) }
        }
    }
    if isDir.boolValue {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        for n in names where n == "config.json" || n.hasSuffix(".safetensors") || n == "model.safetensors.index.json" {
            add(file: path + "/" + n)
        }
    } else {
        add(file: path)
    }
    return hasher.finalize()
}
