import Foundation
import FuseIO
import FuseTensor

/// Receives merged tensors in the output dtype, in plan order.
public protocol TensorSink: AnyObject {
    func write(_ name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws
}

extension ShardedSafetensorsWriter: TensorSink {
    public func write(_ name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws {
        try write(name, bytes: bytes)
    }
}

/// Keeps every merged tensor in memory (tests, evolutionary search).
public final class InMemorySink: TensorSink {
    public private(set) var tensors: [(String, Tensor)] = []
    public init() {}
    public func write(_ name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws {
        let b = Buffer(byteCount: bytes.count)
        if bytes.count > 0, let src = bytes.baseAddress { b.base.copyMemory(from: src, byteCount: bytes.count) }
        tensors.append((name, try Tensor(dtype: dtype, shape: shape, buffer: b)))
    }
    public func tensor(_ name: String) -> Tensor? { tensors.first { $0.0 == name }?.1 }
}

public struct ExecutionOptions: Sendable {
    public var seed: UInt64 = 0
    /// Bytes of Float32 working memory the loader may fill ahead of the compute (one tensor larger than
    /// this still runs, alone).
    public var prefetchBudgetBytes = 768 << 20
    /// Where relative paths in method parameters (statistics files) resolve; nil: the current directory.
    public var workingDirectory: String?
    public init(seed: UInt64 = 0) { self.seed = seed }
}

/// Inputs of one output tensor rows-permuted to an output vocabulary (see Vocabulary.swift): for input k,
/// output row r takes input row `rows[k][r]`, or the fallback when it is -1.
protocol RowMapper: Sendable {
    func align(entry: PlanEntry, inputs: inout [Scratch], shape: inout [Int]) throws
}

/// The streaming executor: for each plan entry, read its inputs as Float32 (rounded to the computation
/// dtype), merge, convert to the output dtype, write. A loader thread reads entry k+1 while entry k is
/// merged, and a writer queue writes entry k−1; a byte budget bounds what the loader may hold.
public final class MergeExecutor {
    public let plan: MergePlan
    let sources: [ModelSource]
    let method: any MergeMethod
    let options: ExecutionOptions
    var rowMapper: RowMapper?

    init(plan: MergePlan, sources: [ModelSource], options: ExecutionOptions = ExecutionOptions(), rowMapper: RowMapper?) throws {
        guard let m = MethodRegistry.method(named: plan.method) else { throw MergeError.unknownMethod(name: plan.method, suggestion: nil) }
        self.plan = plan
        self.sources = sources
        self.method = m
        self.options = options
        self.rowMapper = rowMapper
    }

    public convenience init(plan: MergePlan, sources: [ModelSource], options: ExecutionOptions = ExecutionOptions()) throws {
        try self.init(plan: plan, sources: sources, options: options, rowMapper: nil)
    }

    /// Loaded inputs of one entry.
    final class Loaded {
        let entry: PlanEntry
        var inputs: [Scratch]
        var shape: [Int]
        let bytes: Int
        init(entry: PlanEntry, inputs: [Scratch], shape: [Int], bytes: Int) { self.entry = entry; self.inputs = inputs; self.shape = shape; self.bytes = bytes }
    }

