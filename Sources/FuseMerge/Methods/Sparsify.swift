import FuseTensor

// MARK: - Sparsifiers of the task-arithmetic family (mergekit 0.1.5 `sparsify.py`)
//
// Each works in place on one task vector τ and keeps a fraction `density` of it. Every sparsifier
// returns τ unchanged when density >= 1, so the default density 1 disables pruning.

public enum Sparsifier: Sendable {
    /// TIES trim: keep the k = max(1, ⌊d·n⌋) largest |τ| (d <= 0 zeroes τ).
    case magnitude
    /// DARE: keep each entry with probability d (Bernoulli).
    case random
    /// Breadcrumbs: drop the ⌊γ·n⌋ largest |τ| and enough of the smallest to keep ⌊d·n⌋.
    case magnitudeOutliers
    /// DELLA MagPrune: per row, keep probability rises linearly with the rank of |τ| from d−ε to d+ε.
    case dellaMagprune
}

struct SparsifyArguments {
    var density: Double
    var gamma: Double = 0.01
    var epsilon: Double = 0.15
    var rescale: Bool
}

/// Elements per random stream: the DARE mask of chunk c comes from SeededRNG(seed, name, chunk: c),
/// so the mask never depends on the thread count.
let randomChunkElements = 1 << 16

extension Sparsifier {
    /// Sparsifies `tau` in place. `streamName` names the random stream (tensor name and input index).
    func apply(_ tau: UnsafeMutableBufferPointer<Float>, shape: [Int], _ a: SparsifyArguments, precision: Precision,
               seed: UInt64, streamName: String, tensorName: String) throws {
        if a.density >= 1 { return }
        let n = tau.count
        switch self {
        case .magnitude:
            if a.density <= 0 || n == 0 { tau.update(repeating: 0); return }
            let k = max(1, Int(a.density * Double(n)))
            rescaleMasked(tau, precision: precision, rescale: a.rescale, rule: TopKRule(selection: LargestSelection(tau, k: k, bf16Exact: precision == .bf16)))

        case .magnitudeOutliers:
            let target = Int(a.density * Double(n))
            let top = Int(a.gamma * Double(n))
            let bottom = max(0, n - target - top)
            // Ascending ranks [bottom, bottom + target) are kept: inside the n − bottom largest but not
            // among the n − bottom − target largest.
            let upper = max(0, min(n, n - bottom))
            let excluded = max(0, upper - target)
            let rule = BandRule(inside: LargestSelection(tau, k: upper, bf16Exact: precision == .bf16),
                                outliers: LargestSelection(tau, k: excluded, bf16Exact: precision == .bf16))
            rescaleMasked(tau, precision: precision, rescale: a.rescale, rule: rule)

        case .random:
            // mergekit samples bf16 masks in bf16 and everything else in f32, then casts back.
            let work: Precision = precision == .bf16 ? .bf16 : .f32
            let d = Float(a.density)
            let keep = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(n, 1))
            defer { keep.deallocate() }
            parallelFor(count: n, chunkSize: randomChunkElements) { c, range in
                // Two 24-bit uniforms per 64-bit draw (bits 40-63 and 16-39).
                var rng = SeededRNG(seed: seed, name: streamName, chunk: c)
                var i = range.lowerBound
                while i < range.upperBound {
                    let x = rng.next()
                    keep[i] = Float(x >> 40) * (1.0 / 16_777_216.0) < d
                    if i + 1 < range.upperBound { keep[i + 1] = Float((x >> 16) & 0xFF_FFFF) * (1.0 / 16_777_216.0) < d }
                    i += 2
                }
            }
            rescaleMasked(tau, precision: work, rescale: a.rescale, rule: MaskRule(mask: keep))
            if work != precision { precision.round(tau) }

        case .dellaMagprune:
            if a.density <= 0 { tau.update(repeating: 0); return }
            guard a.density - a.epsilon > 0, a.density + a.epsilon < 1 else {
                throw MergeError.method(name: "della", tensor: tensorName,
                                        message: "epsilon must keep density ± epsilon inside (0, 1); got density \(a.density), epsilon \(a.epsilon)")
            }
            let work: Precision = precision == .bf16 ? .bf16 : .f32
            let cols = shape.count >= 2 ? (shape.last ?? 1) : n
            let rows = cols == 0 ? 0 : n / cols
            let keep = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(n, 1))
            defer { keep.deallocate() }
            let low = a.density - a.epsilon, span = 2 * a.epsilon
            parallelFor(count: rows, chunkSize: 1) { row, _ in
                let start = row * cols
                // Rank by |τ| ascending (ties by index): sort (|τ| bits << 32 | column) as plain integers.
                var keys = [UInt64](repeating: 0, count: cols)
                for j in 0..<cols { keys[j] = UInt64(tau[start + j].bitPattern & 0x7FFF_FFFF) << 32 | UInt64(j) }
                keys.sort()
                var rng = SeededRNG(seed: seed, name: streamName, chunk: row)
                var probability = [Float](repeating: 0, count: cols)
                let denominator = cols > 1 ? Double(cols - 1) : 1
                for (rank, key) in keys.enumerated() {
                    probability[Int(key & 0xFFFF_FFFF)] = Float(low + Double(rank) / denominator * span)
                }
                var j = 0
                while j < cols {
                    let x = rng.next()
                    keep[start + j] = Float(x >> 40) * (1.0 / 16_777_216.0) < probability[j]
                    if j + 1 < cols { keep[start + j + 1] = Float((x >> 16) & 0xFF_FFFF) * (1.0 / 16_777_216.0) < probability[j + 1] }
                    j += 2
                }
            }
            rescaleMasked(tau, precision: work, rescale: a.rescale, rule: MaskRule(mask: keep))
            if work != precision { precision.round(tau) }
        }
    }
}

