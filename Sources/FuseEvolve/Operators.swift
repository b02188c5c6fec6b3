import FuseTensor

// MARK: - Differential-evolution operators over whole weight sets
//
// Mutation and crossover run tensor by tensor. Every random choice comes from a stream derived from
// (seed, generation, individual, tensor name), so a trial is the same bytes whatever the thread count
// and can be rebuilt without storing its mask (fusion-methods.md §3.4).

/// How a trial vector is built from the population (fusion-methods.md §3.2).
public enum MutationRule: Equatable, Sendable {
    /// The released Evolver code: x' = (1 − f)·x_i + f·x_r with one reference r.
    case evolver(f: Float)
    /// Classic DE/rand/1: v = x_a + F·(x_b − x_c), three distinct others.
    case randOne(f: Float)
}

/// What one crossover decision covers.
public enum CrossoverUnit: String, CaseIterable, Sendable {
    /// Each coordinate independently (the released code).
    case element
    /// Each row along the first axis (an output row of a linear; keeps low-rank deltas' rows whole).
    case row
    /// Each tensor as a whole.
    case tensor

    /// Number of crossover units in a tensor of `shape`.
    func units(_ shape: [Int]) -> Int {
        switch self {
        case .element: return shape.reduce(1, *)
        case .row: return shape.count >= 2 ? shape[0] : 1
        case .tensor: return 1
        }
    }
}

public struct CrossoverOptions: Equatable, Sendable {
    /// Probability that a unit comes from the mutant (CR).
    public var rate: Float
    public var unit: CrossoverUnit
    /// Force one unit from the mutant (classic DE's j_rand); the released Evolver code does not.
    public var forceOne: Bool
    public init(rate: Float, unit: CrossoverUnit = .element, forceOne: Bool = false) {
        self.rate = rate; self.unit = unit; self.forceOne = forceOne
    }
}

/// The mutant value of one coordinate. `x` is the target's, `refs` the references' (one for `.evolver`,
/// a, b, c for `.randOne`).
@inline(__always)
func mutantValue(_ rule: MutationRule, _ x: Float, _ refs: [UnsafeBufferPointer<Float>], _ j: Int) -> Float {
    switch rule {
    case let .evolver(f): return (1 - f) * x + f * refs[0][j]
    case let .randOne(f): return refs[0][j] + f * (refs[1][j] - refs[2][j])
    }
}

/// A trial individual: mutation of `target` with `references`, then crossover with `target`.
/// Returns the trial and the fraction of coordinates taken from the mutant.
func makeTrial(target: WeightSet, references: [WeightSet], rule: MutationRule, crossover: CrossoverOptions,
               seed: UInt64, stream: String) -> (WeightSet, Double) {
    let layout = target.layout
    var forced: (tensor: Int, unit: Int)?
    if crossover.forceOne {
        let totals = layout.shapes.map { crossover.unit.units($0) }
        var rng = SeededRNG(seed: seed, name: stream + "/jrand")
        var pick = Int(rng.next() % UInt64(max(1, totals.reduce(0, +))))
        for (k, n) in totals.enumerated() {
            if pick < n { forced = (k, pick); break }
            pick -= n
        }
    }
    // Tensors are independent (each has its own random stream), so they are built in parallel; the
    // trial is the same bytes on any thread count.
    var tensors = [[Float]](repeating: [], count: layout.names.count)
    var takenPerTensor = [Int](repeating: 0, count: layout.names.count)
    tensors.withUnsafeMutableBufferPointer { outTensors in
        takenPerTensor.withUnsafeMutableBufferPointer { takenOut in
            parallelFor(count: layout.names.count, chunkSize: 1) { _, range in
                for k in range {
                    (outTensors[k], takenOut[k]) = crossTensor(target.tensors[k], k: k, references: references, rule: rule, crossover: crossover,
                                                               forced: forced, seed: seed, stream: stream + "/" + layout.names[k])
                }
            }
        }
    }
    let taken = takenPerTensor.reduce(0, +), total = layout.parameterCount
    return (WeightSet(layout: layout, tensors: tensors), total > 0 ? Double(taken) / Double(total) : 0)
}

