import XCTest
import FuseTensor
@testable import FuseEvolve

/// Mutation formulas on known vectors and crossover statistics (fusion-methods.md §3.2).
final class OperatorTests: XCTestCase {
    func set(_ tensors: [[Float]], shapes: [[Int]]? = nil) -> WeightSet {
        let shapes = shapes ?? tensors.map { [$0.count] }
        return WeightSet(layout: WeightLayout(names: tensors.indices.map { "t\($0)" }, shapes: shapes), tensors: tensors)
    }

    func testDERandOneFormulaOnKnownVectors() {
        let x = set([[9, 9, 9], [9]]), a = set([[1, 2, 3], [4]]), b = set([[10, 20, 30], [40]]), c = set([[2, 4, 6], [8]])
        let (trial, taken) = makeTrial(target: x, references: [a, b, c], rule: .randOne(f: 0.5),
                                       crossover: CrossoverOptions(rate: 1, forceOne: true), seed: 1, stream: "s")
        XCTAssertEqual(trial.tensors, [[5, 10, 15], [20]])   // a + 0.5·(b − c)
        XCTAssertEqual(taken, 1)
    }

    func testEvolverFormulaOnKnownVectors() {
        let x = set([[1, 2, 4]]), r = set([[3, 6, 0]])
        let (trial, _) = makeTrial(target: x, references: [r], rule: .evolver(f: 0.25), crossover: CrossoverOptions(rate: 1), seed: 1, stream: "s")
        XCTAssertEqual(trial.tensors, [[1.5, 3, 3]])   // 0.75·x + 0.25·x_r
    }

    func testZeroRateKeepsTheTargetUnlessOneUnitIsForced() {
        let x = set([[Float](repeating: 0, count: 50), [Float](repeating: 0, count: 30)])
        let r = set([[Float](repeating: 1, count: 50), [Float](repeating: 1, count: 30)])
        let (kept, _) = makeTrial(target: x, references: [r], rule: .evolver(f: 1), crossover: CrossoverOptions(rate: 0), seed: 3, stream: "s")
        XCTAssertEqual(kept.tensors, x.tensors)
        let (forced, _) = makeTrial(target: x, references: [r], rule: .evolver(f: 1), crossover: CrossoverOptions(rate: 0, forceOne: true), seed: 3, stream: "s")
        XCTAssertEqual(forced.tensors.joined().filter { $0 == 1 }.count, 1, "j_rand forces exactly one coordinate")
    }

