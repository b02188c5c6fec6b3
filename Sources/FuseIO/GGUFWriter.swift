// GGUF writer: version 3, little-endian, the layout of GGUF.swift. Tensors are written in the
// order they were added, back to back, each padded with zeros to the alignment, so
// `offset[0] == 0` and `offset[i+1] == offset[i] + PAD(nbytes[i], ALIGN)` as llama.cpp's loader
// requires. Files are written to a temporary sibling and renamed into place when complete.
import FuseTensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct GGUFWriter {
    public let alignment: Int
    public var version: UInt32 = 3
    /// Metadata keys in the order they will be written.
    public private(set) var keys: [String] = []
    public private(set) var metadata: [String: GGUFValue] = [:]
    private var tensors: [(info: GGUFTensorInfo, data: Buffer)] = []
    private var tensorNames: Set<String> = []

    /// `alignment` must be a power of two from 1 to 2^31 (checked when the file is written);
    /// anything other than 32 is recorded as `general.alignment` (u32).
    public init(alignment: Int = GGUFFile.defaultAlignment) {
        self.alignment = alignment
    }

    /// Sets `key`, keeping its first position when it is set again.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if metadata.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// Adds a tensor of `dtype` with GGUF dimensions `ne` (ne[0] innermost) from its raw bytes.
    public mutating func addTensor(_ name: String, dtype: DType, ne: [Int], bytes: UnsafeRawBufferPointer) throws {
        let buffer = Buffer(byteCount: bytes.count)
        if let src = bytes.baseAddress { buffer.base.copyMemory(from: src, byteCount: bytes.count) }
        try addTensor(name, dtype: dtype, ne: ne, buffer: buffer)
    }

    public mutating func addTensor(_ name: String, dtype: DType, ne: [Int], bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try addTensor(name, dtype: dtype, ne: ne, bytes: $0) }
    }

    /// Adds `tensor` (HF shape, so `ne` is its shape reversed) without copying its bytes.
    public mutating func addTensor(_ name: String, _ tensor: Tensor) throws {
        try addTensor(name, dtype: tensor.dtype, ne: tensor.shape.reversed(), buffer: tensor.buffer)
    }

    private mutating func addTensor(_ name: String, dtype: DType, ne: [Int], buffer: Buffer) throws {
        let what = "GGUF writer"
        guard !tensorNames.contains(name) else { throw FuseIOError.duplicateTensor(path: what, tensor: name) }
        guard dtype.traits.ggmlType != nil else {
            throw FuseIOError.unknownDType(path: what, tensor: name, dtype: "\(dtype.rawValue) (GGUF has no such type)")
        }
        guard ne.count <= GGUFFile.maxDimensions, let count = elementCount(ne), elementCount(ne.filter { $0 != 0 }) != nil else {
            throw FuseIOError.badTensor(path: what, tensor: name, what: "dimensions \(ne): GGUF allows at most \(GGUFFile.maxDimensions) non-negative dimensions")
        }
        guard (ne.first ?? 1) % dtype.blockElements == 0, let bytes = dtype.byteCount(elements: count) else {
            throw FuseIOError.badTensor(path: what, tensor: name, what: "ne[0] = \(ne.first ?? 1) is not a multiple of the \(dtype.blockElements)-element blocks of \(dtype.rawValue)")
        }
        guard bytes == buffer.byteCount else {
            throw FuseIOError.badTensor(path: what, tensor: name, what: "\(dtype.rawValue) \(ne) takes \(bytes) bytes, \(buffer.byteCount) were given")
        }
        // Offsets are assigned when the header is written, once the alignment is known to be valid.
        let info = GGUFTensorInfo(name: name, dtype: dtype, ne: ne, elementCount: count,
                                  relativeOffset: -1, byteOffset: -1, byteCount: bytes)
        tensors.append((info, buffer))
        tensorNames.insert(name)
    }

    private func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    // MARK: - Serialising

    /// Header, metadata, tensor infos and the padding up to the data section.
    public func header() throws -> [UInt8] {
        guard alignment > 0, alignment <= 1 << 31, alignment & (alignment - 1) == 0 else {
            throw FuseIOError.badMetadata(path: "GGUF writer", key: GGUFFile.alignmentKey, offset: 0, what: "the alignment must be a power of two from 1 to 2^31, got \(alignment)")
        }
        var keys = self.keys
        var metadata = self.metadata
        if let stored = metadata[GGUFFile.alignmentKey] {
            guard stored.int == alignment else {
                throw FuseIOError.badMetadata(path: "GGUF writer", key: GGUFFile.alignmentKey, offset: 0, what: "set to \(stored) but the writer aligns to \(alignment)")
            }
        } else if alignment != GGUFFile.defaultAlignment {
            keys.append(GGUFFile.alignmentKey)
            metadata[GGUFFile.alignmentKey] = .uint32(UInt32(alignment))
        }
        var out: [UInt8] = []
        out.append(le: GGUFFile.magic)
        out.append(le: version)
        out.append(le: UInt64(tensors.count))
        out.append(le: UInt64(keys.count))
        for key in keys {
            guard let value = metadata[key] else { continue }
            out.append(gguf: key)
            out.append(le: value.type.rawValue)
            out.append(value: value)
        }
        var relativeOffset = 0
        for (info, _) in tensors {
            out.append(gguf: info.name)
            out.append(le: UInt32(info.ne.count))
            for d in info.ne { out.append(le: UInt64(d)) }
            out.append(le: info.dtype.traits.ggmlType ?? 0)
            out.append(le: UInt64(relativeOffset))
            relativeOffset += padded(info.byteCount)
        }
        out.append(contentsOf: repeatElement(0, count: padded(out.count) - out.count))
        return out
    }

    /// The whole file in memory (tests and the fuzzer).
    public func serialized() throws -> [UInt8] {
        var out = try header()
        for (info, data) in tensors {
            out.append(contentsOf: data.bytes)
            out.append(contentsOf: repeatElement(0, count: padded(info.byteCount) - info.byteCount))
        }
        return out
    }

    /// Writes the file to a temporary sibling of `path`, syncs it and renames it into place; on any
    /// failure the temporary file is removed and `path` is untouched. An existing `path` is an
    /// error unless `overwrite` is set.
    public func write(to path: String, overwrite: Bool = false) throws {
        if !overwrite, access(path, F_OK) == 0 { throw FuseIOError.outputExists(path: path) }
        let head = try header()
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FuseIOError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        do {
            try head.withUnsafeBytes { try writeAll(fd, $0, path) }
            let zeros = [UInt8](repeating: 0, count: alignment)
            for (info, data) in tensors {
                try writeAll(fd, data.bytes, path)
                try zeros.withUnsafeBytes { try writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<(padded(info.byteCount) - info.byteCount)]), path) }
            }
            guard fsync(fd) == 0 else { throw FuseIOError.writeFailed(path: path, reason: "fsync: \(String(cString: strerror(errno)))") }
            guard close(fd) == 0 else {
                unlink(temporary)
                throw FuseIOError.writeFailed(path: path, reason: "close: \(String(cString: strerror(errno)))")
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw FuseIOError.writeFailed(path: path, reason: "rename: \(reason)")
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: String) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = systemWrite(fd, p, left)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw FuseIOError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
            p += n
            left -= n
        }
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

