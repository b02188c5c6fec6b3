import Foundation
import XCTest
import FuseIO
@testable import FuseEvolve

/// SmolLM2-135M (GGUF) when FUSEKIT_MODELS_DIR points at the models (Tools/ downloads them); skipped otherwise.
final class RealModelTests: XCTestCase {
    func modelsDirectory() throws -> String {
        let dir = ProcessInfo.processInfo.environment["FUSEKIT_MODELS_DIR"] ?? ""
        try XCTSkipIf(dir.isEmpty || !FileManager.default.fileExists(atPath: dir + "/smollm2.gguf"),
                      "set FUSEKIT_MODELS_DIR to a folder with smollm2.gguf")
        return dir
    }

    /// A greedy soup of SmolLM2 with itself: the copy and the average are the same genome, so one dev
    /// evaluation is made and the rest are cache hits; the average is refused (a tie is no improvement);
    /// and the whole run
    /// holds a few model copies at most (each 135M × 4 bytes ≈ 0.54 GB).
    func testGreedySoupOfSmolLM2WithItself() throws {
        let models = try modelsDirectory()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let dir = NSTemporaryDirectory() + "fusekit-evolve-smol-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = """
        sources: [\(models)/smollm2.gguf, \(models)/smollm2.gguf]
        search: greedy-soup
        fitness: {dev: [{task: \(root)/examples/tasks/multiple_choice.jsonl, limit: 3}]}
        """
        // Through the executable, which brings the tokenizer (FuseTokenizers) for the text task.
        let exe = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("fusekit").path
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: exe), "build the fusekit executable first (swift build)")
        try text.write(toFile: dir + "/spec.yml", atomically: true, encoding: .utf8)
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["evolve", dir + "/spec.yml", dir + "/out", "--json", "--quiet"]
        p.standardOutput = out
        try p.run()
        let result = try JSON.parse(Array(out.fileHandleForReading.readDataToEndOfFile()))
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let last = try XCTUnwrap(try Tiny.logLines(dir + "/out").last)
        XCTAssertEqual(last["accepted"]?.bool, false)
        let cached = try String(contentsOfFile: dir + "/out/cache.jsonl", encoding: .utf8).split(separator: "\n").count
        XCTAssertEqual(cached, 1, "the copy and the average (0.5·x + 0.5·x = x exactly) are the same genome: one evaluation")
        XCTAssertLessThan(try XCTUnwrap(result["peak_memory_bytes"]?.int), 4_000_000_000)
    }
}
