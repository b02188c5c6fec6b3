// GGUF reader, versions 2 and 3, little-endian (formats-and-models.md §2; ggml `gguf.h`).
//
//   offset  field
//   0       magic       u32   0x46554747, the bytes "GGUF" (47 47 55 46)
//   4       version     u32   2 or 3. Version 1 used 32-bit counts: refused. A version that reads
//                             as 0x02000000 or 0x03000000 is a big-endian file: refused.
//   8       n_tensors   u64
//   16      n_kv        u64
//   24      kv[n_kv]          key: str, type: u32 (GGUFValueType 0...12), value
//                             str   = u64 byte length + UTF-8 bytes, no NUL
//                             array = element type u32, count u64, count values; an element of
//                                     type ARRAY is itself (type u32, count u64, values)
//           tinfo[n_tensors]  name: str, n_dims: u32 (<= 4), ne: u64[n_dims] (ne[0] innermost),
//                             type: u32 (ggml_type), offset: u64 (from the start of the data
//                             section, a multiple of ALIGN)
//           padding           0x00 up to the next multiple of ALIGN (absolute file offset)
//           data              tensor bytes; a row of ne[0] elements is ne[0] / block elements blocks
//
// ALIGN is `general.alignment` (any integer type; a power of two, at most 2^31), else 32.
// Limits checked before anything is allocated: n_tensors and n_kv must fit in the bytes that remain
// (a kv takes at least 13 bytes, a tensor info 24), array counts likewise (by element type: a
// longer array is reported as a truncation), and
// arrays nest at most `maxArrayDepth` deep. Keys and tensor names are unique and valid UTF-8.
// Each tensor has at most 4 dimensions, an element count that fits in Int, ne[0] a multiple of
// its block size, an aligned offset, and bytes that lie inside the file and overlap no other
// tensor's. llama.cpp writes tensors in tinfo order, back to back; this reader accepts any order.
import FuseTensor

/// One entry of the tensor-info table.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: DType
    /// Dimensions in GGUF order: `ne[0]` is the innermost (contiguous) one.
    public let ne: [Int]
    public let elementCount: Int
    /// The offset as stored, relative to the data section.
    public let relativeOffset: Int
    /// Absolute byte offset of the data in the file.
    public let byteOffset: Int
    public let byteCount: Int

    /// PyTorch / safetensors order: `ne` reversed (`ne = [576, 49152]` is `[49152, 576]`).
    public var shape: [Int] { ne.reversed() }
}

/// A parsed GGUF file. Tensor data stays in the memory map; `tensor(named:)` borrows it without a
/// copy and `floats(named:)` dequantizes it.
public final class GGUFFile: @unchecked Sendable {
    public static let magic: UInt32 = 0x4655_4747
    public static let defaultAlignment = 32
    public static let maxDimensions = 4
    public static let maxArrayDepth = 16
    public static let alignmentKey = "general.alignment"

    public let path: String
    public let fileSize: Int
    public let version: UInt32
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    /// Metadata keys in file order.
    public let keys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]

    let tensorIndex: [String: Int]
    let base: UnsafeRawPointer?
    /// Keeps `base` valid: the `MappedFile`, or the `Buffer` of an in-memory file.
    let owner: AnyObject

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws {
        let file = try MappedFile(path: path)
        try self.init(name: path, base: file.base, size: file.size, owner: file)
    }

    /// Parses a copy of `bytes`; `name` stands for the path in errors (used by tests and the fuzzer).
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws {
        let buffer = Buffer(byteCount: bytes.count)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress { buffer.base.copyMemory(from: s, byteCount: src.count) }
        }
        try self.init(name: name, base: UnsafeRawPointer(buffer.base), size: bytes.count, owner: buffer)
    }

    private init(name: String, base: UnsafeRawPointer?, size: Int, owner: AnyObject) throws {
        var parser = GGUFParser(path: name, base: base, size: size)
        let header = try parser.parse()
        path = name
        fileSize = size
        version = header.version
        alignment = header.alignment
        dataOffset = header.dataOffset
        keys = header.keys
        metadata = header.metadata
        tensors = header.tensors
        tensorIndex = header.tensorIndex
        self.base = base
        self.owner = owner
    }

    /// `general.architecture`, the prefix of the model's hyperparameter keys.
    public var architecture: String? { metadata["general.architecture"]?.string }

    public func info(named name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }
}

