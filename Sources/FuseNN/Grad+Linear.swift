// Trainable linear layers: y = x·Wᵀ + b (HF `nn.Linear`, W `[out, in]`) or y = x·W + b (GPT-2 `Conv1D`,
// W stored `[in, out]` and left in that layout so parameters keep HF names and shapes), plus LoRA
// (https://arxiv.org/abs/2106.09685, PEFT's `LoraLayer`): y += (alpha/r) · (dropout(x)·Aᵀ)·Bᵀ.
// Every product is one sgemm over all N rows (cpu-kernels.md §3: dX = dY·W and dW = dYᵀ·X are sgemm
// calls with transpose flags, never explicit transposes).
import Foundation
import FuseTensor

/// LoRA factors of one linear (PEFT names: `<module>.lora_A.weight` `[r, in]`, `<module>.lora_B.weight` `[out, r]`).
public final class LoRAAdapter {
    public let a: Parameter
    public let b: Parameter
    public let rank: Int
    /// alpha / r.
    public let scale: Float
    public let dropout: Float
    /// Seeds the dropout masks: stream (seed, module name, step).
    public let seed: UInt64

    public init(a: Parameter, b: Parameter, rank: Int, scale: Float, dropout: Float, seed: UInt64) {
        self.a = a; self.b = b; self.rank = rank; self.scale = scale; self.dropout = dropout; self.seed = seed
    }

    /// A from Kaiming-uniform with a = √5 (nn.Linear's and PEFT's default init): bound = 1/√in, drawn
    /// from SeededRNG(seed, "<module>.lora_A.weight"); B zero (the adapter starts as the identity).
    public static func initialised(module: String, inFeatures: Int, outFeatures: Int, settings: LoRASettings, seed: UInt64) -> LoRAAdapter {
        let r = settings.rank
        var rng = SeededRNG(seed: seed, name: module + ".lora_A.weight")
        let bound = 1 / Float(inFeatures).squareRoot()
        let aValues = (0..<(r * inFeatures)).map { _ in (rng.nextFloat() * 2 - 1) * bound }
        let a = Parameter(name: module + ".lora_A.weight", shape: [r, inFeatures], value: aValues)
        let b = Parameter(name: module + ".lora_B.weight", shape: [outFeatures, r], value: [Float](repeating: 0, count: outFeatures * r))
        return LoRAAdapter(a: a, b: b, rank: r, scale: settings.scale, dropout: settings.dropout, seed: seed)
    }
}

/// One linear layer's parameters for training, named by module (`model.layers.0.self_attn.q_proj`).
public final class TrainableLinear {
    public let module: String
    /// `[out, in]`, or `[in, out]` when `conv1D`.
    public let weight: Parameter
    public let bias: Parameter?
    public let conv1D: Bool
    public let inFeatures: Int
    public let outFeatures: Int
    public var lora: LoRAAdapter?
    /// Whether `visitLinearInputs` reports this layer (false for a head tied to the embedding).
    public let visible: Bool

    public init(module: String, weight: Parameter, bias: Parameter?, conv1D: Bool = false, visible: Bool = true) throws {
        guard weight.shape.count == 2 else { throw NNError.shapeMismatch(tensor: weight.name, expected: [-1, -1], got: weight.shape) }
        self.module = module; self.weight = weight; self.bias = bias; self.conv1D = conv1D; self.visible = visible
        inFeatures = conv1D ? weight.shape[0] : weight.shape[1]
        outFeatures = conv1D ? weight.shape[1] : weight.shape[0]
        if let bias, bias.shape != [outFeatures] {
            throw NNError.shapeMismatch(tensor: bias.name, expected: [outFeatures], got: bias.shape)
        }
    }
}

/// Parameters bound to variables for one step: values read in place, gradients written straight into
/// each trainable parameter's `grad` (no copies). Obtained from `withBoundParameters`.
public final class ParameterBinding {
    private var variables: [ObjectIdentifier: Variable] = [:]

    public init() {}

    /// Explicit bindings (tests, and callers that own their buffers).
    public init(_ pairs: [(Parameter, Variable)]) {
        for (p, v) in pairs { variables[ObjectIdentifier(p)] = v }
    }

    fileprivate func bind(_ p: Parameter, _ value: UnsafePointer<Float>, _ grad: UnsafeMutablePointer<Float>?) {
        let rows = p.shape.count == 2 ? p.shape[0] : 1
        variables[ObjectIdentifier(p)] = Variable(wrapping: UnsafeMutablePointer(mutating: value), grad: grad, rows: rows, cols: p.count / max(rows, 1))
    }

