import Foundation
import FuseIO
import FuseMerge
import FuseTensor
@testable import FuseReport
import XCTest

func fixture(_ relative: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(relative).path
}

/// numpy's measurements of the merge fixtures (Tools/fixtures/report_fixtures.py).
func expectedAnalysis() throws -> JSON { try readJSONFile(fixture("report/merge_analysis.json")) }

/// Analyses mergekit's own output of a fixture case against its inputs.
func analyseCase(_ name: String) throws -> MergeAnalysis {
    let text = try String(contentsOfFile: fixture("merge/cases/\(name)/config.yml"), encoding: .utf8)
    let config = try MergeConfig.parse(yaml: text)
    let sources = try openModels(config, relativeTo: fixture("merge"))
    let plan = try MergePlanner(config: config, sources: sources, outDTypeOverride: nil).plan()
    let merged = try WeightStore(path: fixture("merge/cases/\(name)/expected.safetensors"))
    return try MergeAnalysis.analyze(plan: plan, sources: plan.models.map { sources[$0]! }, merged: merged, remapsVocabulary: false)
}

final class MergeAnalysisTests: XCTestCase {
    /// Every measurement of every tensor equals numpy's float64 computation on mergekit's output
    /// (relative 1e-5; conflict and kept fractions exact with a base, within 2 elements without).
    func testMeasurementsEqualNumpy() throws {
        let expected = try expectedAnalysis()
        for name in ["ties-bf16", "ties-f32", "linear-f32", "slerp-bf16", "task_arithmetic-bf16", "dare_ties_density1-bf16"] {
            let a = try analyseCase(name)
            let e = try XCTUnwrap(expected[name])
            let sourceNames = try XCTUnwrap(e["sources"]?.array?.compactMap(\.string))
            XCTAssertEqual(a.base.map { a.models[$0] }, e["base"]?.string, name)
            var checked = 0
            for t in a.tensors {
                let et = try XCTUnwrap(e["tensors"]?[t.name], "\(name): \(t.name) missing from the fixture")
                let s = try XCTUnwrap(t.sums, "\(name): \(t.name) not measured (\(t.skipped ?? "?"))")
                XCTAssertEqual(t.sources.map { a.models[$0] }, sourceNames, "\(name) \(t.name): source order")
                func close(_ got: [Double], _ key: String, tol: Double = 1e-5) {
                    let want = et[key]?.array?.compactMap(\.double) ?? []
                    XCTAssertEqual(got.count, want.count, "\(name) \(t.name) \(key)")
                    let scale = max(want.map(abs).max() ?? 0, 1e-30)
                    for (g, w) in zip(got, want) where abs(g - w) > tol * max(scale, 1) && abs(g - w) > tol * abs(w) {
                        XCTFail("\(name) \(t.name) \(key): got \(got), numpy \(want)"); return
                    }
                }
                close(s.norms, "norms")
                let cosWant = et["cosines"]?.array?.flatMap { $0.array?.compactMap(\.double) ?? [] } ?? []
                for (g, w) in zip(s.cosines.flatMap { $0 }, cosWant) { XCTAssertEqual(g, w, accuracy: 1e-5, "\(name) \(t.name) cosines") }
                close(s.mergedCosines, "merged_cosines")
                close(s.relativeDistances, "relative_distances")
                let slack = a.base == nil ? 2 / Double(s.elements) : 1e-12
                XCTAssertEqual(s.conflictRate, try XCTUnwrap(et["conflict_rate"]?.double), accuracy: slack, "\(name) \(t.name) conflicts")
                if a.base != nil {
                    XCTAssertEqual(s.keptFraction, try XCTUnwrap(et["kept_fraction"]?.double), accuracy: 1e-12, "\(name) \(t.name) kept")
                }
                checked += 1
            }
            XCTAssertEqual(checked, e["tensors"]?.object?.count, "\(name): every tensor measured")
        }
    }

