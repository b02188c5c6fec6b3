import Foundation
import XCTest
@testable import FuseIO
import FuseTensor

/// The two real models (formats-and-models.md §4), read when FUSEKIT_MODELS_DIR holds
/// `smollm2.gguf` and `gemma3-270m.gguf` (Tools/fetch-models.sh); skipped otherwise. Expected
/// values come from gguf-py's GGUFReader and `gguf.quants.dequantize` (Tests/Fixtures/gguf/models.json).
final class GGUFModelTests: XCTestCase {
    func open(_ model: String) throws -> (GGUFFile, JSON) {
        guard let dir = ProcessInfo.processInfo.environment["FUSEKIT_MODELS_DIR"] else {
            throw XCTSkip("set FUSEKIT_MODELS_DIR to a folder with smollm2.gguf and gemma3-270m.gguf to run the real-model tests")
        }
        let all = try JSON.parse([UInt8](Data(contentsOf: ggufFixtures.appendingPathComponent("models.json"))))
        let expected = try XCTUnwrap(all[model])
        let name = try XCTUnwrap(expected["file"]?.string)
        return (try GGUFFile(path: URL(fileURLWithPath: dir).appendingPathComponent(name).path), expected)
    }

    /// Header, metadata, type counts, and dequantized tensors against gguf-py, bit for bit: two
    /// wrapping u64 checksums of the f32 bit patterns over the whole tensor, plus sample elements.
    func checkAgainstGGUFPy(_ file: GGUFFile, _ expected: JSON) throws {
        XCTAssertEqual(Int(file.version), expected["version"]?.int)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.dataOffset, expected["data_offset"]?.int)
        XCTAssertEqual(file.keys.count, expected["n_kv"]?.int)
        XCTAssertEqual(file.tensors.count, expected["n_tensors"]?.int)
        XCTAssertEqual(file.tensors.reduce(0) { $0 + $1.elementCount }, expected["n_elements"]?.int)
        var counts: [String: Int] = [:]
        for t in file.tensors { counts[t.dtype.rawValue.uppercased(), default: 0] += 1 }
        for (type, count) in try XCTUnwrap(expected["type_counts"]?.object) {
            XCTAssertEqual(counts[type], count.int, "number of \(type) tensors")
        }
        XCTAssertEqual(counts.values.reduce(0, +), file.tensors.count)

        for (key, want) in try XCTUnwrap(expected["kv"]?.object) {
            let value = try XCTUnwrap(file.metadata[key], "missing key \(key)")
            if want["type"]?.string == "ARRAY" {
                XCTAssertEqual(value.array?.elementType.description, want["elem"]?.string, key)
                XCTAssertEqual(value.array?.count, want["count"]?.int, key)
            } else {
                XCTAssertEqual(fixtureJSON(value), want, key)
            }
        }
        let tokens = try XCTUnwrap(file.metadata["tokenizer.ggml.tokens"]?.stringArray)
        for (id, token) in try XCTUnwrap(expected["token_samples"]?.object) {
            XCTAssertEqual(tokens[Int(id) ?? 0], token.string, "token \(id)")
        }

        for (name, want) in try XCTUnwrap(expected["tensors"]?.object) {
            let info = try file.requireInfo(name)
            XCTAssertEqual(info.dtype.rawValue.uppercased(), want["type"]?.string, name)
            XCTAssertEqual(info.ne, want["ne"]?.array?.compactMap(\.int), name)
            XCTAssertEqual(info.byteOffset, want["offset"]?.int, name)
            let start = Date()
            let values = try file.floats(named: name)
            let seconds = Date().timeIntervalSince(start)
            if info.elementCount > 10_000_000 {
                print("dequantized \(name) (\(info.dtype.rawValue), \(info.elementCount) elements) in \(String(format: "%.3f", seconds)) s")
            }
            var sum: UInt64 = 0, weighted: UInt64 = 0
            for (i, v) in values.enumerated() {
                let bits = UInt64(v.bitPattern)
                sum &+= bits
                weighted &+= bits &* UInt64(i % 65521 + 1)
            }
            XCTAssertEqual(String(sum), want["bits_sum"]?.string, "checksum of \(name)")
            XCTAssertEqual(String(weighted), want["bits_weighted"]?.string, "position-weighted checksum of \(name)")
            for (index, bits) in try XCTUnwrap(want["samples"]?.object) {
                XCTAssertEqual(Int(values[Int(index) ?? 0].bitPattern), bits.int, "\(name)[\(index)]")
            }
        }
    }

    func testSmolLM2() throws {
        let (file, expected) = try open("smollm2")
        try checkAgainstGGUFPy(file, expected)
        // formats-and-models.md §4.1
        XCTAssertEqual(file.architecture, "llama")
        XCTAssertEqual(file.metadata["llama.block_count"]?.int, 30)
        XCTAssertEqual(file.metadata["llama.rope.freq_base"]?.float, 100_000)
        XCTAssertEqual(file.info(named: "token_embd.weight")?.shape, [49152, 576])
        XCTAssertNil(file.info(named: "output.weight"), "tied embeddings")
        let matrices = file.tensors.filter { $0.name.hasPrefix("blk.") && $0.ne.count == 2 }
        XCTAssertEqual(matrices.count, 210)
        XCTAssert(matrices.allSatisfy { $0.dtype == .q4_1 })
        XCTAssert(file.tensors.filter { $0.ne.count == 1 }.allSatisfy { $0.dtype == .f32 && $0.ne == [576] })
        XCTAssertEqual(file.metadata["tokenizer.ggml.merges"]?.stringArray?.count, 48900)
    }

    func testGemma3() throws {
        let (file, expected) = try open("gemma3")
        try checkAgainstGGUFPy(file, expected)
        // formats-and-models.md §4.2
        XCTAssertEqual(file.architecture, "gemma3")
        XCTAssertEqual(file.metadata["gemma3.rope.freq_base"]?.float, 1_000_000)
        XCTAssertEqual(file.metadata["tokenizer.ggml.tokens"]?.stringArray?.count, 262_144)
        XCTAssertEqual(file.metadata["tokenizer.ggml.scores"]?.floatArray?.count, 262_144)
        XCTAssertNil(file.metadata["tokenizer.ggml.merges"])
        let wide: Set<Int> = [0, 1, 4, 7, 10, 13, 15, 16, 17]
        for layer in 0..<18 {
            XCTAssertEqual(file.info(named: "blk.\(layer).attn_v.weight")?.dtype, wide.contains(layer) ? .q8_0 : .q5_0, "layer \(layer)")
            XCTAssertEqual(file.info(named: "blk.\(layer).ffn_down.weight")?.dtype, wide.contains(layer) ? .q6_K : .q4_K, "layer \(layer)")
            XCTAssertEqual(file.info(named: "blk.\(layer).attn_output.weight")?.dtype, .q4_K)
            XCTAssertEqual(file.info(named: "blk.\(layer).attn_q.weight")?.ne, [640, 1024])
        }
    }
}
