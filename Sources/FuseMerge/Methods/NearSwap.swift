import FuseTensor

/// NearSwap: s = clamp(t / max(|a − b|, 1e-6), 0, 1) elementwise, out = s·b + (1−s)·a with a the base.
/// Parameters that are already close move fully to b, distant ones barely move.
/// https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001
public struct NearSwap: MergeMethod {
    public let name = "nearswap"
    public let prettyName = "NearSwap"
    public let referenceURL: String? = "https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001"
    public var parameters: [ParameterSpec] { [.float("t", .shared, nil)] }
    public var contract: InputContract { InputContract(base: .required, minInputs: 2, maxInputs: 2) }
    public var optionalTensorPolicy: OptionalTensorPolicy { .passthroughBaseSingleton }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard let bi = g.baseIndex, let oi = g.nonBase.first else {
            throw MergeError.method(name: name, tensor: g.name, message: "needs a base and one other model")
        }
        let a = g.inputs[bi], b = g.inputs[oi], out = g.output, pr = g.precision
        let t = Float(p.double("t"))
        let minimumDistance: Float = 1e-6
        for j in out.indices {
            let diff = pr.r(abs(pr.r(a[j] - b[j])))
            // torch evaluates `t / x` as reciprocal(x) * t, rounding both steps.
            let w = pr.r(min(max(pr.r(pr.r(1 / pr.r(max(diff, minimumDistance))) * t), 0), 1))
            out[j] = pr.r(pr.r(w * b[j]) + pr.r(pr.r(1 - w) * a[j]))
        }
    }
}
