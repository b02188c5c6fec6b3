// GGUF metadata values: the thirteen value types of formats-and-models.md §2.2, typed arrays
// (arrays of strings and nested arrays included), and accessors that accept any integer width.

/// `gguf_type`: the type tag stored before every metadata value and array element type.
public enum GGUFValueType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of one value of a fixed-size type, nil for strings and arrays.
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The fewest bytes one value of this type takes in a file (strings: the u64 length; arrays:
    /// element type and count). Bounds array counts before anything is allocated.
    public var minimumSize: Int { fixedSize ?? (self == .string ? 8 : 12) }

    /// gguf-py's name (`GGUFValueType.name`).
    public var description: String {
        switch self {
        case .uint8: return "UINT8"
        case .int8: return "INT8"
        case .uint16: return "UINT16"
        case .int16: return "INT16"
        case .uint32: return "UINT32"
        case .int32: return "INT32"
        case .float32: return "FLOAT32"
        case .bool: return "BOOL"
        case .string: return "STRING"
        case .array: return "ARRAY"
        case .uint64: return "UINT64"
        case .int64: return "INT64"
        case .float64: return "FLOAT64"
        }
    }
}

/// One metadata value. Integer accessors accept every integer width (writers disagree on whether
/// `context_length` is u32 or u64); float accessors accept both float widths.
public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// Any integer type as Int; nil for other types and for a u64 above Int.max.
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// f32 as is, f64 rounded to nearest; nil for other types.
    public var float: Float? {
        switch self {
        case let .float32(v): return v
        case let .float64(v): return Float(v)
        default: return nil
        }
    }

    /// f32 widened exactly, f64 as is; nil for other types.
    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return nil
        }
    }

    public var bool: Bool? { if case let .bool(v) = self { return v }; return nil }
    public var string: String? { if case let .string(v) = self { return v }; return nil }
    public var array: GGUFArray? { if case let .array(v) = self { return v }; return nil }
    public var stringArray: [String]? { array?.strings }
    public var floatArray: [Float]? { array?.floats }
    public var intArray: [Int]? { array?.ints }

    public var description: String {
        switch self {
        case let .uint8(v): return "\(v)"
        case let .int8(v): return "\(v)"
        case let .uint16(v): return "\(v)"
        case let .int16(v): return "\(v)"
        case let .uint32(v): return "\(v)"
        case let .int32(v): return "\(v)"
        case let .uint64(v): return "\(v)"
        case let .int64(v): return "\(v)"
        case let .float32(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .bool(v): return "\(v)"
        case let .string(v): return JSON.string(v).serialized()
        case let .array(v): return v.description
        }
    }
}

/// A homogeneous metadata array, stored typed (a vocabulary of 262,144 strings is one `[String]`).
/// `.array` holds nested arrays, each with its own element type.
public enum GGUFArray: Equatable, Sendable, CustomStringConvertible {
    case uint8([UInt8]), int8([Int8]), uint16([UInt16]), int16([Int16])
    case uint32([UInt32]), int32([Int32]), uint64([UInt64]), int64([Int64])
    case float32([Float]), float64([Double])
    case bool([Bool])
    case string([String])
    case array([GGUFArray])

    public var elementType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    public var count: Int {
        switch self {
        case let .uint8(a): return a.count
        case let .int8(a): return a.count
        case let .uint16(a): return a.count
        case let .int16(a): return a.count
        case let .uint32(a): return a.count
        case let .int32(a): return a.count
        case let .uint64(a): return a.count
        case let .int64(a): return a.count
        case let .float32(a): return a.count
        case let .float64(a): return a.count
        case let .bool(a): return a.count
        case let .string(a): return a.count
        case let .array(a): return a.count
        }
    }

    /// Element `i` as a value (nested arrays as `.array`); nil when out of range.
    public subscript(i: Int) -> GGUFValue? {
        guard i >= 0, i < count else { return nil }
        switch self {
        case let .uint8(a): return .uint8(a[i])
        case let .int8(a): return .int8(a[i])
        case let .uint16(a): return .uint16(a[i])
        case let .int16(a): return .int16(a[i])
        case let .uint32(a): return .uint32(a[i])
        case let .int32(a): return .int32(a[i])
        case let .uint64(a): return .uint64(a[i])
        case let .int64(a): return .int64(a[i])
        case let .float32(a): return .float32(a[i])
        case let .float64(a): return .float64(a[i])
        case let .bool(a): return .bool(a[i])
        case let .string(a): return .string(a[i])
        case let .array(a): return .array(a[i])
        }
    }

    /// Every element as a value.
    public var values: [GGUFValue] { (0..<count).compactMap { self[$0] } }

    public var strings: [String]? { if case let .string(a) = self { return a }; return nil }

    /// f32 arrays as is, f64 arrays rounded to nearest; nil for other element types.
    public var floats: [Float]? {
        switch self {
        case let .float32(a): return a
        case let .float64(a): return a.map { Float($0) }
        default: return nil
        }
    }

    /// Arrays of any integer type as Int; nil for other element types or a u64 above Int.max.
    public var ints: [Int]? {
        switch self {
        case let .uint8(a): return a.map { Int($0) }
        case let .int8(a): return a.map { Int($0) }
        case let .uint16(a): return a.map { Int($0) }
        case let .int16(a): return a.map { Int($0) }
        case let .uint32(a): return a.map { Int($0) }
        case let .int32(a): return a.map { Int($0) }
        case let .int64(a): return a.map { Int($0) }
        case let .uint64(a):
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for v in a {
                guard let i = Int(exactly: v) else { return nil }
                out.append(i)
            }
            return out
        default: return nil
        }
    }

    /// `[a, b, c]`, or the first few elements and the count for long arrays.
    public var description: String {
        let shown = 8
        let items = (0..<min(count, shown)).compactMap { self[$0]?.description }.joined(separator: ", ")
        return count > shown ? "[\(items), ... (\(count) \(elementType))]" : "[\(items)]"
    }
}
