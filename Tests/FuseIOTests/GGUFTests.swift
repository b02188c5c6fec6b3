import Foundation
import XCTest
@testable import FuseIO
import FuseTensor

/// Where the fixtures of Tools/fixtures/gguf_fixtures.py live.
let ggufFixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/gguf")

/// A fresh temporary folder, removed when the test ends.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fusekit-gguf-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// A metadata value as the JSON the fixture script writes (`enc` in gguf_fixtures.py): integers as
/// decimal strings, floats as hex bit patterns, arrays with their element type.
func fixtureJSON(_ value: GGUFValue) -> JSON {
    func hex<T: BinaryInteger>(_ bits: T, digits: Int) -> String {
        let s = String(bits, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, digits - s.count)) + s
    }
    let type = JSON.string(value.type.description)
    switch value {
    case let .float32(v): return .object([("type", type), ("bits", .string(hex(v.bitPattern, digits: 8)))])
    case let .float64(v): return .object([("type", type), ("bits", .string(hex(v.bitPattern, digits: 16)))])
    case let .bool(v): return .object([("type", type), ("value", .bool(v))])
    case let .string(v): return .object([("type", type), ("value", .string(v))])
    case let .array(a):
        return .object([("type", type), ("elem", .string(a.elementType.description)),
                        ("items", .array(a.values.map(fixtureJSON)))])
    default: return .object([("type", type), ("value", .string(value.description))])
    }
}

final class GGUFTests: XCTestCase {
    /// Cross-check hook (Tools/checks/gguf_dequant_random.py): `FUSEKIT_GGUF_RANDOM` names a folder with
    /// random.gguf (quantized tensors of odd shapes, extreme scales) and expected.safetensors (each
    /// tensor dequantized by gguf-py, same name, f32). Skipped when unset.
    func testRandomFileFromEnvironment() throws {
        guard let folder = ProcessInfo.processInfo.environment["FUSEKIT_GGUF_RANDOM"] else { throw XCTSkip("FUSEKIT_GGUF_RANDOM not set") }
        let file = try GGUFFile(path: folder + "/random.gguf")
        let expected = try WeightStore(path: folder + "/expected.safetensors")
        var checked = 0
        for info in file.tensors {
            let got = try file.floats(named: info.name), want = try expected.floats(info.name)
            XCTAssertEqual(info.shape, expected.info(info.name)?.shape, info.name)
            let bad = (0..<want.count).filter { got[$0].bitPattern != want[$0].bitPattern }   // NaN bits included
            XCTAssert(bad.isEmpty, "\(info.name) (\(info.dtype.rawValue), shape \(info.shape)): \(bad.count) of \(want.count) differ; first at \(bad.first ?? 0): got \(got[bad.first ?? 0]) expected \(want[bad.first ?? 0])")
            checked += want.count
        }
        print("random.gguf: \(file.tensors.count) tensors, \(checked) values")
    }

    // MARK: - Files written by gguf-py

