import CFuseKernels
import FuseTensor

/// The generalized task-arithmetic merge (mergekit `GeneralizedTaskArithmeticMerge`): task_arithmetic,
/// ties, dare_*, breadcrumbs*, della* are this one algorithm configured by data (sparsifier, consensus,
/// default normalize/rescale). Per tensor, with θ₀ the base:
/// 1. τᵢ = θᵢ − θ₀ for every non-base input; 2. sparsify each τᵢ with its own density;
/// 3. uᵢ = wᵢ·τᵢ; 4. with sign consensus: g = sign(Σuᵢ) (ties positive), Mᵢ = [sign uᵢ = g],
///    Δ = ΣMᵢuᵢ, D = ΣMᵢwᵢ (exact zeros become 1); without: Δ = Σuᵢ, D = Σwᵢ (|D| < 1e-8 becomes 1);
/// 5. normalize: Δ/D; 6. λ·Δ; 7. θ₀ + Δ. Note the vote is on WEIGHTED, sparsified deltas and the
/// divisor is the sum of agreeing WEIGHTS (not the TIES paper's unweighted vote and count divisor).
public struct TaskArithmeticFamily: MergeMethod {
    public let name: String
    public let prettyName: String
    public let referenceURL: String?
    public let sparsifier: Sparsifier?
    /// Sign consensus by sum (mergekit's `count` variant is reachable from no config, so it is not offered).
    public let signConsensus: Bool
    public let defaultNormalize: Bool
    public let defaultRescale: Bool

    public var contract: InputContract { InputContract(base: .required) }
    public var isRandom: Bool { sparsifier == .random || sparsifier == .dellaMagprune }
    /// Each output element depends only on the same element of the base, so it may overwrite the base.
    public var writesOverBase: Bool { true }

    public var parameters: [ParameterSpec] {
        var specs: [ParameterSpec] = [
            .bool("int8_mask", false), .bool("normalize", defaultNormalize), .bool("rescale", defaultRescale),
            .float("lambda", .shared, 1.0), .float("weight", .nonBase, nil), .float("density", .nonBase, 1.0),
        ]
        if sparsifier == .magnitudeOutliers { specs.append(.float("gamma", .nonBase, 0.01)) }
        if sparsifier == .dellaMagprune { specs.append(.float("epsilon", .nonBase, 0.15)) }
        return specs
    }

    public func merge(_ g: MergeGroup, _ p: ResolvedParameters) throws {
        guard let b = g.baseIndex else {
            throw MergeError.method(name: name, tensor: g.name, message: "needs a base_model")
        }
        let pr = g.precision
        let base = g.inputs[b]
        let others = g.nonBase
        if others.isEmpty { g.copyToOutput(b); return }
        let n = g.count
        let rescale = p.bool("rescale")

        // 1-3: τᵢ in place of θᵢ, sparsified; the weight multiply is fused into step 4. Each τᵢ is its own
        // job (results never depend on which thread runs it); tensors above `parallelSparsifyElements` go
        // one at a time, so the rank selection's index array exists once (memory bound of the embedding).
        if let sparsifier {
            let sparsify = { (k: Int) throws in
                let i = others[k], tau = g.inputs[i]
                subtractInPlace(tau, base, pr)
                let args = SparsifyArguments(density: p.double("density", input: i) ?? 1,
                                             gamma: p.double("gamma", input: i) ?? 0.01,
                                             epsilon: p.double("epsilon", input: i) ?? 0.15, rescale: rescale)
                try sparsifier.apply(tau, shape: g.shape, args, precision: pr, seed: g.seed,
                                     streamName: "\(g.name)#\(i)", tensorName: g.name)
            }
            if n <= parallelSparsifyElements {
                try parallelForThrowing(count: others.count, chunkSize: 1) { k, _ in try sparsify(k) }
            } else {
                for k in others.indices { try sparsify(k) }
            }
        }
        // mergekit builds the weight tensor in the deltas' dtype, so weights are rounded too.
        let weights = others.map { pr.r(Float(p.double("weight", input: $0) ?? 0)) }

        let normalize = p.bool("normalize")
        let lambda = Float(p.double("lambda"))
        var scalarDivisor: Float = 0
        for w in weights { scalarDivisor += w }
        scalarDivisor = pr.r(scalarDivisor)
        if abs(scalarDivisor) < 1e-8 { scalarDivisor = 1 }
        let taus = others.map { g.inputs[$0] }
        // Without a sparsifier τᵢ = r(θᵢ − θ₀) is fused into the combine pass (one pass over each input).
        let settings = CombineSettings(weights: weights, consensus: signConsensus, normalize: normalize,
                                       lambda: lambda, scalarDivisor: scalarDivisor, subtractBase: sparsifier == nil)
        let out = g.output
        parallelFor(count: n, chunkSize: combineChunk) { _, r in
            switch pr {
            case .f32: combineKernel(taus, base, out, r, settings, bf16: false)
            case .bf16: combineKernel(taus, base, out, r, settings, bf16: true)
            case .f16: combine(RoundF16.self, taus, base, out, r, settings)
            }
        }
    }
}

