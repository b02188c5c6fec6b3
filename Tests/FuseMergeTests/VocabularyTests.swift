import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseMerge

/// tokenizer_source: embedding rows are matched by token string (mergekit `tokenizer/embed.py`).
final class VocabularyTests: XCTestCase {
    /// A one-layer Llama-shaped HF folder with hidden size 2 and the given vocabulary; embedding row r
    /// holds (10·modelTag + r, −r) so every row is recognisable.
    func makeModel(_ dir: String, vocab: [String], tag: Float) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var tensors: [(String, Tensor)] = []
        let rows = vocab.count
        let embed = (0..<rows).flatMap { [10 * tag + Float($0), -Float($0)] }
        tensors.append(("model.embed_tokens.weight", try Tensor(floats: embed, shape: [rows, 2])))
        tensors.append(("lm_head.weight", try Tensor(floats: embed.map { $0 * 2 }, shape: [rows, 2])))
        tensors.append(("model.norm.weight", try Tensor(floats: [1, 1], shape: [2])))
        for w in ArchitectureInfo.llamaLayer {
            let shape = w.contains("norm") ? [2] : [2, 2]
            tensors.append(("model.layers.0.\(w)", try Tensor(floats: [Float](repeating: tag, count: shape.reduce(1, *)), shape: shape)))
        }
        try writeSafetensors(path: dir + "/model.safetensors", tensors: tensors)
        let config = #"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 1, "vocab_size": \#(rows)}"#
        try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let vocabJSON = vocab.enumerated().map { "\"\($0.element)\": \($0.offset)" }.joined(separator: ", ")
        try #"{"version": "1.0", "added_tokens": [], "model": {"type": "WordLevel", "vocab": {\#(vocabJSON)}, "unk_token": "a"}}"#
            .write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
    }

    func testUnionAlignsRowsByTokenAndWritesTokenizer() throws {
        let root = NSTemporaryDirectory() + "fusekit-vocab-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try makeModel(root + "/A", vocab: ["a", "b", "c", "d"], tag: 1)
        try makeModel(root + "/B", vocab: ["a", "c", "e"], tag: 2)
        let config = try MergeConfig.parse(yaml: """
        merge_method: linear
        models:
          - model: A
            parameters: {weight: 0.5}
          - model: B
            parameters: {weight: 0.5}
        tokenizer_source: union
        """)
        let out = root + "/out"
        _ = try runMerge(config: config, outPath: out, options: MergeRunOptions(), workingDirectory: root)
        let merged = try WeightStore(path: out)
        let embed = try merged.floats("model.embed_tokens.weight")
        XCTAssertEqual(merged.info("model.embed_tokens.weight")?.shape, [5, 2])
        // Output vocabulary: A's tokens, then B's new one: a b c d e.
        // a: both have it → mean of A row 0 (10, 0) and B row 0 (20, 0).
        XCTAssertEqual(Array(embed[0..<2]), [15, 0])
        // b: only A has it → B gets A's row, so the mean is A's row 1.
        XCTAssertEqual(Array(embed[2..<4]), [11, -1])
        // c: A row 2 (12, −2) and B row 1 (21, −1).
        XCTAssertEqual(Array(embed[4..<6]), [16.5, -1.5])
        // e: only B has it (row 2: 22, −2).
        XCTAssertEqual(Array(embed[8..<10]), [22, -2])
        let cfg = try readJSONFile(out + "/config.json")
        XCTAssertEqual(cfg["vocab_size"]?.int, 5)
        let tok = try readJSONFile(out + "/tokenizer.json")
        XCTAssertEqual(tok["added_tokens"]?.array?.compactMap { $0["content"]?.string }, ["e"])
        XCTAssertEqual(tok["added_tokens"]?.array?.first?["id"]?.int, 4)
    }

    func testBaseSourceKeepsBaseVocabulary() throws {
        let root = NSTemporaryDirectory() + "fusekit-vocab-base-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try makeModel(root + "/A", vocab: ["a", "b", "c"], tag: 1)
        try makeModel(root + "/B", vocab: ["c", "a", "z", "b"], tag: 2)
        let config = try MergeConfig.parse(yaml: """
        merge_method: task_arithmetic
        base_model: A
        models:
          - model: B
            parameters: {weight: 1.0}
        tokenizer_source: base
        """)
        let out = root + "/out"
        _ = try runMerge(config: config, outPath: out, options: MergeRunOptions(), workingDirectory: root)
        let embed = try WeightStore(path: out).floats("model.embed_tokens.weight")
        // Rows follow A's ids; B's rows are permuted to them: a ← B row 1 (21, −1), b ← B row 3, c ← B row 0.
        XCTAssertEqual(embed, [21, -1, 23, -3, 20, 0])
    }
}

