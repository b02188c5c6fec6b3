import FuseNN
import FuseTensor
@testable import FuseTransfer
import XCTest

/// Brute force over every offset, written independently of the prefix-sum search.
func bruteForceBlock(_ s: [Float], R: Int, C: Int, r: Int, c: Int, rowStep: Int = 1, columnStep: Int = 1) -> (Int, Int, Double) {
    var best = (0, 0, -Double.infinity)
    for i in stride(from: 0, through: R - r, by: rowStep) {
        for j in stride(from: 0, through: C - c, by: columnStep) {
            var sum = 0.0
            for a in i..<(i + r) { for b in j..<(j + c) { sum += Double(s[a * C + b]) } }
            if sum > best.2 { best = (i, j, sum) }
        }
    }
    return best
}

func randomScores(_ n: Int, seed: UInt64) -> [Float] {
    var rng = SeededRNG(seed: seed)
    return (0..<n).map { _ in rng.nextFloat() }
}

final class SelectionTests: XCTestCase {
    func testBlockSearchEqualsBruteForce() throws {
        for (k, (R, C, r, c)) in [(7, 9, 3, 4), (12, 5, 12, 2), (10, 10, 1, 1), (16, 24, 8, 24), (9, 13, 5, 7)].enumerated() {
            let s = randomScores(R * C, seed: UInt64(k))
            let got = try selectSubmatrix(s, rows: R, columns: C, keepRows: r, keepColumns: c, rule: .block)
            let want = bruteForceBlock(s, R: R, C: C, r: r, c: c)
            XCTAssertEqual(got.rows, Array(want.0..<(want.0 + r)), "\(R)x\(C) keep \(r)x\(c)")
            XCTAssertEqual(got.columns, Array(want.1..<(want.1 + c)))
            XCTAssertEqual(got.score, want.2, accuracy: 1e-9 * max(1, want.2))
        }
    }

    /// A planted hot block is found; with head-sized row steps the block starts on a head boundary.
    func testPlantedBlockAndWholeHeads() throws {
        let (R, C) = (32, 20)
        var s = [Float](repeating: 0.01, count: R * C)
        for i in 10..<18 { for j in 5..<11 { s[i * C + j] = 1 } }
        let free = try selectSubmatrix(s, rows: R, columns: C, keepRows: 8, keepColumns: 6, rule: .block)
        XCTAssertEqual(free.rows, Array(10..<18)); XCTAssertEqual(free.columns, Array(5..<11))
        let heads = try selectSubmatrix(s, rows: R, columns: C, keepRows: 8, keepColumns: 6, rule: .block, rowStep: 4)
        XCTAssertEqual(heads.rows.first! % 4, 0)
        let want = bruteForceBlock(s, R: R, C: C, r: 8, c: 6, rowStep: 4)
        XCTAssertEqual(heads.rows.first, want.0); XCTAssertEqual(heads.score, want.2, accuracy: 1e-9)
    }

    func testScatteredKeepsTopRowsAndColumnsInOrder() throws {
        let (R, C) = (6, 5)
        var s = [Float](repeating: 0, count: R * C)
        for j in 0..<C { s[4 * C + j] = 3; s[1 * C + j] = 2 }       // rows 4 and 1 are hot
        for i in 0..<R { s[i * C + 3] += 1 }                          // column 3 is hot
        for i in 0..<R { s[i * C + 0] += 0.5 }                        // then column 0
        let got = try selectSubmatrix(s, rows: R, columns: C, keepRows: 2, keepColumns: 2, rule: .scattered)
        XCTAssertEqual(got.rows, [1, 4]); XCTAssertEqual(got.columns, [0, 3])
    }

    func testStudentLargerAndBadSteps() {
        XCTAssertThrowsError(try selectSubmatrix([Float](repeating: 0, count: 12), rows: 3, columns: 4, keepRows: 4, keepColumns: 2, rule: .block, name: "q")) {
            XCTAssertTrue("\($0)".contains("larger than the teacher"), "\($0)")
        }
        XCTAssertThrowsError(try selectSubmatrix([Float](repeating: 0, count: 16), rows: 4, columns: 4, keepRows: 3, keepColumns: 2, rule: .block, rowStep: 2))
    }