    /// Everything gguf-py's GGUFReader reports about `name` must match: header facts, every key
    /// in order with its typed value, every tensor's type, ne, offset, size and values.
    func checkAgainstGGUFPy(_ name: String) throws {
        let path = ggufFixtures.appendingPathComponent(name).path
        let expected = try JSON.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: path + ".json"))))
        let file = try GGUFFile(path: path)
        XCTAssertEqual(Int(file.version), expected["version"]?.int)
        XCTAssertEqual(file.alignment, expected["alignment"]?.int)
        XCTAssertEqual(file.dataOffset, expected["data_offset"]?.int)

        let kv = try XCTUnwrap(expected["kv"]?.array)
        XCTAssertEqual(file.keys, kv.compactMap { $0["key"]?.string })
        for entry in kv {
            let key = try XCTUnwrap(entry["key"]?.string)
            let value = try XCTUnwrap(file.metadata[key], "missing key \(key)")
            XCTAssertEqual(fixtureJSON(value), entry["value"], "key \(key): got \(fixtureJSON(value).serialized())")
        }

        let tensors = try XCTUnwrap(expected["tensors"]?.array)
        XCTAssertEqual(file.tensors.map(\.name), tensors.compactMap { $0["name"]?.string })
        for t in tensors {
            let name = try XCTUnwrap(t["name"]?.string)
            let info = try file.requireInfo(name)
            XCTAssertEqual(DType.ggmlTypeName(info.dtype.traits.ggmlType ?? 999), t["type"]?.string, name)
            XCTAssertEqual(info.ne, t["ne"]?.array?.compactMap(\.int), name)
            XCTAssertEqual(info.shape, info.ne.reversed(), name)
            XCTAssertEqual(info.byteOffset, t["offset"]?.int, name)
            XCTAssertEqual(info.byteCount, t["n_bytes"]?.int, name)
            let bits = try file.floats(named: name).map { Int($0.bitPattern) }
            XCTAssertEqual(bits, t["f32_bits"]?.array?.compactMap(\.int), "values of \(name)")
        }
    }

    func testReadsGGUFPyFileWithEveryValueType() throws { try checkAgainstGGUFPy("metadata.gguf") }
    func testReadsGGUFPyFileWithAlignment64() throws { try checkAgainstGGUFPy("aligned64.gguf") }

    func testAccessorsAcceptAnyIntegerWidth() throws {
        let file = try GGUFFile(path: ggufFixtures.appendingPathComponent("metadata.gguf").path)
        let m = file.metadata
        XCTAssertEqual(file.architecture, "fixture")
        XCTAssertEqual(m["fixture.context_length"]?.int, 8192)          // u64
        XCTAssertEqual(m["fixture.small_int"]?.int, 7)                  // u8
        XCTAssertEqual(m["fixture.i64"]?.int, Int(Int64.min))
        XCTAssertNil(m["fixture.u64"]?.int, "u64 max does not fit in Int")
        XCTAssertEqual(m["fixture.f32"]?.float, 0.1)
        XCTAssertEqual(m["fixture.f64"]?.double, 1.0 / 3.0)
        XCTAssertNil(m["fixture.string"]?.int)
        XCTAssertEqual(m["fixture.bool_true"]?.bool, true)
        XCTAssertEqual(m["fixture.string"]?.string, "h\u{e9}llo, \u{4e16}\u{754c} \u{2713}")
        XCTAssertEqual(m["fixture.tokens"]?.stringArray, ["<pad>", "\u{2581}hello", "\n", "", "<0x0A>"])
        XCTAssertEqual(m["fixture.scores"]?.floatArray, [0, -1000, 0.5, 3.4e38, -1.25])
        XCTAssertEqual(m["fixture.ints"]?.intArray, [1, -2, 3])
        XCTAssertEqual(m["fixture.u8s"]?.intArray, [0, 255, 17])
        XCTAssertNil(m["fixture.u64s"]?.intArray, "u64 max does not fit in Int")
        XCTAssertEqual(m["fixture.f64s"]?.floatArray, [0.1, -2.5e-300].map { Float($0) })
        XCTAssertEqual(m["fixture.nested_ints"]?.array, .array([.int32([1, 2]), .int32([3, 4, 5])]))
        XCTAssertEqual(m["fixture.nested_strings"]?.array?[1]?.stringArray, ["c"])
    }

    func testTensorBorrowsTheMapAndOutlivesTheFile() throws {
        var file: GGUFFile? = try GGUFFile(path: ggufFixtures.appendingPathComponent("metadata.gguf").path)
        let info = try XCTUnwrap(file?.info(named: "q4_k.matrix"))
        let expected = try XCTUnwrap(file?.floats(named: "q4_k.matrix"))
        let tensor = try XCTUnwrap(file?.tensor(named: "q4_k.matrix"))
        XCTAssertEqual(tensor.dtype, .q4_K)
        XCTAssertEqual(tensor.shape, [2, 256])
        XCTAssertEqual(UnsafeRawPointer(tensor.buffer.base), file?.bytes(of: info).baseAddress, "the tensor must not copy")
        file = nil
        XCTAssertEqual(try tensor.floats(), expected, "the tensor keeps the map alive")
        XCTAssertThrowsError(try GGUFFile(path: ggufFixtures.appendingPathComponent("metadata.gguf").path).tensor(named: "nope")) {
            guard case FuseIOError.missingTensor = $0 else { return XCTFail("\($0)") }
        }
    }

    // MARK: - Writer

    /// The writer must reproduce gguf-py's file byte for byte from what the reader saw.
    func testWriterReproducesGGUFPyFileExactly() throws {
        for name in ["metadata.gguf", "aligned64.gguf"] {
            let path = ggufFixtures.appendingPathComponent(name).path
            let file = try GGUFFile(path: path)
            var writer = GGUFWriter(alignment: file.alignment)
            for key in file.keys { writer.set(key, file.metadata[key]!) }
            for info in file.tensors { try writer.addTensor(info.name, dtype: info.dtype, ne: info.ne, bytes: file.bytes(of: info)) }
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertEqual(try writer.serialized(), original, name)
        }
    }

    func testWriterRoundTrip() throws {
        let folder = try temporaryFolder(self)
        var rng = SeededRNG(seed: 7)
        for alignment in [1, 32, 64, 256] {
            var writer = GGUFWriter(alignment: alignment)
            let values: [(String, GGUFValue)] = [
                ("general.architecture", .string("llama")), ("u8", .uint8(255)), ("i8", .int8(-128)),
                ("u16", .uint16(65535)), ("i16", .int16(-32768)), ("u32", .uint32(.max)), ("i32", .int32(.min)),
                ("u64", .uint64(.max)), ("i64", .int64(.min)), ("f32", .float32(-0.0)), ("f64", .float64(.pi)),
                ("bool", .bool(false)), ("empty", .string("")), ("unicode", .string("\u{2581}\u{1F600}")),
                ("strings", .array(.string(["a", "", "\u{e9}"]))), ("floats", .array(.float32([1, .infinity]))),
                ("bools", .array(.bool([true, false]))), ("u64s", .array(.uint64([0, .max]))),
                ("nested", .array(.array([.string(["x"]), .int8([1, 2]), .array([.float64([0.5])])]))),
                ("empty array", .array(.int32([]))),
            ]
            for (k, v) in values { writer.set(k, v) }
            var blobs: [String: [UInt8]] = [:]
            let specs: [(String, DType, [Int])] = [
                ("f32", .f32, [3, 2]), ("f16", .f16, [5]), ("bf16", .bf16, [2, 2, 2]), ("q4_0", .q4_0, [64, 2]),
                ("q6_K", .q6_K, [256, 1, 1, 2]), ("q8_0", .q8_0, [32]), ("empty", .f32, [0, 4]), ("i32", .i32, [1]),
            ]
            for (name, dtype, ne) in specs {
                let bytes = (0..<dtype.byteCount(elements: elementCount(ne)!)!).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                blobs[name] = bytes
                try writer.addTensor(name, dtype: dtype, ne: ne, bytes: bytes)
            }
            let path = folder.appendingPathComponent("round-\(alignment).gguf").path
            try writer.write(to: path)
            XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), try writer.serialized())
            let file = try GGUFFile(path: path)
            XCTAssertEqual(file.alignment, alignment)
            XCTAssertEqual(file.dataOffset % alignment, 0)
            XCTAssertEqual(file.metadata[GGUFFile.alignmentKey], alignment == 32 ? nil : .uint32(UInt32(alignment)))
            for (k, v) in values {
                let got = try XCTUnwrap(file.metadata[k])
                XCTAssertEqual(fixtureJSON(got), fixtureJSON(v), k)   // JSON compares bits, so -0.0 and NaN count
            }
            // tinfo order, back to back, each padded to the alignment (llama.cpp's loader rule)
            var expectedOffset = 0
            for (info, (name, dtype, ne)) in zip(file.tensors, specs) {
                XCTAssertEqual(info.name, name)
                XCTAssertEqual(info.dtype, dtype)
                XCTAssertEqual(info.ne, ne)
                XCTAssertEqual(info.relativeOffset, expectedOffset)
                XCTAssertEqual([UInt8](file.bytes(of: info)), blobs[name])
                expectedOffset += (info.byteCount + alignment - 1) / alignment * alignment
            }
            XCTAssertEqual(file.fileSize, file.dataOffset + expectedOffset)
        }
    }

    func testWriterAddsTensorsFromTensorValues() throws {
        let tensor = try Tensor(floats: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        var writer = GGUFWriter()
        try writer.addTensor("w", tensor)
        let file = try GGUFFile(bytes: try writer.serialized())
        XCTAssertEqual(file.tensors.first?.ne, [3, 2])
        XCTAssertEqual(try file.floats(named: "w"), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try file.tensor(named: "w").shape, [2, 3])
    }

    func testWriterRefusesBadInput() throws {
        var writer = GGUFWriter()
        try writer.addTensor("a", dtype: .f32, ne: [1], bytes: [0, 0, 0, 0])
        XCTAssertThrowsError(try writer.addTensor("a", dtype: .f32, ne: [1], bytes: [0, 0, 0, 0])) {
            guard case FuseIOError.duplicateTensor = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try writer.addTensor("b", dtype: .f32, ne: [2], bytes: [0, 0, 0, 0])) {
            guard case FuseIOError.badTensor = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try writer.addTensor("c", dtype: .q4_0, ne: [16], bytes: [UInt8](repeating: 0, count: 9))) {
            guard case FuseIOError.badTensor = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try writer.addTensor("d", dtype: .f32, ne: [1, 1, 1, 1, 1], bytes: [0, 0, 0, 0])) {
            guard case FuseIOError.badTensor = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try writer.addTensor("e", dtype: .u16, ne: [1], bytes: [0, 0])) {
            guard case FuseIOError.unknownDType = $0 else { return XCTFail("\($0)") }
        }
        for alignment in [0, -64, 48, 1 << 32] {
            var bad = GGUFWriter(alignment: alignment)
            try bad.addTensor("t", dtype: .f32, ne: [1], bytes: [0, 0, 0, 0])
            XCTAssertThrowsError(try bad.serialized(), "alignment \(alignment)") {
                guard case FuseIOError.badMetadata = $0 else { return XCTFail("\($0)") }
            }
        }
        XCTAssertThrowsError(try writer.addTensor("f", dtype: .f32, ne: [0, 1 << 40, 1 << 40], bytes: [])) {
            guard case FuseIOError.badTensor = $0 else { return XCTFail("\($0)") }
        }

        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("out.gguf").path
        try writer.write(to: path)
        XCTAssertThrowsError(try writer.write(to: path)) {
            guard case FuseIOError.outputExists = $0 else { return XCTFail("\($0)") }
        }
        try writer.write(to: path, overwrite: true)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.gguf"], "no temporary file is left")
    }
}
