import XCTest
import FuseTensor

final class BLASTests: XCTestCase {
    /// OpenBLAS sgemm and the naive reference against numpy's f64-accumulated product on odd shapes.
    func testSgemmMatchesNumpy() throws {
        var r = try FixtureReader(path: fixturePath("tensor/sgemm.bin"))
        XCTAssertTrue(r.magic("FKGEMM01"), "stale fixture: rerun Tools/fixtures/tensor_fixtures.py")
        let cases = Int(r.u32())
        for _ in 0..<cases {
            let m = Int(r.u32()), n = Int(r.u32()), k = Int(r.u32())
            let a = r.floats(m * k), b = r.floats(k * n), expected = r.floats(m * n)
            var fast = [Float](repeating: 0, count: m * n), slow = fast
            BLAS.sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &fast, ldc: n)
            BLAS.sgemmReference(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &slow, ldc: n)
            for i in 0..<(m * n) {
                // tolerance: f32 rounding of a k-term sum, relative to the magnitude of the terms
                let tol = Float(1e-5) * Float(k).squareRoot() * 4 + 1e-6 * abs(expected[i])
                XCTAssertEqual(fast[i], expected[i], accuracy: tol, "sgemm \(m)x\(n)x\(k) at \(i)")
                XCTAssertEqual(slow[i], expected[i], accuracy: tol, "reference \(m)x\(n)x\(k) at \(i)")
            }
        }
    }

    func testTransposedOperandsAgreeWithReference() {
        var rng = SeededRNG(seed: 9)
        let m = 13, n = 11, k = 29
        let a = (0..<(m * k)).map { _ in Float(rng.nextGaussian()) }   // stored k×m when transposed
        let b = (0..<(k * n)).map { _ in Float(rng.nextGaussian()) }   // stored n×k when transposed
        for (ta, tb) in [(true, false), (false, true), (true, true)] {
            var fast = [Float](repeating: 1, count: m * n), slow = fast
            let lda = ta ? m : k, ldb = tb ? k : n
            BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 2, c: &fast, ldc: n)
            BLAS.sgemmReference(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 2, c: &slow, ldc: n)
            for i in 0..<(m * n) { XCTAssertEqual(fast[i], slow[i], accuracy: 1e-4) }
        }
    }

    /// SVD property: U·diag(S)·Vt reproduces A, U and V have orthonormal columns, S is sorted.
    func testSVDReconstructs() throws {
        var rng = SeededRNG(seed: 3)
        for (m, n) in [(7, 4), (4, 7), (5, 5)] {
            let a = (0..<(m * n)).map { _ in Float(rng.nextGaussian()) }
            let (u, s, vt) = try BLAS.svd(a, rows: m, cols: n)
            let r = min(m, n)
            XCTAssertEqual(s, s.sorted(by: >))
            for i in 0..<m {
                for j in 0..<n {
                    var v: Float = 0
                    for p in 0..<r { v += u[i * r + p] * s[p] * vt[p * n + j] }
                    XCTAssertEqual(v, a[i * n + j], accuracy: 1e-4)
                }
            }
            for p in 0..<r {
                for q in 0..<r {
                    var uu: Float = 0, vv: Float = 0
                    for i in 0..<m { uu += u[i * r + p] * u[i * r + q] }
                    for j in 0..<n { vv += vt[p * n + j] * vt[q * n + j] }
                    XCTAssertEqual(uu, p == q ? 1 : 0, accuracy: 1e-4)
                    XCTAssertEqual(vv, p == q ? 1 : 0, accuracy: 1e-4)
                }
            }
        }
    }
}
