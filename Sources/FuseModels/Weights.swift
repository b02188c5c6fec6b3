import FuseIO
import FuseNN
import FuseTensor

/// Reads an architecture's tensors by HF name from a WeightStore, checking each shape against the
/// config and naming the tensor on failure. Tensors stay in their stored dtype (zero-copy mmap).
struct WeightReader {
    let store: WeightStore

    func has(_ name: String) -> Bool { store.info(name) != nil }

    func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let info = store.info(name) else { throw ModelError.missingTensor(path: store.path, tensor: name) }
        guard info.shape == shape else { throw ModelError.misshapenTensor(path: store.path, tensor: name, expected: shape, got: info.shape) }
        let t = try store.tensor(name)
        prefault(t)
        return t
    }

    /// Touches one byte per page so the memory map's page faults happen at load, not in the first
    /// forward call (a 135M f32 model is 130k faults, ~10% of a 512-token prefill).
    func prefault(_ t: Tensor) {
        var sink: UInt8 = 0
        let p = t.buffer.base.assumingMemoryBound(to: UInt8.self)
        var i = 0
        while i < t.byteCount { sink &+= p[i]; i += 4096 }
        withExtendedLifetime(sink) {}
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        try tensor(name, shape: [count]).floats()
    }

    /// `name.weight` `[out, in]` and, when `bias`, `name.bias` `[out]`.
    func linear(_ name: String, out: Int, in inF: Int, bias: Bool = false) throws -> Linear {
        let w = try tensor(name + ".weight", shape: [out, inF])
        let b = bias ? try vector(name + ".bias", count: out) : nil
        return try Linear(name: name, weight: w, bias: b)
    }

    /// Fuses linears that read the same input (q|k|v, gate|up); when that made a copy, the parts'
    /// mapped pages are released so the model is not resident twice.
    func fused(_ parts: [Linear], name: String) throws -> [Linear] {
        let result = try Linear.fusedIfPossible(parts, name: name)
        if result.count == 1 && parts.count > 1 { parts.forEach { store.advise($0.name + ".weight", willNeed: false) } }
        return result
    }

    /// A GPT-2 Conv1D (`weight [in, out]`, y = x W + b), transposed once at load into an owned `[out, in]`
    /// f32 linear (GPT-2 checkpoints are small and never quantized here).
    func conv1D(_ name: String, in inF: Int, out: Int) throws -> Linear {
        let w = try tensor(name + ".weight", shape: [inF, out]).floats()
        var t = [Float](repeating: 0, count: w.count)
        for i in 0..<inF { for o in 0..<out { t[o * inF + i] = w[i * out + o] } }
        return try Linear(name: name, weight: Tensor(floats: t, shape: [out, inF]), bias: vector(name + ".bias", count: out))
    }
}

/// The f32 buffers of one forward call, taken in order from the cache's reusable scratch slots.
final class Workspace {
    private let scratch: ScratchBuffers
    private var next = 0
    init(_ cache: KVCache) { scratch = cache.scratch }
    func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        defer { next += 1 }
        return scratch.floats(slot: next, count: max(count, 1))
    }
}

/// Shared tail of every architecture: pick the rows whose logits are wanted, final norm, head.
struct OutputRows {
    /// Row indices into `[B*T]` whose logits are returned.
    let rows: [Int]

    init(_ request: LogitRows, batch: Int, tokens t: Int, valid: [Bool]?) {
        switch request {
        case .all: rows = Array(0..<(batch * t))
        case .last:
            rows = (0..<batch).map { b in
                let last = (0..<t).last { valid?[b * t + $0] ?? true } ?? (t - 1)
                return b * t + last
            }
        }
    }

    /// Copies the selected rows of h `[B*T, C]` into a compact `[rows, C]` buffer.
    func gather(_ h: UnsafePointer<Float>, width c: Int, ws: Workspace) -> UnsafeMutablePointer<Float> {
        let out = ws.floats(rows.count * c)
        for (i, r) in rows.enumerated() { (out + i * c).update(from: h + r * c, count: c) }
        return out
    }
}

/// Checks a batch and returns T.
func tokensPerSequence(_ tokens: [Int], batch: Int, valid: [Bool]?, context: Int, cache: KVCache) throws -> Int {
    guard batch > 0, !tokens.isEmpty, tokens.count % batch == 0 else {
        throw ModelError.invalidArgument("\(tokens.count) tokens do not split into \(batch) sequences")
    }
    guard cache.batch == batch else { throw ModelError.invalidArgument("cache holds \(cache.batch) sequences, batch has \(batch)") }
    let t = tokens.count / batch
    if cache.length + t > context { throw ModelError.promptTooLong(tokens: cache.length + t, context: context) }
    return t
}

/// Rejects zero or negative sizes in a config before anything is allocated from them.
func checkPositive(_ values: KeyValuePairs<String, Int>, path: String) throws {
    for (key, v) in values where v <= 0 { throw ModelError.badConfig(path: path, what: "'\(key)' is \(v); it must be positive") }
}

/// A scalar as the weight dtype stores it (transformers casts some constants to the weight dtype).
func roundedToStorage(_ x: Float, _ dtype: DType) -> Float {
    switch dtype {
    case .bf16: return Convert.float(fromBF16: Convert.bf16Bits(x))
    case .f16: return Convert.float(fromF16: Convert.f16Bits(x))
    default: return x
    }
}

/// Candidates whose logits are recomputed exactly after a head product on 8-bit activations.
let headRefineCandidates = 32

/// After a head product on 8-bit activations, the largest logits of each row are recomputed with f32
/// activations: greedy and top-k choices then match the f32 model unless the true best token is not
/// among the 32 best approximations.
func refineHead(_ head: Linear, _ hidden: UnsafePointer<Float>, rows: Int, _ logits: inout [Float]) {
    guard head.usesQuantizedActivations(rows: rows) else { return }
    logits.withUnsafeMutableBufferPointer { head.refineLargest(hidden, rows: rows, y: $0.baseAddress!, top: headRefineCandidates) } // invariant: V > 0
}
