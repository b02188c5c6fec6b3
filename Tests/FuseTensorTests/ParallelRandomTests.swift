import XCTest
import FuseTensor

final class ParallelRandomTests: XCTestCase {
    /// The same seed gives the same bytes whatever the thread count: each chunk draws from its own
    /// (seed, name, chunk) stream.
    func testRandomFillIsIndependentOfThreadCount() {
        func fill(threads: Int) -> [Float] {
            Parallel.threads = threads
            var out = [Float](repeating: 0, count: 10_000)
            out.withUnsafeMutableBufferPointer { p in
                parallelFor(count: p.count, chunkSize: 333) { chunk, range in
                    var rng = SeededRNG(seed: 42, name: "layer.0.weight", chunk: chunk)
                    for i in range { p[i] = rng.nextFloat() }
                }
            }
            return out
        }
        let one = fill(threads: 1), two = fill(threads: 2), five = fill(threads: 5)
        XCTAssertEqual(one, two)
        XCTAssertEqual(one, five)
        Parallel.threads = 2
    }

    func testStreamsDifferByNameChunkAndSeed() {
        var a = SeededRNG(seed: 1, name: "x", chunk: 0), b = SeededRNG(seed: 1, name: "x", chunk: 1)
        var c = SeededRNG(seed: 1, name: "y", chunk: 0), d = SeededRNG(seed: 2, name: "x", chunk: 0)
        var e = SeededRNG(seed: 1, name: "x", chunk: 0)
        let va = a.next()
        XCTAssertNotEqual(va, b.next()); XCTAssertNotEqual(va, c.next()); XCTAssertNotEqual(va, d.next())
        XCTAssertEqual(va, e.next())
    }

    /// Moments of the generators: mean and variance within 5 standard errors.
    func testUniformAndGaussianMoments() {
        var rng = SeededRNG(seed: 7)
        let n = 200_000
        var s = 0.0, s2 = 0.0, g = 0.0, g2 = 0.0
        for _ in 0..<n {
            let u = Double(rng.nextFloat()); s += u; s2 += u * u
            let z = rng.nextGaussian(); g += z; g2 += z * z
        }
        let mean = s / Double(n), variance = s2 / Double(n) - mean * mean
        XCTAssertEqual(mean, 0.5, accuracy: 5 * (1.0 / 12).squareRoot() / Double(n).squareRoot())
        XCTAssertEqual(variance, 1.0 / 12, accuracy: 0.002)
        XCTAssertEqual(g / Double(n), 0, accuracy: 5 / Double(n).squareRoot())
        XCTAssertEqual(g2 / Double(n), 1, accuracy: 0.02)
    }

    func testThrowingVariantReportsLowestChunkError() {
        struct Boom: Error, Equatable { let chunk: Int }
        Parallel.threads = 2
        XCTAssertThrowsError(try parallelForThrowing(count: 100, chunkSize: 10) { c, _ in
            if c == 3 || c == 7 { throw Boom(chunk: c) }
        }) { XCTAssertEqual($0 as? Boom, Boom(chunk: 3)) }
    }
}
