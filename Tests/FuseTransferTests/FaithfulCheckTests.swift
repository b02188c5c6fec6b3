import Foundation
import FuseModels
import FuseNN
import FuseTensor
import FuseTestSupport
import FuseTrain
@testable import FuseTransfer
import XCTest

/// The faithful check of issue 11: a tiny Llama teacher and a narrower, shallower student, both
/// trained here on synthetic text (a seeded bigram language), the teacher also on a task (a fixed
/// permutation lookup: `[BOS, x, SEP] → π(x)`). LoRA on the student starting from the transferred
/// initialisation must reach a lower task loss than the usual zero-init LoRA after the same steps,
/// averaged over seeds.
final class FaithfulCheckTests: XCTestCase {
    let vocab = 32, sep = 31

    func bigramSequences(count: Int, length: Int, seed: UInt64) -> [TrainingBatch] {
        var table = SeededRNG(seed: 77, name: "bigram", chunk: 0)
        let next = (0..<vocab).map { _ in (0..<3).map { _ in 3 + Int(table.next() % UInt64(vocab - 4)) } }
        var rng = SeededRNG(seed: seed, name: "bigram-data", chunk: 0)
        return (0..<count).map { _ in
            var s = [1, 3 + Int(rng.next() % UInt64(vocab - 4))]
            while s.count < length + 1 { s.append(next[s.last!][Int(rng.next() % 3)]) }
            return TrainingBatch(tokens: Array(s.dropLast()), batch: 1, length: length, labels: Array(s.dropFirst()))
        }
    }

    var permutation: [Int] {
        var rng = SeededRNG(seed: 5, name: "task", chunk: 0)
        var p = Array(3..<sep)
        for i in stride(from: p.count - 1, to: 0, by: -1) { p.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return p
    }

    /// One batch of all task examples: [BOS, x, SEP] with the loss on π(x) at the SEP position.
    func taskBatch() -> TrainingBatch {
        let xs = Array(3..<sep), p = permutation
        var tokens: [Int] = [], labels: [Int] = []
        for (i, x) in xs.enumerated() { tokens += [1, x, sep]; labels += [-1, -1, p[i]] }
        return TrainingBatch(tokens: tokens, batch: xs.count, length: 3, labels: labels)
    }

    func train(_ model: any TrainableModel, batches: [TrainingBatch], steps: Int, lr: Double) throws -> Double {
        let opt = AdamW(AdamWSettings(lr: lr, weightDecay: 0))
        var last = 0.0
        for step in 0..<steps {
            let b = batches[step % batches.count]
            for p in model.trainableParameters { p.zeroGrad() }
            last = try model.accumulateGradients(b, loss: .crossEntropy, scale: 1, step: step).loss
            opt.update(model.trainableParameters, lr: lr)
        }
        return last
    }

    /// Seeds vary the models' initialisation, the text, and the LoRA's own initialisation.
    func testTransferredInitBeatsZeroInit() throws {
        var results: [(transferred: Double, zero: Double, random: Double)] = []
        for seed in UInt64(0)..<3 { results.append(try experiment(seed: seed)) }
        let mean = { (k: KeyPath<(transferred: Double, zero: Double, random: Double), Double>) in results.map { $0[keyPath: k] }.reduce(0, +) / Double(results.count) }
        print("faithful check, task loss after 30 LoRA steps (3 seeds): transferred \(results.map(\.transferred)) mean \(mean(\.transferred)); zero-init \(results.map(\.zero)) mean \(mean(\.zero)); random B₀A₀ of the same norms \(results.map(\.random)) mean \(mean(\.random))")
        XCTAssertLessThan(mean(\.transferred), mean(\.zero))
    }

    func experiment(seed: UInt64) throws -> (transferred: Double, zero: Double, random: Double) {
        let dir = NSTemporaryDirectory() + "fusekit-faithful-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyLlama(dir + "/teacher", hidden: 32, heads: 4, kvHeads: 2, headDim: 8, ffn: 64, layers: 3, vocab: vocab, seed: 11 + 10 * seed)
        try writeTinyLlama(dir + "/student", hidden: 16, heads: 2, kvHeads: 1, headDim: 8, ffn: 32, layers: 2, vocab: vocab, seed: 12 + 10 * seed)
        let teacher = try ModelRegistry.loadTrainable(dir + "/teacher")
        let student = try ModelRegistry.loadTrainable(dir + "/student")
        let text = bigramSequences(count: 16, length: 12, seed: 1 + seed)
        let task = taskBatch()
        // Both learn the language; the teacher also the task.
        _ = try train(student, batches: text, steps: 40, lr: 3e-3)
        let teacherTask = try train(teacher, batches: text.enumerated().flatMap { $0.offset % 2 == 0 ? [$0.element, task] : [$0.element] }, steps: 150, lr: 3e-3)
        let studentWeights = student.allParameters.map(\.value)
        let teacherTaskLoss = try teacher.evaluateLoss(task, loss: .crossEntropy).loss
        XCTAssertLessThan(teacherTaskLoss, 0.5, "the teacher must know the task (loss \(teacherTask))")

        // Extraction from the teacher with the task's seed samples.
        let targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        let seeds = (0..<8).map { i in
            TrainingBatch(tokens: Array(task.tokens[(3 * i)..<(3 * i + 3)]), batch: 1, length: 3, labels: Array(task.labels[(3 * i)..<(3 * i + 3)]))
        }
        let sens = try Sensitivity.compute(model: teacher, samples: seeds, include: { n in targets.contains { n.contains($0) } })
        let layerMap = try selectLayers(.sensitivity, teacherLayers: 3, studentLayers: 2, totals: sens.layerTotals())
        let shapes = { (m: any TrainableModel) in Dictionary(uniqueKeysWithValues: m.allParameters.map { ($0.name, $0.shape) }) }
        let pairs = try pairModules(student: shapes(student), teacher: shapes(teacher), targets: targets, layerMap: layerMap)
        let byName = Dictionary(uniqueKeysWithValues: teacher.allParameters.map { ($0.name, $0.value) })
        let modules = try extractModules(pairs: pairs, teacherWeights: { byName[$0]! }, teacherShapes: shapes(teacher),
                                         studentShapes: shapes(student), sensitivity: sens, rule: .block, rank: 4,
                                         heads: HeadLayout(teacherHeadDim: 8, studentHeadDim: 8))

        // The same LoRA training from each starting point.
        var losses: [Double] = []
        for start in [TransferSpec.Initialisation.transfer, .zero, .random] {
            let s = try ModelRegistry.loadTrainable(dir + "/student")
            for (p, v) in zip(s.allParameters, studentWeights) { p.value = v }
            let settings = LoRASettings(rank: 4, alpha: 8, targetModules: targets)
            try s.attachLoRA(settings, seed: seed)
            switch start {
            case .transfer: try inject(modules, into: s, scale: settings.scale)
            case .random: try inject(randomized(modules, seed: seed), into: s, scale: settings.scale)
            case .zero: break
            }
            _ = try train(s, batches: [task], steps: 30, lr: 3e-3)
            losses.append(try s.evaluateLoss(task, loss: .crossEntropy).loss)
        }
        return (losses[0], losses[1], losses[2])
    }
}
