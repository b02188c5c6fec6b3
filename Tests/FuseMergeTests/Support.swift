import Foundation
import FuseIO
import FuseTensor
@testable import FuseMerge

func fixturePath(_ relative: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(relative).path
}

/// A model held in memory, for tests that need no files.
final class InMemoryModel: ModelSource {
    var tensors: [(String, Tensor)]
    var modelConfig: JSON?
    var folderPath: String? { nil }
    init(_ tensors: [(String, Tensor)], config: JSON? = nil) { self.tensors = tensors; self.modelConfig = config }
    var tensorNames: [String] { tensors.map(\.0) }
    func tensorInfo(_ name: String) -> TensorInfo? {
        tensors.first { $0.0 == name }.map { TensorInfo(name: name, dtype: $0.1.dtype, shape: $0.1.shape) }
    }
    func loadTensor(_ name: String) throws -> Tensor {
        guard let t = tensors.first(where: { $0.0 == name })?.1 else { throw MergeError.missingTensor(model: "memory", tensor: name) }
        return t
    }
}

/// Runs a parsed config through planner and executor into memory.
func mergeInMemory(_ config: MergeConfig, sources: [ModelReference: ModelSource], seed: UInt64 = 0) throws -> InMemorySink {
    let plan = try MergePlanner(config: config, sources: sources).plan()
    let ordered = try plan.models.map { m -> ModelSource in
        guard let s = sources[m] else { throw MergeError.missingModel(path: "models", model: m.description) }
        return s
    }
    let sink = InMemorySink()
    try MergeExecutor(plan: plan, sources: ordered, options: ExecutionOptions(seed: seed)).run(into: sink)
    return sink
}

/// Runs one MergeGroup directly over Float32 arrays (no planning), for method-level property tests.
func runMethod(_ name: String, inputs: [[Float]], shape: [Int], base: Int?, shared: [String: Scalar] = [:],
               perInput: [[String: Scalar]], precision: Precision = .f32, seed: UInt64 = 0, tensor: String = "t") throws -> [Float] {
    guard let method = MethodRegistry.method(named: name) else { throw MergeError.unknownMethod(name: name, suggestion: nil) }
    let buffers = inputs.map { v -> UnsafeMutableBufferPointer<Float> in
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(v.count, 1))
        _ = UnsafeMutableBufferPointer(rebasing: b[0..<v.count]).initialize(from: v)
        return UnsafeMutableBufferPointer(rebasing: b[0..<v.count])
    }
    defer { for b in buffers { b.baseAddress?.deallocate() } }
    let n = inputs.first?.count ?? 0
    var out = [Float](repeating: 0, count: n)
    try out.withUnsafeMutableBufferPointer { o in
        let g = MergeGroup(name: tensor, shape: shape, inputs: buffers, inputNames: inputs.indices.map { "m\($0)" },
                           baseIndex: base, output: o, precision: precision, seed: seed)
        var p = ResolvedParameters()
        for spec in method.parameters where spec.scope == .shared {
            if case let .value(v) = spec.defaultValue { p.shared[spec.name] = v }
        }
        for (k, v) in shared { p.shared[k] = v }
        p.perInput = perInput
        try method.merge(g, p)
    }

    return out
}
