import XCTest
import FuseIO
@testable import FuseDistill

final class CaptureFileTests: XCTestCase {
    let model = ContentHash(high: 1, low: 2), corpus = ContentHash(high: 3, low: 4)

    func sample() -> [CapturedSequence] {
        [CapturedSequence(tokens: [5, 6, 7], topIDs: [1, 2, 3, 4, 5, 6], topLogProbs: [-0.5, -1.25, -0.125, -3, -0.75, -2], crossEntropy: [1.5, 0.25, 0]),
         CapturedSequence(tokens: [9], topIDs: [7, 8], topLogProbs: [-0.0625, -4], crossEntropy: [0])]
    }

    func testRoundTrip() throws {
        let bytes = CaptureWriter.encode(k: 2, vocabularySize: 10, modelHash: model, corpusHash: corpus, firstSequence: 64, sequences: sample())
        let shard = try CaptureShard(file: MappedFile(bytes: bytes, name: "t.fktopk"))
        XCTAssertEqual(shard.header.k, 2); XCTAssertEqual(shard.header.sequenceCount, 2); XCTAssertEqual(shard.header.tokenCount, 4)
        XCTAssertEqual(shard.header.firstSequence, 64); XCTAssertEqual(shard.header.modelHash, model)
        // these log-probabilities are exact in f16
        XCTAssertEqual(try shard.sequence(0), sample()[0])
        XCTAssertEqual(try shard.sequence(1), sample()[1])
        XCTAssertEqual(try shard.sequence(0).meanCE, 0.875, accuracy: 1e-12)
        XCTAssertNoThrow(try shard.check(modelHash: model, corpusHash: corpus, k: 2, firstSequence: 64, sequenceCount: 2))
        XCTAssertEqual(bytes.count % 64, 0)
    }

    func testMismatchedCaptureIsRefused() throws {
        let bytes = CaptureWriter.encode(k: 2, vocabularySize: 10, modelHash: model, corpusHash: corpus, firstSequence: 0, sequences: sample())
        let shard = try CaptureShard(file: MappedFile(bytes: bytes, name: "t.fktopk"))
        for (m, c, k, what) in [(corpus, corpus, 2, "the model hash"), (model, model, 2, "the corpus hash"), (model, corpus, 3, "k")] {
            XCTAssertThrowsError(try shard.check(modelHash: m, corpusHash: c, k: k, firstSequence: 0, sequenceCount: 2)) { e in
                guard case let DistillError.captureMismatch(_, w, _, _) = e else { return XCTFail("\(e)") }
                XCTAssertEqual(w, what)
            }
        }
    }

    /// One broken file per fault, each refused with a message naming it.
    func testBrokenFiles() {
        let good = CaptureWriter.encode(k: 2, vocabularySize: 10, modelHash: model, corpusHash: corpus, firstSequence: 0, sequences: sample())
        func refuse(_ bytes: [UInt8], _ needle: String, line: UInt = #line) {
            XCTAssertThrowsError(try CaptureShard(file: MappedFile(bytes: bytes, name: "bad.fktopk")), line: line) { e in
                XCTAssertTrue("\(e)".contains(needle), "\(e)", line: line)
            }
        }
        refuse(Array(good.prefix(100)), "shorter than")
        var magic = good; magic[0] = 0x58; refuse(magic, "bad magic")
        var version = good; version[8] = 9; refuse(version, "version 9")
        refuse(Array(good.dropLast(64)), "truncated")
        var k = good; k[12] = 200; refuse(k, "inconsistent")
        var offset = good; offset[88 + 6] = 0x7F; refuse(offset, "outside the file")
        var index = good; index[128 + 8] = 0; refuse(index, "out of order or empty")
    }
}

final class TopKTests: XCTestCase {
    func testTopKAndLogPartitionAgainstSortAndFloat64() {
        var rng = SystemRandomNumberGenerator()
        for n in [1, 15, 16, 17, 1000, 4099] {
            var row = (0..<n).map { _ in Float.random(in: -20...20, using: &rng) }
            if n > 10 { row[3] = row[7] }   // a tie
            let k = min(10, n)
            let top = row.withUnsafeBufferPointer { topK($0.baseAddress!, count: n, k: k) }!
            let order = row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }
            XCTAssertEqual(top.ids.map(Int.init), Array(order.prefix(k)))
            let mx = Double(row.max()!)
            let lse = mx + log(row.reduce(0.0) { $0 + exp(Double($1) - mx) })
            XCTAssertEqual(Double(top.logPartition), lse, accuracy: 1e-5 * max(1, abs(lse)))
        }
    }

    func testNonFiniteRowIsReported() {
        let row: [Float] = [0, .nan, 1]
        XCTAssertNil(row.withUnsafeBufferPointer { topK($0.baseAddress!, count: 3, k: 2) })
        let inf: [Float] = [0, .infinity, 1]
        XCTAssertNil(inf.withUnsafeBufferPointer { topK($0.baseAddress!, count: 3, k: 2) })
    }

    func testFastExpAccuracy() {
        for x in stride(from: Float(-80), through: 0, by: 0.37) {
            let v = fastExp(SIMD16<Float>(repeating: x))[0]
            XCTAssertEqual(Double(v), exp(Double(x)), accuracy: 3e-7 * exp(Double(x)) + 1e-38)
        }
        XCTAssertEqual(fastExp(SIMD16<Float>(repeating: -100))[0], 0)
    }
}
