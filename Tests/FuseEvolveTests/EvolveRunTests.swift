import Foundation
import XCTest
import FuseIO
import FuseMerge
import FuseTensor
@testable import FuseEvolve

/// Whole runs on tiny models: selection properties, reproducibility, resume, recipes, soups, workers.
final class EvolveRunTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try Tiny.workspace() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func evolverSpec(search: String = "evolver", generations: Int = 3, options: String = "{f: 0.5, cr: 0.5}", extra: String = "") -> String {
        """
        sources: [ft0, ft1, ft2]
        search: \(search)
        fitness:
          dev:
            - {task: dev.jsonl, weight: 2}
            - {task: mc.jsonl, weight: 1, metric: acc}
          held_out: [test.jsonl]
        generations: \(generations)
        options: \(options)
        \(extra)
        """
    }

    /// Strict-improvement selection: no individual's dev score ever decreases, the best never
    /// decreases, and the output is the best individual (its dev score is the reported one).
    func testEvolverScoresNeverDecreaseAndOutputIsTheBest() throws {
        let spec = try Tiny.spec(dir, evolverSpec(generations: 4))
        let summary = try Tiny.run(spec, dir + "/out")
        let lines = try Tiny.logLines(dir + "/out")
        XCTAssertEqual(lines.count, 5, "generation 0 (initial scores) and 4 generations")
        var previous: [Double]?
        for line in lines {
            let scores = try XCTUnwrap(line["scores"]?.array?.compactMap(\.double))
            if let previous { for (a, b) in zip(previous, scores) { XCTAssertGreaterThanOrEqual(b, a) } }
            XCTAssertEqual(line["best"]?.double, scores.max())
            XCTAssertNotNil(line["held_out"]?.double)
            // Every logged trial was accepted exactly when it beat its parent strictly.
            for trial in line["candidates"]?.array ?? [] {
                let parent = try XCTUnwrap(trial["parent"]?.double)
                if let dev = trial["dev"]?.double { XCTAssertEqual(trial["accepted"]?.bool, dev > parent) }
                else { XCTAssertEqual(trial["accepted"]?.bool, false, "a trial stopped early was accepted") }
            }
            XCTAssertEqual(line["candidates"]?.array?.count ?? 0, line["trials"]?.int)
            previous = scores
        }
        XCTAssertGreaterThan(lines.compactMap { $0["accepted"]?.int }.reduce(0, +), 0, "no trial was ever accepted; the test proves nothing")
        XCTAssertEqual(summary.bestDev, previous?.max())
        // The written model scores what the log says.
        let rescored = try InProcessEvaluator(codec: nil).evaluate(folders: [dir + "/out/model"], tasks: spec.dev)[0]
        XCTAssertEqual(fitness(rescored, spec.dev), summary.bestDev, accuracy: 1e-12)
    }

    /// Early stopping (a trial's remaining dev tasks cannot lift it above its parent) changes no decision:
    /// the same model and scores as scoring every task, with fewer task evaluations.
    func testEarlyStoppingChangesNoDecision() throws {
        let text = evolverSpec(generations: 4)
        let counting = CountingEvaluator(), plain = CountingEvaluator()
        _ = try Tiny.run(try Tiny.spec(dir, text), dir + "/early", evaluator: counting)
        _ = try Tiny.run(try Tiny.spec(dir, text + "\nearly_stop: false"), dir + "/full", evaluator: plain)
        XCTAssertEqual(try Tiny.bytes(dir + "/early/model/model.safetensors"), try Tiny.bytes(dir + "/full/model/model.safetensors"))
        let scores = { (out: String) in try Tiny.logLines(out).map { $0["scores"] } }
        XCTAssertEqual(try scores(dir + "/early"), try scores(dir + "/full"))
        XCTAssertLessThan(counting.taskEvaluations, plain.taskEvaluations, "no trial stopped early; the test proves nothing")
    }

    /// A trial that only ties its target is rejected: with a constant fitness nothing is ever replaced
    /// and the output is source 0 unchanged.
    func testTiesAreNotImprovements() throws {
        let spec = try Tiny.spec(dir, evolverSpec(generations: 2))
        _ = try Tiny.run(spec, dir + "/out", evaluator: ConstantEvaluator())
        for line in try Tiny.logLines(dir + "/out") { XCTAssertEqual(line["accepted"]?.int, 0) }
        let out = try WeightStore(path: dir + "/out/model"), src = try WeightStore(path: dir + "/ft0")
        for (name, _) in Tiny.shapes { XCTAssertEqual(try out.floats(name), try src.floats(name), name) }
    }

    /// Same seed, different --threads: the same bytes.
    func testSameSeedSameBytesForAnyThreadCount() throws {
        let spec = try Tiny.spec(dir, evolverSpec(search: "de", generations: 2, options: "{f: 0.5, cr: 0.3, crossover: row}",
                                                  extra: "population: 4\nseed: 5"))
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 1
        _ = try Tiny.run(spec, dir + "/one")
        Parallel.threads = 2
        _ = try Tiny.run(spec, dir + "/two")
        XCTAssertEqual(try Tiny.bytes(dir + "/one/model/model.safetensors"), try Tiny.bytes(dir + "/two/model/model.safetensors"))
        XCTAssertEqual(try Tiny.logLines(dir + "/one"), try Tiny.logLines(dir + "/two"))
        _ = try Tiny.run(spec, dir + "/other") { $0.seed = 6 }
        XCTAssertNotEqual(try Tiny.bytes(dir + "/one/model/model.safetensors"), try Tiny.bytes(dir + "/other/model/model.safetensors"))
    }

    /// Killed mid-generation (nothing written after the last checkpoint but the fitness cache), then
    /// --resume: the same model bytes, state and log as an uninterrupted run, for each search.
    func testResumeAfterInterruptionEqualsUninterruptedRun() throws {
        let specs = [
            ("evolver", evolverSpec(generations: 3), 5),
            ("de", evolverSpec(search: "de", generations: 3, extra: "population: 4"), 9),
            ("population", evolverSpec(generations: 2, options: "{form: population, merger: {method: task_arithmetic, parameters: {weight: 0.5}}}",
                                       extra: "base: base"), 4),
            ("cma", """
             sources: [ft0, ft1]
             base: base
             search: cma-es
             fitness: {dev: [dev.jsonl]}
             population: 4
             generations: 3
             options: {method: task_arithmetic, layer_groups: 2, sigma: 0.3}
             """, 6),
        ]
        for (name, text, stopAfter) in specs {
            let spec = try Tiny.spec(dir, text)
            _ = try Tiny.run(spec, dir + "/\(name)-full")
            XCTAssertThrowsError(try Tiny.run(spec, dir + "/\(name)-killed") { $0.interruptAfterEvaluations = stopAfter }) {
                XCTAssertTrue($0 is EvolveRun.Interrupted, "\(name): \($0)")
            }
            let partial = try RunState.load(path: dir + "/\(name)-killed/state.json")
            XCTAssertFalse(partial.finished)
            XCTAssertLessThan(partial.generation, 3, "\(name): interrupted too late to test anything")
            _ = try Tiny.run(spec, dir + "/\(name)-killed") { $0.resume = true }
            XCTAssertEqual(try Tiny.bytes(dir + "/\(name)-full/model/model.safetensors"),
                           try Tiny.bytes(dir + "/\(name)-killed/model/model.safetensors"), name)
            XCTAssertEqual(try RunState.load(path: dir + "/\(name)-full/state.json"),
                           try RunState.load(path: dir + "/\(name)-killed/state.json"), name)
            XCTAssertEqual(try Tiny.logLines(dir + "/\(name)-full"), try Tiny.logLines(dir + "/\(name)-killed"), name)
        }
    }

    /// The population form (TIES merger through FuseMerge): fitness is merge(population)'s and never
    /// decreases; the output is that merge.
    func testPopulationFormOutputsTheMergedPopulation() throws {
        let spec = try Tiny.spec(dir, evolverSpec(generations: 1, options: "{form: population, merger: {method: ties, parameters: {density: 0.5}}}",
                                                  extra: "base: base"))
        let summary = try Tiny.run(spec, dir + "/out")
        let best = try Tiny.logLines(dir + "/out").compactMap { $0["best"]?.double }
        XCTAssertEqual(best, best.sorted(), "population fitness decreased")
        let rescored = try InProcessEvaluator(codec: nil).evaluate(folders: [dir + "/out/model"], tasks: spec.dev)[0]
        XCTAssertEqual(fitness(rescored, spec.dev), summary.bestDev, accuracy: 1e-12)
    }

    /// Greedy soup with a known optimum: ft0 and ft1 are target ± e (their average is the target),
    /// ft2 is far off. The soup takes ft0 and ft1 and refuses ft2; an added source that would move the
    /// average off the target is refused too, and the run continues from its checkpoint.
    func testGreedySoupAddsOnlyImprovingSources() throws {
        let target = Tiny.random(1, scale: 0.3, norms: 1)
        let e = Tiny.random(2, scale: 0.1, norms: 0)
        try Tiny.write(zip(target, e).map { zip($0, $1).map(+) }, to: dir + "/ft0")
        try Tiny.write(zip(target, e).map { zip($0, $1).map(-) }, to: dir + "/ft1")
        try Tiny.write(Tiny.random(3, scale: 1, norms: 0), to: dir + "/ft2")
        try Tiny.write(zip(target, e).map { zip($0, $1).map { $0 + 0.5 * $1 } }, to: dir + "/extra")
        let text = """
        sources: [ft2, ft1, ft0]
        search: greedy-soup
        fitness: {dev: [{task: dev.jsonl, metric: nll_per_token}]}
        """
        let spec = try Tiny.spec(dir, text)
        let evaluator = DistanceEvaluator(target: target)
        let summary = try Tiny.run(spec, dir + "/out", evaluator: evaluator)
        let lines = try Tiny.logLines(dir + "/out")
        XCTAssertEqual(lines.map { $0["accepted"]?.bool }, [true, true, false])
        let soup = try XCTUnwrap(lines.last?["soup"]?.array?.compactMap(\.string)).map { URL(fileURLWithPath: $0).lastPathComponent }
        XCTAssertEqual(Set(soup), ["ft0", "ft1"])
        XCTAssertEqual(summary.bestDev, 0, accuracy: 1e-6, "the soup of ft0 and ft1 is the target")
        let before = try Tiny.bytes(dir + "/out/model/model.safetensors")

        _ = try Tiny.run(spec, dir + "/out", evaluator: evaluator) { $0.addSources = [self.dir + "/extra"] }
        let after = try Tiny.logLines(dir + "/out")
        XCTAssertEqual(after.count, 4)
        XCTAssertEqual(after.last?["accepted"]?.bool, false)
        XCTAssertEqual(try Tiny.bytes(dir + "/out/model/model.safetensors"), before)
    }

    /// Evolver with --add-source: the new model joins the population (scored, one more individual) and
    /// the run goes on for the spec's generations from its checkpoint.
    func testAddSourceContinuesAnEvolverRun() throws {
        let spec = try Tiny.spec(dir, evolverSpec(generations: 2))
        _ = try Tiny.run(spec, dir + "/out")
        try Tiny.write(Tiny.random(300, scale: 0.3, norms: 1), to: dir + "/new")
        let summary = try Tiny.run(spec, dir + "/out") { $0.addSources = [self.dir + "/new"] }
        XCTAssertEqual(summary.generations, 4)
        let last = try XCTUnwrap(try Tiny.logLines(dir + "/out").last)
        XCTAssertEqual(last["scores"]?.array?.count, 4)
        XCTAssertEqual(last["generation"]?.int, 4)
        // A second addition after the first: five individuals, two more generations.
        try Tiny.write(Tiny.random(301, scale: 0.3, norms: 1), to: dir + "/newer")
        let again = try Tiny.run(spec, dir + "/out") { $0.addSources = [self.dir + "/newer"] }
        XCTAssertEqual(again.generations, 6)
        XCTAssertEqual(try Tiny.logLines(dir + "/out").last?["scores"]?.array?.count, 5)
        XCTAssertThrowsError(try Tiny.run(spec, dir + "/out") { $0.addSources = [self.dir + "/new"] }) {
            XCTAssertTrue("\($0)".contains("already a source"), "\($0)")
        }
    }

    /// Recipe search writes mergekit YAML that `fusekit merge` (runMerge) turns into the same model bytes.
    func testBestRecipeRerunsToTheSameModel() throws {
        let text = """
        sources: [ft0, ft1, ft2]
        base: base
        search: cma-es
        fitness: {dev: [dev.jsonl], held_out: [test.jsonl]}
        population: 4
        generations: 2
        options: {method: dare_ties, parameters: [weight, density], layer_groups: 2}
        """
        let summary = try Tiny.run(try Tiny.spec(dir, text), dir + "/out")
        let recipe = try String(contentsOfFile: try XCTUnwrap(summary.recipe), encoding: .utf8)
        XCTAssertTrue(recipe.contains("merge_method: dare_ties"))
        XCTAssertTrue(recipe.contains("density: ["), "per-layer-group densities are a gradient list")
        _ = try runMerge(config: try MergeConfig.parse(yaml: recipe), outPath: dir + "/rerun", options: { var o = MergeRunOptions(); o.seed = 0; return o }())
        XCTAssertEqual(try Tiny.bytes(dir + "/out/model/model.safetensors"), try Tiny.bytes(dir + "/rerun/model.safetensors"))
        let lines = try Tiny.logLines(dir + "/out")
        XCTAssertEqual(lines.count, 3)
        let best = lines.compactMap { $0["best"]?.double }
        XCTAssertEqual(best, best.sorted(), "best-so-far decreased")
        XCTAssertEqual(summary.bestDev, best.last)
    }

    /// Slerp's t is a shared parameter: it goes under the recipe's top-level parameters (one gene per
    /// layer group, not per model), and the recipe reruns to the same bytes.
    func testSlerpRecipePutsTheSharedParameterAtTheTop() throws {
        let text = """
        sources: [ft0]
        base: base
        search: cma-es
        fitness: {dev: [dev.jsonl]}
        population: 4
        generations: 1
        options: {method: slerp, layer_groups: 2}
        """
        let summary = try Tiny.run(try Tiny.spec(dir, text), dir + "/out")
        let recipe = try String(contentsOfFile: try XCTUnwrap(summary.recipe), encoding: .utf8)
        let config = try MergeConfig.parse(yaml: recipe)
        guard case .value(.gradient(let t))? = config.parameters["t"] else { return XCTFail("no top-level t gradient in\n\(recipe)") }
        XCTAssertEqual(t.count, 2)
        XCTAssertTrue(config.models?.allSatisfy { $0.parameters.isEmpty } ?? false)
        _ = try runMerge(config: config, outPath: dir + "/rerun", options: MergeRunOptions())
        XCTAssertEqual(try Tiny.bytes(dir + "/out/model/model.safetensors"), try Tiny.bytes(dir + "/rerun/model.safetensors"))
    }

    /// A frankenmerge genome picks one source per layer; the recipe is passthrough slices covering every layer.
    func testFrankenmergeRecipeStacksOneSourcePerLayer() throws {
        let text = """
        sources: [ft0, ft1]
        search: cma-es
        fitness: {dev: [dev.jsonl]}
        population: 4
        generations: 1
        options: {frankenmerge: true}
        """
        let summary = try Tiny.run(try Tiny.spec(dir, text), dir + "/out")
        let recipe = try MergeConfig.parse(yaml: String(contentsOfFile: try XCTUnwrap(summary.recipe), encoding: .utf8))
        XCTAssertEqual(recipe.mergeMethod, "passthrough")
        XCTAssertEqual(recipe.slices?.count, Tiny.layers)
        XCTAssertEqual(recipe.slices?.map { $0.sources[0].layerRange.start }, Array(0..<Tiny.layers))
    }

    /// Candidates scored by `fusekit eval` worker processes give the same run as in-process scoring.
    func testWorkersGiveTheSameResultAsInProcess() throws {
        let exe = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("fusekit").path
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: exe), "build the fusekit executable first (swift build)")
        let spec = try Tiny.spec(dir, evolverSpec(search: "de", generations: 2, extra: "population: 4"))
        _ = try Tiny.run(spec, dir + "/local")
        _ = try Tiny.run(spec, dir + "/workers", evaluator: WorkerEvaluator(command: [exe, "eval"], workers: 2))
        XCTAssertEqual(try Tiny.bytes(dir + "/local/model/model.safetensors"), try Tiny.bytes(dir + "/workers/model/model.safetensors"))
        XCTAssertEqual(try Tiny.logLines(dir + "/local"), try Tiny.logLines(dir + "/workers"))
    }

    /// A GGUF source (quantized q8_0) shares the weight space of the HF folder it was converted from:
    /// both load as Float32 under HF names, and the greedy soup scores each and their average.
    func testGGUFAndHFSourcesShareOneWeightSpace() throws {
        let runtime = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path + "/Fixtures/runtime"
        let text = """
        sources: [\(runtime)/gguf/llama_q8.gguf, \(runtime)/llama_gqa]
        search: greedy-soup
        fitness: {dev: [\(runtime)/eval/mc.jsonl, \(runtime)/eval/ppl.jsonl]}
        """
        let summary = try Tiny.run(try Tiny.spec(dir, text), dir + "/out")
        XCTAssertEqual(summary.evaluations, 3)
        let scores = try XCTUnwrap(try Tiny.logLines(dir + "/out").last?["scores"]?.array?.compactMap(\.double))
        XCTAssertEqual(scores.count, 2)
        XCTAssertEqual(scores[0], scores[1], accuracy: 0.05, "q8_0 and f32 copies of one model score alike")
    }

    // MARK: - Bad input

    func testModelsOfDifferentShapesAreRefused() throws {
        // A model whose first layer norm has one element too many.
        try FileManager.default.createDirectory(atPath: dir + "/odd", withIntermediateDirectories: true)
        var named = try Tiny.shapes.map { name, shape in (name, try Tensor(floats: [Float](repeating: 0.5, count: shape.reduce(1, *)), shape: shape)) }
        named[1] = (Tiny.shapes[1].0, try Tensor(floats: [Float](repeating: 1, count: Tiny.hidden + 1), shape: [Tiny.hidden + 1]))
        try writeSafetensors(path: dir + "/odd/model.safetensors", tensors: named)
        try Tiny.config.write(toFile: dir + "/odd/config.json", atomically: true, encoding: .utf8)
        let spec = try Tiny.spec(dir, evolverSpec().replacingOccurrences(of: "ft2", with: "odd"))
        XCTAssertThrowsError(try Tiny.run(spec, dir + "/out")) { error in
            guard case let EvolveError.incompatibleModels(message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("model.layers.0.input_layernorm.weight"), message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"), "a run that failed before its first checkpoint left OUT_DIR behind")
        // With --force over an earlier run, the failed run gives the earlier one back untouched.
        _ = try Tiny.run(try Tiny.spec(dir, evolverSpec(generations: 1)), dir + "/earlier")
        let before = try Tiny.bytes(dir + "/earlier/model/model.safetensors")
        XCTAssertThrowsError(try Tiny.run(spec, dir + "/earlier") { $0.force = true })
        XCTAssertEqual(try Tiny.bytes(dir + "/earlier/model/model.safetensors"), before)
    }

    func testCorruptStateOnResumeIsRefusedAndLeftAlone() throws {
        let spec = try Tiny.spec(dir, evolverSpec(generations: 1))
        _ = try Tiny.run(spec, dir + "/out")
        try "{\"format\": \"fusekit-evolve-state\", \"vers".write(toFile: dir + "/out/state.json", atomically: true, encoding: .utf8)
        let before = try Tiny.bytes(dir + "/out/state.json")
        XCTAssertThrowsError(try Tiny.run(spec, dir + "/out") { $0.resume = true }) { error in
            guard case let EvolveError.state(path, message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix("state.json") && message.contains("corrupt"), message)
        }
        XCTAssertEqual(try Tiny.bytes(dir + "/out/state.json"), before)
    }

    func testExistingOutputNeedsResumeOrForce() throws {
        let spec = try Tiny.spec(dir, evolverSpec(generations: 1))
        _ = try Tiny.run(spec, dir + "/out")
        XCTAssertThrowsError(try Tiny.run(spec, dir + "/out")) { XCTAssertTrue("\($0)".contains("--resume"), "\($0)") }
        XCTAssertThrowsError(try Tiny.run(spec, dir + "/fresh") { $0.resume = true }) { XCTAssertTrue("\($0)".contains("no run to continue"), "\($0)") }
        let changed = try Tiny.spec(dir, evolverSpec(generations: 2))
        XCTAssertThrowsError(try Tiny.run(changed, dir + "/out") { $0.resume = true }) { XCTAssertTrue("\($0)".contains("spec changed"), "\($0)") }
        XCTAssertNoThrow(try Tiny.run(spec, dir + "/out") { $0.force = true })
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".out.replaced") }
        XCTAssertEqual(left, [], "the replaced run is deleted once the new one has checkpointed")
    }
}
