import XCTest
import FuseTensor
@testable import FuseMerge

/// The radix top-k that replaces mergekit's full sort: same kept set as a sort on odd inputs.
final class SelectionTests: XCTestCase {
    func reference(_ x: [Float], k: Int) -> Set<Int> {
        Set(x.indices.sorted { abs(x[$0]) > abs(x[$1]) || (abs(x[$0]) == abs(x[$1]) && $0 < $1) }.prefix(k))
    }

    func testMatchesSortOnOddInputs() {
        var rng = SeededRNG(seed: 1)
        let cases: [[Float]] = [
            (0..<1000).map { _ in Float(rng.nextGaussian()) },
            (0..<777).map { _ in Float(Int(rng.next() % 7)) - 3 },          // many ties
            (0..<64).map { _ in Convert.float(fromBF16: Convert.bf16Bits(Float(rng.nextGaussian()) * 1e-3)) },
            [0, 0, 0, -0.0, 1, -1, .leastNonzeroMagnitude, -.greatestFiniteMagnitude],
        ]
        for x in cases {
            for k in [0, 1, 2, x.count / 3, x.count / 2, x.count - 1, x.count] {
                var v = x
                let selected: Set<Int> = v.withUnsafeMutableBufferPointer { b in
                    let s = LargestSelection(b, k: k)
                    return Set(b.indices.filter { s.contains($0, b[$0]) })
                }
                XCTAssertEqual(selected, reference(x, k: k), "n=\(x.count) k=\(k)")
            }
        }
    }
}
