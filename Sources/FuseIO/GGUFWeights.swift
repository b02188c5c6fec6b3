import FuseTensor

/// A GGUF file seen under HF tensor names (placeholder until the GGUF reader lands).
final class GGUFWeights {
    let names: [String] = []
    let config: JSON? = nil
    init(path: String) throws { throw FuseIOError.unsupported(path: path, what: "GGUF reading is not wired yet") }
    func info(_ name: String) -> TensorInfo? { nil }
    func tensor(_ name: String) throws -> Tensor { throw FuseIOError.missingTensor(path: "", tensor: name) }
    func advise(_ name: String, willNeed: Bool) {}
}

extension WeightStore {
    func ggufRows(_ name: String) -> (any RowSource)? { nil }
}
