// fisher and regmean through the real planner and executor, on small safetensors models and
// statistics files: RegMean of least-squares fits equals the least-squares fit on the union of their
// data; Fisher merging with equal Fishers equals the linear average.
import Foundation
import FuseIO
import FuseTensor
import XCTest
@testable import FuseMerge

final class StatisticsMethodTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "fusekit-stats-merge-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        StatisticsFiles.shared.reset()
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let inWidth = 5, outWidth = 3
    static let linear = "model.layers.0.mlp.down_proj.weight"
    static let conv = "model.layers.0.attn.c_proj.weight"   // GPT-2 Conv1D layout [in, out]
    static let norm = "model.norm.weight"

    func writeModel(_ name: String, _ tensors: [(String, [Float], [Int])]) throws -> String {
        let path = dir + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try writeSafetensors(path: path + "/model.safetensors", tensors: tensors.map { ($0.0, try Tensor(floats: $0.1, shape: $0.2)) })
        try writeFileAtomically(path: path + "/config.json", contents: "{\"num_hidden_layers\": 1}\n")
        return path
    }

    func merge(_ yaml: String) throws -> WeightStore {
        let out = dir + "/out-\(UInt32.random(in: 0...UInt32.max))"
        _ = try runMerge(config: try MergeConfig.parse(yaml: yaml), outPath: out, options: MergeRunOptions(), workingDirectory: dir)
        return try WeightStore(path: out)
    }

    /// Least squares W [out, in] minimising ‖X Wᵀ − Y‖² by Gaussian elimination with partial pivoting on
    /// the normal equations (independent of RegMean's Cholesky).
    func leastSquares(_ x: [[Double]], _ y: [[Double]]) -> [[Double]] {
        let n = x[0].count, m = y[0].count
        var a = [[Double]](repeating: [Double](repeating: 0, count: n + m), count: n)
        for (xr, yr) in zip(x, y) {
            for i in 0..<n {
                for j in 0..<n { a[i][j] += xr[i] * xr[j] }
                for c in 0..<m { a[i][n + c] += xr[i] * yr[c] }
            }
        }
        for col in 0..<n {
            let p = (col..<n).max { abs(a[$0][col]) < abs(a[$1][col]) } ?? col
            a.swapAt(col, p)
            for r in 0..<n where r != col {
                let f = a[r][col] / a[col][col]
                for k in col..<(n + m) { a[r][k] -= f * a[col][k] }
            }
        }
        return (0..<m).map { c in (0..<n).map { i in a[i][n + c] / a[i][i] } }
    }

    func testRegMeanOfLeastSquaresFitsIsTheLeastSquaresFitOnTheUnion() throws {
        var rng = SeededRNG(seed: 42)
        func gaussian() -> Double { rng.nextGaussian() }
        let truth = (0..<Self.outWidth).map { _ in (0..<Self.inWidth).map { _ in gaussian() } }
        var xs: [[[Double]]] = [], ys: [[[Double]]] = []
        var models: [String] = [], grams: [String] = []
        for k in 0..<2 {
            // Different data per model: different sizes, scales and noise, so the fits differ.
            let rows = 12 + 7 * k
            let x = (0..<rows).map { _ in (0..<Self.inWidth).map { j in gaussian() * (1 + Double((j + k) % 3)) } }
            let y = x.map { xr in truth.map { w in zip(w, xr).reduce(0) { $0 + $1.0 * $1.1 } + gaussian() * (0.5 + Double(k)) } }
            xs.append(x); ys.append(y)
            let w = leastSquares(x, y)
            var gram = [Float](repeating: 0, count: Self.inWidth * Self.inWidth)
            for xr in x { for i in 0..<Self.inWidth { for j in 0..<Self.inWidth { gram[i * Self.inWidth + j] += Float(xr[i] * xr[j]) } } }
            let flat = w.flatMap { $0.map { Float($0) } }
            // The same fit stored as nn.Linear [out, in] and as a Conv1D [in, out].
            let transposed = (0..<Self.inWidth).flatMap { i in (0..<Self.outWidth).map { o in Float(w[o][i]) } }
            models.append(try writeModel("m\(k)", [(Self.linear, flat, [Self.outWidth, Self.inWidth]),
                                                   (Self.conv, transposed, [Self.inWidth, Self.outWidth]),
                                                   (Self.norm, (0..<4).map { Float($0 + 10 * k) }, [4])]))
            let gramPath = dir + "/m\(k).gram.safetensors"
            try writeSafetensors(path: gramPath, tensors: [(Self.linear, try Tensor(floats: gram, shape: [Self.inWidth, Self.inWidth])),
                                                           (Self.conv, try Tensor(floats: gram, shape: [Self.inWidth, Self.inWidth]))],
                                 metadata: ["fusekit_statistics": "gram", "rows": "{\"\(Self.linear)\": \(rows)}"])
            grams.append(gramPath)
        }
        let union = leastSquares(xs[0] + xs[1], ys[0] + ys[1])
        let merged = try merge("""
        merge_method: regmean
        models:
          - model: m0
            parameters: {gram: \(grams[0])}
          - model: m1
            parameters: {gram: \(grams[1])}
        dtype: float32
        """)
        let w = try merged.floats(Self.linear)
        let c = try merged.floats(Self.conv)
        var worst = 0.0
        for o in 0..<Self.outWidth {
            for i in 0..<Self.inWidth {
                worst = max(worst, abs(Double(w[o * Self.inWidth + i]) - union[o][i]) / (1 + abs(union[o][i])))
                XCTAssertEqual(Double(c[i * Self.outWidth + o]), union[o][i], accuracy: 1e-4 * (1 + abs(union[o][i])), "conv1d [\(i), \(o)]")
            }
        }
        XCTAssertLessThan(worst, 1e-4, "RegMean vs least squares on the union")
        // The fits differ from the union solution, so the test can fail.
        let m0 = try WeightStore(path: models[0]).floats(Self.linear)
        XCTAssertGreaterThan(zip(m0, w).map { abs($0 - $1) }.max() ?? 0, 1e-2)
        // Non-linear tensors are averaged.
        XCTAssertEqual(try merged.floats(Self.norm), [5, 6, 7, 8])

        // α = 0: only the diagonals: per input feature, a Gram-diagonal-weighted average of the columns.
        let diagonal = try merge("""
        merge_method: regmean
        models:
          - {model: m0, parameters: {gram: \(grams[0])}}
          - {model: m1, parameters: {gram: \(grams[1])}}
        parameters: {reduce_non_diagonal_ratio: 0}
        """)
        let d = try diagonal.floats(Self.linear)
        let g0 = try SafetensorsFile(path: grams[0]).tensor(Self.linear).floats(), g1 = try SafetensorsFile(path: grams[1]).tensor(Self.linear).floats()
        let m1 = try WeightStore(path: models[1]).floats(Self.linear)
        for o in 0..<Self.outWidth {
            for i in 0..<Self.inWidth {
                let a = Double(g0[i * Self.inWidth + i]), b = Double(g1[i * Self.inWidth + i])
                let expected = (a * Double(m0[o * Self.inWidth + i]) + b * Double(m1[o * Self.inWidth + i])) / (a + b)
                XCTAssertEqual(Double(d[o * Self.inWidth + i]), expected, accuracy: 1e-5)
            }
        }
    }

    func testFisherWithEqualFishersIsTheLinearAverage() throws {
        var rng = SeededRNG(seed: 9)
        let shape = [Self.outWidth, Self.inWidth]
        let n = Self.outWidth * Self.inWidth
        let f = (0..<n).map { _ in Float(rng.nextDouble() * 3 + 0.01) }
        var thetas: [[Float]] = []
        for k in 0..<2 {
            let t = (0..<n).map { _ in Float(rng.nextGaussian()) }
            thetas.append(t)
            _ = try writeModel("m\(k)", [(Self.linear, t, shape), (Self.norm, [1, 2, 3, Float(k)], [4])])
            try writeSafetensors(path: dir + "/m\(k).fisher.safetensors",
                                 tensors: [(Self.linear, try Tensor(floats: f, shape: shape)), (Self.norm, try Tensor(floats: [1, 1, 1, 1], shape: [4]))],
                                 metadata: ["fusekit_statistics": "fisher"])
        }
        let merged = try merge("""
        merge_method: fisher
        models:
          - {model: m0, parameters: {fisher: m0.fisher.safetensors, weight: 1}}
          - {model: m1, parameters: {fisher: m1.fisher.safetensors, weight: 3}}
        dtype: float32
        """)
        let w = try merged.floats(Self.linear)
        for j in 0..<n { XCTAssertEqual(w[j], (thetas[0][j] + 3 * thetas[1][j]) / 4, accuracy: 1e-6) }
        XCTAssertEqual(try merged.floats(Self.norm)[3], 0.75, accuracy: 1e-7)

        // Unequal Fishers pull each element towards the model that is sure of it.
        try writeSafetensors(path: dir + "/sure.fisher.safetensors",
                             tensors: [(Self.linear, try Tensor(floats: [Float](repeating: 1e4, count: n), shape: shape)),
                                       (Self.norm, try Tensor(floats: [0, 0, 0, 0], shape: [4]))],
                             metadata: ["fusekit_statistics": "fisher"])
        StatisticsFiles.shared.reset()
        let pulled = try merge("""
        merge_method: fisher
        models:
          - {model: m0, parameters: {fisher: sure.fisher.safetensors}}
          - {model: m1, parameters: {fisher: m1.fisher.safetensors}}
        """)
        let p = try pulled.floats(Self.linear)
        for j in 0..<n {
            let expected = (1e4 * Double(thetas[0][j]) + Double(f[j]) * Double(thetas[1][j])) / (1e4 + Double(f[j]))
            XCTAssertEqual(Double(p[j]), expected, accuracy: 1e-5)
        }
        // Fisher 0 everywhere (floored to 1e-6) against 1: the floor keeps the division finite.
        XCTAssertEqual(try pulled.floats(Self.norm)[3], Float((1e-6 * 0 + 1 * 1) / (1e-6 + 1)), accuracy: 1e-6)
    }

    func testMissingStatisticsAreNamedErrors() throws {
        _ = try writeModel("m0", [(Self.linear, [Float](repeating: 1, count: 15), [3, 5])])
        _ = try writeModel("m1", [(Self.linear, [Float](repeating: 2, count: 15), [3, 5])])
        func message(_ yaml: String) -> String {
            do { _ = try merge(yaml); return "no error" } catch { return "\(error)" }
        }
        let noParam = message("merge_method: regmean\nmodels: [{model: m0}, {model: m1}]\n")
        XCTAssertTrue(noParam.contains("gram"), noParam)
        let noFile = message("merge_method: fisher\nmodels: [{model: m0, parameters: {fisher: nope.safetensors}}, {model: m1, parameters: {fisher: nope.safetensors}}]\n")
        XCTAssertTrue(noFile.contains("nope.safetensors does not exist") && noFile.contains("fusekit stats"), noFile)
        try writeSafetensors(path: dir + "/wrong.safetensors", tensors: [(Self.linear, try Tensor(floats: [Float](repeating: 1, count: 15), shape: [3, 5]))],
                             metadata: ["fusekit_statistics": "fisher"])
        let wrongKind = message("merge_method: regmean\nmodels: [{model: m0, parameters: {gram: wrong.safetensors}}, {model: m1, parameters: {gram: wrong.safetensors}}]\n")
        XCTAssertTrue(wrongKind.contains("holds fisher statistics"), wrongKind)
    }
}
