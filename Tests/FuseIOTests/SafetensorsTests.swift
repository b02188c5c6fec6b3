import XCTest
import Foundation
import FuseIO
import FuseTensor

func temporaryDirectory(_ name: String = #function) -> String {
    let dir = NSTemporaryDirectory() + "fusekit-tests-\(getpid())-\(name.filter { $0.isLetter || $0.isNumber })"
    try? FileManager.default.removeItem(atPath: dir)
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

final class SafetensorsTests: XCTestCase {
    /// Files written by the Python safetensors library read back value for value.
    func testReadsEveryDtypeTheReferenceWrites() throws {
        let expected = try readJSONFile(fixturePath("safetensors/expected.json"))
        let f = try SafetensorsFile(path: fixturePath("safetensors/dtypes.safetensors"))
        XCTAssertEqual(f.metadata["note"], "fixture")
        XCTAssertEqual(f.tensors.count, 11)
        for (name, want) in expected.object! where !name.contains(":") {
            let t = try f.tensor(name)
            XCTAssertEqual(t.shape, want["shape"]!.array!.map { $0.int! }, name)
            let values = try t.floats()
            let ref = want["values"]!.array!.map { $0.double! }
            XCTAssertEqual(values.count, ref.count, name)
            for (v, r) in zip(values, ref) { XCTAssertEqual(Double(v), r, accuracy: abs(r) * 1e-6 + 1e-7, name) }
        }
        XCTAssertEqual(f.info("scalar")?.shape, [])
        XCTAssertEqual(f.info("empty")?.byteCount, 0)
        let bf = try SafetensorsFile(path: fixturePath("safetensors/bf16.safetensors"))
        let w = try bf.tensor("w")
        XCTAssertEqual(w.dtype, .bf16)
        XCTAssertEqual(try w.floats().map(Double.init), expected["bf16:w"]!["values"]!.array!.map { $0.double! })
    }

    func testShardedFolderThroughWeightStore() throws {
        let store = try WeightStore(path: fixturePath("safetensors/sharded"))
        XCTAssertEqual(Set(store.names), ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"])
        XCTAssertEqual(try store.floats("model.embed_tokens.weight"), (0..<8).map(Float.init))
        XCTAssertEqual(try store.floats("lm_head.weight"), [Float](repeating: 0.5, count: 8))
        XCTAssertEqual(store.config?["model_type"]?.string, "llama")
        XCTAssertEqual(store.parameterCount, 18)
    }

    /// Write -> read is bit-exact, the header is padded to 8 bytes, metadata survives.
    func testRoundTripIsBitExact() throws {
        let dir = temporaryDirectory()
        var rng = SeededRNG(seed: 1)
        let a = try Tensor(floats: (0..<35).map { _ in Float(rng.nextGaussian()) }, shape: [5, 7])
        let b = try a.converted(to: .bf16), c = try a.converted(to: .f16)
        let path = dir + "/x.safetensors"
        try writeSafetensors(path: path, tensors: [("a", a), ("b.weight", b), ("c", c)], metadata: ["fusekit": "yes"])
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(f.metadata, ["format": "pt", "fusekit": "yes"])
        for (name, t) in [("a", a), ("b.weight", b), ("c", c)] {
            let back = try f.tensor(name)
            XCTAssertEqual(back.dtype, t.dtype)
            XCTAssertEqual(back.shape, t.shape)
            XCTAssertEqual(Array(back.buffer.bytes), Array(t.buffer.bytes), name)
        }
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = raw.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["x.safetensors"], "no temporary left")
    }

    /// Shards split at the size limit, an index maps every tensor, and WeightStore reads them back.
    func testShardedWriter() throws {
        let dir = temporaryDirectory()
        let out = try AtomicOutputDirectory(finalPath: dir + "/model", force: false)
        let infos = (0..<5).map { TensorInfo(name: "t\($0)", dtype: .f32, shape: [10, 10]) }   // 400 bytes each
        let writer = try ShardedSafetensorsWriter(directory: out.tempPath, tensors: infos, maxShardBytes: 900)
        for (k, info) in infos.enumerated().reversed() {   // any order
            let values = [Float](repeating: Float(k), count: 100)
            try values.withUnsafeBytes { try writer.write(info.name, bytes: $0) }
        }
        try writer.finish()
        try out.commit()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/model").sorted()
        XCTAssertEqual(files, ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                               "model-00003-of-00003.safetensors", "model.safetensors.index.json"])
        let index = try readJSONFile(dir + "/model/model.safetensors.index.json")
        XCTAssertEqual(index["metadata"]?["total_size"]?.int, 2000)
        let store = try WeightStore(path: dir + "/model")
        XCTAssertEqual(store.names, infos.map(\.name))
        for k in 0..<5 { XCTAssertEqual(try store.floats("t\(k)"), [Float](repeating: Float(k), count: 100)) }
    }

    func testUnwrittenTensorFailsFinish() throws {
        let dir = temporaryDirectory()
        let writer = try ShardedSafetensorsWriter(directory: dir, tensors: [TensorInfo(name: "a", dtype: .f32, shape: [2])], maxShardBytes: 1 << 30)
        XCTAssertThrowsError(try writer.finish()) { XCTAssertTrue("\($0)".contains("never written")) }
        XCTAssertThrowsError(try [Float](repeating: 0, count: 3).withUnsafeBytes { try writer.write("a", bytes: $0) })
    }

    func testAtomicOutputRefusesExistingAndCleansUp() throws {
        let dir = temporaryDirectory()
        let target = dir + "/out"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicOutputDirectory(finalPath: target, force: false)) {
            XCTAssertTrue("\($0)".contains("--force"))
        }
        do {
            let out = try AtomicOutputDirectory(finalPath: target, force: true)
            try "x".write(toFile: out.tempPath + "/file", atomically: false, encoding: .utf8)
            out.abandon()
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target), [])
        let out = try AtomicOutputDirectory(finalPath: target, force: true)
        try "y".write(toFile: out.tempPath + "/new", atomically: false, encoding: .utf8)
        try out.commit()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target), ["new"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out"])
    }
}

final class JSONTests: XCTestCase {
    func testParsesAndSerialises() throws {
        let text = #"{"a": [1, -2.5e3, true, null, "x\"\u00e9\ud83d\ude00"], "b": {}, "big": 18446744073709551615}"#
        let v = try JSON.parse(text)
        XCTAssertEqual(v["a"]?.array?[4].string, "x\"é😀")
        XCTAssertEqual(v["a"]?.array?[1].double, -2500)
        XCTAssertEqual(v["big"], .number("18446744073709551615"))
        XCTAssertEqual(try JSON.parse(v.serialized()), v)
        XCTAssertEqual(try JSON.parse(v.serialized(indent: 2)), v)
    }

    func testRejectsMalformed() {
        for bad in [#"{"a":1,"a":2}"#, "[1,]", "{", #"{"a" 1}"#, "01", "1 2", #""\ud800""#, "nul", #""a"#,
                    String(repeating: "[", count: 10_000)] {
            XCTAssertThrowsError(try JSON.parse(bad), bad)
        }
    }
}
