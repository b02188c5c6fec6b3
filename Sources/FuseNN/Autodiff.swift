// Reverse-mode differentiation for training (issue 8). Ops are coarse: one node is a whole matrix
// product, norm or attention over all B*T rows of a micro-batch, so the tape is a short list of
// closures (a few hundred per step) and every inner loop runs over flat buffers.
//
//   forward:  each op computes its output into a fresh `Variable` and, when the tape records and an
//             input needs a gradient, pushes its backward (the op's `...Backward` function, right
//             beside its forward in the Grad+*.swift files) with the activations it saved.
//   backward: `Tape.backward()` runs those closures newest first. Activation gradients are
//             accumulated into each input's `grad` (zeroed at allocation), parameter gradients into
//             the parameter's own gradient buffer.
//
// The inference path (FuseModels' `forward` with a KV cache) never goes through this file, so
// generation and evaluation cost nothing extra; `Tape(recording: false)` runs the training forward
// without saving anything (forward-only losses, layer-input statistics).
//
// Shapes use the legend of FuseNN.swift; N = B*T rows.
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import COpenBLAS
import FuseTensor

/// A row-major f32 matrix `[rows, cols]` flowing through the tape, with its gradient when one is
/// needed. Owns its memory unless it wraps a parameter's buffers or views another variable.
public final class Variable: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let data: UnsafeMutablePointer<Float>
    /// Whether a gradient flows here (false for inputs, frozen weights, and everything without a tape).
    public let requiresGrad: Bool
    private var gradStorage: UnsafeMutablePointer<Float>?
    private let owns: Bool
    private let base: Variable?

    public var count: Int { rows * cols }

    /// The gradient (same count as `data`), allocated zeroed on first use, so only the activations
    /// backward is working on hold one: nil when no gradient flows here. Call from one thread.
    public var grad: UnsafeMutablePointer<Float>? {
        guard requiresGrad else { return nil }
        if let base { return base.grad }
        if let gradStorage { return gradStorage }
        let g = allocateFloats(count, zeroed: true)
        gradStorage = g
        return g
    }

    /// Uninitialised values; a gradient (allocated when first used) when `requiresGrad`.
    public init(rows: Int, cols: Int, requiresGrad: Bool) {
        self.rows = rows; self.cols = cols
        data = allocateFloats(rows * cols, zeroed: false)
        self.requiresGrad = requiresGrad
        owns = true; base = nil
    }

    /// Wraps memory owned elsewhere (a parameter's value and gradient) for the duration of a step.
    public init(wrapping data: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>?, rows: Int, cols: Int) {
        self.rows = rows; self.cols = cols; self.data = data; gradStorage = grad; requiresGrad = grad != nil
        owns = false; base = nil
    }

    private init(viewing v: Variable, rows: Int, cols: Int) {
        self.rows = rows; self.cols = cols; data = v.data; requiresGrad = v.requiresGrad
        owns = false; base = v
    }

    /// The same memory (values and gradient) seen as `[rows, cols]`, e.g. `[N, H*D]` as `[N*H, D]`.
    public func reshaped(rows r: Int, cols c: Int) -> Variable {
        precondition(r * c == count, "reshape of \(rows)x\(cols) to \(r)x\(c)")   // invariant: reshapes are internal to the ops
        return Variable(viewing: self, rows: r, cols: c)
    }

    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
    public var gradient: [Float]? { grad.map { Array(UnsafeBufferPointer(start: $0, count: count)) } }

    deinit {
        guard owns else { return }
        releaseFloats(data, count)
        if let gradStorage { releaseFloats(gradStorage, count) }
    }
}

func allocateFloats(_ n: Int, zeroed: Bool) -> UnsafeMutablePointer<Float> {
    ActivationPool.shared.take(max(n, 1), zeroed: zeroed)
}

func releaseFloats(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    ActivationPool.shared.give(p, max(n, 1))
}

/// Large activation buffers kept for reuse: every training step allocates the same sizes again, and
/// fresh pages from the kernel cost a fault and a clear each (over 10% of a step when measured).
/// Buffers below `minimum` floats go straight to malloc. At most `capacity` floats stay idle; when a
/// returned buffer does not fit, the idle buffers of other sizes are freed first (batch shapes changed).
/// `purge()` hands everything back.
public final class ActivationPool: @unchecked Sendable {
    public static let shared = ActivationPool()
    let minimum = 1 << 16
    /// Floats kept idle at most (1 GiB).
    let capacity = 1 << 28
    private var idle: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var idleFloats = 0
    private let lock: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
    }

    func take(_ n: Int, zeroed: Bool) -> UnsafeMutablePointer<Float> {
        if n >= minimum {
            pthread_mutex_lock(lock)
            let reused = idle[n]?.popLast()
            if reused != nil { idleFloats -= n }
            pthread_mutex_unlock(lock)
            if let reused {
                if zeroed { reused.update(repeating: 0, count: n) }
                return reused
            }
        }
        let bytes = n * MemoryLayout<Float>.stride
        guard let raw = zeroed ? calloc(1, bytes) : malloc(bytes) else {
            fatalError("out of memory allocating \(bytes) bytes for an activation") // invariant: no recovery from exhausted memory
        }
        return raw.assumingMemoryBound(to: Float.self)
    }

    func give(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        guard n >= minimum, n <= capacity else { free(p); return }
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if idleFloats + n > capacity {
            for (size, list) in idle where size != n {
                list.forEach { free($0) }
                idleFloats -= size * list.count
                idle[size] = nil
            }
        }
        if idleFloats + n <= capacity {
            idle[n, default: []].append(p)
            idleFloats += n
        } else {
            free(p)
        }
    }

    /// Frees every idle buffer (after training, to give the memory back).
    public func purge() {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        for (_, list) in idle { list.forEach { free($0) } }
        idle = [:]; idleFloats = 0
    }
}

