// The safetensors fuzz target: seed files from the FuseKit writer and the Python library's fixtures,
// and what is done with an accepted input.
import Foundation
import FuseIO
import FuseTensor

enum SafetensorsTarget {
    static func seeds() throws -> [[UInt8]] {
        var seeds: [[UInt8]] = []
        let dir = NSTemporaryDirectory() + "fuzz-safetensors-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Tensor(floats: (0..<24).map { Float($0) * 0.25 }, shape: [4, 6])
        let sets: [[(String, Tensor)]] = [
            [("a", a), ("b", try a.converted(to: .bf16)), ("c", try a.converted(to: .f16).reshaped([24]))],
            [("scalar", try Tensor(floats: [1], shape: [])), ("empty", try Tensor(floats: [], shape: [0, 5]))],
            [],
        ]
        for (k, tensors) in sets.enumerated() {
            let path = dir + "/s\(k).safetensors"
            try writeSafetensors(path: path, tensors: tensors, metadata: ["k": "v"])
            if let data = FileManager.default.contents(atPath: path) { seeds.append([UInt8](data)) }
        }
        for name in ["dtypes.safetensors", "bf16.safetensors"] {
            if let data = FileManager.default.contents(atPath: "Tests/Fixtures/safetensors/" + name) { seeds.append([UInt8](data)) }
        }
        return seeds
    }

    /// Parses `input`; if accepted, reads every tensor as f32 when it converts, and checks that
    /// writing the tensors back and parsing again gives the same names, types, shapes and bytes.
    static func run(_ input: [UInt8]) throws {
        let file = try SafetensorsFile(bytes: input, name: "fuzz.safetensors")
        var sink = 0
        var pairs: [(String, Tensor)] = []
        for info in file.tensors {
            let t = try file.tensor(info.name)
            guard t.byteCount == info.byteCount else {
                throw InvariantViolation(description: "tensor \(info.name): \(t.byteCount) bytes, info says \(info.byteCount)")
            }
            if info.dtype.isFloat { sink &+= try t.floats().count }
            pairs.append((info.name, t))
        }
        fuzzSink &+= sink
        let dir = NSTemporaryDirectory() + "fuzz-safetensors-rt-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/rt.safetensors"
        try writeSafetensors(path: path, tensors: pairs, metadata: file.metadata)
        let back = try SafetensorsFile(path: path)
        for (name, t) in pairs {
            let u = try back.tensor(name)
            guard u.dtype == t.dtype, u.shape == t.shape, Array(u.buffer.bytes) == Array(t.buffer.bytes) else {
                throw InvariantViolation(description: "tensor \(name) changed on a write/read round trip")
            }
        }
    }
}
