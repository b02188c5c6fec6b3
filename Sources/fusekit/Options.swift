import ArgumentParser
import Foundation
import FuseTensor
import FuseIO

/// Options every long-running command shares.
struct RunOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads (default: all cores). Results do not depend on it.")
    var threads: Int?

    @Flag(name: .long, help: "Print a machine-readable JSON result on stdout.")
    var json = false

    @Flag(name: .long, help: "No progress output on stderr.")
    var quiet = false

    func apply() {
        if let threads { Parallel.threads = threads } else { Parallel.threads = Parallel.threads }
    }

    mutating func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }
}

/// `--dtype bf16|f16|f32`.
enum OutputDType: String, ExpressibleByArgument, CaseIterable {
    case bf16, f16, f32
    var dtype: DType { switch self { case .bf16: return .bf16; case .f16: return .f16; case .f32: return .f32 } }
}

/// Sizes like `5GB`, `500MB`, `5B` (mergekit: decimal K/M/B), `2GiB`, or plain bytes.
struct ByteSize: ExpressibleByArgument {
    let bytes: Int
    init?(argument: String) {
        let s = argument.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("GIB", 1_073_741_824), ("MIB", 1_048_576), ("KIB", 1024), ("GB", 1e9), ("MB", 1e6),
                                         ("KB", 1e3), ("TB", 1e12), ("T", 1e12), ("B", 1e9), ("G", 1e9), ("M", 1e6), ("K", 1e3)]
        var number = s, scale = 1.0
        for (suffix, value) in units where s.hasSuffix(suffix) {
            number = String(s.dropLast(suffix.count)); scale = value; break
        }
        guard let v = Double(number.trimmingCharacters(in: .whitespaces)), v > 0, v * scale < 9e18 else { return nil }
        bytes = Int(v * scale)
    }
}

/// Progress on stderr: a redrawn bar on a terminal, a plain line every few seconds otherwise.
final class Progress {
    let label: String
    let enabled: Bool
    let tty = isatty(2) != 0
    let start = Date()
    var lastPrint = Date.distantPast

    init(_ label: String, quiet: Bool) { self.label = label; self.enabled = !quiet }

    func update(_ done: Int, _ total: Int, _ detail: String = "") {
        guard enabled, total > 0 else { return }
        let now = Date()
        let finished = done >= total
        guard finished || now.timeIntervalSince(lastPrint) > (tty ? 0.1 : 5) else { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(start)
        let fraction = Double(done) / Double(total)
        let eta = fraction > 0 ? elapsed / fraction - elapsed : 0
        let pct = Int(fraction * 100)
        if tty {
            let width = 30, filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let text = "\r\(label) \(bar) \(pct)% \(done)/\(total) \(formatSeconds(elapsed)) eta \(formatSeconds(eta)) \(detail.prefix(40))"
            FileHandle.standardError.write(Data((text + "\u{1B}[K" + (finished ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data("\(label): \(done)/\(total) (\(pct)%) elapsed \(formatSeconds(elapsed)) eta \(formatSeconds(eta))\n".utf8))
        }
    }
}

func formatSeconds(_ s: Double) -> String {
    if s < 60 { return String(format: "%.1fs", s) }
    return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60)
}

func formatBytes(_ b: Int) -> String {
    let d = Double(b)
    if d >= 1e9 { return String(format: "%.2f GB", d / 1e9) }
    if d >= 1e6 { return String(format: "%.1f MB", d / 1e6) }
    if d >= 1e3 { return String(format: "%.1f KB", d / 1e3) }
    return "\(b) B"
}

func printJSON(_ value: JSON) {
    FileHandle.standardOutput.write(Data((value.serialized(indent: 2) + "\n").utf8))
}
