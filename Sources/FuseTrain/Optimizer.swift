import FuseNN
import FuseTensor

// MARK: - AdamW (torch.optim.AdamW, single-tensor path)
//
// One step, per parameter θ with gradient g, exactly as torch 2.15 `_single_tensor_adam` with
// `decoupled_weight_decay=True` (torch/optim/adam.py), in the same order and the same precision:
// tensor ops in Float32, Python scalars in Double and cast to Float32 where they meet a tensor.
//
//     t += 1
//     θ ← θ · (1 − lr·λ)                                  param.mul_(1 - lr * weight_decay)
//     m ← m + (1 − β1)·(g − m)                            exp_avg.lerp_(grad, 1 - beta1)
//     v ← v·β2 + ((1 − β2)·g)·g                           exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
//     denom ← √v / √(1 − β2ᵗ) + ε                         (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
//     θ ← θ + (−lr / (1 − β1ᵗ))·m / denom                 param.addcdiv_(exp_avg, denom, value=-step_size)
//
// ATen's vectorised lerp is a fused multiply-add for |weight| < 0.5 (fmadd(w, end − self, self));
// it is computed here in Double, where w·(g − m) is exact, so only the final rounding can differ
// (double rounding, in the last bit at most and rarely).

public struct AdamWSettings: Sendable, Equatable, Codable {
    public var lr: Double
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public var weightDecay: Double = 0.01

    public init(lr: Double, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0.01) {
        self.lr = lr; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// AdamW's state: the step count and the two moments of every trainable parameter, by name.
public final class AdamW {
    public var settings: AdamWSettings
    /// Steps taken (torch's `state["step"]`, the same for every parameter here).
    public internal(set) var step = 0
    /// First moments (exp_avg), by parameter name.
    public internal(set) var exponentialAverage: [String: [Float]] = [:]
    /// Second moments (exp_avg_sq), by parameter name.
    public internal(set) var exponentialAverageSquared: [String: [Float]] = [:]

    public init(_ settings: AdamWSettings) { self.settings = settings }

    /// Restores a state saved by a checkpoint.
    public func restore(step: Int, first: [String: [Float]], second: [String: [Float]]) {
        self.step = step
        exponentialAverage = first
        exponentialAverageSquared = second
    }

    /// One update of every parameter in `parameters` with learning rate `lr` (the schedule's value for
    /// this step) from the gradients in `grad`. Moments start at zero on a parameter's first step.
    public func update(_ parameters: [Parameter], lr: Double) {
        step += 1
        let s = settings
        let t = Double(step)
        let decay = Float(1 - lr * s.weightDecay)
        let lerpWeight = Double(Float(1 - s.beta1))
        let beta2 = Float(s.beta2), oneMinusBeta2 = Float(1 - s.beta2)
        let biasCorrection1 = 1 - pow(s.beta1, t)
        let biasCorrection2Sqrt = Float((1 - pow(s.beta2, t)).squareRoot())
        let eps = Float(s.eps)
        let stepSize = Float(-(lr / biasCorrection1))
        for p in parameters {
            var m = exponentialAverage[p.name] ?? [Float](repeating: 0, count: p.count)
            var v = exponentialAverageSquared[p.name] ?? [Float](repeating: 0, count: p.count)
            exponentialAverage[p.name] = nil       // keep a single reference: the writes below stay in place
            exponentialAverageSquared[p.name] = nil
            p.value.withUnsafeMutableBufferPointer { theta in
                p.grad.withUnsafeBufferPointer { g in
                    m.withUnsafeMutableBufferPointer { m in
                        v.withUnsafeMutableBufferPointer { v in
                            for i in 0..<theta.count {
                                let gi = g[i]
                                var th = theta[i]
                                if s.weightDecay != 0 { th = th * decay }
                                let mi = Float(lerpWeight * Double(gi - m[i]) + Double(m[i]))
                                let vi = v[i] * beta2 + (oneMinusBeta2 * gi) * gi
                                let denom = vi.squareRoot() / biasCorrection2Sqrt + eps
                                theta[i] = th + (stepSize * mi) / denom
                                m[i] = mi
                                v[i] = vi
                            }
                        }
                    }
                }
            }
            exponentialAverage[p.name] = m
            exponentialAverageSquared[p.name] = v
        }
    }
}

// MARK: - Gradient clipping (torch.nn.utils.clip_grad_norm_)

/// The global L2 norm of all gradients (each parameter's norm, then the norm of those, as torch;
/// accumulated in Double), and scales every gradient by min(1, maxNorm / (norm + 1e-6)) when
/// `maxNorm` is given. Returns the norm before clipping, as torch does.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Double?) -> Double {
    var total = 0.0
    for p in parameters {
        var sum = 0.0
        p.grad.withUnsafeBufferPointer { g in for x in g { sum += Double(x) * Double(x) } }
        let norm = Double(Float(sum.squareRoot()))     // torch's per-tensor norm is a Float32 tensor
        total += norm * norm
    }
    let totalNorm = Float(total.squareRoot())
    guard let maxNorm else { return Double(totalNorm) }
    // clip_coef = max_norm / (total_norm + 1e-6); clamp(max=1.0); grads always multiplied.
    let coefficient = min(Float(maxNorm) / (totalNorm + Float(1e-6)), 1)
    for p in parameters {
        p.grad.withUnsafeMutableBufferPointer { g in for i in 0..<g.count { g[i] *= coefficient } }
    }
    return Double(totalNorm)
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