// MARK: - Parser

/// Reads the header, metadata and tensor infos in file order; throws on the first fault.
struct GGUFParser {
    let path: String
    let base: UnsafeRawPointer?
    let size: Int
    var offset = 0

    /// Smallest kv entry: empty key (u64 length), type u32, one-byte value.
    static let minimumKVBytes = 8 + 4 + 1
    /// Smallest tensor info: empty name (u64 length), n_dims u32 = 0, type u32, offset u64.
    static let minimumTensorInfoBytes = 8 + 4 + 4 + 8

    struct Header {
        var version: UInt32
        var alignment: Int
        var dataOffset: Int
        var keys: [String]
        var metadata: [String: GGUFValue]
        var tensors: [GGUFTensorInfo]
        var tensorIndex: [String: Int]
    }

    init(path: String, base: UnsafeRawPointer?, size: Int) {
        self.path = path
        self.base = base
        self.size = size
    }

    mutating func parse() throws -> Header {
        // MARK: header
        let magic = try scalar(UInt32.self, "the magic number")
        guard magic == GGUFFile.magic else {
            let bytes = withUnsafeBytes(of: magic.littleEndian) { $0.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) } }
            throw FuseIOError.corrupt(path: path, what: "not a GGUF file: it starts with bytes \(bytes.joined(separator: " ")), expected 47 47 55 46 (\"GGUF\")")
        }
        let version = try scalar(UInt32.self, "the version")
        switch version {
        case 2, 3: break
        case 1:
            throw FuseIOError.unsupported(path: path, what: "GGUF version 1 is not supported (it used 32-bit counts); re-convert the model with a current llama.cpp, which writes version 3")
        case 0x0200_0000, 0x0300_0000:
            throw FuseIOError.unsupported(path: path, what: "this is a big-endian GGUF file (version reads as 0x0\(String(version, radix: 16))); FuseKit reads little-endian files only — convert it with gguf-py's gguf_convert_endian.py")
        default:
            throw FuseIOError.unsupported(path: path, what: "GGUF version \(version) is not supported (FuseKit reads versions 2 and 3)")
        }
        let tensorCountOffset = offset
        let tensorCount = try scalar(UInt64.self, "the tensor count")
        let kvCountOffset = offset
        let kvCount = try scalar(UInt64.self, "the metadata count")
        let tensorLimit = UInt64((size - offset) / Self.minimumTensorInfoBytes)
        guard tensorCount <= tensorLimit else {
            throw FuseIOError.countTooLarge(path: path, what: "n_tensors", offset: tensorCountOffset, count: tensorCount, limit: tensorLimit)
        }
        let kvLimit = UInt64((size - offset - Int(tensorCount) * Self.minimumTensorInfoBytes) / Self.minimumKVBytes)
        guard kvCount <= kvLimit else {
            throw FuseIOError.countTooLarge(path: path, what: "n_kv", offset: kvCountOffset, count: kvCount, limit: kvLimit)
        }

        // MARK: metadata
        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        var alignmentOffset = 0
        keys.reserveCapacity(Int(kvCount))
        for i in 0..<Int(kvCount) {
            let keyOffset = offset
            guard let key = try text("the key of metadata entry #\(i)") else {
                throw FuseIOError.badMetadata(path: path, key: "#\(i)", offset: keyOffset, what: "the key is not valid UTF-8")
            }
            guard metadata[key] == nil else { throw FuseIOError.duplicateKey(path: path, key: key) }
            let typeOffset = offset
            let rawType = try scalar(UInt32.self, "the type of metadata key '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw FuseIOError.badMetadata(path: path, key: key, offset: typeOffset, what: "unknown value type \(rawType) (GGUF value types are 0 to 12)")
            }
            if key == GGUFFile.alignmentKey { alignmentOffset = offset }
            metadata[key] = try value(type, key: key)
            keys.append(key)
        }
        let alignment = try alignment(metadata, at: alignmentOffset)

        // MARK: tensor infos
        var tensors: [GGUFTensorInfo] = []
        var tensorIndex: [String: Int] = [:]
        tensors.reserveCapacity(Int(tensorCount))
        for i in 0..<Int(tensorCount) {
            let nameOffset = offset
            guard let name = try text("the name of tensor #\(i)") else {
                throw FuseIOError.badTensor(path: path, tensor: "#\(i) at byte \(nameOffset)", what: "the name is not valid UTF-8")
            }
            guard tensorIndex[name] == nil else { throw FuseIOError.duplicateTensor(path: path, tensor: name) }
            tensorIndex[name] = i
            tensors.append(try tensorInfo(name: name, alignment: alignment))
        }

        // MARK: data section
        let dataOffset = (offset + alignment - 1) / alignment * alignment
        tensors = try tensors.map { try placed($0, dataOffset: dataOffset) }
        try checkOverlaps(tensors)
        return Header(version: version, alignment: alignment, dataOffset: dataOffset, keys: keys,
                      metadata: metadata, tensors: tensors, tensorIndex: tensorIndex)
    }

    // MARK: metadata values

    mutating func value(_ type: GGUFValueType, key: String) throws -> GGUFValue {
        let what = "the \(type) value of metadata key '\(key)'"
        switch type {
        case .uint8: return .uint8(try scalar(UInt8.self, what))
        case .int8: return .int8(try scalar(Int8.self, what))
        case .uint16: return .uint16(try scalar(UInt16.self, what))
        case .int16: return .int16(try scalar(Int16.self, what))
        case .uint32: return .uint32(try scalar(UInt32.self, what))
        case .int32: return .int32(try scalar(Int32.self, what))
        case .uint64: return .uint64(try scalar(UInt64.self, what))
        case .int64: return .int64(try scalar(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try scalar(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try scalar(UInt64.self, what)))
        case .bool:
            let at = offset
            return .bool(try boolean(at: at, key: key, what))
        case .string:
            let at = offset
            guard let s = try text(what) else {
                throw FuseIOError.badMetadata(path: path, key: key, offset: at, what: "the string value is not valid UTF-8")
            }
            return .string(s)
        case .array: return .array(try array(key: key, depth: 1))
        }
    }

    mutating func array(key: String, depth: Int) throws -> GGUFArray {
        let typeOffset = offset
        guard depth <= GGUFFile.maxArrayDepth else {
            throw FuseIOError.badMetadata(path: path, key: key, offset: typeOffset, what: "arrays nest deeper than \(GGUFFile.maxArrayDepth) levels")
        }
        let rawType = try scalar(UInt32.self, "the element type of array '\(key)'")
        guard let type = GGUFValueType(rawValue: rawType) else {
            throw FuseIOError.badMetadata(path: path, key: key, offset: typeOffset, what: "unknown array element type \(rawType) (GGUF value types are 0 to 12)")
        }
        let count = try scalar(UInt64.self, "the element count of array '\(key)'")
        guard count <= UInt64((size - offset) / type.minimumSize) else {
            // Even at the smallest element size the array would run past the end of the file.
            let (needed, overflow) = Int(clamping: count).multipliedReportingOverflow(by: type.minimumSize)
            throw FuseIOError.truncated(path: path, what: "the \(count) \(type) elements of array '\(key)'", offset: offset,
                                        needed: overflow ? Int.max : needed, fileSize: size)
        }
        let n = Int(count)
        let what = "the \(n) \(type) elements of array '\(key)'"
        switch type {
        case .uint8: return .uint8(try scalars(UInt8.self, n, what))
        case .int8: return .int8(try scalars(Int8.self, n, what))
        case .uint16: return .uint16(try scalars(UInt16.self, n, what))
        case .int16: return .int16(try scalars(Int16.self, n, what))
        case .uint32: return .uint32(try scalars(UInt32.self, n, what))
        case .int32: return .int32(try scalars(Int32.self, n, what))
        case .uint64: return .uint64(try scalars(UInt64.self, n, what))
        case .int64: return .int64(try scalars(Int64.self, n, what))
        case .float32: return .float32(try scalars(UInt32.self, n, what).map { Float(bitPattern: $0) })
        case .float64: return .float64(try scalars(UInt64.self, n, what).map { Double(bitPattern: $0) })
        case .bool:
            var out: [Bool] = []
            out.reserveCapacity(n)
            for _ in 0..<n { let at = offset; out.append(try boolean(at: at, key: key, what)) }
            return .bool(out)
        case .string:
            var out: [String] = []
            out.reserveCapacity(n)
            for j in 0..<n {
                let at = offset
                guard let s = try text("string \(j) of array '\(key)'") else {
                    throw FuseIOError.badMetadata(path: path, key: key, offset: at, what: "string \(j) of the array is not valid UTF-8")
                }
                out.append(s)
            }
            return .string(out)
        case .array:
            var out: [GGUFArray] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try array(key: key, depth: depth + 1)) }
            return .array(out)
        }
    }

    mutating func boolean(at: Int, key: String, _ what: @autoclosure () -> String) throws -> Bool {
        let b = try scalar(UInt8.self, what())
        guard b <= 1 else {
            throw FuseIOError.badMetadata(path: path, key: key, offset: at, what: "a BOOL must be 0 or 1, found \(b)")
        }
        return b == 1
    }

    /// `general.alignment`, or the default when the key is absent.
    func alignment(_ metadata: [String: GGUFValue], at valueOffset: Int) throws -> Int {
        guard let value = metadata[GGUFFile.alignmentKey] else { return GGUFFile.defaultAlignment }
        let maxAlignment = 1 << 31
        guard let a = value.int, a > 0, a <= maxAlignment, a & (a - 1) == 0 else {
            throw FuseIOError.badMetadata(path: path, key: GGUFFile.alignmentKey, offset: valueOffset,
                                          what: "the alignment must be an integer power of two from 1 to 2^31, found \(value.type) \(value)")
        }
        return a
    }

    // MARK: tensor infos

    mutating func tensorInfo(name: String, alignment: Int) throws -> GGUFTensorInfo {
        let dimsOffset = offset
        let dims = try scalar(UInt32.self, "the dimension count of tensor '\(name)'")
        guard dims <= GGUFFile.maxDimensions else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "n_dims = \(dims) at byte \(dimsOffset); GGUF allows at most \(GGUFFile.maxDimensions) dimensions")
        }
        var ne: [Int] = []
        for d in 0..<Int(dims) {
            let v = try scalar(UInt64.self, "dimension \(d) of tensor '\(name)'")
            guard let n = Int(exactly: v), n <= Int(Int64.max) else {
                throw FuseIOError.badTensor(path: path, tensor: name, what: "ne[\(d)] = \(v) is negative as a signed 64-bit integer")
            }
            ne.append(n)
        }
        let typeOffset = offset
        let rawType = try scalar(UInt32.self, "the type of tensor '\(name)'")
        let relative = try scalar(UInt64.self, "the data offset of tensor '\(name)'")
        // The product of the non-zero dimensions must fit too, so that no order of multiplying
        // them (the HF shape is `ne` reversed) overflows before it reaches a zero.
        guard let count = elementCount(ne), elementCount(ne.filter { $0 != 0 }) != nil else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "dimensions \(ne) overflow: their product exceeds 2^63 elements")
        }
        guard let dtype = DType(ggmlType: rawType) else {
            let typeName = DType.ggmlTypeName(rawType)
            let described = typeName.hasPrefix("unknown") ? typeName : "\(typeName), ggml type \(rawType)"
            throw FuseIOError.unknownDType(path: path, tensor: name, dtype: "\(described) at byte \(typeOffset); FuseKit reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K to Q6_K: re-quantize the model to one of those")
        }
        let rowLength = ne.first ?? 1
        guard rowLength % dtype.blockElements == 0 else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "row length ne[0] = \(rowLength) is not a multiple of the \(dtype.blockElements)-element blocks of \(DType.ggmlTypeName(rawType))")
        }
        guard let bytes = dtype.byteCount(elements: count) else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "dimensions \(ne) need more bytes than fit in memory")
        }
        guard let rel = Int(exactly: relative), rel % alignment == 0 else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "data offset \(relative) is not a multiple of the alignment \(alignment)")
        }
        return GGUFTensorInfo(name: name, dtype: dtype, ne: ne, elementCount: count, relativeOffset: rel, byteOffset: -1, byteCount: bytes)
    }

    /// The info with its absolute offset, once the data section is known; throws if the bytes
    /// run past the end of the file.
    func placed(_ t: GGUFTensorInfo, dataOffset: Int) throws -> GGUFTensorInfo {
        let (start, o1) = dataOffset.addingReportingOverflow(t.relativeOffset)
        let (end, o2) = start.addingReportingOverflow(t.byteCount)
        guard !o1, !o2, end <= size else {
            throw FuseIOError.truncated(path: path, what: "the data of tensor '\(t.name)' (\(t.dtype.rawValue.uppercased()) \(t.ne))",
                                        offset: o1 ? Int.max : start, needed: t.byteCount, fileSize: size)
        }
        return GGUFTensorInfo(name: t.name, dtype: t.dtype, ne: t.ne, elementCount: t.elementCount,
                              relativeOffset: t.relativeOffset, byteOffset: start, byteCount: t.byteCount)
    }

    func checkOverlaps(_ tensors: [GGUFTensorInfo]) throws {
        let sorted = tensors.filter { $0.byteCount > 0 }.sorted { ($0.byteOffset, $0.name) < ($1.byteOffset, $1.name) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.byteOffset + a.byteCount > b.byteOffset {
            throw FuseIOError.overlappingTensors(path: path, tensor: b.name, other: a.name, offset: b.byteOffset)
        }
    }

    // MARK: primitive reads (bounds-checked, little-endian, unaligned)

    /// The next `count` bytes; throws `.truncated` naming `what` when the file ends first.
    mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= size - offset else {
            throw FuseIOError.truncated(path: path, what: what(), offset: offset, needed: count, fileSize: size)
        }
        let bytes = UnsafeRawBufferPointer(start: count == 0 ? nil : base.map { $0 + offset }, count: count)
        offset += count
        return bytes
    }

    mutating func scalar<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let bytes = try take(MemoryLayout<T>.size, what())
        return T(littleEndian: bytes.loadUnaligned(as: T.self))
    }

    mutating func scalars<T: FixedWidthInteger>(_: T.Type, _ n: Int, _ what: @autoclosure () -> String) throws -> [T] {
        let (total, overflow) = n.multipliedReportingOverflow(by: MemoryLayout<T>.size)
        let bytes = try take(overflow ? Int.max : total, what())
        return [T](unsafeUninitializedCapacity: n) { out, initialized in
            for i in 0..<n {
                out[i] = T(littleEndian: bytes.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            }
            initialized = n
        }
    }

    /// A gguf_str; nil when its bytes are not valid UTF-8.
    mutating func text(_ what: @autoclosure () -> String) throws -> String? {
        let length = try scalar(UInt64.self, "the length of \(what())")
        guard length <= UInt64(size - offset) else {
            throw FuseIOError.truncated(path: path, what: "\(what()) (a string of \(length) bytes)", offset: offset,
                                        needed: Int(clamping: length), fileSize: size)
        }
        let bytes = try take(Int(length), what())
        return String(validating: bytes, as: UTF8.self)
    }
}
