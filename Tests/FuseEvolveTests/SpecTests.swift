import Foundation
import XCTest
@testable import FuseEvolve

/// Every key is checked before any model loads; errors carry the key path, the line and a "did you mean".
final class SpecTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try Tiny.workspace() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    let good = """
    sources: [ft0, ft1, ft2]
    search: evolver
    fitness:
      dev: [{task: dev.jsonl, weight: 1}]
    generations: 2
    """

    /// The error for `text`, which must be an `EvolveError.spec` at `path` containing `fragment`.
    func expectSpecError(_ text: String, path: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try EvolveSpec.parse(yaml: text, directory: dir), file: file, line: line) { error in
            guard case let EvolveError.spec(p, _, _) = error else { return XCTFail("not a spec error: \(error)", file: file, line: line) }
            XCTAssertEqual(p, path, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(fragment), "\(error)", file: file, line: line)
        }
    }

    func testAGoodSpecParsesWithTheReferenceDefaults() throws {
        let spec = try EvolveSpec.parse(yaml: good, directory: dir)
        XCTAssertEqual(spec.search, .evolver)
        XCTAssertEqual(spec.sources.map { URL(fileURLWithPath: $0).lastPathComponent }, ["ft0", "ft1", "ft2"])
        XCTAssertEqual(spec.weightOptions.f, 0.5)      // defaults.yaml: f 0.5, CR 0.5, 15 generations
        XCTAssertEqual(spec.weightOptions.cr, 0.5)
        XCTAssertEqual(spec.weightOptions.form, .individual)
        XCTAssertEqual(spec.weightOptions.schedule, .sequential)
        XCTAssertEqual(spec.dev.first?.metric, "nll_per_token")
        XCTAssertEqual(try EvolveSpec.parse(yaml: good.replacingOccurrences(of: "\ngenerations: 2", with: ""), directory: dir).generations, 15)
        XCTAssertEqual(try EvolveSpec.parse(yaml: good.replacingOccurrences(of: "evolver", with: "de") + "\npopulation: 4", directory: dir).weightOptions.schedule, .generation)
    }

    func testMisspeltKeysGetTheirPathAndASuggestion() {
        expectSpecError(good.replacingOccurrences(of: "generations", with: "generatons"), path: "generatons", "did you mean 'generations'?")
        expectSpecError(good + "\noptions: {crosover: row}", path: "options.crosover", "did you mean 'crossover'?")
        expectSpecError(good.replacingOccurrences(of: "weight: 1", with: "wieght: 1"), path: "fitness.dev[0].wieght", "did you mean 'weight'?")
        expectSpecError(good.replacingOccurrences(of: "search: evolver", with: "search: evolve"), path: "search", "did you mean 'evolver'?")
        expectSpecError(good + "\noptions: {crossover: rows}", path: "options.crossover", "did you mean 'row'?")
        expectSpecError(good + "\noptions: {merger: {method: tie}}", path: "options.merger.method", "did you mean 'ties'?")
        expectSpecError(good + "\nbase: base\noptions: {form: population, merger: {method: ties, parameters: {densty: 0.5}}}",
                        path: "options.merger.parameters.densty", "did you mean 'density'?")
        expectSpecError(good.replacingOccurrences(of: "weight: 1", with: "weight: 1, metric: nll"), path: "fitness.dev[0].metric", "not a metric")
        expectSpecError(good.replacingOccurrences(of: "search: evolver", with: "search: cma-es") + "\noptions: {method: ties, parameters: [desnity]}",
                        path: "options.parameters[0]", "did you mean 'density'?")
    }

    func testOptionsOfAnotherSearchAreRefused() {
        expectSpecError(good + "\noptions: {sigma: 0.3}", path: "options.sigma", "allowed here: form")
    }

    func testBadValuesNameTheirKey() {
        expectSpecError(good + "\nbudget: 0", path: "budget", "at least 1")
        expectSpecError(good.replacingOccurrences(of: "search: evolver", with: "search: de"), path: "sources", "at least 4 individuals")
        expectSpecError(good.replacingOccurrences(of: "search: evolver", with: "search: de") + "\npopulation: 3", path: "population", "at least 4 individuals; got 3")
        expectSpecError(good.replacingOccurrences(of: "[ft0, ft1, ft2]", with: "[ft0, missing]"), path: "sources[1]", "does not exist")
        expectSpecError(good + "\noptions: {cr: 1.5}", path: "options.cr", "outside [0.0, 1.0]")
        expectSpecError(good + "\noptions: {form: population, schedule: generation}", path: "options.schedule", "sequential")
        expectSpecError(good + "\noptions: {form: population, merger: ties}", path: "options.merger.method", "add 'base'")
        expectSpecError(good.replacingOccurrences(of: "search: evolver", with: "search: cma-es") + "\noptions: {method: ties}", path: "base", "add 'base'")
        expectSpecError("search: evolver\nfitness: {dev: [dev.jsonl]}", path: "sources", "missing")
        expectSpecError("sources: [ft0]\nsearch: [1]\nfitness: {dev: [dev.jsonl]}", path: "search", "expected a string")
        expectSpecError("- a\n- b", path: "", "mapping at the top level")
        expectSpecError(good.replacingOccurrences(of: "search: evolver", with: "search: greedy-soup"), path: "generations", "drop 'generations'")
    }

    func testEmptyDevSetsAreRefused() throws {
        expectSpecError(good.replacingOccurrences(of: "dev: [{task: dev.jsonl, weight: 1}]", with: "dev: []"), path: "fitness.dev", "dev set is empty")
        try "\n\n".write(toFile: dir + "/empty.jsonl", atomically: true, encoding: .utf8)
        expectSpecError(good.replacingOccurrences(of: "dev.jsonl", with: "empty.jsonl"), path: "fitness.dev[0]", "no examples")
        expectSpecError(good.replacingOccurrences(of: "dev.jsonl", with: "nope.jsonl"), path: "fitness.dev[0]", "cannot read")
    }

    func testErrorsCarryTheLine() {
        XCTAssertThrowsError(try EvolveSpec.parse(yaml: good + "\noptions: {f: big}", directory: dir)) { error in
            guard case let EvolveError.spec(_, line, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(line, 6)
        }
    }

    /// A budget stops the search at that many dev evaluations.
    func testBudgetBoundsTheEvaluations() throws {
        let spec = try EvolveSpec.parse(yaml: good + "\nbudget: 5", directory: dir)
        let summary = try Tiny.run(spec, dir + "/out")
        XCTAssertEqual(summary.evaluations, 5, "3 initial scores + 2 trials")
    }
}