    /// The conflict rate can fail: TIES on inputs with disjoint signs must show conflicts, a model
    /// merged with itself none, and its merged cosine is 1.
    func testSelfMergeHasNoConflictsAndFullAlignment() throws {
        let a = try analyseCase("ties-bf16")
        let totals = a.totals { _ in true }
        XCTAssertGreaterThan(totals.conflictRate, 0.3)
        // Two identical sources: every cosine is 1 and nothing conflicts.
        let x = UnsafeMutablePointer<Float>.allocate(capacity: 8 * 4)
        defer { x.deallocate() }
        let values: [Float] = [1, -2, 0, 3, 0.5, -0.25, 4, 1]
        for j in 0..<8 { x[j] = 0; x[8 + j] = values[j]; x[16 + j] = values[j]; x[24 + j] = values[j] * 0.5 }
        let s = MergeAnalysis.chunkSums(x: x, n: 8, sources: [1, 2], base: 0, merged: x + 24)
        XCTAssertEqual(s.conflictRate, 0)
        XCTAssertEqual(s.cosines[0][1], 1, accuracy: 1e-12)
        XCTAssertEqual(s.mergedCosines[0], 1, accuracy: 1e-12)
        XCTAssertEqual(s.keptFraction, 7.0 / 8.0)   // one element is 0 in every model
    }

    /// Slices: each output layer is attributed to the model and layer it was copied from.
    func testSliceProvenance() throws {
        let a = try analyseCase("passthrough_slices-bf16")
        let want = try XCTUnwrap(expectedAnalysis()["passthrough_slices-bf16"]?["layers"]?.array)
        for (out, w) in want.enumerated() {
            let pair = try XCTUnwrap(w.array)
            let tensors = a.tensors.filter { $0.layer == out }
            XCTAssertFalse(tensors.isEmpty, "output layer \(out)")
            for t in tensors {
                let c = try XCTUnwrap(t.copiedFrom, t.name)
                XCTAssertEqual(a.models[c.model], pair[0].string, t.name)
                XCTAssertEqual(layerIndex(of: c.tensor), pair[1].int, t.name)
            }
        }
    }

    func testCompareEqualsNumpy() throws {
        let e = try XCTUnwrap(expectedAnalysis()["compare"])
        let c = try ModelComparison.compare(fixture("merge/models/ua-bf16"), fixture("merge/models/ub-bf16"))
        XCTAssertEqual(c.rows.count, e["tensors"]?.object?.count)
        for r in c.rows {
            let w = try XCTUnwrap(e["tensors"]?[r.name])
            XCTAssertEqual(r.relativeDifference, try XCTUnwrap(w["relative_difference"]?.double), accuracy: 1e-6 * max(1, r.relativeDifference), r.name)
            XCTAssertEqual(r.cosine, try XCTUnwrap(w["cosine"]?.double), accuracy: 1e-6, r.name)
            XCTAssertEqual(r.maxAbsDifference, try XCTUnwrap(w["max_abs_difference"]?.double), accuracy: 1e-7, r.name)
            XCTAssertEqual(r.equalFraction, try XCTUnwrap(w["equal_fraction"]?.double), accuracy: 1e-12, r.name)
        }
        let same = try ModelComparison.compare(fixture("merge/models/ua-bf16"), fixture("merge/models/ua-bf16"))
        XCTAssertTrue(same.rows.allSatisfy { $0.equalFraction == 1 && $0.relativeDifference == 0 })
    }

    /// The same numbers whatever the thread count (per-chunk sums combined in chunk order).
    func testThreadCountIndependence() throws {
        let before = Parallel.threads
        defer { Parallel.threads = before }
        Parallel.threads = 1
        let one = try analyseCase("ties-f32").json.serialized()
        Parallel.threads = 2
        let two = try analyseCase("ties-f32").json.serialized()
        XCTAssertEqual(one.replacingOccurrences(of: #""seconds":[^,}]*"#, with: "", options: .regularExpression),
                       two.replacingOccurrences(of: #""seconds":[^,}]*"#, with: "", options: .regularExpression))
    }
}
