import Foundation
import XCTest
import FuseIO
import FuseModels
import FuseNN

/// Logits of every architecture against transformers (Tools/fixtures/runtime_fixtures.py), in f32.
final class ArchitectureTests: XCTestCase {
    /// Max abs difference allowed against transformers' f32 logits.
    let tolerance: Float = 1e-4

    func testLogitsMatchTransformers() throws {
        for name in runtimeCases {
            let c = try RuntimeCase(name)
            let model = try ModelRegistry.load(c.folder)
            var worst: Float = 0
            for i in 0..<3 {
                let ids = try c.ints("prompt.\(i).ids")
                let expected = try c.floats("prompt.\(i).logits")
                let got = try model.logits(ids)
                assertClose(got, expected, tolerance: tolerance, "\(name) prompt \(i)")
                worst = max(worst, maxAbsDiff(got[...], expected[...]))
            }
            print("\(name): max abs diff vs transformers \(worst)")
        }
    }

    /// Prefill part of the prompt, then decode the rest one token at a time: every step's logits equal
    /// the full recompute (transformers' logits of that position).
    func testKVCacheDecodeEqualsFullRecompute() throws {
        for name in runtimeCases {
            let c = try RuntimeCase(name)
            let model = try ModelRegistry.load(c.folder)
            let ids = try c.ints("prompt.1.ids"), expected = try c.floats("prompt.1.logits")
            let v = model.summary.vocabularySize, split = 3
            let cache = model.makeCache(capacity: ids.count)
            let first = try model.forward(tokens: Array(ids[..<split]), batch: 1, valid: nil, cache: cache, rows: .last)
            assertClose(first, Array(expected[(split - 1) * v..<split * v]), tolerance: tolerance, "\(name) prefill")
            for t in split..<ids.count {
                let step = try model.forward(tokens: [ids[t]], batch: 1, valid: nil, cache: cache, rows: .last)
                assertClose(step, Array(expected[t * v..<(t + 1) * v]), tolerance: tolerance, "\(name) decode step \(t)")
            }
        }
    }

    /// A left-padded batch of three prompts gives each prompt's unpadded logits at its real positions.
    func testPaddedBatchEqualsUnpadded() throws {
        for name in runtimeCases {
            let c = try RuntimeCase(name)
            let model = try ModelRegistry.load(c.folder)
            let shape = c.shape("batch.ids"), (b, t) = (shape[0], shape[1])
            let ids = try c.ints("batch.ids"), valid = try c.ints("batch.mask").map { $0 != 0 }
            let v = model.summary.vocabularySize
            let cache = model.makeCache(batch: b, capacity: t)
            let got = try model.forward(tokens: ids, batch: b, valid: valid, cache: cache, rows: .all)
            let batchExpected = try c.floats("batch.logits")
            for s in 0..<b {
                let unpadded = try c.floats("prompt.\(s).logits")
                let n = unpadded.count / v, pad = t - n
                let rows = Array(got[(s * t + pad) * v..<(s + 1) * t * v])
                assertClose(rows, unpadded, tolerance: tolerance, "\(name) sequence \(s) padded vs unpadded")
                assertClose(rows, Array(batchExpected[(s * t + pad) * v..<(s + 1) * t * v]), tolerance: tolerance, "\(name) sequence \(s) vs transformers batch")
            }
            // .last picks each sequence's last real row.
            let cache2 = model.makeCache(batch: b, capacity: t)
            let last = try model.forward(tokens: ids, batch: b, valid: valid, cache: cache2, rows: .last)
            for s in 0..<b {
                assertClose(Array(last[s * v..<(s + 1) * v]), Array(got[(s * t + t - 1) * v..<(s * t + t) * v]), tolerance: 1e-5, "\(name) last row \(s)")
            }
        }
    }

    /// Greedy generation reproduces transformers' `generate(do_sample=False)`.
    func testGreedyGenerationMatchesTransformers() throws {
        for name in runtimeCases {
            let c = try RuntimeCase(name)
            let model = try ModelRegistry.load(c.folder)
            let expected = try c.ints("greedy.ids")
            let result = try generate(model: model, prompt: c.ints("prompt.0.ids"),
                                      options: GenerationOptions(maxTokens: expected.count, stopTokenIDs: []))
            XCTAssertEqual(result.tokens, expected, name)
        }
    }
}
