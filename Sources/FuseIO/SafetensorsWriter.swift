import Foundation
import FuseTensor
#if canImport(Glibc)
import Glibc
#endif

/// Writes safetensors files whose layout is planned up front: every tensor's shard and offset are fixed
/// before any data exists, so tensors can be written in any order with `pwrite`, from a streaming merge,
/// and a shard never needs a second pass. Files appear under `directory` (normally the temporary
/// sibling of an `AtomicOutputDirectory`): `model.safetensors` for one shard, otherwise
/// `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json`.
public final class ShardedSafetensorsWriter {
    public let directory: String
    public let shardNames: [String]
    private var shards: [Shard] = []
    private var place: [String: (shard: Int, offset: Int, bytes: Int)] = [:]
    private var written = Set<String>()
    private let infos: [TensorInfo]
    private let totalBytes: Int

    private final class Shard {
        let path: String
        let fd: Int32
        init(path: String) throws {
            self.path = path
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw FuseIOError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        }
        deinit { close(fd) }
        func pwriteAll(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
            var done = 0
            while done < bytes.count {
                let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done)) // invariant: count > 0 here
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FuseIOError.writeFailed(path: path, reason: String(cString: strerror(errno)))
                }
                done += n
            }
        }
    }

    /// Plans the shards: tensors go, in the order given, into shards of at most `maxShardBytes` of data
    /// (a tensor larger than the limit gets a shard of its own, as transformers does).
    public init(directory: String, tensors: [TensorInfo], maxShardBytes: Int, metadata: [String: String] = [:]) throws {
        self.directory = directory
        self.infos = tensors
        var groups: [[TensorInfo]] = [[]]
        var groupBytes = 0
        var seen = Set<String>()
        for t in tensors {
            guard seen.insert(t.name).inserted else { throw FuseIOError.duplicateTensor(path: directory, tensor: t.name) }
            guard let n = elementCount(t.shape), t.dtype.byteCount(elements: n) != nil, t.dtype.traits.safetensorsName != nil else {
                throw FuseIOError.badTensor(path: directory, tensor: t.name, what: "cannot be stored in safetensors as \(t.dtype.rawValue)\(t.shape)")
            }
            if !groups[groups.count - 1].isEmpty, groupBytes + t.byteCount > maxShardBytes {
                groups.append([])
                groupBytes = 0
            }
            groups[groups.count - 1].append(t)
            groupBytes += t.byteCount
        }
        totalBytes = tensors.reduce(0) { $0 + $1.byteCount }
        let count = groups.count
        shardNames = count == 1 ? ["model.safetensors"]
            : (1...count).map { String(format: "model-%05d-of-%05d.safetensors", $0, count) }
        var meta = metadata
        meta["format"] = meta["format"] ?? "pt"
        for (g, group) in groups.enumerated() {
            let shard = try Shard(path: directory + "/" + shardNames[g])
            let (header, offsets) = ShardedSafetensorsWriter.header(for: group, metadata: meta)
            try header.withUnsafeBytes { try shard.pwriteAll($0, at: 0) }
            let dataStart = header.count
            for (t, off) in zip(group, offsets) { place[t.name] = (g, dataStart + off, t.byteCount) }
            // size the file now so unwritten tensors read as zeros rather than a short file
            let end = dataStart + group.reduce(0) { $0 + $1.byteCount }
            guard ftruncate(shard.fd, off_t(end)) == 0 else {
                throw FuseIOError.writeFailed(path: shard.path, reason: String(cString: strerror(errno)))
            }
            shards.append(shard)
        }
    }

    /// The 8-byte length, the JSON header padded with spaces to a multiple of 8, and each tensor's
    /// offset relative to the data start (tensors back to back in the order given).
    static func header(for tensors: [TensorInfo], metadata: [String: String]) -> ([UInt8], [Int]) {
        var entries: [(String, JSON)] = []
        if !metadata.isEmpty {
            entries.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        var offsets: [Int] = []
        var cursor = 0
        for t in tensors {
            offsets.append(cursor)
            entries.append((t.name, .object([
                ("dtype", .string(t.dtype.traits.safetensorsName ?? "F32")),
                ("shape", .array(t.shape.map { JSON.int($0) })),
                ("data_offsets", .array([JSON.int(cursor), JSON.int(cursor + t.byteCount)])),
            ])))
            cursor += t.byteCount
        }
        var json = Array(JSON.object(entries).serialized().utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { for k in 0..<8 { out[k] = $0[k] } }
        out.append(contentsOf: json)
        return (out, offsets)
    }

    /// Writes one tensor's bytes (exactly its planned size). Safe to call from several threads for
    /// different tensors.
    public func write(_ name: String, bytes: UnsafeRawBufferPointer) throws {
        guard let p = place[name] else { throw FuseIOError.missingTensor(path: directory, tensor: name) }
        guard bytes.count == p.bytes else {
            throw FuseIOError.badTensor(path: directory, tensor: name, what: "expected \(p.bytes) bytes to write, got \(bytes.count)")
        }
        if p.bytes > 0 { try shards[p.shard].pwriteAll(bytes, at: p.offset) }
        lock.lock(); written.insert(name); lock.unlock()
    }
    private let lock = NSLock()

    /// Writes `bytes` at `offset` inside a tensor's planned data, for tensors produced in chunks by
    /// several threads. Call `markWritten` once every chunk is in.
    public func writePart(_ name: String, bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        guard let p = place[name] else { throw FuseIOError.missingTensor(path: directory, tensor: name) }
        guard offset >= 0, offset + bytes.count <= p.bytes else {
            throw FuseIOError.badTensor(path: directory, tensor: name, what: "chunk [\(offset), \(offset + bytes.count)) lies outside its \(p.bytes) bytes")
        }
        if bytes.count > 0 { try shards[p.shard].pwriteAll(bytes, at: p.offset + offset) }
    }

    public func markWritten(_ name: String) {
        lock.lock(); written.insert(name); lock.unlock()
    }

    /// Checks that every planned tensor was written, flushes the shards to disk and writes the index.
    public func finish(sync: Bool = true) throws {
        let missing = infos.filter { !written.contains($0.name) }
        if let first = missing.first {
            throw FuseIOError.writeFailed(path: directory, reason: "\(missing.count) planned tensors were never written, first '\(first.name)'")
        }
        if sync {
            for s in shards where fsync(s.fd) != 0 {
                throw FuseIOError.writeFailed(path: s.path, reason: String(cString: strerror(errno)))
            }
        }
        guard shardNames.count > 1 else { return }
        let weightMap = infos.map { ($0.name, JSON.string(shardNames[place[$0.name]!.shard])) } // invariant: planned above
        let index = JSON.object([
            ("metadata", .object([("total_parameters", .int(infos.reduce(0) { $0 + $1.elementCount })),
                                  ("total_size", .int(totalBytes))])),
            ("weight_map", .object(weightMap.sorted { $0.0 < $1.0 })),
        ])
        try writeFileAtomically(path: directory + "/model.safetensors.index.json", contents: index.serialized(indent: 2) + "\n")
    }
}

/// Writes a whole set of in-memory tensors to one safetensors file, atomically (temporary sibling,
/// fsync, rename). `sync: false` skips the fsync: the file still appears whole or not at all to
/// anything that survives a process crash, but not necessarily a power loss.
public func writeSafetensors(path: String, tensors: [(String, Tensor)], metadata: [String: String] = [:], sync: Bool = true) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmpDir = dir + "/.\(url.lastPathComponent).tmp-\(getpid())"
    try? FileManager.default.removeItem(atPath: tmpDir)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
        throw FuseIOError.writeFailed(path: path, reason: "the folder \(dir) does not exist")
    }
    do {
        try FileManager.default.createDirectory(atPath: tmpDir, withIntermediateDirectories: false)
    } catch { throw FuseIOError.writeFailed(path: path, reason: "cannot create \(tmpDir): \(error)") }
    defer { try? FileManager.default.removeItem(atPath: tmpDir) }
    let infos = tensors.map { TensorInfo(name: $0.0, dtype: $0.1.dtype, shape: $0.1.shape) }
    let writer = try ShardedSafetensorsWriter(directory: tmpDir, tensors: infos, maxShardBytes: Int.max, metadata: metadata)
    for (name, t) in tensors { try writer.write(name, bytes: t.buffer.bytes) }
    try writer.finish(sync: sync)
    guard rename(tmpDir + "/model.safetensors", path) == 0 else {
        throw FuseIOError.writeFailed(path: path, reason: String(cString: strerror(errno)))
    }
}

/// Writes a small text file atomically: temporary sibling, fsync, rename.
public func writeFileAtomically(path: String, contents: String) throws {
    try writeFileAtomically(path: path, bytes: Array(contents.utf8))
}

public func writeFileAtomically(path: String, bytes: [UInt8]) throws {
    let tmp = path + ".tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw FuseIOError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
    var ok = true
    bytes.withUnsafeBytes { b in
        var done = 0
        while done < b.count {
            let n = write(fd, b.baseAddress! + done, b.count - done) // invariant: count > 0 inside loop
            if n <= 0 { if errno == EINTR { continue }; ok = false; break }
            done += n
        }
    }
    if ok { ok = fsync(fd) == 0 }
    close(fd)
    guard ok, rename(tmp, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(tmp)
        throw FuseIOError.writeFailed(path: path, reason: reason)
    }
}