/// Zeroes entries the mask drops; with `rescale`, multiplies the rest by ‖τ‖₁ / ‖m⊙τ‖₁ (mergekit's
/// `rescaled_masked_tensor` with the L1 norm, skipped when either norm is below 1e-7). This matches
/// DARE's 1/d only in expectation; it is what mergekit does.
/// Which entries a sparsifier keeps; a type per rule so `rescaleMasked` specialises and inlines it.
protocol KeepRule { func keep(_ i: Int, _ v: Float) -> Bool }
struct TopKRule: KeepRule {
    let selection: LargestSelection
    @inline(__always) func keep(_ i: Int, _ v: Float) -> Bool { selection.contains(i, v) }
}
struct BandRule: KeepRule {
    let inside: LargestSelection, outliers: LargestSelection
    @inline(__always) func keep(_ i: Int, _ v: Float) -> Bool { inside.contains(i, v) && !outliers.contains(i, v) }
}
struct MaskRule: KeepRule {
    let mask: UnsafeMutableBufferPointer<Bool>
    @inline(__always) func keep(_ i: Int, _ v: Float) -> Bool { mask[i] }
}

func rescaleMasked<K: KeepRule>(_ tau: UnsafeMutableBufferPointer<Float>, precision: Precision, rescale: Bool, rule: K) {
    let rescaleEpsilon = 1e-7
    // Chunked partial sums (added in chunk order, so the result does not depend on threads).
    let chunk = 1 << 16
    let chunks = (tau.count + chunk - 1) / chunk
    guard rescale else {
        parallelFor(count: tau.count, chunkSize: chunk) { _, r in
            for i in r { let v = tau[i]; tau[i] = rule.keep(i, v) ? v : 0 }
        }
        return
    }
    var partial = [(Double, Double)](repeating: (0, 0), count: max(chunks, 1))
    partial.withUnsafeMutableBufferPointer { sums in
        parallelFor(count: tau.count, chunkSize: chunk) { c, r in
            // Four independent accumulators break the dependency chain of the Double sums.
            var b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0, a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
            var i = r.lowerBound
            @inline(__always) func step(_ i: Int, _ b: inout Double, _ a: inout Double) {
                let v = tau[i], m = Double(abs(v)), k = rule.keep(i, v)
                b += m
                a += k ? m : 0
                tau[i] = k ? v : 0
            }
            while i + 4 <= r.upperBound {
                step(i, &b0, &a0); step(i + 1, &b1, &a1); step(i + 2, &b2, &a2); step(i + 3, &b3, &a3)
                i += 4
            }
            while i < r.upperBound { step(i, &b0, &a0); i += 1 }
            sums[c] = ((b0 + b1) + (b2 + b3), (a0 + a1) + (a2 + a3))
        }
    }
    var before = 0.0, after = 0.0
    for (b, a) in partial { before += b; after += a }
    let b = precision.r(Float(before)), a = precision.r(Float(after))
    if Double(b) < rescaleEpsilon || Double(a) < rescaleEpsilon { return }
    let scale = precision.r(b / a)
    for i in tau.indices { tau[i] = precision.r(tau[i] * scale) }
}