    func testLayerSelection() throws {
        let totals: [Int: Double] = [0: 1, 1: 9, 2: 3, 3: 8, 4: 2, 5: 7]
        XCTAssertEqual(try selectLayers(.sensitivity, teacherLayers: 6, studentLayers: 3, totals: totals), [1, 3, 5])
        XCTAssertEqual(try selectLayers(.first, teacherLayers: 6, studentLayers: 3), [0, 1, 2])
        XCTAssertEqual(try selectLayers(.last, teacherLayers: 6, studentLayers: 3), [3, 4, 5])
        let random = try selectLayers(.random, teacherLayers: 6, studentLayers: 3, seed: 4)
        XCTAssertEqual(random, try selectLayers(.random, teacherLayers: 6, studentLayers: 3, seed: 4))
        XCTAssertEqual(random, random.sorted()); XCTAssertEqual(Set(random).count, 3)
        // 18 teacher layers spread over 30 student layers: in order, each used once or twice.
        let spread = try selectLayers(.spread, teacherLayers: 18, studentLayers: 30)
        XCTAssertEqual(spread.count, 30); XCTAssertEqual(spread, spread.sorted())
        XCTAssertEqual(Set(spread), Set(0..<18))
        XCTAssertTrue((0..<18).allSatisfy { l in (1...2).contains(spread.filter { $0 == l }.count) })
        XCTAssertThrowsError(try selectLayers(.sensitivity, teacherLayers: 18, studentLayers: 30, totals: [:])) {
            XCTAssertTrue("\($0)".contains("use 'spread'"), "\($0)")
        }
    }

    /// B₀A₀ is the best rank-r approximation: its error equals the dropped singular values, and the
    /// full rank reproduces the matrix.
    func testLoraFactorsTruncatedSVD() throws {
        let (m, n) = (12, 8)
        let w = randomScores(m * n, seed: 9).map { $0 - 0.5 }
        for r in [1, 3, 8] {
            let (b, a, residual) = try loraFactors(w, rows: m, columns: n, rank: r)
            var err = 0.0
            for i in 0..<m { for j in 0..<n {
                var v = 0.0
                for k in 0..<r { v += Double(b[i * r + k]) * Double(a[k * n + j]) }
                err += pow(v - Double(w[i * n + j]), 2)
            } }
            XCTAssertEqual(err.squareRoot(), residual, accuracy: 1e-4, "rank \(r)")
            if r == 8 { XCTAssertLessThan(residual, 1e-5) }
        }
        XCTAssertThrowsError(try loraFactors(w, rows: m, columns: n, rank: 9)) { XCTAssertTrue("\($0)".contains("exceeds")) }
    }
}

/// A model whose gradient is known in closed form: loss = Σ_t c_t · Σ_j θ_j² / 2 over the batch's
/// labelled tokens (c_t = token id), so ∂L/∂θ = (Σ c_t) θ.
final class QuadraticModel: TrainableModel {
    let theta: Parameter
    let other: Parameter
    init() {
        theta = Parameter(name: "model.layers.0.mlp.up_proj.weight", shape: [2, 3], value: [1, -2, 3, -4, 5, -6])
        other = Parameter(name: "model.layers.1.mlp.up_proj.weight", shape: [1, 2], value: [0.5, -0.25])
    }
    var allParameters: [Parameter] { [theta, other] }
    var trainableParameters: [Parameter] { [theta, other] }
    func attachLoRA(_ settings: LoRASettings, seed: UInt64) throws {}
    func accumulateGradients(_ batch: TrainingBatch, loss: TrainingLoss, scale: Float, step: Int) throws -> LossReport {
        let c = Float(zip(batch.tokens, batch.labels).filter { $0.1 >= 0 }.reduce(0) { $0 + $1.0 })
        for p in allParameters { for j in 0..<p.count { p.grad[j] += scale * c * p.value[j] } }
        return LossReport(loss: 0, tokens: batch.labelledTokens)
    }
    func evaluateLoss(_ batch: TrainingBatch, loss: TrainingLoss) throws -> LossReport { LossReport(loss: 0, tokens: 0) }
    func visitLinearInputs(_ batch: TrainingBatch, _ visit: (String, UnsafePointer<Float>, Int, Int) -> Void) throws {}
}

final class SensitivityTests: XCTestCase {
    func testAccumulatesAbsoluteProductPerSample() throws {
        let model = QuadraticModel()
        let samples = [TrainingBatch(tokens: [2, 3], batch: 1, length: 2, labels: [3, -1]),
                       TrainingBatch(tokens: [1, 4], batch: 1, length: 2, labels: [4, 0])]
        let s = try Sensitivity.compute(model: model, samples: samples, include: { $0.contains("layers.0") })
        // c = 2 then 1 + 4 = 5: S = |θ|·|θ|·(2 + 5)
        XCTAssertEqual(s.scores.count, 1)
        XCTAssertEqual(s.scores["model.layers.0.mlp.up_proj.weight"]!, model.theta.value.map { 7 * $0 * $0 })
        XCTAssertTrue(model.theta.grad.allSatisfy { $0 == 0 }, "gradients are cleared after each sample")
        XCTAssertEqual(s.layerTotals()[0]!, Double(7 * (1 + 4 + 9 + 16 + 25 + 36)), accuracy: 1e-9)
        XCTAssertThrowsError(try Sensitivity.compute(model: model, samples: []))
        let path = NSTemporaryDirectory() + "sens-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try s.save(to: path)
        let back = try Sensitivity.load(from: path)
        XCTAssertEqual(back.scores, s.scores); XCTAssertEqual(back.samples, 2)
    }
}
