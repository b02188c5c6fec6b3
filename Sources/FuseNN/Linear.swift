import CFuseKernels
import COpenBLAS
import Foundation
import FuseTensor

/// y = x · Wᵀ + b with W `[out, in]` in its stored dtype (HF layout). f32 weights go to sgemm; other
/// dtypes run the fused dequantize-and-dot kernel for small batches (decode) and, for larger ones,
/// dequantize one panel of rows at a time into a reused buffer for sgemm: the weight never exists
/// as a whole f32 copy.
public struct Linear: @unchecked Sendable {
    public let name: String
    /// `[out, in]`, any dtype `kernelType` accepts.
    public let weight: Tensor
    /// `[out]` or nil.
    public let bias: [Float]?
    public let inFeatures: Int
    public let outFeatures: Int
    let type: UInt32
    let rowBytes: Int
    /// Row-interleaved copy of a Q4_0/Q4_1/Q4_K/Q5_0/Q6_K/Q8_0 weight for decode (qpanel.c) in 16-row
    /// panels; prefill keeps reading `weight`. Nil where the CPU or the shape does not allow it.
    let panels: Buffer?

    /// Batches up to this many rows use the fused row kernel; larger ones the panel + sgemm path.
    public static let fusedRowLimit = 4
    /// Whether small batches on quantized weights quantize their input to 8 bits and use the integer
    /// kernels (where the CPU has them). Off: the f32 dequantize-and-dot kernels, slower, closer to
    /// an f32 reference. `FUSEKIT_F32_ACTIVATIONS=1` turns it off.
    nonisolated(unsafe) public static var quantizeActivations = ProcessInfo.processInfo.environment["FUSEKIT_F32_ACTIVATIONS"] != "1"
    /// Floats in one dequantized weight panel (4 MB: about the L2 of both cores).
    static let panelFloats = 1 << 20
    /// Output rows per parallel chunk of the fused kernel (16-row panels keep outputs on separate lines).
    static let rowChunk = 16

    public init(name: String, weight: Tensor, bias: [Float]? = nil) throws {
        guard weight.shape.count == 2 else {
            throw NNError.shapeMismatch(tensor: name, expected: [-1, -1], got: weight.shape)
        }
        guard let t = kernelType(weight.dtype) else { throw NNError.unsupportedDType(tensor: name, dtype: weight.dtype) }
        guard let rb = weight.dtype.byteCount(elements: weight.shape[1]) else {
            throw NNError.shapeMismatch(tensor: name, expected: [weight.shape[0], weight.shape[1] / weight.dtype.blockElements * weight.dtype.blockElements], got: weight.shape)
        }
        if let bias, bias.count != weight.shape[0] {
            throw NNError.shapeMismatch(tensor: name + " bias", expected: [weight.shape[0]], got: [bias.count])
        }
        self.name = name; self.weight = weight; self.bias = bias
        self.outFeatures = weight.shape[0]; self.inFeatures = weight.shape[1]
        self.type = t; self.rowBytes = rb
        let rows = weight.shape[0], k = weight.shape[1]
        if Linear.quantizeActivations, fk_panel_supported(t, rows) != 0, fk_panel_bytes(t, rows, k) > 0 {
            let packed = Buffer(byteCount: fk_panel_bytes(t, rows, k))
            fk_pack_panels(t, weight.buffer.base, rb, rows, k, packed.base)
            panels = packed
        } else {
            panels = nil
        }
    }

    /// Whether decode reads the row-interleaved panels (VNNI, rows a multiple of 16).
    public var hasDecodePanels: Bool { panels != nil }

    /// Checks the weight is `[out, in]`.
    public func expect(out: Int, in inF: Int) throws {
        guard outFeatures == out, inFeatures == inF else {
            throw NNError.shapeMismatch(tensor: name, expected: [out, inF], got: weight.shape)
        }
    }

