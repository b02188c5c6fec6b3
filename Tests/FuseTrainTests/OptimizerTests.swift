// AdamW, the cosine schedule, clipping and accumulation against torch 2.15 / transformers 5.23
// (Tests/Fixtures/train, written by Tools/fixtures/training_loop_fixtures.py).
import FuseIO
import FuseNN
import XCTest
@testable import FuseTrain

final class OptimizerTests: XCTestCase {
    func testScheduleMatchesTransformers() throws {
        let j = try TrainFixtures.load("schedule")
        for c in j["cases"]?.array ?? [] {
            let s = CosineSchedule(baseLR: c["base_lr"]?.double ?? 0, warmup: c["warmup"]?.int ?? 0, total: c["total"]?.int ?? 0)
            let expected = TrainFixtures.doubles(c["lrs"])
            XCTAssertFalse(expected.isEmpty)
            for (k, lr) in expected.enumerated() {
                XCTAssertEqual(s.lr(k), lr, accuracy: 1e-15, "warmup \(s.warmup) total \(s.total) step \(k)")
            }
        }
    }

    func testAdamWMatchesTorchStepByStep() throws {
        let j = try TrainFixtures.load("adamw")
        let b = TrainFixtures.doubles(j["betas"])
        let adam = AdamW(AdamWSettings(lr: j["lr"]?.double ?? 0, beta1: b[0], beta2: b[1], eps: j["eps"]?.double ?? 0,
                                       weightDecay: j["weight_decay"]?.double ?? 0))
        let init0 = TrainFixtures.floats(j["init"])
        let p = Parameter(name: "p", shape: [init0.count], value: init0)
        let grads = j["grads"]?.array ?? []
        let after = j["after"]?.array ?? []
        XCTAssertEqual(grads.count, 5)
        for (k, g) in grads.enumerated() {
            p.grad = TrainFixtures.floats(g)
            adam.update([p], lr: adam.settings.lr)
            // One ulp-level difference is allowed per step (torch's fused lerp vs. the Double emulation).
            assertClose(p.value, TrainFixtures.floats(after[k]["param"]), abs: 1e-7, rel: 1e-6, "param after step \(k + 1)")
            assertClose(adam.exponentialAverage["p"] ?? [], TrainFixtures.floats(after[k]["exp_avg"]), abs: 1e-12, rel: 1e-6, "exp_avg after step \(k + 1)")
            assertClose(adam.exponentialAverageSquared["p"] ?? [], TrainFixtures.floats(after[k]["exp_avg_sq"]), abs: 1e-20, rel: 1e-6, "exp_avg_sq after step \(k + 1)")
        }
    }

    /// The whole step (accumulation with 1/K scaling, clipping, AdamW, the schedule) on the bigram
    /// model against torch: per-step lr, loss and gradient norm, then parameters and moments.
    func testLoopMatchesTorch() throws {
        let j = try TrainFixtures.load("loop")
        let vocab = j["vocab"]?.int ?? 0
        let model = BigramModel(vocab: vocab, weight: TrainFixtures.floats(j["init"]?["lm.weight"]), bias: TrainFixtures.floats(j["init"]?["lm.bias"]))
        let b = TrainFixtures.doubles(j["betas"])
        var settings = TrainerSettings(steps: j["steps"]?.int ?? 0,
                                       optimizer: AdamWSettings(lr: j["lr"]?.double ?? 0, beta1: b[0], beta2: b[1], eps: j["eps"]?.double ?? 0,
                                                                weightDecay: j["weight_decay"]?.double ?? 0))
        settings.warmup = j["warmup"]?.int ?? 0
        settings.gradAccum = j["accum"]?.int ?? 1
        settings.clip = j["clip"]?.double
        let dummy = TrainingData(path: "-", kind: .text, sequences: [TrainingSequence(inputs: [0], labels: [0])], examples: 1, dropped: 0)
        let trainer = try Trainer(model: model, data: dummy, settings: settings, outputDirectory: "/nonexistent")
        let micro = (j["micro_batches"]?.array ?? []).map {
            TrainingBatch(tokens: TrainFixtures.ints($0["tokens"]), batch: $0["batch"]?.int ?? 0, length: $0["length"]?.int ?? 0,
                          labels: TrainFixtures.ints($0["labels"]))
        }
        let perStep = j["per_step"]?.array ?? []
        XCTAssertEqual(perStep.count, settings.steps)
        var clipped = 0
        for s in 0..<settings.steps {
            let k = settings.gradAccum
            let r = try trainer.trainStep(Array(micro[(s * k)..<(s * k + k)]), step: s, firstMicroBatch: s * k)
            XCTAssertEqual(r.lr, perStep[s]["lr"]?.double ?? -1, accuracy: 1e-15, "lr of step \(s + 1)")
            XCTAssertEqual(r.loss, perStep[s]["loss"]?.double ?? -1, accuracy: 2e-6, "loss of step \(s + 1)")
            XCTAssertEqual(r.gradNorm, perStep[s]["grad_norm"]?.double ?? -1, accuracy: 1e-6, "grad norm of step \(s + 1)")
            if r.gradNorm > settings.clip ?? .infinity { clipped += 1 }
        }
        XCTAssertGreaterThan(clipped, 0, "the fixture must exercise clipping")
        assertClose(model.weight.value, TrainFixtures.floats(j["final"]?["lm.weight"]), abs: 2e-6, rel: 1e-5, "lm.weight")
        assertClose(model.bias.value, TrainFixtures.floats(j["final"]?["lm.bias"]), abs: 2e-6, rel: 1e-5, "lm.bias")
        assertClose(trainer.optimizer.exponentialAverage["lm.weight"] ?? [], TrainFixtures.floats(j["exp_avg"]?["lm.weight"]), abs: 1e-7, rel: 1e-4, "exp_avg")
        assertClose(trainer.optimizer.exponentialAverageSquared["lm.weight"] ?? [], TrainFixtures.floats(j["exp_avg_sq"]?["lm.weight"]), abs: 1e-9, rel: 1e-4, "exp_avg_sq")
    }

    func testClippingBoundsTheNormAndReturnsThePreClipNorm() {
        let a = Parameter(name: "a", shape: [3], value: [0, 0, 0])
        let b = Parameter(name: "b", shape: [1], value: [0])
        a.grad = [3, 0, 0]; b.grad = [4]
        XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 1), 5, accuracy: 1e-6)
        XCTAssertEqual(clipGradientNorm([a, b], maxNorm: nil), 1, accuracy: 1e-5)
        // Below the limit: multiplied by 1 (coefficient clamped), unchanged.
        let before = a.grad
        clipGradientNorm([a, b], maxNorm: 10)
        XCTAssertEqual(a.grad, before)
    }
}