    func load(_ entry: PlanEntry) throws -> Loaded {
        let count = elementCount(entry.shape) ?? 0
        let pr = Precision(entry.computeDType)
        var inputs: [Scratch] = []
        for input in entry.inputs {
            let source = sources[input.model]
            guard let info = source.tensorInfo(input.tensor) else {
                throw MergeError.missingTensor(model: plan.models[input.model].description, tensor: input.tensor)
            }
            let n = elementCount(info.shape) ?? -1
            let aligning = rowMapper != nil && entry.vocabularyAxis != nil
            guard n == count || (aligning && n >= 0) else {
                throw MergeError.shapeMismatch(tensor: entry.name, shapes: [("plan", entry.shape), (plan.models[input.model].description, info.shape)])
            }
            let s = Scratch(count: n, zeroed: false)
            if n > 0, try !source.readFloats(input.tensor, into: s.buffer) {
                let tensor = try source.loadTensor(input.tensor)
                guard tensor.count == n, let p = s.buffer.baseAddress else {
                    throw MergeError.shapeMismatch(tensor: entry.name, shapes: [("header", info.shape), ("data", tensor.shape)])
                }
                try tensor.toFloat32(into: p, count: n)
                source.release(input.tensor)
            }
            // Inputs are converted to the computation dtype on load (mergekit casts to `dtype` in GatherTensors).
            if pr != Precision(info.dtype) || info.dtype == .f64 { pr.round(s.buffer) }
            inputs.append(s)
        }
        var shape = entry.shape
        if let mapper = rowMapper, entry.vocabularyAxis != nil { try mapper.align(entry: entry, inputs: &inputs, shape: &shape) }
        return Loaded(entry: entry, inputs: inputs, shape: shape, bytes: Self.budgetBytes(entry))
    }

    /// What the loader reserves for an entry: its Float32 inputs and output.
    static func budgetBytes(_ entry: PlanEntry) -> Int { (elementCount(entry.shape) ?? 0) * 4 * (entry.inputs.count + 1) }


