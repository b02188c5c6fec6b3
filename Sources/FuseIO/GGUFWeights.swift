import FuseTensor

// GGUF files under transformers' names and layouts (formats-and-models.md §3), so every command that
// takes an HF model also takes a GGUF one, and `convert` is just an export of this view:
//   - names: `blk.N.attn_q.weight` -> `model.layers.N.self_attn.q_proj.weight`, per architecture
//     (Llama's `ffn_norm` is `post_attention_layernorm`, Gemma 3's is `pre_feedforward_layernorm`);
//   - Llama-family q/k rows un-permuted (llama.cpp's converter interleaved them for its rope);
//   - Gemma norms: GGUF stores 1 + w, transformers w;
//   - GPT-2 Conv1D weights transposed back to [in, out];
//   - config.json derived from the metadata, with the constants GGUF does not carry.

/// One tensor's HF identity and how to produce it from its GGUF tensor.
struct GGUFMapping: Sendable {
    enum Transform: Sendable, Equatable {
        case none
        /// un-permute rows in groups of `heads` (Llama q/k)
        case unpermute(heads: Int)
        /// subtract 1 from every element (Gemma norms)
        case minusOne
        /// transpose a 2-D tensor (GPT-2 Conv1D)
        case transpose
    }
    let hfName: String
    let ggufName: String
    let transform: Transform
}

/// A GGUF file seen as an HF model.
final class GGUFWeights: @unchecked Sendable {
    let file: GGUFFile
    let architecture: String
    let names: [String]
    let config: JSON?
    private let mappings: [String: GGUFMapping]

    init(path: String) throws {
        file = try GGUFFile(path: path)
        guard let arch = file.architecture else {
            throw FuseIOError.corrupt(path: path, what: "no general.architecture key; cannot tell how to map tensor names")
        }
        architecture = arch
        let layout = try GGUFArchitecture(file: file)
        var map: [String: GGUFMapping] = [:]
        var order: [String] = []
        for t in file.tensors {
            guard let m = try layout.mapping(for: t) else { continue }   // e.g. rope_freqs: derived, not a parameter
            guard map[m.hfName] == nil else { throw FuseIOError.duplicateTensor(path: path, tensor: m.hfName) }
            map[m.hfName] = m
            order.append(m.hfName)
        }
        mappings = map
        names = order
        config = layout.config(hasOutput: file.info(named: "output.weight") != nil)
    }

    func info(_ name: String) -> TensorInfo? {
        guard let m = mappings[name], let t = file.info(named: m.ggufName) else { return nil }
        let shape = m.transform == .transpose ? Array(t.shape.reversed()) : t.shape
        return TensorInfo(name: name, dtype: t.dtype, shape: shape)
    }

    /// The tensor in HF layout. Row permutations keep the stored (possibly quantized) type: whole rows
    /// move as byte runs, nothing is dequantized, so the runtime can run a quantized GGUF directly.
    /// Gemma norms and GPT-2 transposes come back as f32.
    func tensor(_ name: String) throws -> Tensor {
        guard let m = mappings[name], let shape = info(name)?.shape else { throw FuseIOError.missingTensor(path: file.path, tensor: name) }
        let stored = try file.tensor(named: m.ggufName)
        switch m.transform {
        case .none:
            return try stored.reshaped(shape)
        case let .unpermute(heads) where stored.shape.count == 2:
            let rows = try GGUFRows(weights: self, mapping: m)   // validates the head split
            let rowCount = stored.shape[0], rowBytes = stored.byteCount / max(rowCount, 1)
            let out = Buffer(byteCount: stored.byteCount)
            for r in 0..<rowCount {
                let src = rows.sourceRow(r, heads: heads, rows: rowCount)
                out.base.advanced(by: r * rowBytes).copyMemory(from: stored.buffer.base.advanced(by: src * rowBytes), byteCount: rowBytes)
            }
            return try Tensor(dtype: stored.dtype, shape: shape, buffer: out)
        default:
            let rows = try GGUFRows(weights: self, mapping: m)
            let out = Buffer(byteCount: rows.info.elementCount * 4)
            try rows.readRows(0..<rows.rowCount, into: out.base.assumingMemoryBound(to: Float.self))
            return try Tensor(dtype: .f32, shape: shape, buffer: out)
        }
    }

    func rows(_ name: String) throws -> GGUFRows? {
        guard let m = mappings[name] else { return nil }
        return try GGUFRows(weights: self, mapping: m)
    }

