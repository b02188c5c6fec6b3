import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseMerge

/// extract-lora: B·A is the best rank-r approximation of each delta, so a rank-2 delta is recovered at
/// rank 2, and at rank 1 the residual equals the discarded singular value (Eckart–Young).
final class LoraExtractionTests: XCTestCase {
    func testRecoversLowRankDeltaAndPredictsResidual() throws {
        let root = NSTemporaryDirectory() + "fusekit-lora-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let rows = 12, cols = 8
        var rng = SeededRNG(seed: 3)
        func randn(_ n: Int, _ s: Float = 1) -> [Float] { (0..<n).map { _ in Float(rng.nextGaussian()) * s } }
        let w = randn(rows * cols)
        // Δ = u₁v₁ᵀ·3 + u₂v₂ᵀ·1 with random (not orthogonal) factors.
        let u1 = randn(rows), v1 = randn(cols), u2 = randn(rows), v2 = randn(cols)
        var delta = [Float](repeating: 0, count: rows * cols)
        for i in 0..<rows { for j in 0..<cols { delta[i * cols + j] = 3 * u1[i] * v1[j] + u2[i] * v2[j] } }
        let ft = zip(w, delta).map { $0 + $1 }
        let norm = [Float](repeating: 1, count: cols)
        try writeSafetensors(path: root + "/base.safetensors", tensors: [
            ("model.layers.0.mlp.up_proj.weight", try Tensor(floats: w, shape: [rows, cols])),
            ("model.norm.weight", try Tensor(floats: norm, shape: [cols]))])
        try writeSafetensors(path: root + "/ft.safetensors", tensors: [
            ("model.layers.0.mlp.up_proj.weight", try Tensor(floats: ft, shape: [rows, cols])),
            ("model.norm.weight", try Tensor(floats: norm.map { $0 + 0.5 }, shape: [cols]))])

        for rank in [2, 1] {
            let out = root + "/lora\(rank)"
            let summary = try extractLora(model: root + "/ft.safetensors", base: root + "/base.safetensors", outPath: out, rank: rank, force: false)
            XCTAssertEqual(summary.skipped, ["model.norm.weight"])   // changed, but 1-D: not a LoRA
            let adapter = try WeightStore(path: out + "/adapter_model.safetensors")
            let a = try adapter.floats("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight")
            let b = try adapter.floats("base_model.model.model.layers.0.mlp.up_proj.lora_B.weight")
            XCTAssertEqual(adapter.info("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight")?.shape, [rank, cols])
            var residual = 0.0
            for i in 0..<rows {
                for j in 0..<cols {
                    var ba: Float = 0
                    for k in 0..<rank { ba += b[i * rank + k] * a[k * cols + j] }
                    let d = Double(delta[i * cols + j] - ba)
                    residual += d * d
                }
            }
            residual = residual.squareRoot()
            let predicted = try XCTUnwrap(summary.errors.first?.residual)
            if rank == 2 { XCTAssertLessThan(residual, 1e-4) }
            XCTAssertEqual(residual, predicted, accuracy: 1e-4 + 1e-3 * predicted, "rank \(rank)")
            let cfg = try readJSONFile(out + "/adapter_config.json")
            XCTAssertEqual(cfg["r"]?.int, rank)
            XCTAssertEqual(cfg["lora_alpha"]?.int, rank)
            XCTAssertEqual(cfg["target_modules"]?.array?.compactMap(\.string), ["up_proj"])
        }
    }
}
