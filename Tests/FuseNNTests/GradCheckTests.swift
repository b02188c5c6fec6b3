import Foundation
import XCTest
import FuseNN
import FuseTensor
import FuseIO

/// Every differentiable op's backward against central finite differences of its own forward, with
/// Richardson extrapolation ((4·D(h/2) − D(h)) / 3, error O(h⁴)) so that f32 forwards still give a
/// tight check. The probe loss is L = Σ w ⊙ y with random w, accumulated in f64.
final class GradCheckTests: XCTestCase {
    /// Max |numeric − analytic| over a tensor, relative to the tensor's largest analytic entry.
    let tolerance = 1e-3

    /// Runs `op` on random inputs of `shapes`; checks every input's gradient element by element.
    func gradCheck(_ what: String, _ shapes: [(Int, Int)], seed: UInt64 = 1, h: Float = 1e-2,
                   file: StaticString = #filePath, line: UInt = #line, _ op: (Tape, [Variable]) throws -> Variable) throws {
        var rng = SeededRNG(seed: seed, name: what)
        let inputs = shapes.map { s in (0..<(s.0 * s.1)).map { _ in Float(rng.nextGaussian()) * 0.7 } }
        func variables(_ values: [[Float]]) -> [Variable] {
            zip(shapes, values).map { s, v in
                let x = Variable(rows: s.0, cols: s.1, requiresGrad: true)
                x.data.update(from: v, count: v.count)
                return x
            }
        }
        var probe: [Double] = []
        func loss(_ values: [[Float]]) throws -> Double {
            let y = try op(Tape(step: 3), variables(values))
            if probe.isEmpty { probe = (0..<y.count).map { _ in rng.nextGaussian() } }
            return (0..<y.count).reduce(0.0) { $0 + probe[$1] * Double(y.data[$1]) }
        }
        _ = try loss(inputs)
        // analytic
        let tape = Tape(step: 3)
        let xs = variables(inputs)
        let y = try op(tape, xs)
        guard let gy = y.grad else { return XCTFail("\(what): output carries no gradient", file: file, line: line) }
        for i in 0..<y.count { gy[i] = Float(probe[i]) }
        tape.backward()
        for (k, x) in xs.enumerated() {
            let analytic = x.gradient ?? []
            let scale = max(analytic.map { abs(Double($0)) }.max() ?? 0, 1e-3)
            var worst = 0.0, worstAt = 0
            for i in 0..<x.count {
                func central(_ step: Float) throws -> Double {
                    var plus = inputs, minus = inputs
                    plus[k][i] += step; minus[k][i] -= step
                    let dx = Double(plus[k][i]) - Double(minus[k][i])
                    return (try loss(plus) - loss(minus)) / dx
                }
                let numeric = (4 * (try central(h / 2)) - (try central(h))) / 3
                let err = abs(numeric - Double(analytic[i]))
                if err > worst { worst = err; worstAt = i }
            }
            print("grad check \(what) input \(k): max relative error \(worst / scale)")
            XCTAssertLessThanOrEqual(worst / scale, tolerance,
                                     "\(what): input \(k) element \(worstAt): analytic \(analytic[worstAt]) (relative error \(worst / scale))",
                                     file: file, line: line)
        }
    }

    func testLinearWithBias() throws {
        let w = Parameter(name: "w", shape: [5, 4], value: [Float](repeating: 0, count: 20))
        let b = Parameter(name: "b", shape: [5], value: [Float](repeating: 0, count: 5))
        for conv in [false, true] {
            let layer = try TrainableLinear(module: "m", weight: conv ? Parameter(name: "w", shape: [4, 5], value: w.value) : w, bias: b, conv1D: conv)
            try gradCheck("linear conv1D=\(conv)", [(3, 4), conv ? (4, 5) : (5, 4), (1, 5)]) { tape, v in
                try tape.linear(v[0], layer, ParameterBinding([(layer.weight, v[1]), (b, v[2])]))
            }
        }
    }

    func testLoRAWithDropout() throws {
        let w = Parameter(name: "m.weight", shape: [5, 6], value: [Float](repeating: 0, count: 30))
        let layer = try TrainableLinear(module: "m", weight: w, bias: nil)
        let adapter = LoRAAdapter.initialised(module: "m", inFeatures: 6, outFeatures: 5,
                                              settings: LoRASettings(rank: 2, alpha: 3, dropout: 0.25, targetModules: ["m"]), seed: 7)
        layer.lora = adapter
        try gradCheck("lora", [(4, 6), (5, 6), (2, 6), (5, 2)]) { tape, v in
            try tape.linear(v[0], layer, ParameterBinding([(w, v[1]), (adapter.a, v[2]), (adapter.b, v[3])]))
        }
    }

