import XCTest
import Foundation
import FuseIO
import FuseTensor

/// A corpus of broken safetensors files and sharded checkpoints, one per fault. Each must fail with
/// the specific error case, and the message must name the file.
final class BadSafetensorsTests: XCTestCase {
    enum Expect { case truncated, headerTooLarge, badJSON, corrupt, unknownDType, badTensor, missingShard, notAModel }

    func matches(_ error: Error, _ expect: Expect) -> Bool {
        guard let e = error as? FuseIOError else { return false }
        switch (e, expect) {
        case (.truncated, .truncated), (.headerTooLarge, .headerTooLarge), (.badJSON, .badJSON), (.corrupt, .corrupt),
             (.unknownDType, .unknownDType), (.badTensor, .badTensor), (.missingShard, .missingShard), (.notAModel, .notAModel):
            return true
        default: return false
        }
    }

    /// 8-byte length + header + `data` bytes; `length` overrides the stored header length.
    func file(header: [UInt8], data: Int, length: UInt64? = nil) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: (length ?? UInt64(header.count)).littleEndian) { for k in 0..<8 { out[k] = $0[k] } }
        return out + header + [UInt8](repeating: 0x11, count: data)
    }
    func file(_ header: String, data: Int, length: UInt64? = nil) -> [UInt8] { file(header: Array(header.utf8), data: data, length: length) }

    func testCorpus() throws {
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let cases: [(String, [UInt8], Expect)] = [
            ("empty file", [], .truncated),
            ("five bytes", [1, 2, 3, 4, 5], .truncated),
            ("absurd header length", file(ok, data: 8, length: 1 << 40), .headerTooLarge),
            ("header length beyond file", file(ok, data: 8, length: 5000), .truncated),
            ("header not JSON", file("{not json}", data: 0), .badJSON),
            ("header is an array", file("[1,2]", data: 0), .corrupt),
            ("header invalid UTF-8", file(header: Array(#"{"\#u{00}"#.utf8.dropLast()) + [0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x7B, 0x7D, 0x7D], data: 0), .badJSON),
            ("unknown dtype", file(#"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#, data: 8), .unknownDType),
            ("lowercase dtype", file(#"{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#, data: 8), .unknownDType),
            ("missing shape", file(#"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#, data: 8), .badTensor),
            ("negative dimension", file(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: 8), .badTensor),
            ("three offsets", file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#, data: 8), .badTensor),
            ("end before begin", file(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: 8), .badTensor),
            ("shape/byte mismatch", file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8), .badTensor),
            ("shape overflow", file(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: 8), .badTensor),
            ("overlapping tensors", file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: 12), .badTensor),
            ("gap between tensors", file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: 12), .badTensor),
            ("first tensor not at 0", file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8), .badTensor),
            ("truncated data", file(ok, data: 5), .truncated),
            ("trailing bytes", file(ok, data: 12), .corrupt),
            ("duplicate tensor name", file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8), .badJSON),
            ("non-string metadata", file(#"{"__metadata__":{"n":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: 8), .corrupt),
            ("nesting bomb", file(String(repeating: "[", count: 5000), data: 0), .badJSON),
            ("trailing NUL after JSON", file(header: Array(ok.utf8) + [0], data: 8), .badJSON),
            ("huge offsets", file(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}"#, data: 1), .badTensor),
        ]
        let dir = temporaryDirectory()
        for (k, (label, bytes, expect)) in cases.enumerated() {
            let path = dir + "/case\(k).safetensors"
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            XCTAssertThrowsError(try SafetensorsFile(path: path), label) { error in
                XCTAssertTrue(matches(error, expect), "\(label): got \(error)")
                XCTAssertTrue("\(error)".contains(path), "\(label): message must name the file: \(error)")
            }
        }
        XCTAssertGreaterThanOrEqual(cases.count, 25)
    }

    func testBrokenShardedCheckpoints() throws {
        let dir = temporaryDirectory()
        let shard = file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: 8)
        let cases: [(String, String, Expect)] = [
            ("index names a missing shard", #"{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#, .missingShard),
            ("index without weight_map", #"{"metadata":{}}"#, .corrupt),
            ("index puts a tensor in the wrong shard", #"{"weight_map":{"zz":"model-00001-of-00002.safetensors"}}"#, .corrupt),
            ("index escapes the folder", #"{"weight_map":{"a":"../model-00001-of-00002.safetensors"}}"#, .corrupt),
            ("index is not JSON", #"{"weight_map":"#, .badJSON),
        ]
        for (k, (label, index, expect)) in cases.enumerated() {
            let folder = dir + "/m\(k)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: folder + "/model-00001-of-00002.safetensors", contents: Data(shard))
            try index.write(toFile: folder + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try WeightStore(path: folder), label) { error in
                XCTAssertTrue(matches(error, expect), "\(label): got \(error)")
            }
        }
        let empty = dir + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try WeightStore(path: empty)) { XCTAssertTrue(matches($0, .notAModel), "\($0)") }
    }

    /// A write that fails part-way leaves no file behind.
    func testFailedWriteLeavesNothing() throws {
        let dir = temporaryDirectory()
        let t = try Tensor(floats: [1, 2], shape: [2])
        XCTAssertThrowsError(try writeSafetensors(path: dir + "/missing-folder/x.safetensors", tensors: [("a", t)]))
        XCTAssertThrowsError(try writeSafetensors(path: dir + "/x.safetensors", tensors: [("a", t), ("a", t)]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }
}
