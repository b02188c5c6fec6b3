import Foundation
import XCTest
@testable import FuseTensor

/// Block dequantizers against gguf-py 0.19.0's `gguf.quants.dequantize`, bit for bit.
/// Fixtures: Tools/fixtures/gguf_fixtures.py writes `<type>.blocks` and the expected `<type>.f32`.
final class QuantTests: XCTestCase {
    /// `FUSEKIT_QUANT_FIXTURES` points these tests at another folder of the same layout
    /// (Tools/checks/gguf_dequant_random.py writes random blocks with extreme scales there).
    static let fixtures = ProcessInfo.processInfo.environment["FUSEKIT_QUANT_FIXTURES"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/gguf/quant")

    func fixture(_ name: String) throws -> (blocks: [UInt8], expected: [UInt32]) {
        let blocksURL = Self.fixtures.appendingPathComponent(name + ".blocks")
        let expectedURL = Self.fixtures.appendingPathComponent(name + ".f32")
        let blocks = [UInt8](try Data(contentsOf: blocksURL))
        let raw = [UInt8](try Data(contentsOf: expectedURL))
        let expected = raw.withUnsafeBytes { bytes in
            (0..<raw.count / 4).map { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        }
        return (blocks, expected)
    }

    func dequantize(_ dtype: DType, _ blocks: [UInt8], count: Int) throws -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        try blocks.withUnsafeBytes { src in
            try out.withUnsafeMutableBufferPointer { dst in
                try Convert.toFloat32(dtype, from: src.baseAddress!, to: dst.baseAddress!, count: count)
            }
        }
        return out
    }

    /// Compares bit patterns (NaN payloads included) and prints the first mismatches with block and index.
    func checkBitExact(_ dtype: DType, file: StaticString = #filePath, line: UInt = #line) throws {
        let (blocks, expected) = try fixture(dtype.rawValue)
        XCTAssertGreaterThan(expected.count, 0, file: file, line: line)
        XCTAssertEqual(blocks.count, expected.count / dtype.blockElements * dtype.blockBytes,
                       "fixture sizes disagree; regenerate with Tools/fixtures/gguf_fixtures.py", file: file, line: line)
        let got = try dequantize(dtype, blocks, count: expected.count)
        var mismatches: [String] = []
        for i in 0..<expected.count {
            let want = Float(bitPattern: expected[i])
            if got[i].bitPattern != expected[i] {   // NaNs too: gguf-py keeps a signalling NaN's bits
                mismatches.append("element \(i) (block \(i / dtype.blockElements), index \(i % dtype.blockElements)): got \(got[i]) expected \(want)")
            }
        }
        XCTAssert(mismatches.isEmpty, "\(dtype.rawValue): \(mismatches.count) of \(expected.count) differ from gguf-py; first: \(mismatches.prefix(5).joined(separator: "; "))",
                  file: file, line: line)
    }

    func testQ4_0() throws { try checkBitExact(.q4_0) }
    func testQ4_1() throws { try checkBitExact(.q4_1) }
    func testQ5_0() throws { try checkBitExact(.q5_0) }
    func testQ5_1() throws { try checkBitExact(.q5_1) }
    func testQ8_0() throws { try checkBitExact(.q8_0) }
    func testQ2_K() throws { try checkBitExact(.q2_K) }
    func testQ3_K() throws { try checkBitExact(.q3_K) }
    func testQ4_K() throws { try checkBitExact(.q4_K) }
    func testQ5_K() throws { try checkBitExact(.q5_K) }
    func testQ6_K() throws { try checkBitExact(.q6_K) }
    func testF16() throws { try checkBitExact(.f16) }
    func testBF16() throws { try checkBitExact(.bf16) }

    /// gguf-py has no Q8_1 dequantizer (and lists a stale 40-byte block), so Q8_1 is checked
    /// against Q8_0: the same d and qs with ggml's `s` field inserted must give the same values.
    func testQ8_1MatchesQ8_0() throws {
        let (q8_0, expected) = try fixture("q8_0")
        var q8_1: [UInt8] = []
        for b in 0..<q8_0.count / 34 {
            let block = q8_0[(34 * b)..<(34 * b + 34)]
            q8_1 += block.prefix(2) + [0x55, 0x7B] + block.dropFirst(2)
        }
        let got = try dequantize(.q8_1, q8_1, count: expected.count)
        XCTAssertEqual(got.map(\.bitPattern), expected)
    }

    func testEveryStoredBlockTypeHasADequantizer() {
        for dtype in DType.allCases where dtype.isQuantized && dtype != .q8_K {
            XCTAssertNotNil(Dequantizers.table[dtype], "\(dtype.rawValue) has no dequantizer")
        }
    }

    /// The GGUF reader dequantizes large tensors in chunks of whole blocks; any split must give the
    /// same bits as one call.
    func testChunkedCallsMatchOneCall() throws {
        for dtype in [DType.q4_1, .q5_0, .q3_K, .q6_K] {
            let (blocks, expected) = try fixture(dtype.rawValue)
            guard let function = Dequantizers.table[dtype] else { return XCTFail("no dequantizer for \(dtype)") }
            var out = [Float](repeating: .nan, count: expected.count)
            let nBlocks = expected.count / dtype.blockElements
            let split = nBlocks / 3
            blocks.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointer { dst in
                    function(src.baseAddress!, dst.baseAddress!, split * dtype.blockElements)
                    function(src.baseAddress! + split * dtype.blockBytes, dst.baseAddress! + split * dtype.blockElements,
                             (nBlocks - split) * dtype.blockElements)
                }
            }
            XCTAssertEqual(out.map(\.bitPattern), expected, "\(dtype.rawValue)")
        }
    }
}