    func testElementwise() throws {
        try gradCheck("add", [(3, 5), (3, 5)]) { tape, v in try tape.add(v[0], v[1]) }
        try gradCheck("mul", [(3, 5), (3, 5)]) { tape, v in try tape.mul(v[0], v[1]) }
        try gradCheck("scaled", [(3, 5)]) { tape, v in tape.scaled(v[0], by: -1.7) }
        try gradCheck("columns", [(3, 9)]) { tape, v in try tape.columns(v[0], 2..<7) }
        try gradCheck("softcap", [(3, 5)]) { tape, v in tape.softcap(tape.scaled(v[0], by: 3), cap: 2) }
    }

    func testActivations() throws {
        try gradCheck("gated silu", [(3, 6), (3, 6)]) { tape, v in try tape.gated(tape.scaled(v[0], by: 3), v[1], .silu) }
        try gradCheck("gated gelu", [(3, 6), (3, 6)]) { tape, v in try tape.gated(tape.scaled(v[0], by: 3), v[1], .geluTanh) }
        try gradCheck("gelu", [(3, 6)]) { tape, v in tape.activation(tape.scaled(v[0], by: 3), .geluTanh) }
    }

    func testNorms() throws {
        try gradCheck("rmsnorm llama", [(4, 7), (1, 7)]) { tape, v in try tape.rmsNorm(v[0], weight: v[1], eps: 1e-5, kind: .llama) }
        try gradCheck("rmsnorm 1+w", [(4, 7), (1, 7)]) { tape, v in try tape.rmsNorm(v[0], weight: v[1], eps: 1e-6, kind: .onePlusWeight) }
        try gradCheck("rmsnorm per head", [(3, 8), (1, 4)]) { tape, v in
            try tape.rmsNorm(v[0].reshaped(rows: 6, cols: 4), weight: v[1], eps: 1e-6, kind: .onePlusWeight).reshaped(rows: 3, cols: 8)
        }
        try gradCheck("layernorm", [(4, 7), (1, 7), (1, 7)]) { tape, v in try tape.layerNorm(v[0], weight: v[1], bias: v[2], eps: 1e-5) }
    }

