import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseEvolve

/// Tiny Llama "fine-tunes" made in the test: a random base and sources = base + a random delta each,
/// written as HF folders, plus token-id task files. Small enough that a candidate scores in
/// milliseconds.
enum Tiny {
    static let vocab = 32, hidden = 16, ffn = 32, layers = 2, heads = 2, kvHeads = 1

    static let config = """
    {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": \(hidden), "intermediate_size": \(ffn),
     "num_hidden_layers": \(layers), "num_attention_heads": \(heads), "num_key_value_heads": \(kvHeads), "vocab_size": \(vocab),
     "max_position_embeddings": 64, "rms_norm_eps": 1e-05, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
     "dtype": "float32"}
    """

    static var shapes: [(String, [Int])] {
        var s: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, hidden])]
        let d = hidden / heads
        for l in 0..<layers {
            let p = "model.layers.\(l)."
            s += [(p + "input_layernorm.weight", [hidden]), (p + "self_attn.q_proj.weight", [hidden, hidden]),
                  (p + "self_attn.k_proj.weight", [kvHeads * d, hidden]), (p + "self_attn.v_proj.weight", [kvHeads * d, hidden]),
                  (p + "self_attn.o_proj.weight", [hidden, hidden]), (p + "post_attention_layernorm.weight", [hidden]),
                  (p + "mlp.gate_proj.weight", [ffn, hidden]), (p + "mlp.up_proj.weight", [ffn, hidden]),
                  (p + "mlp.down_proj.weight", [hidden, ffn])]
        }
        return s + [("model.norm.weight", [hidden]), ("lm_head.weight", [vocab, hidden])]
    }

    static func random(_ seed: UInt64, scale: Float, norms: Float) -> [[Float]] {
        shapes.map { name, shape in
            var rng = SeededRNG(seed: seed, name: name)
            let n = shape.reduce(1, *)
            return (0..<n).map { _ in (name.hasSuffix("norm.weight") ? norms : 0) + scale * Float(rng.nextGaussian()) }
        }
    }

    static func write(_ tensors: [[Float]], to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let named = try zip(shapes, tensors).map { ($0.0.0, try Tensor(floats: $0.1, shape: $0.0.1)) }
        try writeSafetensors(path: folder + "/model.safetensors", tensors: named)
        try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
    }

    /// A temporary folder with base/, ft0..ft{n-1}/, dev.jsonl, test.jsonl (perplexity on token ids)
    /// and mc.jsonl (multiple choice).
    static func workspace(sources n: Int = 3, file: StaticString = #filePath) throws -> String {
        let dir = NSTemporaryDirectory() + "fusekit-evolve-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let base = random(100, scale: 0.3, norms: 1)
        try write(base, to: dir + "/base")
        for k in 0..<n {
            let delta = random(200 + UInt64(k), scale: 0.15, norms: 0)
            try write(zip(base, delta).map { zip($0, $1).map(+) }, to: dir + "/ft\(k)")
        }
        var rng = SeededRNG(seed: 42)
        func ids(_ count: Int) -> String { (0..<count).map { _ in String(3 + uniform(vocab - 3, &rng)) }.joined(separator: ", ") }
        let dev = (0..<4).map { _ in "{\"text_ids\": [\(ids(10))]}" }.joined(separator: "\n") + "\n"
        let test = (0..<4).map { _ in "{\"text_ids\": [\(ids(10))]}" }.joined(separator: "\n") + "\n"
        let mc = (0..<6).map { _ in "{\"context_ids\": [\(ids(4))], \"choices_ids\": [[\(ids(2))], [\(ids(2))], [\(ids(3))]], \"answer\": \(uniform(3, &rng))}" }
            .joined(separator: "\n") + "\n"
        try dev.write(toFile: dir + "/dev.jsonl", atomically: true, encoding: .utf8)
        try test.write(toFile: dir + "/test.jsonl", atomically: true, encoding: .utf8)
        try mc.write(toFile: dir + "/mc.jsonl", atomically: true, encoding: .utf8)
        return dir
    }

    static func spec(_ dir: String, _ body: String) throws -> EvolveSpec {
        try EvolveSpec.parse(yaml: body, directory: dir)
    }

    static func run(_ spec: EvolveSpec, _ out: String, evaluator: CandidateEvaluator = InProcessEvaluator(codec: nil),
                    configure: (inout EvolveOptions) -> Void = { _ in }) throws -> EvolveSummary {
        var options = EvolveOptions(evaluator: evaluator)
        configure(&options)
        return try EvolveRun.run(spec: spec, outDir: out, options: options)
    }

    static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// log.jsonl lines without their wall-clock fields (seconds, timings).
    static func logLines(_ out: String) throws -> [JSON] {
        let text = try String(contentsOfFile: out + "/log.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            guard case let .object(pairs) = try JSON.parse(String(line)) else { throw EvolveError.invalidArgument("log line is not an object") }
            return .object(pairs.filter { $0.0 != "seconds" && $0.0 != "timings" })
        }
    }
}

/// Scores a candidate by its squared distance to a target weight set (lower is better), reading the
/// folder as any worker would: a synthetic fitness whose optimum is known.
final class DistanceEvaluator: CandidateEvaluator {
    let target: [[Float]]
    var calls = 0
    init(target: [[Float]]) { self.target = target }
    var needsSideFiles: Bool { false }
    func evaluate(folders: [String], tasks: [FitnessTask]) throws -> [TaskValues] {
        try folders.map { folder in
            calls += 1
            let store = try WeightStore(path: folder)
            var d = 0.0
            for (k, (name, _)) in Tiny.shapes.enumerated() {
                for (a, b) in zip(try store.floats(name), target[k]) { d += Double(a - b) * Double(a - b) }
            }
            return tasks.map { _ in d }
        }
    }
}

/// The same value for every candidate.
final class ConstantEvaluator: CandidateEvaluator {
    var needsSideFiles: Bool { false }
    func evaluate(folders: [String], tasks: [FitnessTask]) throws -> [TaskValues] { folders.map { _ in tasks.map { _ in 1.0 } } }
}

/// In-process scoring that counts (candidate, task) evaluations.
final class CountingEvaluator: CandidateEvaluator {
    let inner = InProcessEvaluator(codec: nil)
    var taskEvaluations = 0
    var needsSideFiles: Bool { false }
    func evaluate(folders: [String], tasks: [FitnessTask]) throws -> [TaskValues] {
        taskEvaluations += folders.count * tasks.count
        return try inner.evaluate(folders: folders, tasks: tasks)
    }
}
