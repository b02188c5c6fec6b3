import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseMerge

/// apply-lora against peft 0.21.2's merge_and_unload (Tools/fixtures/merge_fixtures.py): adapters made by
/// peft (lora-a: rslora, rank_pattern, alpha_pattern, an embedding LoRA with its saved base layer, a whole
/// lm_head; lora-b: bf16 factors) merged into the tiny Llama base. f32: every tensor within 1e-6 of the
/// tensor's max magnitude; bf16: at least 99.9% of elements bit-equal (peft rounds once, W + ΔW).
final class LoraApplyTests: XCTestCase {
    static let root = fixturePath("merge")

    func testApplyLoraMatchesPeftMergeAndUnload() throws {
        guard FileManager.default.fileExists(atPath: Self.root + "/lora") else {
            throw XCTSkip("fixtures missing: run Tools/fixtures/merge_fixtures.py")
        }
        let tmp = NSTemporaryDirectory() + "fusekit-apply-lora-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        for adapter in ["a", "b"] {
            for d in ["f32", "bf16"] {
                let out = tmp + "/\(adapter)-\(d)"
                let summary = try applyLora(model: Self.root + "/models/base-\(d)", adapter: Self.root + "/models/lora-\(adapter)", outPath: out)
                XCTAssertGreaterThan(summary.adaptedModules, 0)
                let ours = try WeightStore(path: out)
                let expected = try WeightStore(path: Self.root + "/lora/apply-\(adapter)-\(d).safetensors")
                XCTAssertEqual(Set(ours.names), Set(expected.names), "apply-\(adapter)-\(d): tensor names")
                XCTAssertEqual(ours.config?["dtype"]?.string, d == "f32" ? "float32" : "bfloat16")
                var equal = 0, total = 0, worst = 0.0, worstAt = ""
                for name in expected.names {
                    let theirs = try expected.tensor(name)
                    let mine = try ours.tensor(name)
                    XCTAssertEqual(mine.dtype, theirs.dtype, "\(name)")
                    let a = try mine.floats(), b = try theirs.floats()
                    let scale = Double(b.map { abs($0) }.max() ?? 0)
                    for i in b.indices {
                        total += 1
                        if a[i].bitPattern == b[i].bitPattern { equal += 1 }
                        let rel = Double(abs(a[i] - b[i])) / max(scale, 1e-30)
                        if rel > worst { worst = rel; worstAt = "\(name)[\(i)]: ours \(a[i]) peft \(b[i])" }
                    }
                }
                let fraction = Double(equal) / Double(max(total, 1))
                print(String(format: "apply-lora %@-%@: worst rel %.2e, bit-equal %.4f%% of %d", adapter, d, worst, fraction * 100, total))
                if d == "f32" { XCTAssertLessThanOrEqual(worst, 1e-6, "apply-\(adapter)-\(d): \(worstAt)") }
                else { XCTAssertGreaterThanOrEqual(fraction, 0.999, "apply-\(adapter)-\(d): \(worstAt)") }
            }
        }
    }

    func testRefusesAdapterOfAnotherModel() throws {
        // lora-a targets 16-wide q_proj; the vocabulary models have other tensor names/shapes nowhere, so
        // use a model whose embedding has a different vocabulary size.
        let tmp = NSTemporaryDirectory() + "fusekit-apply-lora-bad-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        XCTAssertThrowsError(try applyLora(model: Self.root + "/models/tok-a-f32", adapter: Self.root + "/models/lora-a", outPath: tmp)) {
            XCTAssertTrue("\($0)".contains("model.embed_tokens.weight"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp))
    }
}