    func advise(_ name: String, willNeed: Bool) {
        guard let m = mappings[name], let t = file.info(named: m.ggufName) else { return }
        file.advise(t, willNeed: willNeed)
    }
}

/// Rows of a mapped GGUF tensor as f32 in HF layout, dequantized a row at a time.
struct GGUFRows: RowSource, @unchecked Sendable {
    let info: TensorInfo
    let mapping: GGUFMapping
    let source: GGUFTensorInfo
    let bytes: UnsafeRawBufferPointer
    let keepAlive: GGUFFile
    /// GPT-2 Conv1D only: the whole matrix dequantized once, since every HF row is a stored column.
    private let dequantized: [Float]?

    init(weights: GGUFWeights, mapping: GGUFMapping) throws {
        let t = try weights.file.requireInfo(mapping.ggufName)
        source = t
        self.mapping = mapping
        keepAlive = weights.file
        bytes = weights.file.bytes(of: t)
        let shape = mapping.transform == .transpose ? Array(t.shape.reversed()) : t.shape
        info = TensorInfo(name: mapping.hfName, dtype: t.dtype, shape: shape)
        if mapping.transform == .transpose {
            var all = [Float](repeating: 0, count: t.elementCount)
            if let base = bytes.baseAddress, !all.isEmpty {
                try all.withUnsafeMutableBufferPointer { try Convert.toFloat32(t.dtype, from: base, to: $0.baseAddress!, count: $0.count) } // invariant: non-empty
            }
            dequantized = all
        } else {
            dequantized = nil
        }
        if case let .unpermute(heads) = mapping.transform {
            let rows = t.shape.count >= 2 ? t.shape[0] : t.elementCount
            guard t.shape.count <= 2 else {
                throw FuseIOError.badTensor(path: weights.file.path, tensor: mapping.ggufName, what: "expected a matrix or a vector, got shape \(t.shape)")
            }
            guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0 else {
                throw FuseIOError.badTensor(path: weights.file.path, tensor: mapping.ggufName,
                    what: "\(rows) rows cannot be un-permuted in \(heads) heads of even size; the head counts in the metadata do not match the tensor")
            }
        }
    }

    /// GGUF row holding HF row `r` (Llama's un-permutation; formats-and-models.md §3.2).
    @inline(__always) func sourceRow(_ r: Int, heads: Int, rows: Int) -> Int {
        let d = rows / heads, half = d / 2
        let h = r / d, rem = r % d
        let p = rem / half, j = rem % half
        return h * d + 2 * j + p
    }

    func readRows(_ rows: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
        let perRow = rowElements
        let storedRows = source.shape.count >= 2 ? source.shape[0] : 1
        let storedPerRow = storedRows == 0 ? 0 : source.elementCount / storedRows
        guard let rowBytes = source.dtype.byteCount(elements: storedPerRow), let base = bytes.baseAddress else {
            if rows.isEmpty || perRow == 0 { return }
            throw TensorError.invalidShape(source.shape)
        }
        switch mapping.transform {
        case .none, .minusOne:
            try Convert.toFloat32(source.dtype, from: base + rows.lowerBound * rowBytes, to: dst, count: rows.count * perRow)
            if mapping.transform == .minusOne { for i in 0..<(rows.count * perRow) { dst[i] -= 1 } }
        case let .unpermute(heads) where source.shape.count == 1:
            // a bias: one row whose elements are permuted like the weight's rows
            var all = [Float](repeating: 0, count: source.elementCount)
            try all.withUnsafeMutableBufferPointer { try Convert.toFloat32(source.dtype, from: base, to: $0.baseAddress!, count: $0.count) } // invariant: non-empty
            for i in 0..<all.count { dst[i] = all[sourceRow(i, heads: heads, rows: all.count)] }
        case let .unpermute(heads):
            for (k, r) in rows.enumerated() {
                let s = sourceRow(r, heads: heads, rows: storedRows)
                try Convert.toFloat32(source.dtype, from: base + s * rowBytes, to: dst + k * perRow, count: perRow)
            }
        case .transpose:
            guard let all = dequantized else { return }   // invariant: set in init for .transpose
            for (k, r) in rows.enumerated() {
                for c in 0..<perRow { dst[k * perRow + c] = all[c * storedPerRow + r] }
            }
        }
    }
}

