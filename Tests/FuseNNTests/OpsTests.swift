import Foundation
import XCTest
import FuseNN
import FuseTensor

/// Norms, RoPE, attention masks and the KV cache against direct formulas (f64 where it matters).
final class OpsTests: XCTestCase {
    func testRMSNormBothKinds() throws {
        let x: [Float] = [1, -2, 3, 0.5, 4, -1]
        let w: [Float] = [0.5, 1, -1]
        for kind in [RMSNorm.Kind.llama, .onePlusWeight] {
            let norm = try RMSNorm(name: "n", weight: w, eps: 1e-5, kind: kind, dim: 3)
            var y = [Float](repeating: 0, count: 6)
            y.withUnsafeMutableBufferPointer { norm.forward(x, rows: 2, into: $0.baseAddress!) }
            for r in 0..<2 {
                let ms = (0..<3).map { Double(x[r * 3 + $0]) * Double(x[r * 3 + $0]) }.reduce(0, +) / 3
                for i in 0..<3 {
                    let scale = kind == .llama ? Double(w[i]) : 1 + Double(w[i])
                    XCTAssertEqual(Double(y[r * 3 + i]), Double(x[r * 3 + i]) / (ms + 1e-5).squareRoot() * scale, accuracy: 1e-6)
                }
            }
        }
        XCTAssertThrowsError(try RMSNorm(name: "n", weight: w, eps: 1e-5, dim: 4))
    }

    func testLayerNorm() throws {
        let x: [Float] = [1, 2, 4, 8]
        let ln = try LayerNorm(name: "ln", weight: [1, 2, 3, 4], bias: [0, 1, 0, -1], eps: 1e-5, dim: 4)
        var y = [Float](repeating: 0, count: 4)
        y.withUnsafeMutableBufferPointer { ln.forward(x, rows: 1, into: $0.baseAddress!) }
        let mean = 3.75, v = [1.0, 2, 4, 8].map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4
        for i in 0..<4 {
            XCTAssertEqual(Double(y[i]), (Double(x[i]) - mean) / (v + 1e-5).squareRoot() * Double(i + 1) + [0, 1, 0, -1][i], accuracy: 1e-5)
        }
    }

