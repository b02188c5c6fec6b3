// A TrainableModel with exact gradients, for testing the loop without an architecture: bigram softmax
// regression, logits[t] = W[token[t], :] + b (+ LoRA: s · Σ_r A[r, token] B[:, r]), mean CE over labelled
// positions. The same model as Tools/fixtures/training_loop_fixtures.py's torch loop.
import Foundation
import FuseIO
import FuseNN
import XCTest
import FuseTensor
@testable import FuseTrain

final class BigramModel: TrainableModel {
    let vocab: Int
    let weight: Parameter    // "lm.weight" [V, V]: row = input token
    let bias: Parameter      // "lm.bias" [V]
    var loraA: Parameter?    // "lm.lora_A.weight" [r, V]
    var loraB: Parameter?    // "lm.lora_B.weight" [V, r]
    var loraScale: Float = 0

    init(vocab: Int, weight: [Float], bias: [Float]) {
        self.vocab = vocab
        self.weight = Parameter(name: "lm.weight", shape: [vocab, vocab], value: weight)
        self.bias = Parameter(name: "lm.bias", shape: [vocab], value: bias)
    }

    convenience init(vocab: Int, seed: UInt64) {
        var rng = SeededRNG(seed: seed)
        self.init(vocab: vocab, weight: (0..<(vocab * vocab)).map { _ in Float(rng.nextGaussian() * 0.5) },
                  bias: (0..<vocab).map { _ in Float(rng.nextGaussian() * 0.5) })
    }

    var allParameters: [Parameter] { [weight, bias] }
    var trainableParameters: [Parameter] {
        if let loraA, let loraB { return [loraA, loraB] }
        return [weight, bias]
    }

    func attachLoRA(_ settings: LoRASettings, seed: UInt64) throws {
        guard settings.targetModules.contains(where: { "lm".hasSuffix($0) }) else { throw FuseTrainError.model("no module matches \(settings.targetModules)") }
        var rng = SeededRNG(seed: seed, name: "lm.lora_A")
        let bound = 1 / Float(vocab).squareRoot()
        loraA = Parameter(name: "lm.lora_A.weight", shape: [settings.rank, vocab],
                          value: (0..<(settings.rank * vocab)).map { _ in (rng.nextFloat() * 2 - 1) * bound })
        loraB = Parameter(name: "lm.lora_B.weight", shape: [vocab, settings.rank], value: [Float](repeating: 0, count: vocab * settings.rank))
        loraScale = settings.scale
    }

    /// Logits of one position, in Double.
    func logits(_ token: Int) -> [Double] {
        (0..<vocab).map { j in
            var z = Double(weight.value[token * vocab + j]) + Double(bias.value[j])
            if let a = loraA, let b = loraB {
                let r = a.shape[0]
                var s = 0.0
                for k in 0..<r { s += Double(a.value[k * vocab + token]) * Double(b.value[j * r + k]) }
                z += Double(loraScale) * s
            }
            return z
        }
    }

    func forward(_ batch: TrainingBatch, gradientScale: Float?) -> LossReport {
        let n = batch.labelledTokens
        var total = 0.0
        for (t, label) in batch.labels.enumerated() where label >= 0 {
            let token = batch.tokens[t]
            let z = logits(token)
            let m = z.max() ?? 0
            let e = z.map { Foundation.exp($0 - m) }
            let sum = e.reduce(0, +)
            total += -(z[label] - m - Foundation.log(sum))
            guard let scale = gradientScale else { continue }
            for j in 0..<vocab {
                let g = Float((e[j] / sum - (j == label ? 1 : 0)) * Double(scale) / Double(n))
                if let a = loraA, let b = loraB {
                    let r = a.shape[0]
                    for k in 0..<r {
                        b.grad[j * r + k] += loraScale * g * a.value[k * vocab + token]
                        a.grad[k * vocab + token] += loraScale * g * b.value[j * r + k]
                    }
                } else {
                    weight.grad[token * vocab + j] += g
                    bias.grad[j] += g
                }
            }
        }
        return LossReport(loss: n > 0 ? total / Double(n) : 0, components: ["ce": n > 0 ? total / Double(n) : 0], tokens: n)
    }

    func accumulateGradients(_ batch: TrainingBatch, loss: TrainingLoss, scale: Float, step: Int) throws -> LossReport {
        forward(batch, gradientScale: scale)
    }

    func evaluateLoss(_ batch: TrainingBatch, loss: TrainingLoss) throws -> LossReport { forward(batch, gradientScale: nil) }

    func visitLinearInputs(_ batch: TrainingBatch, _ visit: (String, UnsafePointer<Float>, Int, Int) -> Void) throws {
        var x = [Float](repeating: 0, count: batch.tokens.count * vocab)
        for (t, token) in batch.tokens.enumerated() { x[t * vocab + token] = 1 }
        x.withUnsafeBufferPointer { visit("lm.weight", $0.baseAddress!, batch.tokens.count, vocab) }
    }
}

/// One character per token: ids are Unicode scalar values mod `vocab`; `bos` is prepended with specials.
struct CharacterEncoder: TextEncoder {
    var vocab = 64
    var bos: Int? = 1
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        (addSpecialTokens ? (bos.map { [$0] } ?? []) : []) + text.unicodeScalars.map { 3 + Int($0.value) % (vocab - 3) }
    }
}

enum TrainFixtures {
    static var directory: String { Bundle.module.resourcePath! + "/train" }
    static func load(_ name: String) throws -> JSON {
        let path = directory + "/\(name).json"
        let j = try JSON.parse(try String(contentsOfFile: path, encoding: .utf8))
        guard j["magic"]?.string == "fusekit-train-fixture", j["version"]?.int == 1 else {
            throw FuseTrainError.unreadable(path: path, reason: "stale fixture: rerun Tools/fixtures/training_loop_fixtures.py")
        }
        return j
    }
    static func doubles(_ j: JSON?) -> [Double] { j?.array?.compactMap(\.double) ?? [] }
    static func floats(_ j: JSON?) -> [Float] { doubles(j).map { Float($0) } }
    static func ints(_ j: JSON?) -> [Int] { j?.array?.compactMap(\.int) ?? [] }
}

/// A fresh temporary folder, removed by the caller.
func temporaryDirectory(_ tag: String) -> String {
    let path = NSTemporaryDirectory() + "fusetrain-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Asserts |a − b| ≤ abs + rel·|b| element by element; prints the first mismatches (llm.c's check_tensor).
func assertClose(_ a: [Float], _ b: [Float], abs: Float, rel: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    guard a.count == b.count else { XCTFail("\(what): \(a.count) values, expected \(b.count)", file: file, line: line); return }
    var bad = 0
    for i in a.indices where Swift.abs(a[i] - b[i]) > abs + rel * Swift.abs(b[i]) {
        if bad < 5 { XCTFail("\(what)[\(i)]: \(a[i]) vs torch \(b[i])", file: file, line: line) }
        bad += 1
    }
}
