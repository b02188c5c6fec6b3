import Foundation
import XCTest
import FuseIO
import FuseTensor
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
            // A finished run keeps what rebuilds its population and nothing else: every individual has a
            // file or a recipe, and every file on disk is one of an individual or of an ancestor a
            // recipe names.
            for run in ["free", "bounded"] {
                let state = try RunState.load(path: dir + "/\(name)-\(run)/state.json")
                let files = try XCTUnwrap(state.populationFiles)
                let recipes = state.populationRecipes ?? [:]
                XCTAssertEqual(files.count, 6)
                XCTAssertFalse(recipes.isEmpty, "\(name): no trial was accepted; the test proves nothing")
                let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/\(name)-\(run)/population"))
                for file in files { XCTAssertTrue(onDisk.contains(file) || recipes[String(file.dropFirst(4).dropLast(12))] != nil, "\(name)-\(run): \(file)") }
                let needed = Set(ancestry(of: files.map { String($0.dropFirst(4).dropLast(12)) }, recipes: recipes).map(Population.fileName))
                XCTAssertTrue(onDisk.isSubset(of: needed), "\(name)-\(run): \(onDisk.subtracting(needed)) kept but not needed")
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

    /// The checkpoint keeps the starting individuals as files named by hash and the accepted trials as
    /// recipes; on --resume a damaged file or a damaged recipe is refused and nothing is overwritten,
    /// and the intact checkpoint rebuilds the trials to the bytes of a run left alone.
    func testCheckpointHoldsFilesAndRecipes() throws {
        let s = try spec("{f: 0.5, cr: 0.5}")
        _ = try Tiny.run(s, dir + "/full")
        // Generation 0 scores 6 individuals, generation 1 six trials: stop inside generation 2.
        XCTAssertThrowsError(try Tiny.run(s, dir + "/out") { $0.interruptAfterEvaluations = 15 })
        let statePath = dir + "/out/state.json"
        let state = try RunState.load(path: statePath)
        XCTAssertEqual(state.generation, 1)
        let files = try XCTUnwrap(state.populationFiles)
        let recipes = try XCTUnwrap(state.populationRecipes, "no trial was accepted in generation 1; the test proves nothing")
        XCTAssertEqual(files.count, 6)
        let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/out/population"))
        let rebuilt = files.map { String($0.dropFirst(4).dropLast(12)) }.filter { recipes[$0] != nil && !onDisk.contains(Population.fileName($0)) }
        XCTAssertFalse(rebuilt.isEmpty, "every individual has a file; the recipes are never used")
        for file in files { XCTAssertTrue(onDisk.contains(file) || recipes[String(file.dropFirst(4).dropLast(12))] != nil, file) }

        func refused(_ expected: String) throws {
            let before = try Tiny.bytes(statePath)
            XCTAssertThrowsError(try Tiny.run(s, dir + "/out") { $0.resume = true }) { error in
                guard case let EvolveError.state(_, message) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains(expected), message)
            }
            XCTAssertEqual(try Tiny.bytes(statePath), before)
        }

        // A damaged file.
        let victim = dir + "/out/population/" + onDisk.sorted()[0]
        let intact = try Tiny.bytes(victim)
        var damaged = intact
        damaged[damaged.count - 1] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: victim))
        try refused("corrupt")
        XCTAssertEqual(try Tiny.bytes(victim), damaged)
        try intact.write(to: URL(fileURLWithPath: victim))

        // A damaged recipe: its stream names other random draws, so the rebuilt values miss the hash.
        let stateText = try String(contentsOfFile: statePath, encoding: .utf8)
        var tampered = state
        tampered.populationRecipes?[rebuilt[0]]?.stream = "trial/9/9"
        try tampered.save(path: statePath)
        try refused("gave other values")
        try stateText.write(toFile: statePath, atomically: true, encoding: .utf8)

        _ = try Tiny.run(s, dir + "/out") { $0.resume = true }
        XCTAssertEqual(try Tiny.bytes(dir + "/full/model/model.safetensors"), try Tiny.bytes(dir + "/out/model/model.safetensors"))
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

/// The population's checkpoint on hand-made individuals: trials are stored as recipes and rebuilt to the
/// same values, and an added individual replaced before its first checkpoint is still rebuilt.
final class PopulationCheckpointTests: XCTestCase {
    func testTrialsAndAReplacedAddedSourceRebuildFromTheCheckpoint() throws {
        let folder = NSTemporaryDirectory() + "fusekit-population-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let layout = WeightLayout(names: ["w"], shapes: [[64]])
        func individual(_ seed: UInt64) -> WeightSet {
            var rng = SeededRNG(seed: seed)
            return WeightSet(layout: layout, tensors: [(0..<64).map { _ in Float(rng.nextGaussian()) }])
        }
        let rule = MutationRule.evolver(f: 0.5), crossover = CrossoverOptions(rate: 0.5)
        func trial(_ p: Population, _ i: Int, _ r: Int, _ stream: String) throws -> (WeightSet, IndividualRecipe) {
            let w = makeTrial(target: try p.individual(i), references: [try p.individual(r)], rule: rule, crossover: crossover, seed: 7, stream: stream).0
            return (w, IndividualRecipe(target: p.hashes[i], references: [p.hashes[r]], rule: rule, crossover: crossover, seed: 7, stream: stream))
        }
        let p = Population(layout: layout, folder: folder, config: nil, maxResident: nil)
        for seed: UInt64 in 1...3 { try p.append(individual(seed)) }
        _ = try p.checkpoint()                                       // generation 0: three files
        let (t1, r1) = try trial(p, 0, 1, "trial/1/0")
        try p.replace(0, with: t1, recipe: r1)
        try p.append(individual(4))                                  // an added source, no file yet
        let (t2, r2) = try trial(p, 3, 0, "trial/2/3")              // descends from it and from t1
        try p.replace(3, with: t2, recipe: r2)
        let (files, recipes) = try p.checkpoint()
        p.removeUnreferenced()
        XCTAssertEqual(Set(recipes.keys), [t1.hash, t2.hash])
        let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: folder))
        XCTAssertFalse(onDisk.contains(Population.fileName(t1.hash)))
        XCTAssertTrue(onDisk.contains(Population.fileName(individual(4).hash)), "the replaced added source was not kept")
        let restored = try Population.restore(files: files, recipes: recipes, folder: folder, layout: layout, config: nil, maxResident: nil)
        XCTAssertEqual(restored.hashes, p.hashes)
        for k in p.indices { XCTAssertEqual(try restored.individual(k).tensors, try p.individual(k).tensors) }
    }
}
