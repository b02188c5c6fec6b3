// Rotary embeddings and causal self-attention for training, over B sequences of T
// tokens (row b*T + t, position t). Attention follows transformers' eager path: S = q kᵀ · scale,
// causal mask plus optional sliding window (key j visible from query i when j ≤ i and i − j < W),
// softmax in f32, o = P v; query head h reads kv head h / (H / KVH) (repeat_kv).
import Foundation
import FuseTensor
import CFuseKernels
import COpenBLAS

extension Tape {
    /// Rotates the `heads` head vectors of each row of x `[N, heads*D]` by its position (rotate_half,
    /// the frequencies and scaling rule of `rope`). Backward is the rotation by −θ.
    public func rope(_ x: Variable, heads: Int, rope: RoPE, positions: [Int32]) throws -> Variable {
        guard x.cols == heads * rope.dim, positions.count == x.rows else {
            throw NNError.shapeMismatch(tensor: "RoPE input", expected: [positions.count, heads * rope.dim], got: [x.rows, x.cols])
        }
        let y = Variable(rows: x.rows, cols: x.cols, requiresGrad: needsGrad(x))
        y.data.update(from: x.data, count: x.count)
        ropeForward(y.data, rows: x.rows, heads: heads, rope: rope, positions: positions)
        if y.requiresGrad, x.requiresGrad {
            let n = x.count, rows = x.rows
            let backward = positions.map { -$0 }
            record(y) { guard let gy = y.grad, let gx = x.grad else { return }
                let t = SavedFloats(n)
                t.pointer.update(from: gy, count: n)
                ropeForward(t.pointer, rows: rows, heads: heads, rope: rope, positions: backward)
                addBackward(t.pointer, gx, nil, count: n)
            }
        }
        return y
    }
}

/// In place: x `[rows, heads*D]`, row r at position positions[r]. Rows run in parallel chunks.
/// Called with negated positions it applies the transpose (rotation by −θ, same attention scaling).
public func ropeForward(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, rope: RoPE, positions: [Int32]) {
    let ld = heads * rope.dim
    positions.withUnsafeBufferPointer { p in
        rope.inverseFrequencies.withUnsafeBufferPointer { f in
            guard let pb = p.baseAddress, let fb = f.baseAddress else { return }
            parallelFor(count: rows, chunkSize: max(1, rowChunk(ld) / 4)) { _, r in
                fk_rope(x + r.lowerBound * ld, r.count, ld, heads, rope.dim, pb + r.lowerBound, fb, rope.attentionScaling)
            }
        }
    }
}

/// Shapes of one attention call.
public struct AttentionShape: Sendable {
    public var batch: Int, length: Int, heads: Int, kvHeads: Int, headDim: Int
    /// Score scale (1/√D, or query_pre_attn_scalar^-½).
    public var scale: Float
    /// Sliding window in positions; 0 = full causal attention.
    public var window: Int

    public init(batch: Int, length: Int, heads: Int, kvHeads: Int, headDim: Int, scale: Float, window: Int = 0) {
        self.batch = batch; self.length = length; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.scale = scale; self.window = window
    }
}