    /// Merges one loaded entry into `out` (Float32 values, rounded to the method's result dtype).
    func compute(_ l: Loaded) throws -> Scratch {
        let count = l.inputs.first?.buffer.count ?? 0
        let e = l.entry
        if e.passthrough, let only = l.inputs.first { return only }
        let inPlace = method.writesOverBase && e.baseIndex.map { $0 < l.inputs.count } == true
        let out = inPlace ? l.inputs[e.baseIndex ?? 0] : Scratch(count: count, zeroed: false)
        let g = MergeGroup(name: e.name, shape: l.shape, inputs: l.inputs.map(\.buffer),
                           inputNames: e.inputs.map { plan.models[$0.model].description },
                           baseIndex: e.baseIndex, output: out.buffer, precision: Precision(e.computeDType), seed: options.seed,
                           inputTensors: e.inputs.map(\.tensor), workingDirectory: options.workingDirectory)
        try method.merge(g, e.parameters)
        // Integer OR-reduction over the exponent bits (vectorises, unlike a branch per element).
        var nonFinite: UInt32 = 0
        for v in out.buffer { nonFinite |= (v.bitPattern & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0 }
        if nonFinite != 0 {
            throw MergeError.method(name: method.name, tensor: e.name, message: "the result holds NaN or Inf (check the inputs and weights: a divisor may be zero)")
        }
        return out
    }

    /// Seconds spent per stage (loader thread, compute, writer queue, compute waiting for loads), for
    /// tuning; printed to stderr when FUSEKIT_MERGE_TRACE is set.
    public private(set) var stageSeconds = (load: 0.0, compute: 0.0, write: 0.0, waitLoad: 0.0)

    /// Runs the whole plan into `sink`. `progress(done, total, name)` is called from the compute thread.
    public func run(into sink: TensorSink, progress: ((Int, Int, String) -> Void)? = nil) throws {
        let total = plan.entries.count
        let budget = ByteBudget(limit: options.prefetchBudgetBytes)
        let ready = BlockingQueue<Result<Loaded, Error>>(capacity: 2)
        let stop = AtomicFlag()
        let loadSeconds = SecondsCounter(), writeSeconds = SecondsCounter()
        var computeSeconds = 0.0, waitSeconds = 0.0
        let loader = Thread { [self] in
            for entry in plan.entries {
                if stop.isSet { break }
                budget.acquire(Self.budgetBytes(entry))
                let t0 = Date()
                do {
                    let l = try load(entry)
                    loadSeconds.add(Date().timeIntervalSince(t0))
                    ready.push(.success(l))
                } catch { ready.push(.failure(error)); break }
            }
        }
        loader.stackSize = 8 << 20
        loader.start()
        let writeQueue = DispatchQueue(label: "fusekit.merge.write")
        let writesInFlight = DispatchSemaphore(value: 2)
        let writeError = ErrorBox()
        // On any exit (an error included) the loader stops at its next step instead of blocking forever.
        defer {
            stop.set()
            budget.cancel()
            ready.close()
        }
        for k in 0..<total {
            let w0 = Date()
            let loaded = try ready.pop().get()
            waitSeconds += Date().timeIntervalSince(w0)
            progress?(k, total, loaded.entry.name)
            let c0 = Date()
            let merged = try compute(loaded)
            let e = loaded.entry
            let shape = loaded.shape
            loaded.inputs = []
            let outBytes = e.outDType.byteCount(elements: merged.buffer.count) ?? 0
            let converted = Scratch(count: (outBytes + 3) / 4, zeroed: false)
            let convertedBytes = UnsafeRawBufferPointer(start: converted.buffer.baseAddress, count: outBytes)
            if let p = merged.buffer.baseAddress, let dst = converted.buffer.baseAddress, outBytes > 0 {
                try Convert.fromFloat32(e.outDType, from: p, to: UnsafeMutableRawPointer(dst), count: merged.buffer.count)
            }
            budget.release(loaded.bytes)
            computeSeconds += Date().timeIntervalSince(c0)
            writesInFlight.wait()
            if let failed = writeError.value { throw failed }
            writeQueue.async {
                let t0 = Date()
                defer { writeSeconds.add(Date().timeIntervalSince(t0)) }
                do { try withExtendedLifetime(converted) { try sink.write(e.name, dtype: e.outDType, shape: shape, bytes: convertedBytes) } } catch {
                    writeError.value = error
                }
                writesInFlight.signal()
            }
        }
        writeQueue.sync {}
        stageSeconds = (loadSeconds.value, computeSeconds, writeSeconds.value, waitSeconds)
        if ProcessInfo.processInfo.environment["FUSEKIT_MERGE_TRACE"] != nil {
            FileHandle.standardError.write(Data(String(format: "merge stages: load %.2fs, compute %.2fs (waiting for loads %.2fs), write %.2fs\n",
                                                       stageSeconds.load, stageSeconds.compute, stageSeconds.waitLoad, stageSeconds.write).utf8))
        }
        if let failed = writeError.value { throw failed }
        progress?(total, total, "")
    }
}

// MARK: - Small concurrency helpers

/// Bytes the loader may hold; a request larger than the limit waits until nothing else is held.
final class ByteBudget: @unchecked Sendable {
    private let condition = NSCondition()
    private let limit: Int
    private var used = 0
    private var cancelled = false
    init(limit: Int) { self.limit = limit }
    func acquire(_ n: Int) {
        condition.lock()
        while !cancelled && used > 0 && used + n > limit { condition.wait() }
        used += n
        condition.unlock()
    }
    func release(_ n: Int) {
        condition.lock(); used = max(0, used - n); condition.broadcast(); condition.unlock()
    }
    func cancel() { condition.lock(); cancelled = true; condition.broadcast(); condition.unlock() }
}

final class BlockingQueue<T>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [T] = []
    private let capacity: Int
    private var closed = false
    init(capacity: Int) { self.capacity = capacity }
    /// Wakes a blocked `push` and makes later pushes drop their item (the consumer has stopped).
    func close() { condition.lock(); closed = true; items.removeAll(); condition.broadcast(); condition.unlock() }
    func push(_ item: T) {
        condition.lock()
        while items.count >= capacity && !closed { condition.wait() }
        if closed { condition.unlock(); return }
        items.append(item)
        condition.broadcast()
        condition.unlock()
    }
    func pop() -> T {
        condition.lock()
        while items.isEmpty { condition.wait() }
        let item = items.removeFirst()
        condition.broadcast()
        condition.unlock()
        return item
    }
}

final class AtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    var value: Error? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); if stored == nil { stored = newValue }; lock.unlock() }
    }
}

final class SecondsCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0.0
    func add(_ s: Double) { lock.lock(); total += s; lock.unlock() }
    var value: Double { lock.lock(); defer { lock.unlock() }; return total }
}
