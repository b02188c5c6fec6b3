import XCTest
import FuseTensor

/// f32 <-> bf16/f16 against torch 2.15's rounding (Tools/fixtures/tensor_fixtures.py): edge values
/// (subnormals, ties, ±inf, max finite, NaN payloads) plus random bit patterns, through both the
/// scalar reference and the vectorised bulk path.
final class ConversionTests: XCTestCase {
    struct Fixture { var f32: [UInt32]; var bf16: [UInt16]; var f16: [UInt16]; var f16ToF32: [UInt32] }

    func load() throws -> Fixture {
        var r = try FixtureReader(path: fixturePath("tensor/conversions.bin"))
        XCTAssertTrue(r.magic("FKCONV01"), "stale fixture: rerun Tools/fixtures/tensor_fixtures.py")
        let n = Int(r.u32())
        let f32 = (0..<n).map { _ in r.u32() }
        let bf = (0..<n).map { _ in r.u16() }
        let h = (0..<n).map { _ in r.u16() }
        let back = (0..<65536).map { _ in r.u32() }
        return Fixture(f32: f32, bf16: bf, f16: h, f16ToF32: back)
    }

    func bulk(_ bits: [UInt32], to dtype: DType) throws -> [UInt16] {
        let t = try Tensor(floats: bits.map { Float(bitPattern: $0) }, shape: [bits.count]).converted(to: dtype)
        return Array(t.buffer.bytes.bindMemory(to: UInt16.self))
    }

    func testF32ToBF16MatchesTorch() throws {
        let fx = try load()
        let vector = try bulk(fx.f32, to: .bf16)
        var mismatches: [String] = []
        for k in 0..<fx.f32.count {
            let x = Float(bitPattern: fx.f32[k])
            for (path, got) in [("scalar", Convert.bf16Bits(x)), ("vector", vector[k])] {
                let expected = fx.bf16[k]
                // torch's vectorised cast writes every NaN as 0xFFFF; FuseKit writes a canonical quiet
                // NaN. NaNs are compared by class (formats-and-models.md §8).
                if x.isNaN {
                    if !Convert.float(fromBF16: got).isNaN { mismatches.append("\(path) NaN \(String(fx.f32[k], radix: 16)) -> \(String(got, radix: 16))") }
                } else if got != expected {
                    mismatches.append("\(path) \(String(fx.f32[k], radix: 16)): expected \(String(expected, radix: 16)) got \(String(got, radix: 16))")
                }
            }
        }
        XCTAssertTrue(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5))")
    }

    func testF32ToF16MatchesTorchBitForBit() throws {
        let fx = try load()
        let vector = try bulk(fx.f32, to: .f16)
        var mismatches: [String] = []
        for k in 0..<fx.f32.count {
            let scalar = Convert.f16Bits(Float(bitPattern: fx.f32[k]))
            for (path, got) in [("scalar", scalar), ("vector", vector[k])] where got != fx.f16[k] {
                mismatches.append("\(path) \(String(fx.f32[k], radix: 16)): expected \(String(fx.f16[k], radix: 16)) got \(String(got, radix: 16))")
            }
        }
        XCTAssertTrue(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5))")
    }

    func testF16ToF32EveryPattern() throws {
        let fx = try load()
        let all = (0..<65536).map { UInt16($0) }
        let buffer = Buffer(byteCount: all.count * 2)
        all.withUnsafeBytes { buffer.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let widened = try Tensor(dtype: .f16, shape: [all.count], buffer: buffer).floats()
        var bad = 0
        for k in 0..<65536 {
            let expected = Float(bitPattern: fx.f16ToF32[k])
            for got in [widened[k], Convert.float(fromF16: UInt16(k))] {
                // torch widens every f16 NaN to 0x7FFFFFFF; FuseKit keeps the payload as F16C and
                // numpy do. NaNs compare by class, everything else bit for bit.
                if expected.isNaN ? !got.isNaN : got.bitPattern != expected.bitPattern { bad += 1 }
            }
        }
        XCTAssertEqual(bad, 0)
    }

    func testBF16ToF32IsExactShift() throws {
        let all = (0..<65536).map { UInt16($0) }
        let buffer = Buffer(byteCount: all.count * 2)
        all.withUnsafeBytes { buffer.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let widened = try Tensor(dtype: .bf16, shape: [all.count], buffer: buffer).floats()
        for k in 0..<65536 { XCTAssertEqual(widened[k].bitPattern, UInt32(k) << 16) }
        // and bf16 -> f32 -> bf16 is the identity for every non-NaN pattern
        let round = try Tensor(floats: widened, shape: [65536]).converted(to: .bf16)
        let back = Array(round.buffer.bytes.bindMemory(to: UInt16.self))
        for k in 0..<65536 where !widened[k].isNaN { XCTAssertEqual(back[k], UInt16(k)) }
    }

    func testOddLengthsUseTheTail() throws {
        // lengths around the vector width exercise the scalar tail of each vector loop
        for n in [1, 7, 15, 16, 17, 31, 33] {
            let values = (0..<n).map { Float($0) * 1.000_123 - 3.3 }
            for dtype in [DType.bf16, .f16] {
                let back = try Tensor(floats: values, shape: [n]).converted(to: dtype).floats()
                for k in 0..<n {
                    let one = dtype == .bf16 ? Convert.float(fromBF16: Convert.bf16Bits(values[k])) : Convert.float(fromF16: Convert.f16Bits(values[k]))
                    XCTAssertEqual(back[k].bitPattern, one.bitPattern, "n=\(n) k=\(k) \(dtype)")
                }
            }
        }
    }
}
