import FuseTensor

/// Fisher-weighted averaging (Matena & Raffel, "Merging Models with Fisher-Weighted Averaging",
/// NeurIPS 2022): per element, θ* = Σᵢ λᵢ F̂ᵢ θᵢ / Σᵢ λᵢ F̂ᵢ with F̂ᵢ = max(Fᵢ, fisher_floor), as the
/// paper's code (`merging.py`, `fisher_floor = 1e-6`); its `favor_target_model` (floor only the first
/// model, the target) is a parameter, off by default so that every model gets the floor.
/// Each model names its diagonal Fisher file (`fusekit stats --fisher`) in its `fisher` parameter;
/// `weight` is λᵢ (default 1). With equal Fishers this is the weighted linear average. Tensors
/// missing from a Fisher file are an error (compute the Fisher over every parameter).
/// https://arxiv.org/abs/2111.09832
public struct FisherMerge: MergeMethod {
    public let name = "fisher"
    public let prettyName = "Fisher-weighted averaging"
    public let referenceURL: String? = "https://arxiv.org/abs/2111.09832"
    public var parameters: [ParameterSpec] {
        [.string("fisher", .input), .float("weight", .input, 1), .float("fisher_floor", .shared, 1e-6),
         .bool("favor_target_model", false)]
    }
    public var contract: InputContract { InputContract(minInputs: 1) }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        let floor = Double(p.double("fisher_floor"))
        let favorTarget = p.bool("favor_target_model")
        var numerator = [Double](repeating: 0, count: g.count)
        var denominator = [Double](repeating: 0, count: g.count)
        for i in g.inputs.indices {
            guard let path = p.string("fisher", input: i) else {
                throw MergeError.method(name: name, tensor: g.name, message: "\(g.inputNames[i]) names no 'fisher' statistics file")
            }
            let tensor = g.inputTensors[i]
            guard let fisher = try StatisticsFiles.shared.floats(path, kind: "fisher", method: name, name: tensor, count: g.count, directory: g.workingDirectory) else {
                throw MergeError.method(name: name, tensor: g.name, message: "\(path) has no Fisher for \(tensor) (model \(g.inputNames[i])); compute it over every parameter")
            }
            let w = p.double("weight", input: i) ?? 1
            let theta = g.inputs[i]
            for j in 0..<g.count {
                let f = w * (favorTarget && i > 0 ? Double(fisher[j]) : max(Double(fisher[j]), floor))
                numerator[j] += f * Double(theta[j])
                denominator[j] += f
            }
        }
        for j in 0..<g.count { g.output[j] = g.precision.r(Float(numerator[j] / denominator[j])) }
    }
}
