/// Seeded random numbers whose streams derive from (seed, name, chunk), never from thread identity,
/// so a tensor's random mask is the same bytes whatever the thread count.
/// xoshiro256** (Blackman & Vigna) seeded through SplitMix64.
public struct SeededRNG: RandomNumberGenerator, Sendable, Codable, Equatable {
    // Internal but inlinable: hot loops in other modules (evolve's crossover draws one value per
    // weight) must not pay a call per draw.
    @usableFromInline var s0, s1, s2, s3: UInt64

    public init(seed: UInt64) {
        var sm = SplitMix64(state: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    /// The stream for one named piece of work, e.g. (seed, "model.layers.3.mlp.up_proj.weight", chunk 7).
    public init(seed: UInt64, name: String, chunk: Int = 0) {
        var byName = SplitMix64(state: seed ^ fnv1a64(name))
        var byChunk = SplitMix64(state: byName.next() &+ UInt64(bitPattern: Int64(chunk)))
        self.init(seed: byChunk.next())
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inlinable
    public mutating func nextFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Standard normal (Box-Muller, one value per call; the pair's second half is dropped so the
    /// stream position does not depend on how many values a caller asked for before).
    public mutating func nextGaussian() -> Double {
        var u1 = nextDouble()
        while u1 <= .leastNormalMagnitude { u1 = nextDouble() }
        let u2 = nextDouble()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * .pi * u2)
    }
}

/// SplitMix64: a 64-bit state, one multiply-xorshift mix per output. Used to seed and to hash.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// FNV-1a over the UTF-8 bytes: a stable 64-bit hash of a name (Swift's Hasher is seeded per process).
public func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
