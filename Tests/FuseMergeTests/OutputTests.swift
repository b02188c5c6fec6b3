import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseMerge

/// The output folder: shards and index, config.json, model card, config copy, atomicity and --force.
final class OutputTests: XCTestCase {
    static let root = fixturePath("merge")

    func temporaryPath(_ name: String) -> String {
        let p = NSTemporaryDirectory() + "fusekit-merge-test-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: p)
        return p
    }

    func testShardedOutputMatchesInMemoryMergeAndMetadata() throws {
        let text = try String(contentsOfFile: Self.root + "/cases/passthrough_slices-bf16/config.yml", encoding: .utf8)
        let config = try MergeConfig.parse(yaml: text)
        let out = temporaryPath("sharded")
        defer { try? FileManager.default.removeItem(atPath: out) }
        var options = MergeRunOptions()
        options.maxShardBytes = 4000
        let summary = try runMerge(config: config, outPath: out, options: options, workingDirectory: Self.root)
        XCTAssertTrue(summary.files.contains("model.safetensors.index.json"), "\(summary.files)")
        XCTAssertTrue(summary.files.contains("README.md") && summary.files.contains("mergekit_config.yml"))
        XCTAssertEqual(try String(contentsOfFile: out + "/mergekit_config.yml", encoding: .utf8), text)
        let cfg = try readJSONFile(out + "/config.json")
        XCTAssertEqual(cfg["num_hidden_layers"]?.int, 3)
        XCTAssertEqual(cfg["dtype"]?.string, "bfloat16")
        let store = try WeightStore(path: out)
        let expected = try WeightStore(path: Self.root + "/cases/passthrough_slices-bf16/expected.safetensors")
        XCTAssertEqual(Set(store.names), Set(expected.names))
        for n in expected.names {
            XCTAssertEqual(try store.tensor(n).floats(), try expected.tensor(n).floats(), n)
        }
        let card = try String(contentsOfFile: out + "/README.md", encoding: .utf8)
        XCTAssertTrue(card.contains("- mergekit") && card.contains("Passthrough") && card.contains("```yaml"))
    }

    func testNeverOverwritesWithoutForceAndLeavesNothingOnFailure() throws {
        let config = try MergeConfig.parse(yaml: try String(contentsOfFile: Self.root + "/cases/linear-f32/config.yml", encoding: .utf8))
        let out = temporaryPath("force")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        XCTAssertThrowsError(try runMerge(config: config, outPath: out, options: MergeRunOptions(), workingDirectory: Self.root)) {
            XCTAssertTrue("\($0)".contains("--force"), "\($0)")
        }
        var force = MergeRunOptions()
        force.force = true
        _ = try runMerge(config: config, outPath: out, options: force, workingDirectory: Self.root)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"))

        // A failing merge (missing model) leaves no output folder and no temporary sibling.
        var bad = config
        bad.models?[0].model = ModelReference(path: "models/does-not-exist")
        let out2 = temporaryPath("fail")
        XCTAssertThrowsError(try runMerge(config: bad, outPath: out2, options: MergeRunOptions(), workingDirectory: Self.root)) {
            XCTAssertTrue("\($0)".contains("models[0].model"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out2))
        let siblings = (try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []
        XCTAssertFalse(siblings.contains { $0.hasPrefix("fusekit-merge-test-\(getpid())-fail") && $0 != "fusekit-merge-test-\(getpid())-fail" })
    }

    func testOutDTypeOverrideAndThreadsDoNotChangeBytes() throws {
        let config = try MergeConfig.parse(yaml: try String(contentsOfFile: Self.root + "/cases/ties-f32/config.yml", encoding: .utf8))
        let sources = try openModels(config, relativeTo: Self.root)
        var outputs: [[UInt32]] = []
        for threads in [1, 2] {
            let saved = Parallel.threads
            Parallel.threads = threads
            defer { Parallel.threads = saved }
            let sink = try mergeInMemory(config, sources: sources)
            outputs.append(try sink.tensors.flatMap { try $0.1.floats().map(\.bitPattern) })
        }
        XCTAssertEqual(outputs[0], outputs[1])
    }

    /// config.json's layer count, dtype and vocab_size equal mergekit's (expected_config.json) for every
    /// fixture case. The dtype is out_dtype, else dtype, else the donor's own, even where the tensors are
    /// of another type (arcee_fusion-bf16 writes f32 tensors under "bfloat16", as mergekit does).
    func testConfigJSONMatchesMergekitForEveryCase() throws {
        let dir = Self.root + "/cases"
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertTrue(names.contains("arcee_fusion-bf16"))
        for name in names where FileManager.default.fileExists(atPath: "\(dir)/\(name)/expected_config.json") {
            let config = try MergeConfig.parse(yaml: try String(contentsOfFile: "\(dir)/\(name)/config.yml", encoding: .utf8))
            let out = temporaryPath("config-\(name)")
            defer { try? FileManager.default.removeItem(atPath: out) }
            _ = try runMerge(config: config, outPath: out, options: MergeRunOptions(), workingDirectory: Self.root)
            let ours = try readJSONFile(out + "/config.json")
            let theirs = try readJSONFile("\(dir)/\(name)/expected_config.json")
            XCTAssertEqual(ours["num_hidden_layers"]?.int, theirs["num_hidden_layers"]?.int, "\(name): num_hidden_layers")
            XCTAssertEqual(ours["vocab_size"]?.int, theirs["vocab_size"]?.int, "\(name): vocab_size")
            XCTAssertEqual(ours["dtype"]?.string, theirs["dtype"]?.string ?? theirs["torch_dtype"]?.string, "\(name): dtype")
        }
    }

    /// A slices merge that changes the layer count rewrites `layer_types` to one entry per output layer,
    /// taken from the source layers (mergekit 0.1.5 fails to save such a config under transformers 5).
    func testLayerTypesFollowTheSlices() throws {
        let model = temporaryPath("layer-types-model")
        let out = temporaryPath("layer-types-out")
        defer { try? FileManager.default.removeItem(atPath: model); try? FileManager.default.removeItem(atPath: out) }
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.root + "/models/a-f32/model.safetensors", toPath: model + "/model.safetensors")
        guard case var .object(pairs) = try readJSONFile(Self.root + "/models/a-f32/config.json") else { return XCTFail("config.json") }
        pairs.append(("layer_types", .array([.string("sliding_attention"), .string("full_attention")])))
        try JSON.object(pairs).serialized(indent: 2).write(toFile: model + "/config.json", atomically: true, encoding: .utf8)
        let config = try MergeConfig.parse(yaml: """
            merge_method: passthrough
            slices:
              - sources: [{model: \(model), layer_range: [0, 2]}]
              - sources: [{model: \(model), layer_range: [1, 2]}]
            """)
        _ = try runMerge(config: config, outPath: out, options: MergeRunOptions(), workingDirectory: Self.root)
        let cfg = try readJSONFile(out + "/config.json")
        XCTAssertEqual(cfg["num_hidden_layers"]?.int, 3)
        XCTAssertEqual(cfg["layer_types"]?.array?.compactMap(\.string), ["sliding_attention", "full_attention", "full_attention"])
    }
}
