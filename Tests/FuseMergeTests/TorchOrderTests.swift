import XCTest
@testable import FuseMerge

/// TorchTopK.sortedRange follows only the partitions that straddle the wanted ranks; the whole std::sort
/// port must put the same entries there, on inputs full of ties, for both orders and any range.
/// (Agreement with torch itself is checked by the ties_tied / breadcrumbs_ties_tied / sce_* fixtures.)
final class TorchOrderTests: XCTestCase {
    func testPrunedSelectionEqualsFullSort() {
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<60 {
            let n = [5, 17, 100, 1000, 20000][trial % 5]
            var values = (0..<n).map { _ in Float(Int.random(in: -6...6, using: &rng)) * 0.25 }
            if trial % 7 == 0 { values[0] = .nan }
            let lo = Int.random(in: 0...n, using: &rng), hi = Int.random(in: lo...n, using: &rng)
            values.withUnsafeMutableBufferPointer { x in
                for descending in [true, false] {
                    let full = descending ? TorchSelect<Descending>(x).fullSort() : TorchSelect<Ascending>(x).fullSort()
                    let mask = TorchTopK.sortedRange(x, descending: descending, lo..<hi)
                    let expected = Set(full[lo..<hi].map(Int.init))
                    let got = Set((0..<n).filter { mask.contains($0) })
                    XCTAssertEqual(got, expected, "n \(n), ranks \(lo)..<\(hi), descending \(descending)")
                    // ranks follow |x| with NaN first when descending
                    let keys = full.map { abs(x[Int($0)]) }
                    for k in 1..<max(1, keys.count) where !keys[k - 1].isNaN && !keys[k].isNaN {
                        XCTAssertTrue(descending ? keys[k - 1] >= keys[k] : keys[k - 1] <= keys[k])
                    }
                }
            }
        }
    }
}
