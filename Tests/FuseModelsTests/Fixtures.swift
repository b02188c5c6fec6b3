import Foundation
import XCTest
import FuseIO
import FuseModels

/// Path of a committed fixture under Tests/Fixtures (written by Tools/fixtures/*.py).
func fixturePath(_ relative: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(relative).path
}

/// One runtime fixture case: the model folder and transformers' reference tensors.
struct RuntimeCase {
    let name: String
    let folder: String
    let reference: WeightStore

    init(_ name: String) throws {
        self.name = name
        folder = fixturePath("runtime/" + name)
        reference = try WeightStore(path: folder + "/reference.safetensors")
    }

    func ints(_ key: String) throws -> [Int] { try reference.floats(key).map { Int($0) } }
    func floats(_ key: String) throws -> [Float] { try reference.floats(key) }
    func shape(_ key: String) -> [Int] { reference.info(key)?.shape ?? [] }
}

/// Max |a - b|, and the index of the first element over `tolerance` (llm.c's check_tensor).
func maxAbsDiff(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

func assertClose(_ got: [Float], _ expected: [Float], tolerance: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, expected.count, "\(what): element count", file: file, line: line)
    let d = maxAbsDiff(got[...], expected[...])
    if d > tolerance, let i = zip(got, expected).enumerated().first(where: { abs($0.element.0 - $0.element.1) > tolerance })?.offset {
        XCTFail("\(what): max abs diff \(d) > \(tolerance); first mismatch at \(i): got \(got[i]), expected \(expected[i])", file: file, line: line)
    }
}

let runtimeCases = ["llama_gqa", "llama3_rope", "llama_linear_rope", "qwen2", "mistral", "gemma3", "gpt2",
                    // found by Tools/checks/runtime_random.py (docs/crosschecks.md)
                    "llama_yarn", "llama_dynamic", "qwen2_sliding", "gemma3_bias_softcap", "gpt2_layer_scaled"]