/// The k largest |x| without sorting: a two-level radix select over the IEEE bit patterns of |x|
/// (monotonic for non-negative floats). Pass 1 histograms the high 16 bits, pass 2 the low 16 bits
/// inside the boundary bucket. Entries equal to the threshold are taken in index order; mergekit's
/// argsort leaves their order unspecified, so only exact ties at the boundary can differ.
struct LargestSelection {
    let threshold: UInt32
    let takeAtThreshold: Int
    let all: Bool
    let none: Bool
    /// Index below which threshold-equal entries are kept (computed once, so `contains` is O(1)).
    private let tieCutoff: Int

    /// `bf16Exact`: every value is a bf16 value (low 16 bits zero), so the high-bits pass is exact.
    init(_ x: UnsafeMutableBufferPointer<Float>, k: Int, bf16Exact: Bool = false) {
        let n = x.count
        let values = x
        all = k >= n
        none = k <= 0
        // all: every |x| >= 0 with every index before the cutoff; none: no |x| reaches UInt32.max.
        if all { threshold = 0; takeAtThreshold = n; tieCutoff = n; return }
        if none { threshold = UInt32.max; takeAtThreshold = 0; tieCutoff = 0; return }
        let high = Self.histogram(values) { $0 >> 16 }
        var above = 0, bucket = 0
        for b in stride(from: (1 << 16) - 1, through: 0, by: -1) {
            if above + high[b] >= k { bucket = b; break }
            above += high[b]
        }
        var need = k - above, t: UInt32 = UInt32(bucket) << 16
        if !bf16Exact {
            let target = UInt32(bucket)
            let low = Self.histogram(values) { ($0 >> 16) == target ? ($0 & 0xFFFF) : nil }
            for l in stride(from: (1 << 16) - 1, through: 0, by: -1) {
                if low[l] >= need { t = UInt32(bucket) << 16 | UInt32(l); break }
                need -= low[l]
            }
        }
        threshold = t
        takeAtThreshold = need
        var seen = 0, cutoff = n
        for i in 0..<n where (values[i].bitPattern & 0x7FFF_FFFF) == t {
            seen += 1
            if seen == need { cutoff = i + 1; break }
        }
        tieCutoff = cutoff
    }

    /// Counts of `key(|x| bits)` over 65536 bins, one histogram per worker, summed (integer counts, so
    /// the result does not depend on the thread count).
    static func histogram(_ x: UnsafeMutableBufferPointer<Float>, _ key: (UInt32) -> UInt32?) -> [Int] {
        let bins = 1 << 16
        let workers = max(1, min(Parallel.threads, x.count / (1 << 16)))
        let per = (x.count + workers - 1) / workers
        var counts = [Int](repeating: 0, count: bins * workers)
        counts.withUnsafeMutableBufferPointer { c in
            guard let base = c.baseAddress else { return }
            parallelFor(count: x.count, chunkSize: max(per, 1)) { w, r in
                let h = base + w * bins
                for i in r { if let b = key(x[i].bitPattern & 0x7FFF_FFFF) { h[Int(b)] += 1 } }
            }
        }
        var total = [Int](repeating: 0, count: bins)
        for w in 0..<workers { for b in 0..<bins { total[b] += counts[w * bins + b] } }
        return total
    }

    /// Whether |v| equals the k-th largest magnitude (ties there are broken by index order).
    @inline(__always) func isThreshold(_ v: Float) -> Bool { (v.bitPattern & 0x7FFF_FFFF) == threshold }

    /// Whether entry `i`, whose value is `v`, is among the k largest.
    @inline(__always) func contains(_ i: Int, _ v: Float) -> Bool {
        let b = v.bitPattern & 0x7FFF_FFFF
        let above: UInt8 = b > threshold ? 1 : 0, at: UInt8 = b == threshold ? 1 : 0, early: UInt8 = i < tieCutoff ? 1 : 0
        return (above | (at & early)) != 0
    }
}