/// A scratch buffer freed with the closure that captures it (saved activations that are not variables).
final class SavedFloats: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, zeroed: Bool = false) { self.count = count; pointer = allocateFloats(count, zeroed: zeroed) }
    deinit { releaseFloats(pointer, count) }
}

/// The record of one forward pass: each op's backward, run newest first by `backward()`.
public final class Tape {
    /// False: a forward-only pass (no activations saved, no dropout).
    public let recording: Bool
    /// Training step (seeds LoRA dropout masks).
    public let step: Int
    /// Called with the input rows of every linear layer (RegMean statistics), named by its weight.
    public var linearInputVisitor: ((_ weight: String, _ x: UnsafePointer<Float>, _ rows: Int, _ width: Int) -> Void)?
    /// Each op's backward with the output whose gradient it reads (kept alive until it has run).
    private var steps: [(output: Variable?, backward: () -> Void)] = []

    public init(recording: Bool = true, step: Int = 0) {
        self.recording = recording; self.step = step
    }

    /// Whether an op on these inputs must produce a gradient-carrying output.
    public func needsGrad(_ inputs: Variable?...) -> Bool {
        recording && inputs.contains { $0?.requiresGrad == true }
    }

    /// Pushes one op's backward, which reads `output.grad` (the output stays alive until it has run;
    /// the closure keeps its inputs alive itself).
    public func record(_ output: Variable?, _ backward: @escaping () -> Void) {
        if recording { steps.append((output, backward)) }
    }

    /// Ops recorded so far.
    public var count: Int { steps.count }

    /// Runs every recorded backward newest first, then drops them (and the activations they hold).
    public func backward() {
        while let step = steps.popLast() { step.backward() }
    }
}

// MARK: - matrix products

/// Rows/columns per chunk below which a product runs as one call.
let gemmSplitMinimum = 64
/// Fixed number of chunks a large product is cut into (independent of the thread count, so the
/// bytes never depend on it).
let gemmChunks = 4

