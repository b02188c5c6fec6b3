import XCTest
import FuseTensor
@testable import FuseIO

/// A WeightStore over tensors in memory answers like one over the file they would be written to.
final class InMemoryStoreTests: XCTestCase {
    func testInMemoryStoreMatchesTheWrittenFile() throws {
        let dir = NSTemporaryDirectory() + "fusekit-memstore-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tensors = [("b.weight", try Tensor(floats: [1, -2, 3.5, 4, 5, 6], shape: [2, 3])),
                       ("a.bias", try Tensor(floats: [0.25, -0.5], shape: [2]))]
        try writeSafetensors(path: dir + "/model.safetensors", tensors: tensors)
        let config = JSON.object([("model_type", .string("llama"))])
        let memory = try WeightStore(tensors: tensors, config: config, path: "candidate")
        let file = try WeightStore(path: dir + "/model.safetensors")
        XCTAssertEqual(memory.names, file.names)
        for name in file.names {
            XCTAssertEqual(memory.info(name)?.shape, file.info(name)?.shape)
            XCTAssertEqual(memory.info(name)?.dtype, file.info(name)?.dtype)
            XCTAssertEqual(try memory.floats(name), try file.floats(name))
        }
        XCTAssertEqual(memory.config?["model_type"]?.string, "llama")
        XCTAssertNil(memory.location("a.bias"))
        XCTAssertThrowsError(try memory.tensor("missing")) { XCTAssertTrue("\($0)".contains("missing"), "\($0)") }
        XCTAssertThrowsError(try WeightStore(tensors: tensors + [tensors[0]], config: nil, path: "twice"))
    }
}