    /// The variable of a parameter (`[rows, cols]` for matrices, `[1, count]` for vectors).
    public func callAsFunction(_ p: Parameter) throws -> Variable {
        guard let v = variables[ObjectIdentifier(p)] else {
            throw NNError.invalidArgument("parameter '\(p.name)' is not part of this model's parameter list")
        }
        return v
    }
}

/// Runs `body` with every parameter of `all` bound: values read-only, and for those in `trainable`
/// their `grad` arrays open for writing (a nested `withUnsafe…BufferPointer` per parameter, so the
/// pointers are valid for exactly this scope). Do not touch `Parameter.grad` inside `body`.
public func withBoundParameters<R>(_ all: [Parameter], trainable: [Parameter], _ body: (ParameterBinding) throws -> R) rethrows -> R {
    let binding = ParameterBinding()
    let wantsGrad = Set(trainable.map(ObjectIdentifier.init))
    func bind(_ i: Int) throws -> R {
        if i == all.count { return try body(binding) }
        let p = all[i]
        return try p.value.withUnsafeBufferPointer { v in
            guard let vp = v.baseAddress else { return try bind(i + 1) }
            if wantsGrad.contains(ObjectIdentifier(p)) {
                return try p.grad.withUnsafeMutableBufferPointer { g in
                    binding.bind(p, vp, g.baseAddress)
                    return try bind(i + 1)
                }
            }
            binding.bind(p, vp, nil)
            return try bind(i + 1)
        }
    }
    return try bind(0)
}

extension Tape {
    /// y `[N, out]` = x `[N, in]` · Wᵀ + b (+ the LoRA term). Calls `linearInputVisitor` with x first.
    public func linear(_ x: Variable, _ layer: TrainableLinear, _ params: ParameterBinding) throws -> Variable {
        guard x.cols == layer.inFeatures else {
            throw NNError.shapeMismatch(tensor: layer.weight.name + " input", expected: [x.rows, layer.inFeatures], got: [x.rows, x.cols])
        }
        if layer.visible, let visit = linearInputVisitor { visit(layer.weight.name, x.data, x.rows, x.cols) }
        let w = try params(layer.weight)
        let b = try layer.bias.map { try params($0) }
        let lora = try layer.lora.map { ($0, try params($0.a), try params($0.b)) }
        let n = x.rows, inF = layer.inFeatures, outF = layer.outFeatures, conv = layer.conv1D
        let y = Variable(rows: n, cols: outF, requiresGrad: needsGrad(x, w, b, lora?.1, lora?.2))
        linearForward(x.data, rows: n, weight: w.data, bias: b?.data, conv1D: conv, inFeatures: inF, outFeatures: outF, into: y.data)

        // LoRA: xd = dropout(x) (inverted scaling, masks from (seed, module, step)); u = xd·Aᵀ; y += s·u·Bᵀ.
        var saved: (adapter: LoRAAdapter, a: Variable, b: Variable, xd: SavedFloats?, mask: SavedFloats?, u: SavedFloats)?
        if let (adapter, a, bf) = lora {
            let r = adapter.rank
            var xdBuffer: SavedFloats? = nil, maskBuffer: SavedFloats? = nil
            if recording && adapter.dropout > 0 {
                let (xd, mask) = loraDropout(x.data, count: n * inF, p: adapter.dropout, seed: adapter.seed, module: layer.module, step: step)
                xdBuffer = xd; maskBuffer = mask
            }
            let xd = UnsafePointer(xdBuffer?.pointer ?? x.data)
            let u = SavedFloats(n * r)
            gemm(transB: true, m: n, n: r, k: inF, a: xd, lda: inF, b: a.data, ldb: inF, c: u.pointer, ldc: r)
            gemm(transB: true, m: n, n: outF, k: r, alpha: adapter.scale, a: u.pointer, lda: r, b: bf.data, ldb: r, beta: 1, c: y.data, ldc: outF)
            saved = (adapter, a, bf, xdBuffer, maskBuffer, u)
        }
        if y.requiresGrad {
            record(y) { guard let gy = y.grad else { return }
                linearBackward(gy, rows: n, x: x.data, weight: w.data, conv1D: conv, inFeatures: inF, outFeatures: outF,
                               dx: x.grad, dWeight: w.grad, dBias: b?.grad)
                if let s = saved {
                    loraBackward(gy, rows: n, x: UnsafePointer(s.xd?.pointer ?? x.data), mask: s.mask.map { UnsafePointer($0.pointer) },
                                 a: s.a.data, b: s.b.data, u: s.u.pointer, rank: s.adapter.rank,
                                 scale: s.adapter.scale, inFeatures: inF, outFeatures: outF, dx: x.grad, dA: s.a.grad, dB: s.b.grad)
                }
                withExtendedLifetime((x, w, b)) {}
            }
        }
        return y
    }
}