    /// Rotation preserves each pair's norm, position 0 is the identity, and rotating by p then
    /// comparing q·k depends only on the position difference (the property RoPE exists for).
    func testRoPERelativePosition() throws {
        let rope = try RoPE(dim: 8, base: 10000)
        let q: [Float] = [0.3, -1, 0.5, 2, 1, 0.1, -0.7, 0.2], k: [Float] = [1, 0.5, -0.2, 0.3, -1, 0.4, 0.9, -0.6]
        func rotated(_ v: [Float], _ p: Int32) -> [Float] {
            var out = v
            out.withUnsafeMutableBufferPointer { rope.forward($0.baseAddress!, rows: 1, ld: 8, heads: 1, positions: [p]) }
            return out
        }
        XCTAssertEqual(rotated(q, 0), q)
        let dot = { (a: [Float], b: [Float]) in zip(a, b).map { Double($0) * Double($1) }.reduce(0, +) }
        XCTAssertEqual(dot(rotated(q, 7), rotated(k, 3)), dot(rotated(q, 14), rotated(k, 10)), accuracy: 1e-5)
        XCTAssertNotEqual(dot(rotated(q, 7), rotated(k, 3)), dot(q, k), accuracy: 1e-3)
        // linear scaling = positions divided by the factor
        let linear = try RoPE(dim: 8, base: 10000, scaling: .linear(factor: 2))
        XCTAssertEqual(linear.inverseFrequencies, rope.inverseFrequencies.map { $0 / 2 })
        // llama3: the highest frequency is kept, the lowest divided by the factor
        let l3 = try RoPE(dim: 64, base: 500000, scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192))
        let plain = try RoPE(dim: 64, base: 500000)
        XCTAssertEqual(l3.inverseFrequencies[0], plain.inverseFrequencies[0])
        XCTAssertEqual(l3.inverseFrequencies[31], plain.inverseFrequencies[31] / 8, accuracy: 1e-12)
    }

    /// Attention over a cache: with one key visible the output is that key's value; the sliding window
    /// and padding hide keys; decode (one token) equals the prefill row.
    func testAttentionMasks() throws {
        let d = 4, t = 5
        let attention = try Attention(heads: 2, kvHeads: 1, headDim: d, scale: 0.5, window: 2)
        let full = try Attention(heads: 2, kvHeads: 1, headDim: d, scale: 0.5)
        var rng = SeededRNG(seed: 9, name: "attn", chunk: 0)
        let q = (0..<(t * 2 * d)).map { _ in Float.random(in: -1...1, using: &rng) }
        let kv = (0..<(t * 2 * d)).map { _ in Float.random(in: -1...1, using: &rng) }   // [T, k | v]
        let valid = [false, true, true, true, true]
        func run(_ a: Attention) throws -> [Float] {
            let cache = KVCache(batch: 1, layers: 1, kvHeads: 1, headDim: d, capacity: t)
            _ = try cache.append(tokens: t, valid: valid)
            kv.withUnsafeBufferPointer { cache.store(layer: 0, keys: $0.baseAddress!, values: $0.baseAddress! + d, ld: 2 * d, tokens: t) }
            var out = [Float](repeating: 0, count: t * 2 * d)
            out.withUnsafeMutableBufferPointer { a.forward(q: q, ldq: 2 * d, cache: cache, layer: 0, tokens: t, into: $0.baseAddress!) }
            return out
        }
        let windowed = try run(attention), unwindowed = try run(full)
        // Row 1 (first real token) sees only itself: output = its value, both heads.
        for h in 0..<2 { for i in 0..<d { XCTAssertEqual(windowed[(1 * 2 + h) * d + i], kv[1 * 2 * d + d + i], accuracy: 1e-6) } }
        // Row 4 with window 2 sees slots 3 and 4 only: recompute by hand.
        for h in 0..<2 {
            let qi = Array(q[(4 * 2 + h) * d..<(4 * 2 + h + 1) * d])
            let s = [3, 4].map { j in Double(zip(qi, kv[j * 2 * d..<j * 2 * d + d]).map { $0 * $1 }.reduce(0, +)) * 0.5 }
            let m = s.max()!, e = s.map { exp($0 - m) }, z = e.reduce(0, +)
            for i in 0..<d {
                let expected = (e[0] * Double(kv[3 * 2 * d + d + i]) + e[1] * Double(kv[4 * 2 * d + d + i])) / z
                XCTAssertEqual(Double(windowed[(4 * 2 + h) * d + i]), expected, accuracy: 1e-5)
            }
        }
        XCTAssertNotEqual(windowed[(4 * 2) * d], unwindowed[(4 * 2) * d])
        // Decode path: the last token alone against the cache equals the prefill row.
        let cache = KVCache(batch: 1, layers: 1, kvHeads: 1, headDim: d, capacity: t)
        _ = try cache.append(tokens: t - 1, valid: Array(valid[..<(t - 1)]))
        kv.withUnsafeBufferPointer { cache.store(layer: 0, keys: $0.baseAddress!, values: $0.baseAddress! + d, ld: 2 * d, tokens: t - 1) }
        _ = try cache.append(tokens: 1, valid: nil)
        kv.withUnsafeBufferPointer { cache.store(layer: 0, keys: $0.baseAddress! + (t - 1) * 2 * d, values: $0.baseAddress! + (t - 1) * 2 * d + d, ld: 2 * d, tokens: 1) }
        var out = [Float](repeating: 0, count: 2 * d)
        let lastQuery = Array(q[((t - 1) * 2 * d)...])
        out.withUnsafeMutableBufferPointer { full.forward(q: lastQuery, ldq: 2 * d, cache: cache, layer: 0, tokens: 1, into: $0.baseAddress!) }
        for i in 0..<(2 * d) { XCTAssertEqual(out[i], unwindowed[(t - 1) * 2 * d + i], accuracy: 1e-6) }
    }

    /// A long prefill (several query blocks, padding, a sliding window) equals token-by-token decode.
    func testLongPrefillEqualsDecode() throws {
        let d = 16, t = 150, heads = 4
        var rng = SeededRNG(seed: 10, name: "long", chunk: 0)
        let q = (0..<(t * heads * d)).map { _ in Float.random(in: -1...1, using: &rng) }
        let kv = (0..<(t * 2 * d)).map { _ in Float.random(in: -1...1, using: &rng) }
        let valid = (0..<t).map { $0 >= 5 }
        for window in [0, 20] {
            let attention = try Attention(heads: heads, kvHeads: 1, headDim: d, scale: 0.25, window: window)
            let prefill = KVCache(batch: 1, layers: 1, kvHeads: 1, headDim: d, capacity: t)
            _ = try prefill.append(tokens: t, valid: valid)
            kv.withUnsafeBufferPointer { prefill.store(layer: 0, keys: $0.baseAddress!, values: $0.baseAddress! + d, ld: 2 * d, tokens: t) }
            var all = [Float](repeating: 0, count: t * heads * d)
            all.withUnsafeMutableBufferPointer { attention.forward(q: q, ldq: heads * d, cache: prefill, layer: 0, tokens: t, into: $0.baseAddress!) }
            let decode = KVCache(batch: 1, layers: 1, kvHeads: 1, headDim: d, capacity: t)
            for i in 0..<t {
                _ = try decode.append(tokens: 1, valid: [valid[i]])
                kv.withUnsafeBufferPointer { decode.store(layer: 0, keys: $0.baseAddress! + i * 2 * d, values: $0.baseAddress! + i * 2 * d + d, ld: 2 * d, tokens: 1) }
                guard valid[i] else { continue }
                var one = [Float](repeating: 0, count: heads * d)
                let qi = Array(q[(i * heads * d)..<((i + 1) * heads * d)])
                one.withUnsafeMutableBufferPointer { attention.forward(q: qi, ldq: heads * d, cache: decode, layer: 0, tokens: 1, into: $0.baseAddress!) }
                for j in 0..<(heads * d) { XCTAssertEqual(one[j], all[i * heads * d + j], accuracy: 1e-5, "window \(window) row \(i)") }
            }
        }
    }

    func testCacheOverflowIsAnError() throws {
        let cache = KVCache(batch: 1, layers: 1, kvHeads: 1, headDim: 4, capacity: 3)
        _ = try cache.append(tokens: 2, valid: nil)
        XCTAssertThrowsError(try cache.append(tokens: 2, valid: nil)) { XCTAssertEqual($0 as? NNError, .contextOverflow(needed: 4, capacity: 3)) }
        XCTAssertThrowsError(try Attention(heads: 3, kvHeads: 2, headDim: 4, scale: 1))
    }

    func testEmbeddingRejectsOutOfRangeToken() throws {
        let e = try Embedding(name: "e", table: Tensor(floats: [1, 2, 3, 4], shape: [2, 2]))
        var out = [Float](repeating: 0, count: 2)
        XCTAssertThrowsError(try out.withUnsafeMutableBufferPointer { try e.forward([2], into: $0.baseAddress!) }) {
            XCTAssertEqual($0 as? NNError, .tokenOutOfRange(token: 2, vocabulary: 2))
        }
        try out.withUnsafeMutableBufferPointer { try e.forward([1], scale: 2, into: $0.baseAddress!) }
        XCTAssertEqual(out, [6, 8])
    }
}