// MARK: - Encoding

extension [UInt8] {
    mutating func append<T: FixedWidthInteger>(le value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    mutating func append(gguf string: String) {
        append(le: UInt64(string.utf8.count))
        append(contentsOf: string.utf8)
    }

    mutating func append(value: GGUFValue) {
        switch value {
        case let .uint8(v): append(le: v)
        case let .int8(v): append(le: v)
        case let .uint16(v): append(le: v)
        case let .int16(v): append(le: v)
        case let .uint32(v): append(le: v)
        case let .int32(v): append(le: v)
        case let .uint64(v): append(le: v)
        case let .int64(v): append(le: v)
        case let .float32(v): append(le: v.bitPattern)
        case let .float64(v): append(le: v.bitPattern)
        case let .bool(v): append(v ? 1 : 0)
        case let .string(v): append(gguf: v)
        case let .array(a): append(array: a)
        }
    }

    mutating func append(array a: GGUFArray) {
        append(le: a.elementType.rawValue)
        append(le: UInt64(a.count))
        switch a {
        case let .uint8(x): append(contentsOf: x)
        case let .int8(x): x.forEach { append(le: $0) }
        case let .uint16(x): x.forEach { append(le: $0) }
        case let .int16(x): x.forEach { append(le: $0) }
        case let .uint32(x): x.forEach { append(le: $0) }
        case let .int32(x): x.forEach { append(le: $0) }
        case let .uint64(x): x.forEach { append(le: $0) }
        case let .int64(x): x.forEach { append(le: $0) }
        case let .float32(x): x.forEach { append(le: $0.bitPattern) }
        case let .float64(x): x.forEach { append(le: $0.bitPattern) }
        case let .bool(x): x.forEach { append($0 ? 1 : 0) }
        case let .string(x): x.forEach { append(gguf: $0) }
        case let .array(x): x.forEach { append(array: $0) }
        }
    }
}