/// Largest tensor whose task vectors are sparsified concurrently (16M elements: 64 MB of index array per
/// concurrent rank selection).
let parallelSparsifyElements = 1 << 24

/// Elements per combine chunk: small enough that a chunk's working set stays in L2.
let combineChunk = 1 << 14

struct CombineSettings {
    let weights: [Float]
    let consensus: Bool
    let normalize: Bool
    let lambda: Float
    let scalarDivisor: Float
    /// The inputs still hold θᵢ: compute τᵢ = r(θᵢ − θ₀) on the fly.
    let subtractBase: Bool
}

/// `combine` in C (CFuseKernels merge.c: AVX-512 where the CPU has it, else the same loops), bit-equal to
/// the Swift reference below for f32 and bf16.
func combineKernel(_ taus: [UnsafeMutableBufferPointer<Float>], _ base: UnsafeMutableBufferPointer<Float>,
                   _ out: UnsafeMutableBufferPointer<Float>, _ r: Range<Int>, _ s: CombineSettings, bf16: Bool) {
    guard let b = base.baseAddress, let o = out.baseAddress, !r.isEmpty else { return }
    let pointers: [UnsafeMutablePointer<Float>?] = taus.map(\.baseAddress)
    s.weights.withUnsafeBufferPointer { w in
        pointers.withUnsafeBufferPointer { p in
            var settings = fk_combine_settings(weights: w.baseAddress, count: Int32(taus.count), consensus: s.consensus ? 1 : 0,
                                               normalize: s.normalize ? 1 : 0, lambda: s.lambda, scalar_divisor: s.scalarDivisor,
                                               subtract_base: s.subtractBase ? 1 : 0, rounding: bf16 ? 1 : 0)
            fk_ta_combine(p.baseAddress, b, o, r.lowerBound, r.count, &settings)
        }
    }
}

/// Steps 3-7 over one chunk, one model at a time so every loop vectorises (the reference for `combineKernel`). `taus` are overwritten with
/// uᵢ = r(τᵢ·wᵢ). Rounding follows torch's op order: mul_, sum(0), (masked) sum(0), div, mul, add.
func combine<R: Rounder>(_: R.Type, _ taus: [UnsafeMutableBufferPointer<Float>], _ base: UnsafeMutableBufferPointer<Float>,
                         _ out: UnsafeMutableBufferPointer<Float>, _ r: Range<Int>, _ s: CombineSettings) {
    let lo = r.lowerBound, m = r.count
    guard m > 0, let o = out.baseAddress, let b = base.baseAddress else { return }
    // `out` may be the base's own buffer (written in place), so scratch lives apart from it.
    let delta = UnsafeMutablePointer<Float>.allocate(capacity: m)
    let divisor = UnsafeMutablePointer<Float>.allocate(capacity: m)
    let total = UnsafeMutablePointer<Float>.allocate(capacity: m)
    defer { delta.deallocate(); divisor.deallocate(); total.deallocate() }
    delta.initialize(repeating: 0, count: m)
    for (k, tau) in taus.enumerated() {
        guard let t = tau.baseAddress else { continue }
        let w = s.weights[k], x = t + lo, y = b + lo
        if s.subtractBase {
            for j in 0..<m { x[j] = R.r(R.r(x[j] - y[j]) * w) }
        } else {
            for j in 0..<m { x[j] = R.r(x[j] * w) }
        }
    }
    if s.consensus {
        // total = Σuᵢ (sign only); agreeing entries add to Δ and their weights to D.
        total.initialize(repeating: 0, count: m)
        divisor.initialize(repeating: 0, count: m)
        for tau in taus { guard let t = tau.baseAddress else { continue }; let x = t + lo; for j in 0..<m { total[j] += x[j] } }
        // sign(total) as ±1 (ties positive); uᵢ agrees when uᵢ·sign > 0 (zeros never do). Selects, no
        // branches, so the loop vectorises.
        for j in 0..<m { total[j] = total[j] >= 0 ? 1 : -1 }
        for (k, tau) in taus.enumerated() {
            guard let t = tau.baseAddress else { continue }
            let w = s.weights[k], x = t + lo
            for j in 0..<m {
                let u = x[j]
                let agree = u * total[j] > 0
                delta[j] += agree ? u : 0
                divisor[j] += agree ? w : 0
            }
        }
        for j in 0..<m {
            let d = R.r(divisor[j])
            divisor[j] = d == 0 ? 1 : d
            delta[j] = R.r(delta[j])
        }
    } else {
        for tau in taus { guard let t = tau.baseAddress else { continue }; let x = t + lo; for j in 0..<m { delta[j] += x[j] } }
        for j in 0..<m { delta[j] = R.r(delta[j]); divisor[j] = s.scalarDivisor }
    }
    let normalize = s.normalize, lambda = s.lambda, scale = lambda != 1
    let dst = o + lo, src = b + lo
    for j in 0..<m {
        var d = delta[j]
        if normalize { d = R.r(d / divisor[j]) }
        if scale { d = R.r(d * lambda) }
        dst[j] = R.r(src[j] + d)
    }
}
