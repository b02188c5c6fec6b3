import FuseTensor

/// Passthrough: exactly one input per tensor, multiplied by `scale` when set. Used with slices to stack
/// layers (frankenmerges).
public struct Passthrough: MergeMethod {
    public let name = "passthrough"
    public let prettyName = "Passthrough"
    public var parameters: [ParameterSpec] { [ParameterSpec("scale", .float, .input, default: .absent)] }
    public var contract: InputContract { InputContract(maxInputs: 1) }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard g.inputs.count == 1 else {
            throw MergeError.method(name: name, tensor: g.name, message: "takes exactly one input per tensor, got \(g.inputs.count)")
        }
        g.copyToOutput(0)
        if let scale = p.double("scale", input: 0) {
            let s = Float(scale), pr = g.precision
            for j in g.output.indices { g.output[j] = pr.r(g.output[j] * s) }
        }
    }
}
