// The time-bounded fuzz loop, crash capture and statistics, shared by every format.
import Foundation
import FuseIO
#if canImport(Glibc)
import Glibc
#endif

/// The input being tested, kept where a signal handler can write it out.
nonisolated(unsafe) private var currentInput = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
nonisolated(unsafe) private var currentInputCapacity = 1
nonisolated(unsafe) private var currentInputCount = 0
nonisolated(unsafe) private var crashPath: UnsafeMutablePointer<CChar>? = nil

/// On SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT or SIGFPE, writes the current input to `path` and
/// re-raises the signal (so the exit status still shows the crash).
func installCrashCapture(path: String) {
    crashPath = strdup(path)
    let handler: @convention(c) (Int32) -> Void = { signal in
        if let crashPath {
            let fd = open(crashPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            if fd >= 0 {
                _ = write(fd, currentInput, currentInputCount)
                close(fd)
            }
        }
        let message = "\nfuzz-formats: crashed on signal; the input is saved\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        Glibc.signal(signal, SIG_DFL)
        raise(signal)
    }
    for s in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE] { _ = Glibc.signal(s, handler) }
}

private func remember(_ input: [UInt8]) {
    if input.count > currentInputCapacity {
        currentInput.deallocate()
        currentInputCapacity = input.count * 2
        currentInput = .allocate(capacity: currentInputCapacity)
    }
    input.withUnsafeBufferPointer { if let b = $0.baseAddress { currentInput.update(from: b, count: $0.count) } }
    currentInputCount = input.count
}

/// A property the target checks on an input it accepted; failing it is a bug like a crash.
struct InvariantViolation: Error, CustomStringConvertible {
    let description: String
}

func peakResidentMiB() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss / 1024
}

/// Runs `target` on mutants of `seeds` for `seconds`. A thrown `FuseIOError` is the expected
/// outcome for a broken input; an `InvariantViolation`, any other error, a crash, or a peak
/// resident size above `memoryLimitMiB` is a finding: the input is saved under `outDir` and the
/// process exits 1.
func fuzz(format: String, seconds: Double, seed: UInt64, seeds: [[UInt8]], outDir: String,
          memoryLimitMiB: Int = 1024, target: ([UInt8]) throws -> Void) -> Never {
    try? FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
    let crashFile = "\(outDir)/crash-\(format)-seed\(seed).bin"
    installCrashCapture(path: crashFile)
    var mutator = Mutator(seed: seed)
    var outcomes: [String: Int] = [:]
    var iterations = 0
    let start = Date()
    let baseMemory = peakResidentMiB()

    func finding(_ what: String, _ input: [UInt8]) -> Never {
        _ = FileManager.default.createFile(atPath: crashFile, contents: Data(input))
        print("fuzz-formats \(format): FINDING after \(iterations) iterations (seed \(seed)): \(what)")
        print("the input is saved at \(crashFile)")
        exit(1)
    }

    // The seeds themselves must be accepted.
    for (i, s) in seeds.enumerated() {
        remember(s)
        do { try target(s) } catch { finding("seed \(i) is rejected: \(error)", s) }
    }
    while true {
        if iterations % 64 == 0 {
            if Date().timeIntervalSince(start) >= seconds { break }
            if peakResidentMiB() - baseMemory > memoryLimitMiB {
                finding("peak resident size grew past \(memoryLimitMiB) MiB (an allocation sized by untrusted input?)", Array(UnsafeBufferPointer(start: currentInput, count: currentInputCount)))
            }
        }
        let parent = seeds[mutator.below(seeds.count)]
        let input = mutator.mutate(parent, others: seeds)
        remember(input)
        do {
            try target(input)
            outcomes["accepted", default: 0] += 1
        } catch let error as FuseIOError {
            outcomes[Mirror(reflecting: error).children.first?.label ?? "\(error)", default: 0] += 1
        } catch {
            finding("\(error)", input)
        }
        iterations += 1
    }
    let elapsed = Date().timeIntervalSince(start)
    print("fuzz-formats \(format): \(iterations) iterations in \(String(format: "%.1f", elapsed)) s (\(Int(Double(iterations) / elapsed))/s), seed \(seed), \(seeds.count) seeds, no crash, peak RSS \(peakResidentMiB()) MiB")
    for (outcome, count) in outcomes.sorted(by: { $0.value > $1.value }) {
        print("  \(outcome): \(count)")
    }
    exit(0)
}
