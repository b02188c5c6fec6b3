import Dispatch
import Foundation
import COpenBLAS
import CFuseKernels

/// The one way FuseKit runs work on several cores. Work is cut into chunks by index, handed out to a
/// persistent pool (CFuseKernels/pool.c) from an atomic counter: which thread runs a chunk never
/// changes a result, because every chunk writes its own output and derives its own random stream
/// (DESIGN.md, Determinism). Nested calls run inline.
public enum Parallel {
    nonisolated(unsafe) private static var configuredThreads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Worker threads for `parallelFor` (the CLI's `--threads`). OpenBLAS then runs single-threaded
    /// inside parallel regions and with this many threads outside them.
    public static var threads: Int {
        get { configuredThreads }
        set {
            configuredThreads = max(1, newValue)
            openblas_set_num_threads(Int32(configuredThreads))
        }
    }
}

/// Runs `body(chunkIndex, range)` over `0..<count` cut into chunks of `chunkSize`, on `Parallel.threads`
/// workers. Chunks are independent; the caller's output must not depend on execution order.
public func parallelFor(count: Int, chunkSize: Int, _ body: (Int, Range<Int>) -> Void) {
    guard count > 0 else { return }
    let chunk = max(1, chunkSize)
    let chunks = (count + chunk - 1) / chunk
    let workers = min(Parallel.threads, chunks)
    if workers <= 1 {
        for c in 0..<chunks { body(c, (c * chunk)..<min(count, (c + 1) * chunk)) }
        return
    }
    // The persistent pool in CFuseKernels/pool.c: a decode step calls this a few hundred times per
    // token, where waking Dispatch's workers each time would cost as much as the work.
    withoutActuallyEscaping(body) { body in
        let job = ParallelJob(body: body, count: count, chunk: chunk)
        withExtendedLifetime(job) {
            fk_pool_run(Int32(workers), Int64(chunks), { ctx, c in
                let job = Unmanaged<ParallelJob>.fromOpaque(ctx!).takeUnretainedValue() // invariant: ctx is the job below
                let i = Int(c)
                job.body(i, (i * job.chunk)..<min(job.count, (i + 1) * job.chunk))
            }, Unmanaged.passUnretained(job).toOpaque())
        }
    }
}

private final class ParallelJob {
    let body: (Int, Range<Int>) -> Void
    let count: Int
    let chunk: Int
    init(body: @escaping (Int, Range<Int>) -> Void, count: Int, chunk: Int) { self.body = body; self.count = count; self.chunk = chunk }
}

/// Throwing variant: the first error (by chunk index, so the same one on any thread count) is rethrown.
public func parallelForThrowing(count: Int, chunkSize: Int, _ body: (Int, Range<Int>) throws -> Void) throws {
    let chunks = (count + max(1, chunkSize) - 1) / max(1, chunkSize)
    let errors = UnsafeMutableBufferPointer<Error?>.allocate(capacity: max(chunks, 1))
    errors.initialize(repeating: nil)
    defer { errors.deinitialize(); errors.deallocate() }
    parallelFor(count: count, chunkSize: chunkSize) { c, r in
        do { try body(c, r) } catch { errors[c] = error }
    }
    if let first = errors.first(where: { $0 != nil }), let error = first { throw error }
}
