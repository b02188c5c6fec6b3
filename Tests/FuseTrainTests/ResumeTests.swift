// Checkpoints and --resume: a run killed after k steps and resumed gives the same losses and the same
// final parameters, bit for bit, as an uninterrupted run; the thread count changes nothing.
import FuseIO
import FuseNN
import FuseTensor
import XCTest
@testable import FuseTrain

final class ResumeTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = temporaryDirectory("resume") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func data() throws -> TrainingData {
        var lines = ""
        for i in 0..<23 { lines += "{\"prompt\": \"q\(i % 7) \", \"completion\": \"a\(i * 3 % 11)\"}\n" }
        let path = dir + "/d.jsonl"
        try lines.write(toFile: path, atomically: true, encoding: .utf8)
        return try TrainingData.load(path: path, encoder: CharacterEncoder(vocab: 24), eos: 2, seqLen: 16)
    }

    func settings(steps: Int) -> TrainerSettings {
        var s = TrainerSettings(steps: steps, optimizer: AdamWSettings(lr: 0.05, weightDecay: 0.1))
        s.batchSize = 3; s.gradAccum = 2; s.warmup = 2; s.clip = 0.5; s.seed = 11; s.saveEvery = 3
        return s
    }

    func run(_ out: String, steps: Int, stopAfter: Int? = nil, resume: Bool, lora: Bool = false) throws -> (TrainSummary, BigramModel) {
        let model = BigramModel(vocab: 24, seed: 5)
        if lora { try model.attachLoRA(LoRASettings(rank: 2, alpha: 4, targetModules: ["lm"]), seed: 9) }
        let s = settings(steps: steps)
        let trainer = try Trainer(model: model, data: try data(), settings: s, outputDirectory: out)
        if let stopAfter {
            // "Crash" after `stopAfter` steps: the observer throws, as a kill would stop the process.
            struct Killed: Error {}
            do {
                _ = try trainer.run(resume: resume) { m in if m.step == stopAfter { throw Killed() } }
            } catch {}
            return (TrainSummary(steps: 0, resumedFrom: nil, finalLoss: nil, finalEvalLoss: nil, tokens: 0, seconds: 0, losses: []), model)
        }
        return (try trainer.run(resume: resume), model)
    }

    func lossesInLog(_ out: String) throws -> [String] {
        try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            let j = try JSON.parse(String($0))
            return "\(j["step"]?.int ?? -1):\(j["loss"]?.serialized() ?? "")"
        }
    }

    func testResumeAfterKillGivesBitEqualLossesAndParameters() throws {
        for lora in [false, true] {
            let a = dir + "/a\(lora)", b = dir + "/b\(lora)"
            let (full, m1) = try run(a, steps: 10, resume: false, lora: lora)
            XCTAssertEqual(full.losses.count, 10)
            // Killed after step 7: the newest whole checkpoint is step 6; resume redoes step 7 onwards.
            _ = try run(b, steps: 10, stopAfter: 7, resume: false, lora: lora)
            XCTAssertEqual(Checkpoints.completeSteps(directory: b + "/checkpoints"), [6])
            let (resumed, m2) = try run(b, steps: 10, resume: true, lora: lora)
            XCTAssertEqual(resumed.resumedFrom, 6)
            XCTAssertEqual(resumed.losses.map(\.bitPattern), full.losses.suffix(4).map(\.bitPattern), "lora \(lora)")
            for (p, q) in zip(m1.trainableParameters, m2.trainableParameters) {
                XCTAssertEqual(p.value.map(\.bitPattern), q.value.map(\.bitPattern), "\(p.name) lora \(lora)")
            }
            XCTAssertEqual(try lossesInLog(a), try lossesInLog(b), "the resumed log reads like the uninterrupted one")
        }
    }

    func testSameSeedSameBytesWhateverTheThreadCount() throws {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 1
        let (one, m1) = try run(dir + "/t1", steps: 4, resume: false)
        Parallel.threads = 2
        let (two, m2) = try run(dir + "/t2", steps: 4, resume: false)
        XCTAssertEqual(one.losses.map(\.bitPattern), two.losses.map(\.bitPattern))
        XCTAssertEqual(m1.weight.value.map(\.bitPattern), m2.weight.value.map(\.bitPattern))
        let s1 = try Data(contentsOf: URL(fileURLWithPath: dir + "/t1/checkpoints/step-00000004/state.safetensors"))
        let s2 = try Data(contentsOf: URL(fileURLWithPath: dir + "/t2/checkpoints/step-00000004/state.safetensors"))
        XCTAssertEqual(s1, s2)
    }

    func testResumeRefusesOtherSettings() throws {
        let out = dir + "/c"
        _ = try run(out, steps: 10, stopAfter: 4, resume: false)
        let model = BigramModel(vocab: 24, seed: 5)
        var s = settings(steps: 10)
        s.optimizer.lr = 0.01
        let trainer = try Trainer(model: model, data: try data(), settings: s, outputDirectory: out)
        XCTAssertThrowsError(try trainer.run(resume: true)) { error in
            XCTAssertTrue("\(error)".contains("other settings"), "\(error)")
        }
    }

    /// A new stage of a finished run (`continuingFrom`): it starts from the finished run's last
    /// checkpoint (weights and step), runs steps N+1 … N+M on the warm-up + cosine schedule restarted over
    /// M steps, keeps the first N log lines; without that checkpoint it refuses with a clear message.
    func testContinuationStartsFromTheLastCheckpointWithARestartedSchedule() throws {
        let out = dir + "/stage"
        let (first, m1) = try run(out, steps: 6, resume: false)
        XCTAssertEqual(first.losses.count, 6)
        let model = BigramModel(vocab: 24, seed: 99)   // other initial weights: the checkpoint must replace them
        var s = settings(steps: 6 + 4)
        s.scheduleStart = 6
        let trainer = try Trainer(model: model, data: try data(), settings: s, outputDirectory: out)
        var startStep = -1
        trainer.willStart = { step, parameters in
            startStep = step
            XCTAssertEqual(parameters.first?.value.map(\.bitPattern), m1.trainableParameters.first?.value.map(\.bitPattern))
        }
        let second = try trainer.run(resume: false, continuingFrom: 6)
        XCTAssertEqual(startStep, 6)
        XCTAssertEqual(second.resumedFrom, 6)
        XCTAssertEqual(second.losses.count, 4)
        let log = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { try JSON.parse(String($0)) }
        XCTAssertEqual(log.map { $0["step"]?.int ?? -1 }, Array(1...10))
        let restarted = CosineSchedule(baseLR: 0.05, warmup: 2, total: 4)
        XCTAssertEqual(log[6...].map { $0["lr"]?.double ?? -1 }, (0..<4).map { restarted.lr($0) })
        XCTAssertEqual(log[6]["lr"]?.double, 0, "the warm-up restarts at 0, as transformers' schedule")

        let fresh = dir + "/none"
        let orphan = try Trainer(model: BigramModel(vocab: 24, seed: 5), data: try data(), settings: s, outputDirectory: fresh)
        XCTAssertThrowsError(try orphan.run(resume: false, continuingFrom: 6)) { error in
            XCTAssertTrue("\(error)".contains("no checkpoint of step 6"), "\(error)")
        }
    }

    func testEpochsRoundUpToWholeSteps() {
        XCTAssertEqual(Trainer.steps(epochs: 1, sequences: 23, batchSize: 3, gradAccum: 2), 4)
        XCTAssertEqual(Trainer.steps(epochs: 2, sequences: 24, batchSize: 3, gradAccum: 2), 8)
        XCTAssertEqual(Trainer.steps(epochs: 0.01, sequences: 5, batchSize: 8, gradAccum: 1), 1)
    }

    func testTrainingLowersTheLossAndEvaluates() throws {
        let model = BigramModel(vocab: 24, seed: 5)
        var s = settings(steps: 30)
        s.evalEvery = 10
        s.saveEvery = nil
        let d = try data()
        let trainer = try Trainer(model: model, data: d, evalData: d, settings: s, outputDirectory: dir + "/e")
        let before = try trainer.evaluate(d)
        let summary = try trainer.run(resume: false)
        XCTAssertLessThan(summary.finalEvalLoss ?? .infinity, before - 0.5)
        let log = try String(contentsOfFile: dir + "/e/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 30)
        XCTAssertEqual(log.filter { $0.contains("eval_loss") }.count, 3)
        let first = try JSON.parse(String(log[0]))
        for key in ["step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s"] { XCTAssertNotNil(first[key], key) }
    }
}
