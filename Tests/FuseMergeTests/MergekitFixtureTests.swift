import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseMerge

/// Every deterministic method against mergekit 0.1.5's own output on tiny models
/// (Tools/fixtures/merge_fixtures.py). f32 cases: max |ours − theirs| <= 1e-6 · max |theirs| per tensor.
/// bf16 cases: at least 99.9% of all elements bit-equal (mergekit runs torch ops in bf16; FuseKit emulates
/// the rounding of each op, so only accumulation-order effects may differ).
final class MergekitFixtureTests: XCTestCase {
    static let root = fixturePath("merge")

    func caseNames() throws -> [String] {
        let dir = Self.root + "/cases"
        guard FileManager.default.fileExists(atPath: dir) else {
            throw XCTSkip("fixtures missing: run Tools/fixtures/merge_fixtures.py")
        }
        // vocab_* cases need the tokenizer files of a real output folder: VocabularyFixtureTests runs them.
        return try FileManager.default.contentsOfDirectory(atPath: dir).sorted().filter { !$0.hasPrefix("vocab_") }
    }

    /// bf16 cases where mergekit's own result depends on something unspecified, with the bound that
    /// still holds. None at present: sce's top-k ties follow torch's CPU selection (TorchTopK.swift) and
    /// karcher rounds the scalars torch rounds (Karcher.swift).
    static let knownDifferences: [String: (bitEqual: Double, relative: Double)] = [:]

    /// Cases from the random cross-check (Tools/checks/merge_random.py) that must stay bit-equal: each
    /// guards a reproduction of torch's Float32 summation order (Precision.swift) that a few elements show.
    static let exactCases: Set<String> = ["karcher_odd-bf16", "slerp_odd-bf16"]

    struct Outcome { var worstRelative = 0.0; var equal = 0; var total = 0; var worstTensor = "" }

    func compare(case name: String) throws -> Outcome {
        let dir = Self.root + "/cases/" + name
        let text = try String(contentsOfFile: dir + "/config.yml", encoding: .utf8)
        let config = try MergeConfig.parse(yaml: text)
        let sources = try openModels(config, relativeTo: Self.root)
        let sink = try mergeInMemory(config, sources: sources)
        let expected = try WeightStore(path: dir + "/expected.safetensors")
        XCTAssertEqual(Set(sink.tensors.map(\.0)), Set(expected.names), "\(name): tensor names differ from mergekit's")
        var o = Outcome()
        for (tensorName, ours) in sink.tensors {
            guard expected.info(tensorName) != nil else { continue }
            let theirs = try expected.tensor(tensorName)
            XCTAssertEqual(ours.dtype, theirs.dtype, "\(name) \(tensorName): dtype")
            XCTAssertEqual(ours.shape, theirs.shape, "\(name) \(tensorName): shape")
            let a = try ours.floats(), b = try theirs.floats()
            guard a.count == b.count else { continue }
            let scale = Double(b.map { abs($0) }.max() ?? 0)
            for i in a.indices {
                o.total += 1
                if a[i].bitPattern == b[i].bitPattern { o.equal += 1 }
                let rel = Double(abs(a[i] - b[i])) / max(scale, 1e-30)
                if rel > o.worstRelative { o.worstRelative = rel; o.worstTensor = "\(tensorName)[\(i)]: ours \(a[i]) mergekit \(b[i])" }
            }
        }
        return o
    }

    func testEveryCaseMatchesMergekit() throws {
        var failures: [String] = []
        for name in try caseNames() {
            do {
                let o = try compare(case: name)
                let equalFraction = Double(o.equal) / Double(max(o.total, 1))
                var ok = name.hasSuffix("-bf16") || name.hasSuffix("-f16") || name.hasPrefix("out_dtype") ? equalFraction >= 0.999 : o.worstRelative <= 1e-6
                if Self.exactCases.contains(name) { ok = o.equal == o.total }
                if let known = Self.knownDifferences[name] { ok = equalFraction >= known.bitEqual && o.worstRelative <= known.relative }
                print(String(format: "%-32@ %@ worst rel %.2e, bit-equal %.4f%% of %d", name as NSString, ok ? "ok  " : "FAIL",
                             o.worstRelative, equalFraction * 100, o.total))
                if !ok { failures.append("\(name): worst \(o.worstTensor), bit-equal \(equalFraction)") }
            } catch {
                failures.append("\(name): \(error)")
            }
        }
        XCTAssertTrue(failures.isEmpty, failures.joined(separator: "\n"))
    }
}
