import XCTest
@testable import FuseMerge

/// The C combine (AVX-512 here, the portable loops under FUSEKIT_PORTABLE=1) against the Swift reference:
/// every bit equal, on odd lengths and offsets, with and without sign consensus, normalize, λ and the
/// fused base subtraction, in f32 and bf16.
final class CombineKernelTests: XCTestCase {
    func testKernelEqualsSwiftReference() {
        var rng = SystemRandomNumberGenerator()
        func values(_ n: Int) -> [Float] {
            (0..<n).map { _ in
                switch Int.random(in: 0..<10, using: &rng) {
                case 0: return 0
                case 1: return -0.0
                default: return Float.random(in: -1...1, using: &rng) * Float(pow(2.0, Double(Int.random(in: -12...2, using: &rng))))
                }
            }
        }
        for trial in 0..<200 {
            let n = Int.random(in: 1...300, using: &rng), count = Int.random(in: 1...4, using: &rng)
            let lo = Int.random(in: 0..<n, using: &rng), hi = Int.random(in: lo...n, using: &rng)
            let bf16 = trial % 2 == 0
            let rounded: (Float) -> Float = { bf16 ? Precision.bf16.r($0) : $0 }
            let settings = CombineSettings(weights: (0..<count).map { _ in rounded(Float.random(in: -1...1.5, using: &rng)) },
                                           consensus: Bool.random(using: &rng), normalize: Bool.random(using: &rng),
                                           lambda: Bool.random(using: &rng) ? 1 : 0.7, scalarDivisor: 1.3,
                                           subtractBase: Bool.random(using: &rng))
            let base = values(n).map(rounded), inputs = (0..<count).map { _ in values(n).map(rounded) }
            func run(_ kernel: Bool) -> ([Float], [[Float]]) {
                var b = base, o = [Float](repeating: 7, count: n), ins = inputs
                b.withUnsafeMutableBufferPointer { bp in
                    o.withUnsafeMutableBufferPointer { op in
                        let bufs = (0..<count).map { k in UnsafeMutableBufferPointer<Float>.allocate(capacity: n) }
                        for k in 0..<count { _ = bufs[k].initialize(from: ins[k]) }
                        if kernel { combineKernel(bufs, bp, op, lo..<hi, settings, bf16: bf16) }
                        else if bf16 { combine(RoundBF16.self, bufs, bp, op, lo..<hi, settings) }
                        else { combine(RoundF32.self, bufs, bp, op, lo..<hi, settings) }
                        for k in 0..<count { ins[k] = Array(bufs[k]); bufs[k].deallocate() }
                    }
                }
                return (o, ins)
            }
            let (kOut, kIns) = run(true), (sOut, sIns) = run(false)
            XCTAssertEqual(kOut.map(\.bitPattern), sOut.map(\.bitPattern), "trial \(trial): output, \(settings)")
            XCTAssertEqual(kIns.map { $0.map(\.bitPattern) }, sIns.map { $0.map(\.bitPattern) }, "trial \(trial): uᵢ")
        }
    }
}
