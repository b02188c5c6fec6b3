import Foundation
import XCTest
@testable import FuseIO
import FuseTensor

/// A corpus of broken GGUF files, one fault each (after llama.cpp's tests/test-gguf.cpp). Each is
/// a valid file with a byte patch, written to disk and opened by path; each must throw one
/// specific `FuseIOError` case whose message names the file and the fault.
final class GGUFMalformedTests: XCTestCase {
    /// The valid base: six keys (alignment 64 appended by the writer), two tensors.
    func baseFile() throws -> [UInt8] {
        var writer = GGUFWriter(alignment: 64)
        writer.set("general.architecture", .string("test"))
        writer.set("test.key.one", .uint32(7))
        writer.set("test.key.two", .uint32(8))
        writer.set("test.string", .string("hello"))
        writer.set("test.flag", .bool(true))
        writer.set("test.array", .array(.int32([1, 2, 3])))
        let floats: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
        try writer.addTensor("tensor.alpha", dtype: .f32, ne: [8], bytes: floats.withUnsafeBytes { [UInt8]($0) })
        try writer.addTensor("tensor.alphb", dtype: .q4_0, ne: [32, 2], bytes: [UInt8](repeating: 0x11, count: 36))
        try writer.addTensor("tensor.gamma", dtype: .f32, ne: [0, 1, 1], bytes: [])
        return try writer.serialized()
    }

    struct Fault {
        let name: String
        let bytes: [UInt8]
        /// The `FuseIOError` case name (its Mirror label).
        let error: String
        /// Text the message must contain besides the path.
        let says: String
    }

