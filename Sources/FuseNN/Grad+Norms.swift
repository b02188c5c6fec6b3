// RMSNorm and LayerNorm for training. Forward keeps only each row's reciprocal standard deviation
// (and mean); backward recomputes the normalised value and takes both reductions in one pass
// (llm.c's layernorm_backward, cpu-kernels.md §3). Sums of squares accumulate in f64 as in fk_rmsnorm.
import Foundation
import FuseTensor
import CFuseKernels

extension Tape {
    /// RMSNorm over the columns of x `[rows, dim]`: `w ⊙ x·rstd` (`.llama`) or `(1 + w) ⊙ x·rstd`
    /// (`.onePlusWeight`, Gemma), rstd = 1/√(mean(x²) + eps). Per-head norms pass q viewed `[N*H, D]`.
    public func rmsNorm(_ x: Variable, weight: Variable, eps: Float, kind: RMSNorm.Kind) throws -> Variable {
        guard weight.count == x.cols else {
            throw NNError.shapeMismatch(tensor: "RMSNorm weight", expected: [x.cols], got: [weight.count])
        }
        let y = Variable(rows: x.rows, cols: x.cols, requiresGrad: needsGrad(x, weight))
        let rstd = SavedFloats(x.rows)
        let onePlus = kind == .onePlusWeight
        rmsNormForward(x.data, weight: weight.data, rows: x.rows, dim: x.cols, eps: eps, onePlus: onePlus, into: y.data, rstd: rstd.pointer)
        if y.requiresGrad {
            record(y) { guard let gy = y.grad else { return }
                rmsNormBackward(gy, x: x.data, weight: weight.data, rows: x.rows, dim: x.cols, onePlus: onePlus, rstd: rstd.pointer,
                                dx: x.grad, dWeight: weight.grad)
                withExtendedLifetime((x, weight)) {}
            }
        }
        return y
    }

    /// LayerNorm over the columns of x `[rows, dim]`: `(x − mean)·rstd ⊙ w + b`, biased variance (GPT-2).
    public func layerNorm(_ x: Variable, weight: Variable, bias: Variable, eps: Float) throws -> Variable {
        guard weight.count == x.cols, bias.count == x.cols else {
            throw NNError.shapeMismatch(tensor: "LayerNorm weight/bias", expected: [x.cols], got: [weight.count, bias.count])
        }
        let y = Variable(rows: x.rows, cols: x.cols, requiresGrad: needsGrad(x, weight, bias))
        let stats = SavedFloats(2 * x.rows)
        layerNormForward(x.data, weight: weight.data, bias: bias.data, rows: x.rows, dim: x.cols, eps: eps, into: y.data, stats: stats.pointer)
        if y.requiresGrad {
            record(y) { guard let gy = y.grad else { return }
                layerNormBackward(gy, x: x.data, weight: weight.data, rows: x.rows, dim: x.cols, stats: stats.pointer,
                                  dx: x.grad, dWeight: weight.grad, dBias: bias.grad)
                withExtendedLifetime((x, weight, bias)) {}
            }
        }
        return y
    }
}

/// y = x·rstd ⊙ w' with w' = w or 1 + w; rstd `[rows]` saved.
public func rmsNormForward(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, rows: Int, dim: Int, eps: Float, onePlus: Bool,
                           into y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
    parallelFor(count: rows, chunkSize: rowChunk(dim)) { _, r in
        for i in r {
            let xr = x + i * dim, yr = y + i * dim
            let s = 1 / (Float(fk_sumsq_f32(xr, dim) / Double(dim)) + eps).squareRoot()
            rstd[i] = s
            if onePlus { for j in 0..<dim { yr[j] = (xr[j] * s) * (1 + w[j]) } }
            else { for j in 0..<dim { yr[j] = w[j] * (xr[j] * s) } }
        }
    }
}

