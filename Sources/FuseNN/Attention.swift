import CFuseKernels
import COpenBLAS
import FuseTensor

/// Keys and values of every layer for B sequences, preallocated to `capacity` slots (never copied
/// per token). Layout per layer: `[B][KVH][capacity][D]` f32, so one head's keys are contiguous rows.
/// All sequences advance by the same number of slots per call; a padded slot has position −1 and is
/// never attended to, which is how batched prefill with padding works (left or right).
public final class KVCache: @unchecked Sendable {
    public let batch: Int
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    public let capacity: Int
    /// Slots filled so far (same for every sequence).
    public private(set) var length = 0
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]
    /// `[B][capacity]` position of each slot, −1 for padding.
    var slotPositions: [Int32]
    /// Next position of each sequence (its count of real tokens so far).
    public private(set) var nextPosition: [Int32]

    public init(batch: Int, layers: Int, kvHeads: Int, headDim: Int, capacity: Int) {
        self.batch = batch; self.layers = layers; self.kvHeads = kvHeads; self.headDim = headDim; self.capacity = capacity
        let perLayer = batch * kvHeads * capacity * headDim
        keys = (0..<layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: max(perLayer, 1)) }
        values = (0..<layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: max(perLayer, 1)) }
        slotPositions = [Int32](repeating: -1, count: batch * capacity)
        nextPosition = [Int32](repeating: 0, count: batch)
    }

    deinit { keys.forEach { $0.deallocate() }; values.forEach { $0.deallocate() } }

    /// Activation buffers reused by every forward call on this cache (one call at a time), so a decode
    /// step allocates nothing and a prefill does not page-fault fresh memory each call.
    public let scratch = ScratchBuffers()

    /// Bytes held.
    public var byteCount: Int { 2 * layers * batch * kvHeads * capacity * headDim * 4 }

    /// Reserves T slots per sequence for tokens whose `valid` flags are given `[B*T]` (nil: all real) and
    /// returns the position of each new row (`[B*T]`, 0 for padding). Positions count real tokens only,
    /// so a left-padded prompt gets the same positions as the unpadded one.
    public func append(tokens t: Int, valid: [Bool]?) throws -> [Int32] {
        guard length + t <= capacity else { throw NNError.contextOverflow(needed: length + t, capacity: capacity) }
        if let valid, valid.count != batch * t {
            throw NNError.invalidArgument("padding mask has \(valid.count) entries for \(batch) sequences of \(t) tokens")
        }
        var positions = [Int32](repeating: 0, count: batch * t)
        for b in 0..<batch {
            for i in 0..<t {
                let isReal = valid?[b * t + i] ?? true
                if isReal {
                    positions[b * t + i] = nextPosition[b]
                    slotPositions[b * capacity + length + i] = nextPosition[b]
                    nextPosition[b] += 1
                } else {
                    slotPositions[b * capacity + length + i] = -1
                }
            }
        }
        length += t
        return positions
    }

    /// Drops everything after `length` slots (reuse a cache for a new prompt with `truncate(to: 0)`).
    public func truncate(to newLength: Int) {
        guard newLength < length else { return }
        for b in 0..<batch {
            for s in newLength..<length { slotPositions[b * capacity + s] = -1 }
            nextPosition[b] = newLength == 0 ? 0 : (0..<newLength).map { slotPositions[b * capacity + $0] }.max().map { $0 + 1 } ?? 0
        }
        length = newLength
    }

    /// Start of the `[capacity, D]` key rows of (layer, sequence, kv head).
    func keyRows(_ layer: Int, _ b: Int, _ h: Int) -> UnsafeMutablePointer<Float> {
        keys[layer] + ((b * kvHeads + h) * capacity) * headDim
    }
    func valueRows(_ layer: Int, _ b: Int, _ h: Int) -> UnsafeMutablePointer<Float> {
        values[layer] + ((b * kvHeads + h) * capacity) * headDim
    }

    /// Writes the new rows' keys and values (k, v `[B*T, KVH*D]`, row stride `ld`) into the last T slots of `layer`.
    public func store(layer: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, ld: Int, tokens t: Int) {
        let d = headDim, start = length - t
        for b in 0..<batch {
            for h in 0..<kvHeads {
                let kd = keyRows(layer, b, h), vd = valueRows(layer, b, h)
                for i in 0..<t {
                    let src = (b * t + i) * ld + h * d
                    (kd + (start + i) * d).update(from: k + src, count: d)
                    (vd + (start + i) * d).update(from: v + src, count: d)
                }
            }
        }
    }
}

