import Foundation
import XCTest
import FuseIO
@testable import FuseEvolve

/// `--max-memory`: a population larger than the budget waits in its checkpoint files, with the same
/// decisions and bytes as a run that holds it all; a budget below the working set is refused.
final class MemoryBudgetTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try Tiny.workspace() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func spec(_ options: String, extra: String = "") throws -> EvolveSpec {
        try Tiny.spec(dir, """
            sources: [ft0, ft1, ft2]
            search: evolver
            fitness:
              dev:
                - {task: dev.jsonl, weight: 2}
                - {task: mc.jsonl, weight: 1, metric: acc}
            population: 6
            generations: 3
            options: \(options)
            \(extra)
            """)
    }

    /// Bytes of one tiny individual in Float32.
    func individualBytes() throws -> Int {
        try WeightSet.load(try WeightStore(path: dir + "/ft0"), path: "ft0").layout.parameterCount * 4
    }

    func testBudgetSpillsButChangesNothing() throws {
        let bytes = try individualBytes()
        for (name, options, extra) in [("individual", "{f: 0.5, cr: 0.5}", ""),
                                       ("population", "{form: population, merger: {method: task_arithmetic, parameters: {weight: 0.5}}}", "base: base")] {
            let s = try spec(options, extra: extra)
            let free = try Tiny.run(s, dir + "/\(name)-free")
            // Room for the working set (and the base) and two of the six individuals.
            let budget = (Population.workingSet + (extra.isEmpty ? 0 : 1) + 2) * bytes
            let bounded = try Tiny.run(s, dir + "/\(name)-bounded") { $0.maxMemoryBytes = budget }
            XCTAssertEqual(free.spills, 0, name)
            XCTAssertGreaterThan(bounded.spills, 0, "\(name): the budget never forced a spill; the test proves nothing")
            XCTAssertGreaterThan(bounded.reloads, 0, name)
            XCTAssertEqual(try Tiny.bytes(dir + "/\(name)-free/model/model.safetensors"),
                           try Tiny.bytes(dir + "/\(name)-bounded/model/model.safetensors"), name)
            XCTAssertEqual(try Tiny.logLines(dir + "/\(name)-free"), try Tiny.logLines(dir + "/\(name)-bounded"), name)
            XCTAssertEqual(try RunState.load(path: dir + "/\(name)-free/state.json"),
                           try RunState.load(path: dir + "/\(name)-bounded/state.json"), name)
            XCTAssertEqual(free.bestDev, bounded.bestDev, name)
            // A finished run keeps one file per distinct individual and nothing else.
            for run in ["free", "bounded"] {
                let files = try XCTUnwrap(try RunState.load(path: dir + "/\(name)-\(run)/state.json").populationFiles)
                XCTAssertEqual(files.count, 6)
                XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/\(name)-\(run)/population")), Set(files), name)
            }
        }
    }

    /// Killed mid-run under a budget, then resumed under it: the same result as a run left alone.
    func testResumeUnderBudgetEqualsUninterruptedRun() throws {
        let s = try spec("{f: 0.5, cr: 0.5}")
        let budget = (Population.workingSet + 1) * (try individualBytes())
        _ = try Tiny.run(s, dir + "/full")
        XCTAssertThrowsError(try Tiny.run(s, dir + "/killed") { $0.maxMemoryBytes = budget; $0.interruptAfterEvaluations = 9 }) {
            XCTAssertTrue($0 is EvolveRun.Interrupted, "\($0)")
        }
        _ = try Tiny.run(s, dir + "/killed") { $0.maxMemoryBytes = budget; $0.resume = true }
        XCTAssertEqual(try Tiny.bytes(dir + "/full/model/model.safetensors"), try Tiny.bytes(dir + "/killed/model/model.safetensors"))
        XCTAssertEqual(try RunState.load(path: dir + "/full/state.json"), try RunState.load(path: dir + "/killed/state.json"))
    }

    /// The checkpoint's files are named by hash and all on disk; a damaged one is refused on --resume
    /// and nothing is overwritten.
    func testCheckpointHoldsOneFilePerIndividual() throws {
        let s = try spec("{f: 0.5, cr: 0.5}")
        XCTAssertThrowsError(try Tiny.run(s, dir + "/out") { $0.interruptAfterEvaluations = 9 })
        let state = try RunState.load(path: dir + "/out/state.json")
        let files = try XCTUnwrap(state.populationFiles)
        XCTAssertEqual(files.count, 6)
        // Files of trials accepted after the checkpoint may be there too (written in the background).
        let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/out/population"))
        XCTAssertTrue(Set(files).isSubset(of: onDisk), "\(files) not all in \(onDisk)")
        let victim = dir + "/out/population/" + files[0]
        var bytes = try Tiny.bytes(victim)
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: victim))
        let stateBefore = try Tiny.bytes(dir + "/out/state.json")
        XCTAssertThrowsError(try Tiny.run(s, dir + "/out") { $0.resume = true }) { error in
            guard case let EvolveError.state(_, message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("corrupt"), message)
        }
        XCTAssertEqual(try Tiny.bytes(dir + "/out/state.json"), stateBefore)
        XCTAssertEqual(try Tiny.bytes(victim), bytes)
    }

    func testBudgetBelowWorkingSetIsRefused() throws {
        let s = try spec("{f: 0.5, cr: 0.5}")
        let bytes = try individualBytes()
        XCTAssertThrowsError(try Tiny.run(s, dir + "/out") { $0.maxMemoryBytes = 2 * bytes }) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("--max-memory") && message.contains("give at least"), message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"), "a refused run left OUT_DIR behind")
    }

    func testByteSizes() {
        XCTAssertEqual(parseByteSize("4GB"), 4_000_000_000)
        XCTAssertEqual(parseByteSize("1.5GiB"), 1_610_612_736)
        XCTAssertEqual(parseByteSize("800 MB"), 800_000_000)
        XCTAssertEqual(parseByteSize("1024"), 1024)
        XCTAssertNil(parseByteSize("4 parsecs"))
        XCTAssertNil(parseByteSize("GB"))
    }
}