    /// The element-wise fast path equals the definition, draw for draw: per tensor a stream named
    /// stream/tensor, one uniform per coordinate, the mutant taken where it is below CR (and at j_rand).
    func testElementCrossoverEqualsTheDefinition() {
        var g = SeededRNG(seed: 5, name: "values")
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float(g.nextGaussian()) } }
        let shapes = [[37, 3], [111], [5, 2]]
        let sets = (0..<4).map { _ in set(shapes.map { random($0.reduce(1, *)) }, shapes: shapes) }
        for (rule, refs) in [(MutationRule.evolver(f: 0.3), [sets[1]]), (.randOne(f: 0.7), [sets[1], sets[2], sets[3]])] {
            for forceOne in [false, true] {
                let options = CrossoverOptions(rate: 0.4, forceOne: forceOne)
                let (trial, taken) = makeTrial(target: sets[0], references: refs, rule: rule, crossover: options, seed: 9, stream: "t")
                var expected = sets[0].tensors, count = 0
                var forced: (Int, Int)?
                if forceOne {
                    var j = SeededRNG(seed: 9, name: "t/jrand")
                    var pick = Int(j.next() % UInt64(shapes.reduce(0) { $0 + $1.reduce(1, *) }))
                    for (k, shape) in shapes.enumerated() {
                        let n = shape.reduce(1, *)
                        if pick < n { forced = (k, pick); break }
                        pick -= n
                    }
                }
                for k in shapes.indices {
                    var rng = SeededRNG(seed: 9, name: "t/t\(k)")
                    for e in expected[k].indices {
                        let draw = rng.nextFloat() < 0.4
                        guard draw || (forced.map { $0.0 == k && $0.1 == e } ?? false) else { continue }
                        let x = expected[k][e]
                        switch rule {
                        case let .evolver(f): expected[k][e] = (1 - f) * x + f * refs[0].tensors[k][e]
                        case let .randOne(f): expected[k][e] = refs[0].tensors[k][e] + f * (refs[1].tensors[k][e] - refs[2].tensors[k][e])
                        }
                        count += 1
                    }
                }
                XCTAssertEqual(trial.tensors, expected, "\(rule), forceOne \(forceOne)")
                XCTAssertEqual(taken, Double(count) / Double(sets[0].layout.parameterCount), accuracy: 1e-15)
            }
        }
    }

    /// Element crossover: the share of coordinates from the mutant is CR within 3σ, σ = √(CR(1−CR)/n).
    func testElementCrossoverRateWithinThreeSigma() {
        let n = 200_000
        for rate: Float in [0.1, 0.5, 0.9] {
            let x = set([[Float](repeating: 0, count: n)]), r = set([[Float](repeating: 1, count: n)])
            let (trial, taken) = makeTrial(target: x, references: [r], rule: .evolver(f: 1), crossover: CrossoverOptions(rate: rate), seed: 11, stream: "g1/i0")
            let fraction = Double(trial.tensors[0].reduce(0, +)) / Double(n)
            XCTAssertEqual(fraction, taken, accuracy: 1e-12)
            let sigma = (Double(rate) * (1 - Double(rate)) / Double(n)).squareRoot()
            XCTAssertLessThan(abs(fraction - Double(rate)), 3 * sigma, "CR \(rate): got \(fraction)")
        }
    }

    /// Row crossover takes whole rows: every row is all-mutant or all-target, and the row share is CR within 3σ.
    func testRowCrossoverKeepsRowsWhole() {
        let rows = 4000, cols = 7
        let x = set([[Float](repeating: 0, count: rows * cols)], shapes: [[rows, cols]])
        let r = set([[Float](repeating: 1, count: rows * cols)], shapes: [[rows, cols]])
        let (trial, _) = makeTrial(target: x, references: [r], rule: .evolver(f: 1), crossover: CrossoverOptions(rate: 0.3, unit: .row), seed: 5, stream: "s")
        var fromMutant = 0
        for i in 0..<rows {
            let row = trial.tensors[0][(i * cols)..<((i + 1) * cols)]
            XCTAssertTrue(row.allSatisfy { $0 == row.first }, "row \(i) mixes target and mutant")
            if row.first == 1 { fromMutant += 1 }
        }
        let sigma = (0.3 * 0.7 / Double(rows)).squareRoot()
        XCTAssertLessThan(abs(Double(fromMutant) / Double(rows) - 0.3), 3 * sigma)
    }

    func testTensorCrossoverTakesWholeTensors() {
        let tensors = (0..<400).map { _ in [Float](repeating: 0, count: 3) }
        let (trial, _) = makeTrial(target: set(tensors), references: [set(tensors.map { $0.map { _ in 1 } })], rule: .evolver(f: 1),
                                   crossover: CrossoverOptions(rate: 0.5, unit: .tensor), seed: 2, stream: "s")
        XCTAssertTrue(trial.tensors.allSatisfy { Set($0).count == 1 })
        let share = Double(trial.tensors.filter { $0[0] == 1 }.count) / 400
        XCTAssertLessThan(abs(share - 0.5), 3 * (0.25 / 400).squareRoot())
    }

    /// The mask depends on (seed, stream, tensor name) only: same inputs give the same trial, another
    /// stream another one.
    func testTrialsAreSeededByStream() {
        let x = set([[Float](repeating: 0, count: 1000)]), r = set([[Float](repeating: 1, count: 1000)])
        let opts = CrossoverOptions(rate: 0.5)
        let a = makeTrial(target: x, references: [r], rule: .evolver(f: 1), crossover: opts, seed: 1, stream: "trial/1/0").0
        let b = makeTrial(target: x, references: [r], rule: .evolver(f: 1), crossover: opts, seed: 1, stream: "trial/1/0").0
        let c = makeTrial(target: x, references: [r], rule: .evolver(f: 1), crossover: opts, seed: 1, stream: "trial/1/1").0
        XCTAssertEqual(a.tensors, b.tensors)
        XCTAssertNotEqual(a.tensors, c.tensors)
    }

    func testDistinctOthersExcludesTheTarget() {
        var rng = SeededRNG(seed: 4)
        for _ in 0..<200 {
            let picks = distinctOthers(3, among: 4, excluding: 2, &rng)
            XCTAssertEqual(Set(picks).count, 3)
            XCTAssertFalse(picks.contains(2))
        }
    }
}