/// Tensor k of a trial: mutation and crossover of the target's tensor `x`; returns it and how many
/// coordinates came from the mutant.
private func crossTensor(_ x: [Float], k: Int, references: [WeightSet], rule: MutationRule, crossover: CrossoverOptions,
                         forced: (tensor: Int, unit: Int)?, seed: UInt64, stream: String) -> ([Float], Int) {
    let shape = references[0].layout.shapes[k]
    let n = x.count
    let unitSize = crossover.unit == .element ? 1 : n / max(1, crossover.unit.units(shape))
    var rng = SeededRNG(seed: seed, name: stream)
    var taken = 0
    if unitSize == 1 {
        // Element-wise crossover, the common case: one pass that reads the target and writes the trial
        // (no copy first), in one tight loop per rule (the same draws and arithmetic as the unit loop).
        let trial = [Float](unsafeUninitializedCapacity: n) { out, initialized in
            x.withUnsafeBufferPointer { x in
                withBuffers(references.map { $0.tensors[k] }) { refs in
                    let rate = crossover.rate
                    switch rule {
                    case let .evolver(f): taken = evolverElements(out, x, refs[0], f: f, rate: rate, &rng)
                    case let .randOne(f): taken = randOneElements(out, x, refs[0], refs[1], refs[2], f: f, rate: rate, &rng)
                    }
                    if let forced, forced.tensor == k, forced.unit < n {
                        // j_rand: had the draw missed this element, the unit loop would still have taken it.
                        var replay = SeededRNG(seed: seed, name: stream)
                        for _ in 0..<forced.unit { _ = replay.nextFloat() }
                        if !(replay.nextFloat() < rate) {
                            out[forced.unit] = mutantValue(rule, x[forced.unit], refs, forced.unit); taken += 1
                        }
                    }
                }
            }
            initialized = n
        }
        return (trial, taken)
    }
    var trial = x
    trial.withUnsafeMutableBufferPointer { out in
        withBuffers(references.map { $0.tensors[k] }) { refs in
            var j = 0, unit = 0
            while j < n {
                let fromMutant = rng.nextFloat() < crossover.rate || (forced.map { $0.tensor == k && $0.unit == unit } ?? false)
                let end = min(n, j + unitSize)
                if fromMutant {
                    for e in j..<end { out[e] = mutantValue(rule, out[e], refs, e) }
                    taken += end - j
                }
                j = end; unit += 1
            }
        }
    }
    return (trial, taken)
}

/// out = (1 − f)·x + f·r where a uniform draw is below `rate`, else x, one draw per element; returns
/// the count taken from the mutant.
private func evolverElements(_ out: UnsafeMutableBufferPointer<Float>, _ x: UnsafeBufferPointer<Float>, _ r: UnsafeBufferPointer<Float>,
                             f: Float, rate: Float, _ rng: inout SeededRNG) -> Int {
    var g = rng, taken = 0
    let threshold = drawThreshold(rate)
    for e in 0..<out.count {
        let m = takeMask(&g, threshold)
        let x = x[e]
        out[e] = select(m, (1 - f) * x + f * r[e], x)
        taken &+= Int(m & 1)
    }
    rng = g
    return taken
}

/// `rng.nextFloat() < rate` as an integer test: nextFloat is d·2⁻²⁴ for the integer d = next() >> 40, so
/// it is below `rate` exactly when d < ⌈rate·2²⁴⌉ (the same decisions, without a float conversion).
@inline(__always)
private func drawThreshold(_ rate: Float) -> UInt64 { UInt64(max(0, (Double(rate) * 16_777_216).rounded(.up))) }

/// All ones when this coordinate's draw is below the threshold, else zero; computed without a branch,
/// since the draws are coin flips a branch predictor cannot learn.
@inline(__always)
private func takeMask(_ g: inout SeededRNG, _ threshold: UInt64) -> UInt32 {
    let below = UInt32(truncatingIfNeeded: (threshold &- 1 &- (g.next() >> 40)) >> 63) ^ 1
    return 0 &- below
}

@inline(__always)
private func select(_ mask: UInt32, _ a: Float, _ b: Float) -> Float {
    Float(bitPattern: (a.bitPattern & mask) | (b.bitPattern & ~mask))
}

/// out = a + F·(b − c) where a uniform draw is below `rate`, else x, one draw per element; returns the
/// count taken from the mutant.
private func randOneElements(_ out: UnsafeMutableBufferPointer<Float>, _ x: UnsafeBufferPointer<Float>, _ a: UnsafeBufferPointer<Float>,
                             _ b: UnsafeBufferPointer<Float>, _ c: UnsafeBufferPointer<Float>, f: Float, rate: Float, _ rng: inout SeededRNG) -> Int {
    var g = rng, taken = 0
    let threshold = drawThreshold(rate)
    for e in 0..<out.count {
        let m = takeMask(&g, threshold)
        out[e] = select(m, a[e] + f * (b[e] - c[e]), x[e])
        taken &+= Int(m & 1)
    }
    rng = g
    return taken
}

/// Calls `body` with read-only buffers of every array (nested withUnsafeBufferPointer).
func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) -> R) -> R {
    func go(_ i: Int, _ acc: [UnsafeBufferPointer<Float>]) -> R {
        if i == arrays.count { return body(acc) }
        return arrays[i].withUnsafeBufferPointer { go(i + 1, acc + [$0]) }
    }
    return go(0, [])
}

/// Uniform integer in 0..<n from `rng` (n > 0).
func uniform(_ n: Int, _ rng: inout SeededRNG) -> Int { Int(rng.next() % UInt64(n)) }

/// `k` distinct indices from 0..<n other than `excluded`, uniformly (partial Fisher-Yates).
func distinctOthers(_ k: Int, among n: Int, excluding excluded: Int, _ rng: inout SeededRNG) -> [Int] {
    var pool = (0..<n).filter { $0 != excluded }
    var out: [Int] = []
    for i in 0..<min(k, pool.count) {
        let j = i + uniform(pool.count - i, &rng)
        pool.swapAt(i, j)
        out.append(pool[i])
    }
    return out
}
