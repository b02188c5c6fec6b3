// bench-train: FuseKit's side of Benchmarks/train. Loads a model as trainable f32 parameters, then runs
// forward + backward + AdamW on random token sequences and prints one JSON line (tokens/s per step,
// peak RSS). The optimizer here is a plain AdamW kept only for this measurement; `fusekit train`
// (FuseTrain) replaces this executable once it lands.
//
//   bench-train MODEL [--seq 256] [--batch 1] [--steps 6] [--lora-rank R] [--threads 2]
import CFuseKernels
import Foundation
import FuseModels
import FuseNN
import FuseTensor

/// OpenBLAS 0.3.21 picks its AVX2 kernels on Zen 4; the Skylake-X ones are faster here (as the fusekit CLI does).
if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, fk_cpu_features() & 2 != 0, ["Haswell", "Zen"].contains(BLAS.coreName) {
    setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
}

func option(_ name: String, _ fallback: Int) -> Int {
    guard let i = CommandLine.arguments.firstIndex(of: name), i + 1 < CommandLine.arguments.count,
          let v = Int(CommandLine.arguments[i + 1]) else { return fallback }
    return v
}

/// User + system CPU seconds of this process (all threads).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// AdamW (decoupled weight decay), as torch.optim.AdamW with its defaults except lr.
final class AdamW {
    let lr: Float = 1e-5, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, decay: Float = 0.01
    var m: [[Float]], v: [[Float]], t = 0
    init(_ params: [Parameter]) {
        m = params.map { [Float](repeating: 0, count: $0.count) }
        v = m
    }
    func step(_ params: [Parameter]) {
        t += 1
        // w ← w·(1 − lr·λ) − (lr / c1) · m / (√v / √c2 + eps), c1 = 1 − β1^t, c2 = 1 − β2^t
        let stepSize = lr / (1 - powf(beta1, Float(t))), invRootC2 = 1 / (1 - powf(beta2, Float(t))).squareRoot()
        let (b1, b2, eps, shrink) = (beta1, beta2, eps, 1 - lr * decay)
        for (k, p) in params.enumerated() {
            p.value.withUnsafeMutableBufferPointer { w in
                p.grad.withUnsafeBufferPointer { g in
                    m[k].withUnsafeMutableBufferPointer { m in
                        v[k].withUnsafeMutableBufferPointer { v in
                            guard let wp = w.baseAddress, let gp = g.baseAddress, let mp = m.baseAddress, let vp = v.baseAddress else { return }
                            parallelFor(count: w.count, chunkSize: 1 << 16) { _, r in
                                for i in r {
                                    let gi = gp[i]
                                    let mi = b1 * mp[i] + (1 - b1) * gi, vi = b2 * vp[i] + (1 - b2) * gi * gi
                                    mp[i] = mi; vp[i] = vi
                                    wp[i] = wp[i] * shrink - stepSize * mi / (vi.squareRoot() * invRootC2 + eps)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

let args = CommandLine.arguments
guard args.count > 1 else {
    FileHandle.standardError.write(Data("usage: bench-train MODEL [--seq 256] [--batch 1] [--steps 6] [--lora-rank R] [--threads 2]\n".utf8))
    exit(2)
}
let (seq, batchSize, steps, rank) = (option("--seq", 256), option("--batch", 1), option("--steps", 6), option("--lora-rank", 0))
Parallel.threads = option("--threads", 2)
do {
    let loadStart = Date()
    let model = try ModelRegistry.loadTrainable(args[1])
    if rank > 0 {
        try model.attachLoRA(LoRASettings(rank: rank, alpha: Float(2 * rank), dropout: 0,
                                          targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), seed: 0)
    }
    let loadSeconds = Date().timeIntervalSince(loadStart)
    let vocabulary = model.allParameters[0].shape[0]
    let optimizer = AdamW(model.trainableParameters)
    var rng = SeededRNG(seed: 7)
    var seconds: [Double] = [], losses: [Double] = [], backward: [Double] = [], cpu: [Double] = []
    for _ in 0..<steps {
        let tokens = (0..<(batchSize * seq)).map { _ in Int(rng.next() % UInt64(vocabulary)) }
        var labels = Array(tokens.dropFirst()) + [-1]
        for b in 1..<max(batchSize, 1) { labels[b * seq - 1] = -1 }
        let batch = TrainingBatch(tokens: tokens, batch: batchSize, length: seq, labels: labels)
        let start = Date(), cpuStart = cpuSeconds()
        for p in model.trainableParameters { p.zeroGrad() }
        let report = try model.accumulateGradients(batch, loss: .crossEntropy, scale: 1, step: seconds.count)
        backward.append(Date().timeIntervalSince(start))
        optimizer.step(model.trainableParameters)
        seconds.append(Date().timeIntervalSince(start))
        cpu.append(cpuSeconds() - cpuStart)
        losses.append(report.loss)
    }
    let measured = Array(seconds.dropFirst(min(2, seconds.count - 1)))
    let sorted = measured.sorted()
    let tokens = Double(batchSize * seq)
    let json: [String: Any] = [
        "mode": rank > 0 ? "lora\(rank)" : "full", "seq": seq, "batch": batchSize, "threads": Parallel.threads,
        "load_seconds": loadSeconds, "step_seconds": seconds, "forward_backward_seconds": backward, "cpu_seconds": cpu, "losses": losses,
        "tokens_per_second_best": tokens / (sorted.first ?? 1), "tokens_per_second_median": tokens / sorted[sorted.count / 2],
        "peak_rss_mib": peakRSSMiB(), "trainable_parameters": model.trainableParameters.reduce(0) { $0 + $1.count },
        "openblas_core": BLAS.coreName,
    ]
    let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