    /// Stacks the rows of several linears that read the same input into one (q|k|v, gate|up), so one
    /// product serves them all. Weights must share a dtype; bias is zero where a part has none.
    public static func fused(_ parts: [Linear], name: String) throws -> Linear {
        guard let first = parts.first else { throw NNError.invalidArgument("fused linear '\(name)' has no parts") }
        guard parts.allSatisfy({ $0.weight.dtype == first.weight.dtype && $0.inFeatures == first.inFeatures }) else {
            throw NNError.invalidArgument("fused linear '\(name)': parts differ in dtype or input width")
        }
        let rows = parts.reduce(0) { $0 + $1.outFeatures }
        let buffer = Buffer(byteCount: rows * first.rowBytes)
        var offset = 0
        for p in parts {
            buffer.base.advanced(by: offset).copyMemory(from: p.weight.buffer.base, byteCount: p.weight.byteCount)
            offset += p.weight.byteCount
        }
        let bias: [Float]? = parts.contains { $0.bias != nil } ? parts.flatMap { $0.bias ?? [Float](repeating: 0, count: $0.outFeatures) } : nil
        return try Linear(name: name, weight: Tensor(dtype: first.weight.dtype, shape: [rows, first.inFeatures], buffer: buffer), bias: bias)
    }

    /// Fuses the parts when their dtypes agree, else keeps them apart (Gemma GGUFs mix Q5_0 and Q8_0).
    public static func fusedIfPossible(_ parts: [Linear], name: String) throws -> [Linear] {
        guard parts.count > 1, parts.allSatisfy({ $0.weight.dtype == parts[0].weight.dtype }) else { return parts }
        return [try fused(parts, name: name)]
    }

    /// y[r * ldy + j] = Σ_k x[r * ldx + k] W[j, k] (+ b[j]) for r < rows (ldx defaults to `in`, ldy to `out`).
    public func forward(_ x: UnsafePointer<Float>, rows: Int, ldx: Int? = nil, into y: UnsafeMutablePointer<Float>, ldy: Int? = nil) {
        guard rows > 0 else { return }
        let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures
        if rows <= Linear.fusedRowLimit, Linear.quantizeActivations, fk_qdot_supported(type) != 0 {
            forwardInteger(x, rows: rows, ldx: ldx, into: y, ldy: ldy)
        } else if rows <= Linear.fusedRowLimit || (type != 0 && rows < 16) {
            let (base, n, k, t, rb) = (UnsafeRawPointer(weight.buffer.base), outFeatures, inFeatures, type, rowBytes)
            parallelFor(count: n, chunkSize: max(Linear.rowChunk, n / 16 / Linear.rowChunk * Linear.rowChunk)) { _, r in
                fk_matmul_rows(t, base, rb, k, r.lowerBound, r.upperBound, x, ldx, rows, y, ldy)
            }
        } else {
            forwardGEMM(x, rows: rows, ldx: ldx, into: y, ldy: ldy)
        }
        addBias(rows: rows, into: y, ldy: ldy)
    }

    /// Decode: the input rows quantized once to 8 bits (int8 per 32 values, as llama.cpp does), then
    /// the VNNI kernels over this thread's panels (or rows) of the quantized weight.
    private func forwardInteger(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        let (base, n, k, t, rb) = (UnsafeRawPointer(weight.buffer.base), outFeatures, inFeatures, type, rowBytes)
        let qb = fk_q8_row_bytes(k)
        let xq = UnsafeMutableRawPointer.allocate(byteCount: rows * qb, alignment: 64)
        defer { xq.deallocate() }
        for r in 0..<rows { fk_quantize_q8(x + r * ldx, k, xq + r * qb) }
        if let panels {
            let panelBase = UnsafeRawPointer(panels.base), count = n / 16
            parallelFor(count: count, chunkSize: max(1, count / 16)) { _, p in
                fk_matmul_panels_q8(t, panelBase, k, p.lowerBound, p.upperBound, xq, qb, rows, y, ldy)
            }
        } else {
            parallelFor(count: n, chunkSize: max(Linear.rowChunk, n / 16 / Linear.rowChunk * Linear.rowChunk)) { _, r in
                fk_matmul_rows_q8(t, base, rb, k, r.lowerBound, r.upperBound, xq, qb, rows, y, ldy)
            }
        }
    }

