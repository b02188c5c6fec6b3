import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseMerge

/// Multi-module (`modules:`) configs on a modular architecture (tiny Qwen2-VL fixtures): layer counts per
/// module from dotted config keys, and the errors mergekit's schema implies, each with its key path.
final class ModulesTests: XCTestCase {
    static let root = fixturePath("merge")

    func plan(_ yaml: String) throws -> MergePlan {
        guard FileManager.default.fileExists(atPath: Self.root + "/models/vl-base-f32") else {
            throw XCTSkip("fixtures missing: run Tools/fixtures/merge_fixtures.py")
        }
        let config = try MergeConfig.parse(yaml: yaml)
        return try MergePlanner(config: config, sources: openModels(config, relativeTo: Self.root)).plan()
    }

    func testModulesPlanEachModuleAndCountTheirLayers() throws {
        let p = try plan("""
        merge_method: linear
        modules:
          vision_tower:
            slices:
              - sources: [{model: models/vl-a-f32, layer_range: [1, 2]}]
          text_decoder:
            models: [{model: models/vl-b-f32, parameters: {weight: 1}}]
        parameters: {weight: 1}
        """)
        XCTAssertEqual(p.architecture, "qwen2_vl")
        XCTAssertEqual(p.layerCountKey, "vision_config.depth")   // modules in config order
        XCTAssertEqual(p.layerCount, 1)
        XCTAssertEqual(p.otherLayerCounts.map(\.key), ["num_hidden_layers"])
        XCTAssertEqual(p.otherLayerCounts.map(\.count), [2])
        // the vision tower's one output layer comes from layer 1 of model a; the projector is not merged
        let block0 = try XCTUnwrap(p.entries.first { $0.name == "visual.blocks.0.attn.qkv.weight" })
        XCTAssertEqual(block0.inputs.map(\.tensor), ["visual.blocks.1.attn.qkv.weight"])
        XCTAssertNil(p.entries.first { $0.name == "visual.blocks.1.attn.qkv.weight" })
        XCTAssertNil(p.entries.first { $0.name.hasPrefix("visual.merger") })
        XCTAssertEqual(Set(p.entries.map(\.name)).count, p.entries.count)
    }

    func testModuleErrorsNameTheKeyPath() throws {
        XCTAssertThrowsError(try plan("""
        merge_method: linear
        modules:
          vision_towr:
            models: [{model: models/vl-a-f32, parameters: {weight: 1}}]
        """)) { XCTAssertTrue("\($0)".contains("modules.vision_towr") && "\($0)".contains("did you mean 'vision_tower'"), "\($0)") }
        XCTAssertThrowsError(try plan("""
        merge_method: passthrough
        slices:
          - sources: [{model: models/vl-a-f32, layer_range: [0, 1]}]
        """)) { XCTAssertTrue("\($0)".contains("under 'modules:'"), "\($0)") }
    }
}