/// C `[m, n]` = alpha · op(A) · op(B) + beta · C, row-major, cut into `gemmChunks` fixed blocks along
/// the larger of m and n that FuseKit's threads run with OpenBLAS single-threaded inside (DESIGN.md,
/// Threads). Each element is computed by exactly one sgemm over the full k, so the result does not
/// depend on the split.
public func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    let splitRows = m >= n
    let extent = splitRows ? m : n
    if extent < gemmSplitMinimum * 2 {
        withSingleThreadedBLAS {
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
        return
    }
    let chunk = ((extent + gemmChunks - 1) / gemmChunks + 15) / 16 * 16
    withSingleThreadedBLAS {
        parallelFor(count: extent, chunkSize: chunk) { _, r in
            if splitRows {
                let a0 = transA ? a + r.lowerBound : a + r.lowerBound * lda
                BLAS.sgemm(transA: transA, transB: transB, m: r.count, n: n, k: k, alpha: alpha, a: a0, lda: lda,
                           b: b, ldb: ldb, beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
            } else {
                let b0 = transB ? b + r.lowerBound * ldb : b + r.lowerBound
                BLAS.sgemm(transA: transA, transB: transB, m: m, n: r.count, k: k, alpha: alpha, a: a, lda: lda,
                           b: b0, ldb: ldb, beta: beta, c: c + r.lowerBound, ldc: ldc)
            }
        }
    }
}

/// Rows per parallel chunk for row-wise element loops over `[rows, width]`: about 64k elements.
@inline(__always) func rowChunk(_ width: Int) -> Int { max(1, 65_536 / max(width, 1)) }

/// Σ over rows of x `[rows, width]` added into out `[width]`, in a fixed order: partial sums per fixed
/// row chunk, then the chunks in order (the same bytes on any thread count).
func columnSums(_ x: UnsafePointer<Float>, rows: Int, width: Int, into out: UnsafeMutablePointer<Float>) {
    let chunk = max(16, rowChunk(width))
    let chunks = (rows + chunk - 1) / chunk
    let partial = SavedFloats(chunks * width, zeroed: true)
    let p = partial.pointer
    parallelFor(count: rows, chunkSize: chunk) { c, r in
        let acc = p + c * width
        for i in r { let row = x + i * width; for j in 0..<width { acc[j] += row[j] } }
    }
    for c in 0..<chunks { let acc = p + c * width; for j in 0..<width { out[j] += acc[j] } }
}

// MARK: - element-wise ops

extension Tape {
    /// a + b (same shape): residual connections.
    public func add(_ a: Variable, _ b: Variable) throws -> Variable {
        guard a.rows == b.rows, a.cols == b.cols else {
            throw NNError.shapeMismatch(tensor: "add", expected: [a.rows, a.cols], got: [b.rows, b.cols])
        }
        let y = Variable(rows: a.rows, cols: a.cols, requiresGrad: needsGrad(a, b))
        let (pa, pb, py, n) = (a.data, b.data, y.data, a.count)
        parallelFor(count: n, chunkSize: 1 << 16) { _, r in for i in r { py[i] = pa[i] + pb[i] } }
        if y.requiresGrad { record(y) { guard let gy = y.grad else { return }; addBackward(gy, a.grad, b.grad, count: n) } }
        return y
    }

    /// a ⊙ b (same shape).
    public func mul(_ a: Variable, _ b: Variable) throws -> Variable {
        guard a.rows == b.rows, a.cols == b.cols else {
            throw NNError.shapeMismatch(tensor: "mul", expected: [a.rows, a.cols], got: [b.rows, b.cols])
        }
        let y = Variable(rows: a.rows, cols: a.cols, requiresGrad: needsGrad(a, b))
        let (pa, pb, py, n) = (a.data, b.data, y.data, a.count)
        parallelFor(count: n, chunkSize: 1 << 16) { _, r in for i in r { py[i] = pa[i] * pb[i] } }
        if y.requiresGrad { record(y) { guard let gy = y.grad else { return }; mulBackward(gy, pa, pb, a.grad, b.grad, count: n); withExtendedLifetime((a, b)) {} } }
        return y
    }

    /// x · s for a constant s.
    public func scaled(_ x: Variable, by s: Float) -> Variable {
        let y = Variable(rows: x.rows, cols: x.cols, requiresGrad: needsGrad(x))
        let (px, py, n) = (x.data, y.data, x.count)
        parallelFor(count: n, chunkSize: 1 << 16) { _, r in for i in r { py[i] = px[i] * s } }
        if y.requiresGrad, x.requiresGrad {
            record(y) { guard let gy = y.grad, let gx = x.grad else { return }; parallelFor(count: n, chunkSize: 1 << 16) { _, r in for i in r { gx[i] += gy[i] * s } } }
        }
        return y
    }
}

/// ∂(a + b): the output gradient flows unchanged to both.
func addBackward(_ gy: UnsafePointer<Float>, _ ga: UnsafeMutablePointer<Float>?, _ gb: UnsafeMutablePointer<Float>?, count n: Int) {
    parallelFor(count: n, chunkSize: 1 << 16) { _, r in
        if let ga { for i in r { ga[i] += gy[i] } }
        if let gb { for i in r { gb[i] += gy[i] } }
    }
}

/// ∂(a ⊙ b): ga += gy ⊙ b, gb += gy ⊙ a.
func mulBackward(_ gy: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                 _ ga: UnsafeMutablePointer<Float>?, _ gb: UnsafeMutablePointer<Float>?, count n: Int) {
    parallelFor(count: n, chunkSize: 1 << 16) { _, r in
        if let ga { for i in r { ga[i] += gy[i] * b[i] } }
        if let gb { for i in r { gb[i] += gy[i] * a[i] } }
    }
}

extension Tape {
    /// Columns `range` of x `[N, cols]` as a new `[N, range.count]` variable (GPT-2's q | k | v split).
    public func columns(_ x: Variable, _ range: Range<Int>) throws -> Variable {
        guard range.lowerBound >= 0, range.upperBound <= x.cols, !range.isEmpty else {
            throw NNError.shapeMismatch(tensor: "column slice", expected: [x.rows, range.upperBound], got: [x.rows, x.cols])
        }
        let w = range.count, ld = x.cols, c0 = range.lowerBound
        let y = Variable(rows: x.rows, cols: w, requiresGrad: needsGrad(x))
        let (px, py) = (x.data, y.data)
        parallelFor(count: x.rows, chunkSize: rowChunk(w)) { _, r in for i in r { (py + i * w).update(from: px + i * ld + c0, count: w) } }
        if y.requiresGrad, x.requiresGrad {
            let rows = x.rows
            record(y) { guard let gy = y.grad, let gx = x.grad else { return }
                parallelFor(count: rows, chunkSize: rowChunk(w)) { _, r in
                    for i in r { let d = gx + i * ld + c0, s = gy + i * w; for j in 0..<w { d[j] += s[j] } }
                }
                withExtendedLifetime(x) {}
            }
        }
        return y
    }
}
