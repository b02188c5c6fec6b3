// FuseTensor owns element types, tensors (shape + storage), element conversions, reductions,
// `parallelFor`, the BLAS/LAPACK bridge, quantized block formats and the seeded RNG.
// It must not know about files or models.

/// Every element type FuseKit stores or reads. Block-quantized GGUF types carry their block geometry;
/// plain types have one element per block. One table (`traits`) holds the facts, no scattered switches.
public enum DType: String, CaseIterable, Sendable, Codable {
    case f32, f16, bf16, f64
    case i8, i16, i32, i64, u8, u16, u32, u64, bool
    // GGUF block types (ggml_type), see formats-and-models.md §2.3
    case q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, q2_K, q3_K, q4_K, q5_K, q6_K, q8_K

    public struct Traits: Sendable {
        /// Elements per block (1 for plain types).
        public let blockElements: Int
        /// Bytes per block.
        public let blockBytes: Int
        /// safetensors header string, nil when safetensors cannot hold the type.
        public let safetensorsName: String?
        /// ggml_type id, nil when GGUF has no such type.
        public let ggmlType: UInt32?
    }

    public var traits: Traits {
        switch self {
        case .f32: return Traits(blockElements: 1, blockBytes: 4, safetensorsName: "F32", ggmlType: 0)
        case .f16: return Traits(blockElements: 1, blockBytes: 2, safetensorsName: "F16", ggmlType: 1)
        case .bf16: return Traits(blockElements: 1, blockBytes: 2, safetensorsName: "BF16", ggmlType: 30)
        case .f64: return Traits(blockElements: 1, blockBytes: 8, safetensorsName: "F64", ggmlType: 28)
        case .i8: return Traits(blockElements: 1, blockBytes: 1, safetensorsName: "I8", ggmlType: 24)
        case .i16: return Traits(blockElements: 1, blockBytes: 2, safetensorsName: "I16", ggmlType: 25)
        case .i32: return Traits(blockElements: 1, blockBytes: 4, safetensorsName: "I32", ggmlType: 26)
        case .i64: return Traits(blockElements: 1, blockBytes: 8, safetensorsName: "I64", ggmlType: 27)
        case .u8: return Traits(blockElements: 1, blockBytes: 1, safetensorsName: "U8", ggmlType: nil)
        case .u16: return Traits(blockElements: 1, blockBytes: 2, safetensorsName: "U16", ggmlType: nil)
        case .u32: return Traits(blockElements: 1, blockBytes: 4, safetensorsName: "U32", ggmlType: nil)
        case .u64: return Traits(blockElements: 1, blockBytes: 8, safetensorsName: "U64", ggmlType: nil)
        case .bool: return Traits(blockElements: 1, blockBytes: 1, safetensorsName: "BOOL", ggmlType: nil)
        case .q4_0: return Traits(blockElements: 32, blockBytes: 18, safetensorsName: nil, ggmlType: 2)
        case .q4_1: return Traits(blockElements: 32, blockBytes: 20, safetensorsName: nil, ggmlType: 3)
        case .q5_0: return Traits(blockElements: 32, blockBytes: 22, safetensorsName: nil, ggmlType: 6)
        case .q5_1: return Traits(blockElements: 32, blockBytes: 24, safetensorsName: nil, ggmlType: 7)
        case .q8_0: return Traits(blockElements: 32, blockBytes: 34, safetensorsName: nil, ggmlType: 8)
        case .q8_1: return Traits(blockElements: 32, blockBytes: 36, safetensorsName: nil, ggmlType: 9)
        case .q2_K: return Traits(blockElements: 256, blockBytes: 84, safetensorsName: nil, ggmlType: 10)
        case .q3_K: return Traits(blockElements: 256, blockBytes: 110, safetensorsName: nil, ggmlType: 11)
        case .q4_K: return Traits(blockElements: 256, blockBytes: 144, safetensorsName: nil, ggmlType: 12)
        case .q5_K: return Traits(blockElements: 256, blockBytes: 176, safetensorsName: nil, ggmlType: 13)
        case .q6_K: return Traits(blockElements: 256, blockBytes: 210, safetensorsName: nil, ggmlType: 14)
        case .q8_K: return Traits(blockElements: 256, blockBytes: 292, safetensorsName: nil, ggmlType: 15)
        }
    }

    public var blockElements: Int { traits.blockElements }
    public var blockBytes: Int { traits.blockBytes }
    public var isQuantized: Bool { traits.blockElements > 1 }
    /// f32, f16, bf16 and f64: the types that convert to and from Float32 element by element.
    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 || self == .f64 }

    /// Bytes needed for `count` elements, nil when `count` is not a whole number of blocks or overflows.
    public func byteCount(elements count: Int) -> Int? {
        let t = traits
        guard count >= 0, count % t.blockElements == 0 else { return nil }
        let (bytes, overflow) = (count / t.blockElements).multipliedReportingOverflow(by: t.blockBytes)
        return overflow ? nil : bytes
    }

    public init?(safetensorsName name: String) {
        guard let match = DType.allCases.first(where: { $0.traits.safetensorsName == name }) else { return nil }
        self = match
    }

    public init?(ggmlType id: UInt32) {
        guard let match = DType.allCases.first(where: { $0.traits.ggmlType == id }) else { return nil }
        self = match
    }

    /// ggml type names for ids FuseKit refuses, so an error can name what the file holds.
    public static func ggmlTypeName(_ id: UInt32) -> String {
        if let t = DType(ggmlType: id) { return t.rawValue.uppercased() }
        let known: [UInt32: String] = [
            16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
            22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
        ]
        return known[id] ?? "unknown ggml type \(id)"
    }
}

/// Product of the dimensions, nil on overflow or a negative dimension.
public func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = p
    }
    return n
}