extension Tape {
    /// o `[N, H*D]` = softmax(q kᵀ · scale + mask) v per (sequence, head); q `[N, H*D]`, k and v `[N, KVH*D]`.
    /// Saves only each score row's log-sum-exp `[B, H, T]`: backward recomputes the probabilities
    /// (one more Q Kᵀ product per head, flash-attention style), so memory grows with T, not T².
    public func attention(q: Variable, k: Variable, v: Variable, _ s: AttentionShape) throws -> Variable {
        let n = s.batch * s.length
        guard s.heads > 0, s.kvHeads > 0, s.heads % s.kvHeads == 0 else {
            throw NNError.invalidArgument("\(s.heads) query heads cannot share \(s.kvHeads) key/value heads evenly")
        }
        guard q.rows == n, q.cols == s.heads * s.headDim else {
            throw NNError.shapeMismatch(tensor: "attention q", expected: [n, s.heads * s.headDim], got: [q.rows, q.cols])
        }
        guard k.rows == n, v.rows == n, k.cols == s.kvHeads * s.headDim, v.cols == k.cols else {
            throw NNError.shapeMismatch(tensor: "attention k/v", expected: [n, s.kvHeads * s.headDim], got: [k.rows, k.cols, v.rows, v.cols])
        }
        let out = Variable(rows: n, cols: q.cols, requiresGrad: needsGrad(q, k, v))
        let lse = SavedFloats(out.requiresGrad ? s.batch * s.heads * s.length : 1)
        attentionForward(q: q.data, k: k.data, v: v.data, s, into: out.data, logSumExp: out.requiresGrad ? lse.pointer : nil)
        if out.requiresGrad {
            record(out) { guard let gy = out.grad else { return }
                attentionBackward(gy, q: q.data, k: k.data, v: v.data, s, logSumExp: lse.pointer, dq: q.grad, dk: k.grad, dv: v.grad)
                withExtendedLifetime((q, k, v)) {}
            }
        }
        return out
    }
}

/// Masked, scaled softmax of one score row in place (keys 0...i visible, and i − j < window when set);
/// returns the row's log-sum-exp of the scaled scores.
@inline(__always) func causalSoftmaxRow(_ row: UnsafeMutablePointer<Float>, query i: Int, keys t: Int, scale: Float, window: Int) -> Float {
    let first = window > 0 ? max(0, i - window + 1) : 0
    let visible = i - first + 1
    for j in first...i { row[j] *= scale }
    let mx = fk_max_f32(row + first, visible)
    let sum = fk_exp_shifted(row + first, visible, mx, row + first)
    let inv = Float(1 / sum)
    for j in 0..<first { row[j] = 0 }
    for j in first...i { row[j] *= inv }
    for j in (i + 1)..<max(t, i + 1) { row[j] = 0 }
    return mx + Float(log(sum))
}

/// The probabilities of one row again from its raw scores and saved log-sum-exp: P = e^(S·scale − lse).
@inline(__always) func causalProbabilityRow(_ row: UnsafeMutablePointer<Float>, query i: Int, keys t: Int, scale: Float, window: Int, lse: Float) {
    let first = window > 0 ? max(0, i - window + 1) : 0
    for j in first...i { row[j] *= scale }
    _ = fk_exp_shifted(row + first, i - first + 1, lse, row + first)
    for j in 0..<first { row[j] = 0 }
    for j in (i + 1)..<max(t, i + 1) { row[j] = 0 }
}

/// Per (sequence, head) job: S = Q Kᵀ by sgemm, masked softmax, O = P V by sgemm. `logSumExp`
/// `[B, H, T]` receives each row's log-sum-exp when non-nil.
public func attentionForward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, _ s: AttentionShape,
                             into out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>?) {
    let (t, hq, kvh, d) = (s.length, s.heads, s.kvHeads, s.headDim)
    let group = hq / kvh, ldq = hq * d, ldk = kvh * d
    withSingleThreadedBLAS {
        parallelFor(count: s.batch * hq, chunkSize: 1) { _, r in
            let scores = SavedFloats(t * t), p = scores.pointer
            for job in r {
                let b = job / hq, h = job % hq, g = h / group
                let qh = q + b * t * ldq + h * d, kh = k + b * t * ldk + g * d, vh = v + b * t * ldk + g * d
                BLAS.sgemm(transB: true, m: t, n: t, k: d, a: qh, lda: ldq, b: kh, ldb: ldk, c: p, ldc: t)
                for i in 0..<t {
                    let lse = causalSoftmaxRow(p + i * t, query: i, keys: t, scale: s.scale, window: s.window)
                    if let logSumExp { logSumExp[job * t + i] = lse }
                }
                BLAS.sgemm(m: t, n: d, k: t, a: p, lda: t, b: vh, ldb: ldk, c: out + b * t * ldq + h * d, ldc: ldq)
            }
        }
    }
}

