import XCTest
import FuseNN
@testable import FuseDistill

final class FusionTests: XCTestCase {
    func seq(_ entries: [AlignedEntry], ce: Double) -> AlignedSequence { AlignedSequence(entries: entries, meanCE: ce) }

    func testMinCEPicksLowestCEPerSequence() throws {
        let a = FusionCandidate(name: "target", sequence: seq([.distribution(ids: [1, 2], logProbs: [-0.1, -2.5]), .oneHot(3)], ce: 2.0))
        let b = FusionCandidate(name: "gemma", sequence: seq([.distribution(ids: [4], logProbs: [-0.7]), .absent], ce: 1.0))
        let f = try Fusion(function: .minCE, k: 2).fuse([a, b], length: 2)
        XCTAssertEqual(f.chosen, 1)
        // position 0 from b: one entry, renormalised to probability 1, padded
        XCTAssertEqual(f.targets.ids[0], 4); XCTAssertEqual(f.targets.logProbs[0], 0, accuracy: 1e-7)
        XCTAssertEqual(f.targets.logProbs[1], paddingLogProb); XCTAssertEqual(f.targets.ids[1], 4)
        // position 1: b has nothing, the next candidate in CE order (a) gives its one-hot
        XCTAssertEqual(f.targets.ids[2], 3); XCTAssertEqual(f.targets.logProbs[2], 0)
        XCTAssertEqual(f.targets.present, [true, true])
        var log = FusionLog(names: ["target", "gemma"]); log.record(f)
        XCTAssertEqual(log.chosen, [0, 1])
    }

    func testMinCETieKeepsFirst() throws {
        let a = FusionCandidate(name: "a", sequence: seq([.oneHot(1)], ce: 1)), b = FusionCandidate(name: "b", sequence: seq([.oneHot(2)], ce: 1))
        XCTAssertEqual(try Fusion(function: .minCE, k: 1).fuse([a, b], length: 1).chosen, 0)
    }

    /// AvgCE as the release: w = softmax(exp(−CE)) over the candidates; p = Σ w q with q the
    /// renormalised top-k of each; top-k of the mixture kept and renormalised.
    func testAvgCEWeightsAndMixture() throws {
        let ceA = 0.5, ceB = 2.0
        let a = FusionCandidate(name: "a", sequence: seq([.distribution(ids: [1, 2], logProbs: [log(0.6), log(0.2)])], ce: ceA))
        let b = FusionCandidate(name: "b", sequence: seq([.distribution(ids: [2, 3], logProbs: [log(0.5), log(0.5)])], ce: ceB))
        let f = try Fusion(function: .avgCE, k: 3).fuse([a, b], length: 1)
        let ra = exp(-ceA), rb = exp(-ceB)
        let wa = exp(ra) / (exp(ra) + exp(rb)), wb = 1 - wa
        XCTAssertEqual(f.weights[0], wa, accuracy: 1e-12)
        let qa1 = 0.75, qa2 = 0.25   // 0.6 and 0.2 renormalised
        var expected: [Int32: Double] = [1: wa * qa1, 2: wa * qa2 + wb * 0.5, 3: wb * 0.5]
        let z = expected.values.reduce(0, +)
        for (k, v) in expected { expected[k] = v / z }
        let order = expected.sorted { $0.value > $1.value }
        for (e, (id, p)) in order.enumerated() {
            XCTAssertEqual(f.targets.ids[e], id)
            XCTAssertEqual(Double(f.targets.logProbs[e]), log(p), accuracy: 1e-6)
        }
        XCTAssertNil(f.chosen)
    }

    func testTemperatureSharpens() throws {
        let a = FusionCandidate(name: "a", sequence: seq([.distribution(ids: [1, 2], logProbs: [-1, -2])], ce: 1))
        let t1 = try Fusion(function: .minCE, k: 2, temperature: 1).fuse([a], length: 1)
        let t05 = try Fusion(function: .minCE, k: 2, temperature: 0.5).fuse([a], length: 1)
        XCTAssertEqual(Double(t1.targets.logProbs[1] - t1.targets.logProbs[0]), -1, accuracy: 1e-6)
        XCTAssertEqual(Double(t05.targets.logProbs[1] - t05.targets.logProbs[0]), -2, accuracy: 1e-6)
    }

    func testAbsentEverywhereGivesNoTarget() throws {
        let a = FusionCandidate(name: "a", sequence: seq([.absent, .oneHot(2)], ce: 1))
        let f = try Fusion(function: .avgCE, k: 2).fuse([a], length: 2)
        XCTAssertEqual(f.targets.present, [false, true])
        XCTAssertThrowsError(try Fusion(function: .minCE, k: 2).fuse([a], length: 3))
        XCTAssertThrowsError(try Fusion(function: .minCE, k: 2).fuse([], length: 3))
    }

    func testFusedTargetsStoreRoundTrip() throws {
        let a = FusionCandidate(name: "a", sequence: seq([.distribution(ids: [1, 2], logProbs: [-0.25, -1.5]), .oneHot(7), .absent], ce: 1))
        let f = try Fusion(function: .minCE, k: 2).fuse([a], length: 3)
        let dir = NSTemporaryDirectory() + "fk-fused-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try CaptureWriter.write(path: CaptureRunner.shardPath(dir, 0), k: 2, vocabularySize: 10, modelHash: ContentHash(high: 0, low: 1),
                                corpusHash: ContentHash(high: 0, low: 2), firstSequence: 0,
                                sequences: [storedForm(f.targets, tokens: [3, 4, 7])], flags: CaptureHeader.fusedTargets)
        let store = try FusedTargets(folder: dir)
        let batch = try store.batch(sequences: [0])
        XCTAssertEqual(batch.tokens, [3, 4, 7]); XCTAssertEqual(batch.labels, [4, 7, -1])
        XCTAssertEqual(batch.soft?.present, [true, true, false])
        XCTAssertEqual(batch.soft?.ids[0], 1); XCTAssertEqual(batch.soft?.ids[2], 7)
        XCTAssertEqual(batch.soft?.logProbs[3], paddingLogProb)
        XCTAssertEqual(Double(batch.soft?.logProbs[0] ?? 0), -log(1 + exp(-1.25)), accuracy: 2e-3)   // f16 storage
    }
}
