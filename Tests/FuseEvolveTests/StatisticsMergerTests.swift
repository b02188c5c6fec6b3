import Foundation
import FuseIO
import FuseTensor
@testable import FuseEvolve
import XCTest

/// The population form's Fisher merger reads each individual's statistics file (options.merger.files,
/// keyed by individual index) and gives Σ F_k θ_k / Σ F_k per element.
final class StatisticsMergerTests: XCTestCase {
    func testFisherMergerWeighsEachIndividualByItsFisher() throws {
        let dir = NSTemporaryDirectory() + "fusekit-evolve-fisher-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fishers: [[Float]] = [[1, 1, 3, 0], [1, 3, 1, 0]]
        for (k, f) in fishers.enumerated() {
            try writeSafetensors(path: dir + "/f\(k).safetensors", tensors: [("t0", try Tensor(floats: f, shape: [4]))],
                                 metadata: ["fusekit_statistics": "fisher", "version": "1"])
        }
        let layout = WeightLayout(names: ["t0"], shapes: [[4]])
        let population = [WeightSet(layout: layout, tensors: [[2, 4, 6, 8]]), WeightSet(layout: layout, tensors: [[0, 0, 2, 2]])]
        var spec = MergerSpec(method: "fisher")
        spec.files = ["0": dir + "/f0.safetensors", "1": dir + "/f1.safetensors"]
        let merged = try PopulationMergers.make(spec).merge(population, base: nil, config: nil, seed: 0)
        let expected: [Float] = [1, 1, 5, 5]   // (1·2+1·0)/2, (1·4+3·0)/4, (3·6+1·2)/4, floors equal → mean
        for (g, e) in zip(merged.tensors[0], expected) { XCTAssertEqual(g, e, accuracy: 1e-5) }

        spec.files = ["0": dir + "/f0.safetensors"]
        XCTAssertThrowsError(try PopulationMergers.make(spec).merge(population, base: nil, config: nil, seed: 0)) {
            XCTAssertTrue("\($0)".contains("fisher"), "\($0)")
        }
    }
}
