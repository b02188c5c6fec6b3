// JSONL reading, packing, completion-only labels, seeded order, and errors that name file:line and key.
import FuseIO
import FuseNN
import XCTest
@testable import FuseTrain

final class DataTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory("data") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) -> String {
        let path = dir + "/" + name
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testTextIsPackedIntoOverlappingWindowsWithBOSAndEOS() throws {
        let enc = CharacterEncoder()
        let path = write("t.jsonl", "{\"text\": \"abc\"}\n\n{\"text\": \"de\", \"id\": 7}\n")
        let d = try TrainingData.load(path: path, encoder: enc, eos: 2, seqLen: 4)
        let a = enc.encode("a", addSpecialTokens: false)[0]
        // stream: BOS a b c EOS BOS d e EOS (9 tokens) → windows of 5 with stride 4: [0..<5], [4..<9]
        let stream = [1, a, a + 1, a + 2, 2, 1, a + 3, a + 4, 2]
        XCTAssertEqual(d.kind, .text)
        XCTAssertEqual(d.examples, 2)
        XCTAssertEqual(d.sequences.count, 2)
        XCTAssertEqual(d.sequences[0].inputs, Array(stream[0..<4]))
        XCTAssertEqual(d.sequences[0].labels, Array(stream[1..<5]))
        XCTAssertEqual(d.sequences[1].inputs, Array(stream[4..<8]))
        XCTAssertEqual(d.sequences[1].labels, Array(stream[5..<9]))
        // every token after the first is predicted exactly once
        XCTAssertEqual(d.labelledTokens, stream.count - 1)
    }

    func testCompletionOnlyLabelsAndTruncation() throws {
        let enc = CharacterEncoder()
        let path = write("pc.jsonl", "{\"prompt\": \"Q:\", \"completion\": \"xy\"}\n{\"prompt\": \"long prompt\", \"completion\": \"z\"}\n")
        let d = try TrainingData.load(path: path, encoder: enc, eos: 2, seqLen: 8)
        // ids: BOS Q : x y EOS → inputs BOS Q : x y, labels -1 -1 x y EOS
        let ids = enc.encode("Q:xy", addSpecialTokens: true) + [2]
        XCTAssertEqual(d.sequences.count, 1, "the second completion is truncated away")
        XCTAssertEqual(d.dropped, 1)
        XCTAssertEqual(d.sequences[0].inputs, Array(ids.dropLast()))
        XCTAssertEqual(d.sequences[0].labels, [-1, -1, ids[3], ids[4], 2])
        let batch = makeBatch([d.sequences[0], TrainingSequence(inputs: [5, 6], labels: [6, 7])])
        XCTAssertEqual(batch.length, 5)
        XCTAssertEqual(batch.labels[5...], [6, 7, -1, -1, -1])
        XCTAssertEqual(batch.labelledTokens, 5)
    }

    func testBadLinesNameFileLineAndKey() {
        let enc = CharacterEncoder()
        func message(_ text: String) -> String {
            let path = write("bad.jsonl", text)
            do { _ = try TrainingData.load(path: path, encoder: enc, eos: nil, seqLen: 8); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message("{\"text\": \"a\"}\n{\"text\": 3}\n").contains("bad.jsonl:2: 'text': must be a string"), message("{\"text\": \"a\"}\n{\"text\": 3}\n"))
        XCTAssertTrue(message("{\"prompt\": \"a\"}\n").contains("bad.jsonl:1: 'completion': missing"))
        XCTAssertTrue(message("\n\n{\"txt\": \"a\"}\n").contains("bad.jsonl:3: 'text': missing"))
        XCTAssertTrue(message("{\"text\": \"a\"\n").contains("bad.jsonl:1: not valid JSON"))
        XCTAssertTrue(message("[1]\n").contains("bad.jsonl:1: expected a JSON object"))
        XCTAssertTrue(message("{\"text\": \"a\"}\n{\"prompt\": \"a\", \"completion\": \"b\"}\n").contains("bad.jsonl:2: 'prompt': this line is a prompt/completion example"))
        XCTAssertTrue(message("").contains("nothing to train on"))
    }

    func testOrderIsASeededPermutationPerEpoch() {
        var a = SequenceOrder(count: 10, seed: 3), b = SequenceOrder(count: 10, seed: 3), c = SequenceOrder(count: 10, seed: 4)
        let first = (0..<20).map { a.sequence(at: $0) }
        XCTAssertEqual(first, (0..<20).map { b.sequence(at: $0) })
        XCTAssertNotEqual(first, (0..<20).map { c.sequence(at: $0) })
        XCTAssertEqual(Set(first[0..<10]), Set(0..<10), "each epoch visits every sequence once")
        XCTAssertEqual(Set(first[10..<20]), Set(0..<10))
        XCTAssertNotEqual(Array(first[0..<10]), Array(first[10..<20]), "epochs are reshuffled")
        // Random access equals sequential access (what resume relies on).
        var d = SequenceOrder(count: 10, seed: 3)
        XCTAssertEqual(d.sequence(at: 17), first[17])
        XCTAssertEqual(d.sequence(at: 2), first[2])
    }
}
