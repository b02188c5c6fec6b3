import Foundation
import XCTest
import FuseIO
@testable import FuseEvolve

/// The `fusekit evolve` executable: kill -9 mid-run, --resume, and the same result as a run left alone.
final class CommandTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try Tiny.workspace() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func fusekit() throws -> String {
        let exe = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("fusekit").path
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: exe), "build the fusekit executable first (swift build)")
        return exe
    }

    func launch(_ exe: String, _ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    func testKillNineThenResumeReachesTheSameResult() throws {
        let exe = try fusekit()
        let spec = """
        sources: [ft0, ft1, ft2]
        search: evolver
        fitness: {dev: [dev.jsonl, mc.jsonl], held_out: [test.jsonl]}
        generations: 40
        options: {crossover: row}
        """
        try spec.write(toFile: dir + "/spec.yml", atomically: true, encoding: .utf8)
        let full = try launch(exe, ["evolve", dir + "/spec.yml", dir + "/full", "--seed", "3"])
        let victim = try launch(exe, ["evolve", dir + "/spec.yml", dir + "/killed", "--seed", "3", "--threads", "1"])
        // Kill it once a generation after the initial one is checkpointed, while it works on the next.
        let deadline = Date().addingTimeInterval(120)
        var killedMidRun = false
        while Date() < deadline && victim.isRunning {
            if let state = try? RunState.load(path: dir + "/killed/state.json"), state.generation >= 1 {
                kill(victim.processIdentifier, SIGKILL)
                killedMidRun = true
                break
            }
            usleep(2_000)
        }
        victim.waitUntilExit()
        full.waitUntilExit()
        XCTAssertEqual(full.terminationStatus, 0)
        try XCTSkipUnless(killedMidRun, "the run finished before it could be killed")
        let partial = try RunState.load(path: dir + "/killed/state.json")
        XCTAssertFalse(partial.finished)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/model"))
        let resumed = try launch(exe, ["evolve", dir + "/spec.yml", dir + "/killed", "--seed", "3", "--resume"])
        resumed.waitUntilExit()
        XCTAssertEqual(resumed.terminationStatus, 0)
        XCTAssertEqual(try Tiny.bytes(dir + "/full/model/model.safetensors"), try Tiny.bytes(dir + "/killed/model/model.safetensors"))
        XCTAssertEqual(try RunState.load(path: dir + "/full/state.json"), try RunState.load(path: dir + "/killed/state.json"))
        XCTAssertEqual(try Tiny.logLines(dir + "/full"), try Tiny.logLines(dir + "/killed"))
    }

    func testUsageErrorsAndJSONResult() throws {
        let exe = try fusekit()
        try "sources: [ft0, ft1]\nsearch: greedy-soup\nfitness: {dev: [dev.jsonl]}\n".write(toFile: dir + "/soup.yml", atomically: true, encoding: .utf8)
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["evolve", dir + "/soup.yml", dir + "/out", "--json", "--quiet"]
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let json = try JSON.parse(Array(data))
        XCTAssertEqual(json["search"]?.string, "greedy-soup")
        XCTAssertEqual(json["evaluations"]?.int, 3)
        let again = try launch(exe, ["evolve", dir + "/soup.yml", dir + "/out"])
        again.waitUntilExit()
        XCTAssertEqual(again.terminationStatus, 1, "an existing OUT_DIR without --resume or --force is an error")
        let usage = try launch(exe, ["evolve", dir + "/soup.yml", dir + "/out", "--resume", "--force"])
        usage.waitUntilExit()
        XCTAssertEqual(usage.terminationStatus, 2)
    }
}
