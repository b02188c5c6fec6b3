import XCTest
import FuseTensor
@testable import FuseMerge

/// DARE and DELLA are random: mergekit draws masks from torch's global generator, so bytes cannot match.
/// These tests check the properties that define them: the kept fraction, the expectation-preserving
/// rescale, and that the same seed gives the same bytes whatever the thread count.
final class RandomMethodTests: XCTestCase {
    func gaussian(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Float(rng.nextGaussian()) * scale }
    }

    func testDareKeptFractionWithinThreeSigma() throws {
        let n = 200_000
        let base = [Float](repeating: 0, count: n), ft = gaussian(n, seed: 1)
        for density in [0.1, 0.5, 0.9] {
            let out = try runMethod("dare_linear", inputs: [base, ft], shape: [n], base: 0,
                                    shared: ["rescale": .bool(false)],
                                    perInput: [[:], ["weight": .number(1), "density": .number(density)]], seed: 42)
            let kept = Double(out.filter { $0 != 0 }.count) / Double(n)
            let sigma = (density * (1 - density) / Double(n)).squareRoot()
            XCTAssertLessThan(abs(kept - density), 3 * sigma, "density \(density): kept \(kept)")
            // Kept entries are unchanged without rescale.
            for i in 0..<1000 where out[i] != 0 { XCTAssertEqual(out[i], ft[i]) }
        }
    }

    func testDareRescalePreservesL1AndExpectation() throws {
        let n = 100_000, density = 0.3
        let base = [Float](repeating: 0.5, count: n)
        let tau = gaussian(n, seed: 2, scale: 0.01)
        let ft = zip(base, tau).map { $0 + $1 }
        var sumOut = 0.0, l1Out = 0.0, l1In = 0.0
        let out = try runMethod("dare_linear", inputs: [base, ft], shape: [n], base: 0,
                                perInput: [[:], ["weight": .number(1), "density": .number(density)]], seed: 7)
        for i in 0..<n {
            let d = Double(out[i] - base[i])
            l1Out += abs(d); l1In += abs(Double(ft[i] - base[i])); sumOut += d
        }
        // mergekit's rescale matches the L1 norm exactly (and 1/density only in expectation).
        XCTAssertEqual(l1Out / l1In, 1, accuracy: 1e-3)
        // E[rescaled τ] = τ: the mean of (out − base)/τ over entries is 1 within sampling error.
        var ratio = 0.0
        for i in 0..<n { ratio += Double(out[i] - base[i]) / Double(ft[i] - base[i]) }
        ratio /= Double(n)
        let sigma = ((1 - density) / density / Double(n)).squareRoot()
        XCTAssertEqual(ratio, 1, accuracy: 4 * sigma + 0.01)
    }

    func testDellaKeepRateRisesWithMagnitudeRank() throws {
        let rows = 400, cols = 256, density = 0.5, epsilon = 0.2
        let base = [Float](repeating: 0, count: rows * cols)
        let ft = gaussian(rows * cols, seed: 3)
        let out = try runMethod("della_linear", inputs: [base, ft], shape: [rows, cols], base: 0,
                                shared: ["rescale": .bool(false)],
                                perInput: [[:], ["weight": .number(1), "density": .number(density), "epsilon": .number(epsilon)]], seed: 9)
        // Bucket entries by their magnitude rank within the row: keep probability d−ε .. d+ε.
        var kept = [Double](repeating: 0, count: 4), total = [Double](repeating: 0, count: 4)
        for r in 0..<rows {
            let row = Array(ft[(r * cols)..<((r + 1) * cols)])
            let order = row.indices.sorted { abs(row[$0]) < abs(row[$1]) }
            for (rank, j) in order.enumerated() {
                let bucket = rank * 4 / cols
                total[bucket] += 1
                if out[r * cols + j] != 0 { kept[bucket] += 1 }
            }
        }
        for b in 0..<4 {
            let expected = (density - epsilon) + 2 * epsilon * (Double(b) + 0.5) / 4
            let rate = kept[b] / total[b]
            let sigma = (expected * (1 - expected) / total[b]).squareRoot()
            XCTAssertLessThan(abs(rate - expected), 3 * sigma + 0.01, "bucket \(b): kept \(rate), expected ≈ \(expected)")
        }
        let overall = Double(out.filter { $0 != 0 }.count) / Double(rows * cols)
        XCTAssertEqual(overall, density, accuracy: 3 * (density * (1 - density) / Double(rows * cols)).squareRoot() + 1e-3)
    }

    func testDellaRejectsEpsilonOutsideDensity() {
        XCTAssertThrowsError(try runMethod("della", inputs: [[0, 0], [1, 2]], shape: [2], base: 0,
                                           perInput: [[:], ["weight": .number(1), "density": .number(0.1), "epsilon": .number(0.2)]]))
    }

    func testSameSeedSameBytesWithAnyThreadCount() throws {
        let n = 300_000
        let base = gaussian(n, seed: 4), a = gaussian(n, seed: 5), b = gaussian(n, seed: 6)
        for method in ["dare_ties", "della", "dare_linear"] {
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                let saved = Parallel.threads
                Parallel.threads = threads
                defer { Parallel.threads = saved }
                results.append(try runMethod(method, inputs: [base, a, b], shape: [600, 500], base: 0,
                                             perInput: [[:], ["weight": .number(0.6), "density": .number(0.4)],
                                                        ["weight": .number(0.4), "density": .number(0.6)]], seed: 11))
            }
            XCTAssertEqual(results[0].map(\.bitPattern), results[1].map(\.bitPattern), "\(method): 1 vs 2 threads")
            XCTAssertEqual(results[0].map(\.bitPattern), results[2].map(\.bitPattern), "\(method): 1 vs 3 threads")
            let other = try runMethod(method, inputs: [base, a, b], shape: [600, 500], base: 0,
                                      perInput: [[:], ["weight": .number(0.6), "density": .number(0.4)],
                                                 ["weight": .number(0.4), "density": .number(0.6)]], seed: 12)
            XCTAssertNotEqual(results[0], other, "\(method): a different seed must give a different mask")
        }
    }
}