    func testRoPE() throws {
        let plain = try RoPE(dim: 8, base: 10000)
        let scaled = try RoPE(dim: 8, base: 500000, scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 4))
        let linear = try RoPE(dim: 8, base: 10000, scaling: .linear(factor: 2))
        for (name, rope) in [("default", plain), ("llama3", scaled), ("linear", linear)] {
            try gradCheck("rope \(name)", [(6, 16)]) { tape, v in try tape.rope(v[0], heads: 2, rope: rope, positions: [0, 1, 2, 0, 1, 7]) }
        }
    }

    func testAttention() throws {
        // B = 2, T = 5, H = 4, KVH = 2 (GQA), D = 3; full causal and a sliding window of 2.
        for window in [0, 2] {
            let shape = AttentionShape(batch: 2, length: 5, heads: 4, kvHeads: 2, headDim: 3, scale: 0.6, window: window)
            try gradCheck("attention window \(window)", [(10, 12), (10, 6), (10, 6)]) { tape, v in
                try tape.attention(q: v[0], k: v[1], v: v[2], shape)
            }
        }
    }

    func testEmbedding() throws {
        try gradCheck("embedding", [(6, 4)]) { tape, v in try tape.embedding([3, 0, 3, 5, 1], table: v[0], scale: 2.5, name: "E") }
    }

    /// The losses as ops: gradient of each loss value with respect to the logits.
    func testLosses() throws {
        let soft = SparseTargets(k: 3, ids: [1, 4, -1, 0, 2, 5, 3, 3, 1, 2, 0, 4], logProbs: [-0.5, -1.2, -3, -2, -0.1, -1, -0.3, -0.9, -2, -1, -1, -1],
                                 present: [true, true, false, true])
        for loss in [TrainingLoss.crossEntropy, .mixed(lambda: 0.4, soft: .crossEntropy), .mixed(lambda: 0.2, soft: .kl)] {
            try gradCheck("loss \(loss)", [(4, 6)]) { tape, v in
                let report = try tape.languageModelLoss(v[0], labels: [2, -1, 5, 0], soft: soft, loss: loss)
                let out = Variable(rows: 1, cols: 1, requiresGrad: true)
                out.data[0] = Float(report.loss)
                // The loss op wrote ∂loss/∂logits already; the probe weight w scales it.
                tape.record(out) { if let g = v[0].grad, let w = out.grad { for i in 0..<v[0].count { g[i] *= w[0] } } }
                return out
            }
        }
    }

    /// Soft-target CE / KL and CE against PyTorch (Tools/fixtures/training_fixtures.py, losses.safetensors).
    func testLossesMatchTorch() throws {
        let ref = try WeightStore(path: fixturePath("training/losses.safetensors"))
        let logits = try ref.floats("logits"), shape = ref.info("logits")?.shape ?? []
        let labels = try ref.floats("labels").map { Int($0) }
        let k = ref.info("soft.ids")?.shape.last ?? 0
        let soft = SparseTargets(k: k, ids: try ref.floats("soft.ids").map { Int32($0) }, logProbs: try ref.floats("soft.logprobs"),
                                 present: try ref.floats("soft.present").map { $0 != 0 })
        let cases: [(String, TrainingLoss)] = [("ce", .crossEntropy), ("mixed_ce", .mixed(lambda: 0.3, soft: .crossEntropy)),
                                                ("mixed_kl", .mixed(lambda: 0.3, soft: .kl))]
        for (name, loss) in cases {
            let z = Variable(rows: shape[0], cols: shape[1], requiresGrad: true)
            z.data.update(from: logits, count: logits.count)
            let report = try Tape().languageModelLoss(z, labels: labels, soft: soft, loss: loss, gradScale: 1)
            let expected = try Double(ref.floats(name + ".loss")[0])
            XCTAssertEqual(report.loss, expected, accuracy: 1e-5 * abs(expected), "\(name) loss")
            let grad = z.gradient ?? [], want = try ref.floats(name + ".grad")
            let err = zip(grad, want).map { Double(abs($0 - $1)) }.max() ?? 1
            XCTAssertLessThan(err, 1e-6, "\(name) gradient vs torch")
            print("loss \(name): \(report.loss) vs torch \(expected); max gradient error \(err)")
        }
    }

    /// The blocked head + loss (several blocks of rows, soft-capping, bias, Conv1D layout) equals the head
    /// as a linear followed by the loss op: loss value and the gradients of x, W and b.
    func testBlockedHeadLossEqualsUnfused() throws {
        let (n, c, v) = (150, 6, 9)
        var rng = SeededRNG(seed: 5)
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float(rng.nextGaussian()) } }
        let labels = (0..<n).map { $0 % 7 == 3 ? -1 : $0 % v }
        let soft = SparseTargets(k: 2, ids: (0..<(2 * n)).map { Int32($0 % v) }, logProbs: random(2 * n), present: (0..<n).map { $0 % 5 != 0 })
        for conv in [false, true] {
            let w = Parameter(name: "head.weight", shape: conv ? [c, v] : [v, c], value: random(v * c))
            let b = Parameter(name: "head.bias", shape: [v], value: random(v))
            let head = try TrainableLinear(module: "head", weight: w, bias: b, conv1D: conv)
            let xValues = random(n * c)
            var results: [(Double, [Float], [Float], [Float])] = []
            for fused in [true, false] {
                w.zeroGrad(); b.zeroGrad()
                let report: LossReport = try withBoundParameters([w, b], trainable: [w, b]) { p in
                    let tape = Tape()
                    let x = Variable(rows: n, cols: c, requiresGrad: true)
                    x.data.update(from: xValues, count: xValues.count)
                    let loss = TrainingLoss.mixed(lambda: 0.6, soft: .kl)
                    let r = fused ? try tape.headLoss(x, head, p, softcap: 2.5, labels: labels, soft: soft, loss: loss, gradScale: 0.7)
                                  : try tape.languageModelLoss(tape.softcap(tape.linear(x, head, p), cap: 2.5), labels: labels, soft: soft, loss: loss, gradScale: 0.7)
                    tape.backward()
                    results.append((r.loss, x.gradient ?? [], [], []))
                    return r
                }
                results[results.count - 1].2 = w.grad; results[results.count - 1].3 = b.grad
                XCTAssertGreaterThan(report.loss, 0)
            }
            XCTAssertEqual(results[0].0, results[1].0, accuracy: 1e-6 * results[1].0, "conv1D=\(conv) loss")
            for (k, what) in [(1, "dx"), (2, "dW"), (3, "db")] {
                let a = k == 1 ? results[0].1 : k == 2 ? results[0].2 : results[0].3
                let e = k == 1 ? results[1].1 : k == 2 ? results[1].2 : results[1].3
                let err = zip(a, e).map { abs($0 - $1) }.max() ?? 1, scale = e.map(abs).max() ?? 1
                XCTAssertLessThan(err, 1e-5 * max(scale, 1e-3), "conv1D=\(conv) \(what)")
            }
        }
    }

    func testLossRejectsBadTargets() {
        let z = Variable(rows: 2, cols: 3, requiresGrad: true)
        z.data.update(repeating: 0, count: 6)
        XCTAssertThrowsError(try Tape().languageModelLoss(z, labels: [0, 3], soft: nil, loss: .crossEntropy))
        XCTAssertThrowsError(try Tape().languageModelLoss(z, labels: [0], soft: nil, loss: .crossEntropy))
        XCTAssertThrowsError(try Tape().languageModelLoss(z, labels: [0, 1], soft: nil, loss: .mixed(lambda: 0.5, soft: .kl)))
        let bad = SparseTargets(k: 1, ids: [0, 9], logProbs: [0, 0])
        XCTAssertThrowsError(try Tape().languageModelLoss(z, labels: [0, 1], soft: bad, loss: .mixed(lambda: 0.5, soft: .kl)))
    }
}