    func testEveryFaultIsRefusedWithItsOwnError() throws {
        let base = try baseFile()
        XCTAssertNoThrow(try GGUFFile(bytes: base), "the unpatched base must be valid")
        let patcher = Patcher(bytes: base)
        func patched(_ edit: (inout Patcher) -> Void) -> [UInt8] {
            var p = patcher
            edit(&p)
            return p.bytes
        }
        let alpha = patcher.find("tensor.alpha") + 12   // n_dims, ne[0] at +4, type at +12, offset at +16
        let beta = patcher.find("tensor.alphb") + 12    // n_dims, ne[0] at +4, ne[1] at +12, type at +20, offset at +24
        let gamma = patcher.find("tensor.gamma") + 12   // n_dims, ne[0] at +4, ne[1] at +12, ne[2] at +20
        let nestedTooDeep: [UInt8] = try {
            var value = GGUFArray.int8([1])
            for _ in 0..<GGUFFile.maxArrayDepth { value = .array([value]) }
            var writer = GGUFWriter()
            writer.set("deep", .array(value))
            return try writer.serialized()
        }()

        let faults: [Fault] = [
            Fault(name: "bad-magic", bytes: patched { $0.put(0x4C4C_5547 as UInt32, at: 0) }, error: "corrupt", says: "not a GGUF file"),
            Fault(name: "empty", bytes: [], error: "truncated", says: "magic"),
            Fault(name: "version-1", bytes: patched { $0.put(1 as UInt32, at: 4) }, error: "unsupported", says: "version 1"),
            Fault(name: "big-endian", bytes: patched { $0.put(0x0300_0000 as UInt32, at: 4) }, error: "unsupported", says: "big-endian"),
            Fault(name: "version-4", bytes: patched { $0.put(4 as UInt32, at: 4) }, error: "unsupported", says: "version 4"),
            Fault(name: "truncated-header", bytes: Array(base.prefix(20)), error: "truncated", says: "metadata count"),
            Fault(name: "truncated-in-kv", bytes: Array(base.prefix(patcher.find("test.array") + 30)), error: "truncated",
                  says: "array 'test.array'"),
            Fault(name: "string-beyond-file", bytes: patched { $0.put(1_000_000_000_000 as UInt64, at: $0.find("test.string") + 15) },
                  error: "truncated", says: "a string of 1000000000000 bytes"),
            Fault(name: "absurd-n-kv", bytes: patched { $0.put(1 << 40 as UInt64, at: 16) }, error: "countTooLarge", says: "n_kv = 1099511627776"),
            Fault(name: "absurd-n-tensors", bytes: patched { $0.put(1 << 62 as UInt64, at: 8) }, error: "countTooLarge", says: "n_tensors"),
            Fault(name: "absurd-array-count", bytes: patched { $0.put(1 << 60 as UInt64, at: $0.find("test.array") + 18) },
                  error: "truncated", says: "1152921504606846976 INT32 elements of array 'test.array'"),
            Fault(name: "unknown-value-type", bytes: patched { $0.put(13 as UInt32, at: $0.find("test.key.one") + 12) },
                  error: "badMetadata", says: "unknown value type 13"),
            Fault(name: "bool-not-0-or-1", bytes: patched { $0.put(2 as UInt8, at: $0.find("test.flag") + 13) },
                  error: "badMetadata", says: "must be 0 or 1"),
            Fault(name: "key-not-utf8", bytes: patched { $0.put(0xFF as UInt8, at: $0.find("test.key.one") + 5) },
                  error: "badMetadata", says: "not valid UTF-8"),
            Fault(name: "nested-too-deep", bytes: nestedTooDeep, error: "badMetadata", says: "nest deeper than 16"),
            Fault(name: "duplicate-key", bytes: patched { $0.put("test.key.one", at: $0.find("test.key.two")) },
                  error: "duplicateKey", says: "'test.key.one' appears more than once"),
            Fault(name: "alignment-not-power-of-two", bytes: patched { $0.put(48 as UInt32, at: $0.find("general.alignment") + 21) },
                  error: "badMetadata", says: "power of two"),
            Fault(name: "alignment-zero", bytes: patched { $0.put(0 as UInt32, at: $0.find("general.alignment") + 21) },
                  error: "badMetadata", says: "power of two"),
            Fault(name: "n-dims-5", bytes: patched { $0.put(5 as UInt32, at: alpha) }, error: "badTensor", says: "n_dims = 5"),
            Fault(name: "unknown-type-id", bytes: patched { $0.put(99 as UInt32, at: alpha + 12) }, error: "unknownDType",
                  says: "unknown ggml type 99"),
            Fault(name: "iq-type", bytes: patched { $0.put(16 as UInt32, at: alpha + 12) }, error: "unknownDType", says: "IQ2_XXS"),
            Fault(name: "tq-type", bytes: patched { $0.put(34 as UInt32, at: alpha + 12) }, error: "unknownDType", says: "TQ1_0"),
            Fault(name: "mxfp4-type", bytes: patched { $0.put(39 as UInt32, at: alpha + 12) }, error: "unknownDType", says: "MXFP4"),
            Fault(name: "negative-dimension", bytes: patched { $0.put(1 << 63 as UInt64, at: alpha + 4) }, error: "badTensor",
                  says: "negative"),
            Fault(name: "element-count-overflow", bytes: patched { $0.put(1 << 62 as UInt64, at: beta + 4); $0.put(4 as UInt64, at: beta + 12) },
                  error: "badTensor", says: "overflow"),
            // 0 * 2^40 * 2^40 is 0 in GGUF order, but the HF order (reversed) overflows before the zero
            Fault(name: "overflow-behind-a-zero", bytes: patched { $0.put(1 << 40 as UInt64, at: gamma + 12); $0.put(1 << 40 as UInt64, at: gamma + 20) },
                  error: "badTensor", says: "overflow"),
            Fault(name: "byte-count-overflow", bytes: patched { $0.put(1 << 62 as UInt64, at: alpha + 4) },
                  error: "badTensor", says: "more bytes than fit"),
            Fault(name: "ne0-not-block-multiple", bytes: patched { $0.put(33 as UInt64, at: beta + 4) }, error: "badTensor",
                  says: "ne[0] = 33 is not a multiple of the 32-element blocks of Q4_0"),
            Fault(name: "unaligned-offset", bytes: patched { $0.put(32 as UInt64, at: beta + 24) }, error: "badTensor",
                  says: "not a multiple of the alignment 64"),
            Fault(name: "data-beyond-file", bytes: Array(base.dropLast(40)), error: "truncated", says: "data of tensor 'tensor.alphb'"),
            Fault(name: "offset-beyond-file", bytes: patched { $0.put(1 << 40 as UInt64, at: beta + 24) }, error: "truncated",
                  says: "data of tensor 'tensor.alphb'"),
            Fault(name: "overlapping-tensors", bytes: patched { $0.put(0 as UInt64, at: beta + 24) }, error: "overlappingTensors",
                  says: "overlaps"),
            Fault(name: "duplicate-tensor-name", bytes: patched { $0.put("tensor.alpha", at: $0.find("tensor.alphb")) },
                  error: "duplicateTensor", says: "'tensor.alpha' appears more than once"),
        ]
        XCTAssertGreaterThanOrEqual(faults.count, 15)

        let folder = try temporaryFolder(self)
        let memoryBefore = peakResidentBytes()
        for fault in faults {
            let path = folder.appendingPathComponent(fault.name + ".gguf").path
            try Data(fault.bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try GGUFFile(path: path), fault.name) { error in
                guard let error = error as? FuseIOError else { return XCTFail("\(fault.name): not a FuseIOError: \(error)") }
                let label = Mirror(reflecting: error).children.first?.label ?? "\(error)"
                XCTAssertEqual(label, fault.error, "\(fault.name): \(error)")
                let message = error.description
                XCTAssert(message.contains(path), "\(fault.name): the message must name the file: \(message)")
                XCTAssert(message.contains(fault.says), "\(fault.name): expected '\(fault.says)' in: \(message)")
            }
        }
        XCTAssertLessThan(peakResidentBytes() - memoryBefore, 64 << 20, "a malformed file must not cause a large allocation")
    }

    /// Dimensions of size zero and scalars (n_dims = 0) are legal and hold no or one element.
    func testZeroSizedAndScalarTensorsAreAccepted() throws {
        var writer = GGUFWriter()
        try writer.addTensor("empty", dtype: .q4_K, ne: [256, 0], bytes: [])
        try writer.addTensor("scalar", dtype: .f32, ne: [], bytes: [0, 0, 0x80, 0x3F])
        let file = try GGUFFile(bytes: try writer.serialized())
        XCTAssertEqual(try file.floats(named: "empty"), [])
        XCTAssertEqual(try file.floats(named: "scalar"), [1])
        XCTAssertEqual(try file.tensor(named: "scalar").shape, [])
    }
}

/// Byte edits on a copy of a file.
struct Patcher {
    var bytes: [UInt8]

    /// Offset of the first occurrence of `marker`'s UTF-8 bytes (a test bug if absent).
    func find(_ marker: String) -> Int {
        let needle = Array(marker.utf8)
        for i in 0...(bytes.count - needle.count) where Array(bytes[i..<(i + needle.count)]) == needle { return i }
        XCTFail("marker '\(marker)' not in the base file")
        return 0
    }

    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<(offset + $0.count), with: $0) }
    }

    mutating func put(_ text: String, at offset: Int) {
        let utf8 = Array(text.utf8)
        bytes.replaceSubrange(offset..<(offset + utf8.count), with: utf8)
    }
}

/// The process's peak resident set size in bytes.
func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}