/// With P recomputed from the saved log-sum-exp and dP = dO Vᵀ:  dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale;  dQ += dS K;  dK += dSᵀ Q;
/// dV += Pᵀ dO. dK and dV of the query heads sharing a kv head are summed in head order.
public func attentionBackward(_ dout: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              _ s: AttentionShape, logSumExp: UnsafePointer<Float>,
                              dq: UnsafeMutablePointer<Float>?, dk: UnsafeMutablePointer<Float>?, dv: UnsafeMutablePointer<Float>?) {
    let (t, hq, kvh, d) = (s.length, s.heads, s.kvHeads, s.headDim)
    let group = hq / kvh, ldq = hq * d, ldk = kvh * d
    let perHead = SavedFloats(2 * s.batch * hq * t * d)   // dK then dV of each (sequence, query head)
    let dkHeads = perHead.pointer, dvHeads = perHead.pointer + s.batch * hq * t * d
    withSingleThreadedBLAS {
        parallelFor(count: s.batch * hq, chunkSize: 1) { _, r in
            let dS = SavedFloats(t * t), probs = SavedFloats(t * t)
            for job in r {
                let b = job / hq, h = job % hq, g = h / group
                let p = probs.pointer, ds = dS.pointer
                let qh = q + b * t * ldq + h * d, kh = k + b * t * ldk + g * d, vh = v + b * t * ldk + g * d
                // P again: S = Q Kᵀ, then e^(S·scale − lse) on the visible keys
                BLAS.sgemm(transB: true, m: t, n: t, k: d, a: qh, lda: ldq, b: kh, ldb: ldk, c: p, ldc: t)
                for i in 0..<t { causalProbabilityRow(p + i * t, query: i, keys: t, scale: s.scale, window: s.window, lse: logSumExp[job * t + i]) }
                let doh = dout + b * t * ldq + h * d
                // dV_h = Pᵀ dO
                BLAS.sgemm(transA: true, m: t, n: d, k: t, a: p, lda: t, b: doh, ldb: ldq, c: dvHeads + job * t * d, ldc: d)
                // dP = dO Vᵀ, then dS = P ⊙ (dP − Σ P dP) · scale (rows only up to the diagonal are nonzero)
                BLAS.sgemm(transB: true, m: t, n: t, k: d, a: doh, lda: ldq, b: vh, ldb: ldk, c: ds, ldc: t)
                for i in 0..<t {
                    let pr = p + i * t, dr = ds + i * t
                    var dot: Float = 0
                    for j in 0...i { dot += pr[j] * dr[j] }
                    for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) * s.scale }
                    for j in (i + 1)..<max(t, i + 1) { dr[j] = 0 }
                }
                if let dq { BLAS.sgemm(m: t, n: d, k: t, a: ds, lda: t, b: kh, ldb: ldk, beta: 1, c: dq + b * t * ldq + h * d, ldc: ldq) }
                BLAS.sgemm(transA: true, m: t, n: d, k: t, a: ds, lda: t, b: qh, ldb: ldq, c: dkHeads + job * t * d, ldc: d)
            }
        }
    }
    // Sum the group's heads into each kv head, in head order (no two jobs write one element).
    parallelFor(count: s.batch * kvh, chunkSize: 1) { _, r in
        for job in r {
            let b = job / kvh, g = job % kvh
            for h in (g * group)..<((g + 1) * group) {
                let src = (b * hq + h) * t * d
                for i in 0..<t {
                    let row = (b * t + i) * ldk + g * d
                    if let dk { for e in 0..<d { dk[row + e] += dkHeads[src + i * d + e] } }
                    if let dv { for e in 0..<d { dv[row + e] += dvHeads[src + i * d + e] } }
                }
            }
        }
    }
}