/// y = x·Wᵀ + b (W `[out, in]`) or x·W + b (Conv1D, W `[in, out]`).
public func linearForward(_ x: UnsafePointer<Float>, rows n: Int, weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          conv1D: Bool, inFeatures inF: Int, outFeatures outF: Int, into y: UnsafeMutablePointer<Float>) {
    if conv1D {
        gemm(m: n, n: outF, k: inF, a: x, lda: inF, b: w, ldb: outF, c: y, ldc: outF)
    } else {
        gemm(transB: true, m: n, n: outF, k: inF, a: x, lda: inF, b: w, ldb: inF, c: y, ldc: outF)
    }
    if let bias {
        parallelFor(count: n, chunkSize: rowChunk(outF)) { _, r in
            for i in r { let row = y + i * outF; for j in 0..<outF { row[j] += bias[j] } }
        }
    }
}

/// dx += dy·W (Conv1D: dy·Wᵀ); dW += dyᵀ·x (Conv1D: xᵀ·dy); db += Σ_rows dy.
public func linearBackward(_ dy: UnsafePointer<Float>, rows n: Int, x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                           conv1D: Bool, inFeatures inF: Int, outFeatures outF: Int,
                           dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?) {
    if let dx {
        if conv1D { gemm(transB: true, m: n, n: inF, k: outF, a: dy, lda: outF, b: w, ldb: outF, beta: 1, c: dx, ldc: inF) }
        else { gemm(m: n, n: inF, k: outF, a: dy, lda: outF, b: w, ldb: inF, beta: 1, c: dx, ldc: inF) }
    }
    if let dWeight {
        if conv1D { gemm(transA: true, m: inF, n: outF, k: n, a: x, lda: inF, b: dy, ldb: outF, beta: 1, c: dWeight, ldc: outF) }
        else { gemm(transA: true, m: outF, n: inF, k: n, a: dy, lda: outF, b: x, ldb: inF, beta: 1, c: dWeight, ldc: inF) }
    }
    if let dBias { columnSums(dy, rows: n, width: outF, into: dBias) }
}

/// The dropped-out input and its mask (0 or 1/keep): one stream per (seed, module, step), drawn in
/// element order, so the mask does not depend on the thread count.
func loraDropout(_ x: UnsafePointer<Float>, count: Int, p: Float, seed: UInt64, module: String, step: Int) -> (SavedFloats, SavedFloats) {
    let xd = SavedFloats(count), mask = SavedFloats(count)
    var rng = SeededRNG(seed: seed, name: module, chunk: step)
    let keepScale = 1 / (1 - p)
    for i in 0..<count {
        let m: Float = rng.nextFloat() < p ? 0 : keepScale
        mask.pointer[i] = m
        xd.pointer[i] = x[i] * m
    }
    return (xd, mask)
}

/// Backward of y += s·(xd·Aᵀ)·Bᵀ with u = xd·Aᵀ saved:
///   dB += s·dyᵀ·u;  du = s·dy·B;  dA += duᵀ·xd;  dx += (du·A) ⊙ mask.
public func loraBackward(_ dy: UnsafePointer<Float>, rows n: Int, x xd: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
                         a: UnsafePointer<Float>, b: UnsafePointer<Float>, u: UnsafePointer<Float>, rank r: Int, scale s: Float,
                         inFeatures inF: Int, outFeatures outF: Int,
                         dx: UnsafeMutablePointer<Float>?, dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?) {
    if let dB { gemm(transA: true, m: outF, n: r, k: n, alpha: s, a: dy, lda: outF, b: u, ldb: r, beta: 1, c: dB, ldc: r) }
    guard dA != nil || dx != nil else { return }
    let du = SavedFloats(n * r)
    gemm(m: n, n: r, k: outF, alpha: s, a: dy, lda: outF, b: b, ldb: r, c: du.pointer, ldc: r)
    if let dA { gemm(transA: true, m: r, n: inF, k: n, a: du.pointer, lda: r, b: xd, ldb: inF, beta: 1, c: dA, ldc: inF) }
    guard let dx else { return }
    if let mask {
        let t = SavedFloats(n * inF)
        gemm(m: n, n: inF, k: r, a: du.pointer, lda: r, b: a, ldb: inF, c: t.pointer, ldc: inF)
        let tp = t.pointer
        parallelFor(count: n * inF, chunkSize: 1 << 16) { _, range in for i in range { dx[i] += tp[i] * mask[i] } }
    } else {
        gemm(m: n, n: inF, k: r, a: du.pointer, lda: r, b: a, ldb: inF, beta: 1, c: dx, ldc: inF)
    }
}
