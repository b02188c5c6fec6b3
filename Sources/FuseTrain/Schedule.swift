#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Linear warm-up then cosine decay, exactly as transformers' `get_cosine_schedule_with_warmup`
/// (optimization.py, `num_cycles = 0.5`) driving torch's LambdaLR: step k (0-based, the k-th
/// optimiser step) uses `baseLR · factor(k)` with
///
///     factor(k) = k / max(1, warmup)                                  for k < warmup
///     factor(k) = max(0, ½·(1 + cos(π · 2·0.5 · progress)))           otherwise,
///     progress  = (k − warmup) / max(1, total − warmup)
///
/// Like transformers, step 0 of a warm-up trains with lr 0, and steps past `total` follow the cosine
/// back up (no clamp of `progress`).
public struct CosineSchedule: Sendable, Equatable, Codable {
    public var baseLR: Double
    public var warmup: Int
    public var total: Int
    static let cycles = 0.5

    public init(baseLR: Double, warmup: Int, total: Int) {
        self.baseLR = baseLR; self.warmup = warmup; self.total = total
    }

    public func factor(_ step: Int) -> Double {
        if step < warmup { return Double(step) / Double(max(1, warmup)) }
        let progress = Double(step - warmup) / Double(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + cos(Double.pi * Self.cycles * 2.0 * progress)))
    }

    public func lr(_ step: Int) -> Double { baseLR * factor(step) }
}