/// Scaled dot-product attention of the new rows against the cache, as transformers' eager path
/// computes it: S = q kᵀ · scale (then soft-capping when set), causal mask plus optional sliding
/// window (key visible when q_pos − k_pos < window), softmax in f32, o = P v. Query head h reads kv
/// head h / (H / KVH) (repeat_kv). Padding slots are never visible.
public struct Attention: Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    public let scale: Float
    /// tanh soft-capping of the scores (Gemma 2 style); 0 = off.
    public let softcap: Float
    /// Sliding window in positions, 0 = full attention.
    public let window: Int

    /// Query rows per prefill job: keys past a block's last query are never computed.
    static let queryBlock = 64

    public init(heads: Int, kvHeads: Int, headDim: Int, scale: Float, softcap: Float = 0, window: Int = 0) throws {
        guard heads > 0, kvHeads > 0, heads % kvHeads == 0 else {
            throw NNError.invalidArgument("\(heads) query heads cannot share \(kvHeads) key/value heads evenly")
        }
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.scale = scale
        self.softcap = softcap; self.window = window
    }

    /// q `[B*T, H*D]` (row stride ldq) for the T newest slots of `cache` (whose keys and values are
    /// already stored); out `[B*T, H*D]` contiguous.
    public func forward(q: UnsafePointer<Float>, ldq: Int, cache: KVCache, layer: Int, tokens t: Int, into out: UnsafeMutablePointer<Float>) {
        let d = headDim, hq = heads, group = heads / kvHeads, s = cache.length, start = s - t, cap = cache.capacity
        let (scale, softcap, window) = (self.scale, self.softcap, Int32(self.window))
        cache.slotPositions.withUnsafeBufferPointer { slotPositionsBuffer in
            guard let allPositions = slotPositionsBuffer.baseAddress, t > 0 else { return }
            if t == 1 {
                // Decode: the `group` query heads of one kv head are contiguous rows of q: one call each.
                parallelFor(count: cache.batch * kvHeads, chunkSize: 1) { _, r in
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: s * group)
                    defer { scratch.deallocate() }
                    for job in r {
                        let b = job / kvHeads, g = job % kvHeads
                        let keyPos = allPositions + b * cap
                        let qPos = keyPos[start]
                        guard qPos >= 0 else {
                            (out + b * hq * d + g * group * d).update(repeating: 0, count: group * d); continue
                        }
                        fk_attend(q + b * ldq + g * group * d, group, d, cache.keyRows(layer, b, g), cache.valueRows(layer, b, g),
                                  s, d, scale, softcap, Int32(start), qPos, keyPos, window, scratch, out + b * hq * d + g * group * d, d)
                    }
                }
                return
            }
            // Prefill: per (sequence, head, block of query rows) one score block by sgemm over the keys
            // that block can see (slots up to its last query: the causal upper triangle is skipped),
            // masked softmax, one sgemm for P v. The jobs run on FuseKit's threads, so OpenBLAS runs
            // single-threaded inside (DESIGN.md, Threads).
            let qBlock = Attention.queryBlock, blocks = (t + qBlock - 1) / qBlock
            withSingleThreadedBLAS { parallelFor(count: cache.batch * hq * blocks, chunkSize: 1) { _, r in
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: qBlock * s)
                defer { scores.deallocate() }
                var qSlot = [Int32](repeating: 0, count: qBlock), qPos = [Int32](repeating: 0, count: qBlock)
                for job in r {
                    let b = job / (hq * blocks), h = job / blocks % hq, i0 = job % blocks * qBlock, g = h / group
                    let rows = min(qBlock, t - i0), keys = start + i0 + rows
                    let keyPos = allPositions + b * cap
                    for i in 0..<rows { qSlot[i] = Int32(start + i0 + i); qPos[i] = keyPos[start + i0 + i] }
                    let qh = q + (b * t + i0) * ldq + h * d
                    BLAS.sgemm(transB: true, m: rows, n: keys, k: d, a: qh, lda: ldq,
                               b: cache.keyRows(layer, b, g), ldb: d, c: scores, ldc: keys)
                    fk_masked_softmax(scores, rows, keys, keys, scale, softcap, qSlot, qPos, keyPos, window)
                    BLAS.sgemm(m: rows, n: d, k: keys, a: scores, lda: keys, b: cache.valueRows(layer, b, g), ldb: d,
                               c: out + (b * t + i0) * hq * d + h * d, ldc: hq * d)
                }
            } }
        }
    }
    // attentionBackward (saved: softmax probabilities per head) goes here (issue 8).
}

/// Numbered f32 buffers that grow on demand and are reused call after call.
public final class ScratchBuffers: @unchecked Sendable {
    private var blocks: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []

    public init() {}

    /// Buffer `slot` with room for at least `count` floats (contents unspecified).
    public func floats(slot: Int, count: Int) -> UnsafeMutablePointer<Float> {
        while blocks.count <= slot { blocks.append((UnsafeMutablePointer<Float>.allocate(capacity: 1), 1)) }
        if blocks[slot].capacity < count {
            blocks[slot].pointer.deallocate()
            blocks[slot] = (UnsafeMutablePointer<Float>.allocate(capacity: count), count)
        }
        return blocks[slot].pointer
    }

    deinit { blocks.forEach { $0.pointer.deallocate() } }
}