/// tokenizer_source union | base | <model> against mergekit 0.1.5 (Tools/fixtures/merge_fixtures.py,
/// cases vocab_*): the same set of output tokens, and for every token the same embedding and lm_head row
/// (rows are compared by token, because mergekit's union orders new tokens by hash-map iteration).
final class VocabularyFixtureTests: XCTestCase {
    static let root = fixturePath("merge")

    func tokenIDs(_ path: String) throws -> [String: Int] {
        let json = try readJSONFile(path)
        var ids: [String: Int] = [:]
        for (t, id) in json["model"]?["vocab"]?.object ?? [] { ids[t] = id.int }
        for a in json["added_tokens"]?.array ?? [] { if let t = a["content"]?.string, let id = a["id"]?.int { ids[t] = id } }
        return ids
    }

    func testVocabularyCasesMatchMergekitByToken() throws {
        let cases = ["vocab_union-f32", "vocab_base-f32", "vocab_model-f32", "vocab_outside-f32"]
        for name in cases {
            let dir = Self.root + "/cases/" + name
            guard FileManager.default.fileExists(atPath: dir + "/expected_tokenizer.json") else {
                throw XCTSkip("fixtures missing: run Tools/fixtures/merge_fixtures.py")
            }
            let config = try MergeConfig.parse(yaml: try String(contentsOfFile: dir + "/config.yml", encoding: .utf8))
            let out = NSTemporaryDirectory() + "fusekit-vocab-fixture-\(getpid())-\(name)"
            try? FileManager.default.removeItem(atPath: out)
            defer { try? FileManager.default.removeItem(atPath: out) }
            _ = try runMerge(config: config, outPath: out, options: MergeRunOptions(), workingDirectory: Self.root)
            let ours = try tokenIDs(out + "/tokenizer.json"), theirs = try tokenIDs(dir + "/expected_tokenizer.json")
            XCTAssertEqual(Set(ours.keys), Set(theirs.keys), "\(name): output vocabulary")
            XCTAssertEqual(try readJSONFile(out + "/config.json")["vocab_size"]?.int, theirs.count, name)
            let mine = try WeightStore(path: out), expected = try WeightStore(path: dir + "/expected.safetensors")
            var worst = 0.0
            for tensor in expected.names {
                let e = try expected.floats(tensor), o = try mine.floats(tensor)
                guard let shape = expected.info(tensor)?.shape, e.count == o.count else {
                    XCTFail("\(name) \(tensor): \(mine.info(tensor)?.shape ?? []) vs \(expected.info(tensor)?.shape ?? [])"); continue
                }
                let scale = Double(e.map { abs($0) }.max() ?? 1)
                if shape.count == 2 && shape[0] == theirs.count {
                    let width = shape[1]
                    for (token, t) in theirs {
                        guard let m = ours[token] else { continue }
                        for c in 0..<width { worst = max(worst, Double(abs(o[m * width + c] - e[t * width + c])) / scale) }
                    }
                } else {
                    for i in e.indices { worst = max(worst, Double(abs(o[i] - e[i])) / scale) }
                }
            }
            XCTAssertLessThanOrEqual(worst, 1e-6, "\(name): worst relative difference")
        }
    }
}
