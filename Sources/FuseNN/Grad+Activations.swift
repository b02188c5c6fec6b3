// Activations for training: SiLU and GELU-tanh (gelu_pytorch_tanh / gelu_new), gated (SwiGLU, GeGLU)
// and plain, and tanh soft-capping of logits. Each derivative is written next to its function.
import Foundation
import FuseTensor

/// silu(z) = z·σ(z);  silu'(z) = σ(z)·(1 + z·(1 − σ(z))).
@inline(__always) func siluValue(_ z: Float) -> Float { z / (1 + expf(-z)) }
@inline(__always) func siluDerivative(_ z: Float) -> Float {
    let s = 1 / (1 + expf(-z))
    return s * (1 + z * (1 - s))
}

/// gelu_tanh(z) = ½z(1 + tanh(k(z + 0.044715 z³))), k = √(2/π);
/// derivative ½(1 + t) + ½z(1 − t²)·k(1 + 3·0.044715 z²).
let geluK: Float = 0.7978845608028654
let geluC: Float = 0.044715
@inline(__always) func geluValue(_ z: Float) -> Float { 0.5 * z * (1 + tanhf(geluK * (z + geluC * z * z * z))) }
@inline(__always) func geluDerivative(_ z: Float) -> Float {
    let t = tanhf(geluK * (z + geluC * z * z * z))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * geluK * (1 + 3 * geluC * z * z)
}

extension Activation {
    @inline(__always) func value(_ z: Float) -> Float { self == .silu ? siluValue(z) : geluValue(z) }
    @inline(__always) func derivative(_ z: Float) -> Float { self == .silu ? siluDerivative(z) : geluDerivative(z) }
}

extension Tape {
    /// act(gate) ⊙ up (same shapes `[N, F]`): Llama's SwiGLU, Gemma's GeGLU.
    public func gated(_ gate: Variable, _ up: Variable, _ act: Activation) throws -> Variable {
        guard gate.rows == up.rows, gate.cols == up.cols else {
            throw NNError.shapeMismatch(tensor: "gated MLP up", expected: [gate.rows, gate.cols], got: [up.rows, up.cols])
        }
        let y = Variable(rows: gate.rows, cols: gate.cols, requiresGrad: needsGrad(gate, up))
        let (g, u, py, n) = (gate.data, up.data, y.data, gate.count)
        parallelFor(count: n, chunkSize: 1 << 14) { _, r in
            if act == .silu { for i in r { py[i] = siluValue(g[i]) * u[i] } } else { for i in r { py[i] = geluValue(g[i]) * u[i] } }
        }
        if y.requiresGrad {
            record(y) { guard let gy = y.grad else { return }
                gatedBackward(gy, gate: g, up: u, act, count: n, dGate: gate.grad, dUp: up.grad)
                withExtendedLifetime((gate, up)) {}
            }
        }
        return y
    }

    /// act(x) element-wise (GPT-2's MLP).
    public func activation(_ x: Variable, _ act: Activation) -> Variable {
        let y = Variable(rows: x.rows, cols: x.cols, requiresGrad: needsGrad(x))
        let (px, py, n) = (x.data, y.data, x.count)
        parallelFor(count: n, chunkSize: 1 << 14) { _, r in for i in r { py[i] = act.value(px[i]) } }
        if y.requiresGrad, x.requiresGrad {
            record(y) { guard let gy = y.grad, let gx = x.grad else { return }
                activationBackward(gy, x: px, act, count: n, dx: gx)
                withExtendedLifetime(x) {}
            }
        }
        return y
    }

    /// cap·tanh(x / cap) (Gemma's final_logit_softcapping).
    public func softcap(_ x: Variable, cap: Float) -> Variable {
        let y = Variable(rows: x.rows, cols: x.cols, requiresGrad: needsGrad(x))
        let (px, py, n) = (x.data, y.data, x.count)
        parallelFor(count: n, chunkSize: 1 << 14) { _, r in for i in r { py[i] = tanhf(px[i] / cap) * cap } }
        if y.requiresGrad, x.requiresGrad {
            record(y) { guard let gy = y.grad, let gx = x.grad else { return }
                softcapBackward(gy, y: py, cap: cap, count: n, dx: gx)
                withExtendedLifetime(y) {}
            }
        }
        return y
    }
}

/// dGate += dy ⊙ up ⊙ act'(gate);  dUp += dy ⊙ act(gate).
public func gatedBackward(_ dy: UnsafePointer<Float>, gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>, _ act: Activation,
                          count n: Int, dGate: UnsafeMutablePointer<Float>?, dUp: UnsafeMutablePointer<Float>?) {
    parallelFor(count: n, chunkSize: 1 << 14) { _, r in
        switch (dGate, dUp, act) {
        case let (dGate?, dUp?, .silu):
            for i in r {
                let z = g[i], s = 1 / (1 + expf(-z))
                dGate[i] += dy[i] * u[i] * s * (1 + z * (1 - s))
                dUp[i] += dy[i] * z * s
            }
        default:
            if let dGate { for i in r { dGate[i] += dy[i] * u[i] * act.derivative(g[i]) } }
            if let dUp { for i in r { dUp[i] += dy[i] * act.value(g[i]) } }
        }
    }
}

/// dx += dy ⊙ act'(x).
public func activationBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, _ act: Activation, count n: Int, dx: UnsafeMutablePointer<Float>) {
    parallelFor(count: n, chunkSize: 1 << 14) { _, r in for i in r { dx[i] += dy[i] * act.derivative(x[i]) } }
}

/// y = cap·tanh(x/cap):  dx += dy·(1 − (y/cap)²).
public func softcapBackward(_ dy: UnsafePointer<Float>, y: UnsafePointer<Float>, cap: Float, count n: Int, dx: UnsafeMutablePointer<Float>) {
    parallelFor(count: n, chunkSize: 1 << 14) { _, r in for i in r { let t = y[i] / cap; dx[i] += dy[i] * (1 - t * t) } }
}