/// With g = dy ⊙ w' and x̂ = x·rstd:  dx += rstd·(g − x̂·mean(g ⊙ x̂));  dw += Σ_rows dy ⊙ x̂.
public func rmsNormBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, rows: Int, dim: Int,
                            onePlus: Bool, rstd: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?) {
    let chunk = max(16, rowChunk(dim)), chunks = (rows + chunk - 1) / chunk
    let partial = dWeight != nil ? SavedFloats(chunks * dim, zeroed: true) : nil
    let add: Float = onePlus ? 1 : 0
    parallelFor(count: rows, chunkSize: chunk) { c, r in
        for i in r {
            let xr = x + i * dim, gr = dy + i * dim, s = rstd[i]
            if let dx {
                var dot = 0.0
                for j in 0..<dim { dot += Double(gr[j] * (w[j] + add)) * Double(xr[j] * s) }
                let m = Float(dot / Double(dim))
                let dr = dx + i * dim
                for j in 0..<dim { dr[j] += s * (gr[j] * (w[j] + add) - xr[j] * s * m) }
            }
            if let partial {
                let acc = partial.pointer + c * dim
                for j in 0..<dim { acc[j] += gr[j] * xr[j] * s }
            }
        }
    }
    if let partial, let dWeight {
        for c in 0..<chunks { let acc = partial.pointer + c * dim; for j in 0..<dim { dWeight[j] += acc[j] } }
    }
}

/// y = (x − mean)·rstd ⊙ w + b; stats `[rows, 2]` = (mean, rstd) saved.
public func layerNormForward(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>, rows: Int, dim: Int,
                             eps: Float, into y: UnsafeMutablePointer<Float>, stats: UnsafeMutablePointer<Float>) {
    parallelFor(count: rows, chunkSize: rowChunk(dim)) { _, r in
        for i in r {
            let xr = x + i * dim, yr = y + i * dim
            var sum = 0.0
            for j in 0..<dim { sum += Double(xr[j]) }
            let mean = Float(sum / Double(dim))
            var v = 0.0
            for j in 0..<dim { let d = Double(xr[j]) - Double(mean); v += d * d }
            let s = 1 / (Float(v / Double(dim)) + eps).squareRoot()
            stats[2 * i] = mean; stats[2 * i + 1] = s
            for j in 0..<dim { yr[j] = (xr[j] - mean) * s * w[j] + b[j] }
        }
    }
}

/// With g = dy ⊙ w and x̂ = (x − mean)·rstd:  dx += rstd·(g − mean(g) − x̂·mean(g ⊙ x̂));
/// dw += Σ_rows dy ⊙ x̂;  db += Σ_rows dy.
public func layerNormBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, rows: Int, dim: Int,
                              stats: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                              dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?) {
    let chunk = max(16, rowChunk(dim)), chunks = (rows + chunk - 1) / chunk
    let partial = (dWeight != nil || dBias != nil) ? SavedFloats(2 * chunks * dim, zeroed: true) : nil
    parallelFor(count: rows, chunkSize: chunk) { c, r in
        for i in r {
            let xr = x + i * dim, gr = dy + i * dim, mean = stats[2 * i], s = stats[2 * i + 1]
            if let dx {
                var sg = 0.0, sgx = 0.0
                for j in 0..<dim {
                    let g = Double(gr[j] * w[j])
                    sg += g; sgx += g * Double((xr[j] - mean) * s)
                }
                let mg = Float(sg / Double(dim)), mgx = Float(sgx / Double(dim))
                let dr = dx + i * dim
                for j in 0..<dim { dr[j] += s * (gr[j] * w[j] - mg - (xr[j] - mean) * s * mgx) }
            }
            if let partial {
                let aw = partial.pointer + 2 * c * dim, ab = aw + dim
                for j in 0..<dim { aw[j] += gr[j] * (xr[j] - mean) * s; ab[j] += gr[j] }
            }
        }
    }
    if let partial {
        for c in 0..<chunks {
            let aw = partial.pointer + 2 * c * dim, ab = aw + dim
            if let dWeight { for j in 0..<dim { dWeight[j] += aw[j] } }
            if let dBias { for j in 0..<dim { dBias[j] += ab[j] } }
        }
    }
}
