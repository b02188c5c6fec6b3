import FuseTensor

// safetensors, as the Rust crate 0.8.0 reads and writes it (formats-and-models.md §1):
//
//   offset 0   u64 LE  N, byte length of the JSON header (at most 100,000,000)
//   offset 8   N bytes UTF-8 JSON: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
//                                   "__metadata__": {"key": "string", ...}}   (metadata optional)
//   offset 8+N data; offsets are relative to here. Sorted by begin, tensors tile the data exactly:
//              the first begins at 0, each begins where the previous ends, the last ends at EOF.
//
// Readers take any layout that tiles; the writer pads the header with spaces to a multiple of 8 so every
// tensor is aligned to its element size.

public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public init(name: String, dtype: DType, shape: [Int]) { self.name = name; self.dtype = dtype; self.shape = shape }
    public var elementCount: Int { FuseTensor.elementCount(shape) ?? 0 }
    public var byteCount: Int { dtype.byteCount(elements: elementCount) ?? 0 }
}

/// One safetensors file, memory-mapped; tensors are read lazily and without copying.
public final class SafetensorsFile: @unchecked Sendable {
    /// The reference loader's limit on the header length.
    public static let maxHeaderBytes = 100_000_000

    public let path: String
    public let file: MappedFile
    /// Tensors in data order.
    public let tensors: [TensorInfo]
    public let metadata: [String: String]
    private let ranges: [String: Range<Int>]   // absolute file offsets
    private let indexByName: [String: Int]

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        // MARK: header length
        let lenBytes = try file.bytes(offset: 0, count: 8, what: "the 8-byte header length")
        let n = lenBytes.loadUnaligned(as: UInt64.self).littleEndian
        guard n <= UInt64(SafetensorsFile.maxHeaderBytes) else {
            throw FuseIOError.headerTooLarge(path: path, size: n, limit: SafetensorsFile.maxHeaderBytes)
        }
        let headerBytes = try file.bytes(offset: 8, count: Int(n), what: "the \(n)-byte JSON header")
        let dataStart = 8 + Int(n)
        // MARK: header JSON
        let header: JSON
        do { header = try JSON.parse(headerBytes) } catch let e as JSON.ParseError {
            throw FuseIOError.badJSON(path: path, offset: 8 + e.offset, what: e.message)
        }
        guard case let .object(entries) = header else {
            throw FuseIOError.corrupt(path: path, what: "the header is not a JSON object")
        }
        var infos: [(TensorInfo, Range<Int>)] = []
        var meta: [String: String] = [:]
        for (name, value) in entries {
            if name == "__metadata__" {
                guard case let .object(pairs) = value else {
                    throw FuseIOError.corrupt(path: path, what: "__metadata__ must be an object of strings")
                }
                for (k, v) in pairs {
                    guard let s = v.string else {
                        throw FuseIOError.corrupt(path: path, what: "__metadata__ value for '\(k)' is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            infos.append(try SafetensorsFile.parseEntry(name: name, value: value, path: path))
        }
        // MARK: offsets tile the data exactly
        infos.sort { ($0.1.lowerBound, $0.1.upperBound) < ($1.1.lowerBound, $1.1.upperBound) }
        var cursor = 0
        for (info, range) in infos {
            guard range.lowerBound == cursor else {
                let what = range.lowerBound < cursor ? "overlaps the previous tensor" : "leaves a gap before it"
                throw FuseIOError.badTensor(path: path, tensor: info.name,
                    what: "data_offsets [\(range.lowerBound), \(range.upperBound)] \(what) (expected begin \(cursor))")
            }
            cursor = range.upperBound
        }
        let (end, overflow) = dataStart.addingReportingOverflow(cursor)
        guard !overflow, end == file.size else {
            if !overflow, end > file.size {
                throw FuseIOError.truncated(path: path, what: "tensor data", offset: dataStart, needed: cursor, fileSize: file.size)
            }
            throw FuseIOError.corrupt(path: path, what: "\(file.size - end) unexpected bytes after the last tensor's data")
        }
        tensors = infos.map { $0.0 }
        metadata = meta
        var r: [String: Range<Int>] = [:]
        var idx: [String: Int] = [:]
        for (k, (info, range)) in infos.enumerated() {
            r[info.name] = (range.lowerBound + dataStart)..<(range.upperBound + dataStart)
            idx[info.name] = k
        }
        ranges = r
        indexByName = idx
    }

    private static func parseEntry(name: String, value: JSON, path: String) throws -> (TensorInfo, Range<Int>) {
        guard let dtypeName = value["dtype"]?.string else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "missing or non-string 'dtype'")
        }
        guard let dtype = DType(safetensorsName: dtypeName) else {
            throw FuseIOError.unknownDType(path: path, tensor: name, dtype: dtypeName)
        }
        guard let shapeJSON = value["shape"]?.array else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "missing or non-array 'shape'")
        }
        var shape: [Int] = []
        for d in shapeJSON {
            guard let v = d.int, v >= 0 else {
                throw FuseIOError.badTensor(path: path, tensor: name, what: "shape \(shapeJSON.map { $0.serialized() }) has a dimension that is not a non-negative integer")
            }
            shape.append(v)
        }
        guard let offsets = value["data_offsets"]?.array, offsets.count == 2,
              let begin = offsets[0].int, let end = offsets[1].int, begin >= 0, end >= begin else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "'data_offsets' must be [begin, end] with 0 <= begin <= end")
        }
        guard let n = elementCount(shape), let bytes = dtype.byteCount(elements: n) else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "shape \(shape) overflows")
        }
        guard bytes == end - begin else {
            throw FuseIOError.badTensor(path: path, tensor: name,
                what: "shape \(shape) of \(dtypeName) needs \(bytes) bytes but data_offsets span \(end - begin)")
        }
        return (TensorInfo(name: name, dtype: dtype, shape: shape), begin..<end)
    }

    public func info(_ name: String) -> TensorInfo? { indexByName[name].map { tensors[$0] } }

    /// Absolute byte range of a tensor's data in the file.
    public func byteRange(_ name: String) -> Range<Int>? { ranges[name] }

    /// The tensor, borrowing the memory map (no copy).
    public func tensor(_ name: String) throws -> Tensor {
        guard let k = indexByName[name], let range = ranges[name] else {
            throw FuseIOError.missingTensor(path: path, tensor: name)
        }
        let info = tensors[k]
        let bytes = try file.bytes(offset: range.lowerBound, count: range.count, what: "tensor '\(name)'")
        guard let base = bytes.baseAddress ?? (range.isEmpty ? UnsafeRawPointer(bitPattern: 64) : nil) else {
            throw FuseIOError.missingTensor(path: path, tensor: name)
        }
        let alignment = info.dtype.isQuantized ? 1 : info.dtype.blockBytes
        if Int(bitPattern: base) % alignment != 0 {
            // Old writers may leave a tensor misaligned; kernels need aligned elements, so copy.
            let owned = Buffer(byteCount: range.count)
            owned.base.copyMemory(from: base, byteCount: range.count)
            return try Tensor(dtype: info.dtype, shape: info.shape, buffer: owned)
        }
        return try Tensor(dtype: info.dtype, shape: info.shape, buffer: Buffer(borrowing: base, byteCount: range.count, owner: file))
    }
}