    /// Prefill: each thread runs sgemm (OpenBLAS single-threaded: one pool at a time) on its own block
    /// of output columns; non-f32 weights are dequantized one panel at a time into a per-chunk buffer.
    private func forwardGEMM(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        let (base, n, k, t, rb) = (UnsafeRawPointer(weight.buffer.base), outFeatures, inFeatures, type, rowBytes)
        let perThread = (n + max(1, Parallel.threads) - 1) / max(1, Parallel.threads)
        let panelRows = t == 0 ? perThread : max(16, min(perThread, Linear.panelFloats / max(k, 1)))
        withSingleThreadedBLAS {
            parallelFor(count: n, chunkSize: panelRows) { _, cols in
                if t == 0 {
                    BLAS.sgemm(transB: true, m: rows, n: cols.count, k: k, a: x, lda: ldx,
                               b: base.assumingMemoryBound(to: Float.self) + cols.lowerBound * k, ldb: k,
                               c: y + cols.lowerBound, ldc: ldy)
                    return
                }
                let panel = UnsafeMutablePointer<Float>.allocate(capacity: cols.count * k)
                defer { panel.deallocate() }
                for r in cols { fk_dequant_row(t, base + r * rb, panel + (r - cols.lowerBound) * k, k) }
                BLAS.sgemm(transB: true, m: rows, n: cols.count, k: k, a: x, lda: ldx, b: panel, ldb: k, c: y + cols.lowerBound, ldc: ldy)
            }
        }
    }

    /// Whether `forward` on this many rows quantizes its input to 8 bits.
    public func usesQuantizedActivations(rows: Int) -> Bool {
        rows <= Linear.fusedRowLimit && Linear.quantizeActivations && fk_qdot_supported(type) != 0
    }

    /// Recomputes with f32 activations the `top` largest outputs of each row of y (from a `forward` on
    /// 8-bit activations), so the ranking that greedy decoding and top-k read is exact among them. A
    /// language-model head needs it: its top logits are often closer together than the 8-bit error.
    public func refineLargest(_ x: UnsafePointer<Float>, rows: Int, ldx: Int? = nil, y: UnsafeMutablePointer<Float>, ldy: Int? = nil, top: Int) {
        let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures, k = min(top, outFeatures)
        guard k > 0 else { return }
        let base = UnsafeRawPointer(weight.buffer.base)
        for r in 0..<rows {
            let row = y + r * ldy
            // the k largest by a bounded insertion (k is small)
            var best: [Int] = []
            best.reserveCapacity(k + 1)
            for j in 0..<outFeatures {
                if best.count == k, let last = best.last, row[j] <= row[last] { continue }
                var i = best.count
                while i > 0 && row[j] > row[best[i - 1]] { i -= 1 }
                best.insert(j, at: i)
                if best.count > k { best.removeLast() }
            }
            for j in best {
                fk_matmul_rows(type, base, rowBytes, inFeatures, j, j + 1, x + r * ldx, ldx, 1, row, 0)
                if let bias { row[j] += bias[j] }
            }
        }
    }

    private func addBias(rows: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        guard let bias else { return }
        bias.withUnsafeBufferPointer { b in
            guard let bp = b.baseAddress else { return }
            for r in 0..<rows { fk_add(y + r * ldy, bp, outFeatures) }
        }
    }

    /// The slow reference kept beside the fast paths: dequantize each row, accumulate in f64.
    public func forwardReference(_ x: [Float], rows: Int) -> [Float] {
        var w = [Float](repeating: 0, count: inFeatures)
        var y = [Float](repeating: 0, count: rows * outFeatures)
        for j in 0..<outFeatures {
            w.withUnsafeMutableBufferPointer { fk_dequant_row(type, UnsafeRawPointer(weight.buffer.base) + j * rowBytes, $0.baseAddress!, inFeatures) } // invariant: inFeatures > 0
            for r in 0..<rows {
                var s = 0.0
                for q in 0..<inFeatures { s += Double(x[r * inFeatures + q]) * Double(w[q]) }
                y[r * outFeatures + j] = Float(s) + (bias?[j] ?? 0)
            }
        }
        return y
    }
}

/// Runs `body` with OpenBLAS at one thread (FuseKit's pool does the splitting), then restores it.
public func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
    let saved = openblas_get_num_threads()
    if saved != 1 { openblas_set_num_threads(1) }
    defer { if saved != 1 { openblas_set_num_threads(saved) } }
    return try body()
}
