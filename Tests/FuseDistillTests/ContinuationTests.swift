import XCTest
import FuseEval
import FuseIO
import FuseModels
import FuseNN
import FuseTestSupport
import FuseTokenizers
@testable import FuseDistill

/// The target tokenizer as FuseEval's codec, as `fusekit eval` wraps it (Sources/fusekit/TokenizerCodec.swift).
struct TestCodec: TokenCodec {
    let tokenizer: Tokenizer
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] { tokenizer.encode(text, addSpecialTokens: addSpecialTokens) }
    func decode(_ ids: [Int]) -> String { (try? tokenizer.decode(ids, skipSpecialTokens: true)) ?? "" }
}

/// Adding a source to a finished run (`--add-source`) and per-domain perplexity, on the tiny models of
/// TinyPipelineTests: a target and a source sharing its byte-level tokenizer, and a source with merges
/// (a different tokenization) added later.
final class ContinuationTests: XCTestCase {
    var dir: String!
    var out: String { dir + "/out" }
    var cache: String { dir + "/cache" }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "fusekit-distill-add-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeDistillFixture(dir)
        try "man pages: the read(2) call reads bytes\nopen(2) opens a file\n".write(toFile: dir + "/man.txt", atomically: true, encoding: .utf8)
        try "def f(x):\n    return x + 1\nprint(f(2))\n".write(toFile: dir + "/py.txt", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The spec: `same` as the only source; batch 2, one pass, a checkpoint every step.
    func writeSpec(domains: String = "{man: DIR/man.txt, py: DIR/py.txt}", domainTokens: Int = 4096, extra: String = "") throws -> DistillSpec {
        try """
        target: \(dir!)/target
        sources: [{model: \(dir!)/same, name: same}]
        corpus: {train: \(dir!)/train.txt, block_tokens: 40, domains: \(domains.replacingOccurrences(of: "DIR", with: dir!)), domain_tokens: \(domainTokens)}
        k: 4
        lambda: 0.5
        training: {lr: 0.01, epochs: 1, batch_size: 2, warmup_ratio: 0, save_every: 1}
        \(extra)
        """.write(toFile: dir + "/spec.yml", atomically: true, encoding: .utf8)
        return try DistillSpec.load(path: dir + "/spec.yml")
    }

    /// Runs the plan for `adding` (or a plain --resume) into `outDir`.
    @discardableResult
    func run(_ spec: DistillSpec, _ outDir: String, resume: Bool = false, adding: [String] = [],
             stopAt: Int? = nil, willStart: ((Int, [Parameter]) -> Void)? = nil) throws -> DistillReport {
        let plan = try DistillPlan.make(spec: spec, outDirectory: outDir, resume: resume, force: false, adding: adding)
        let run = DistillRun(spec: plan.spec, cacheDirectory: cache)
        struct Stop: Error {}
        run.trainingProgress = { _, m in if m.step == stopAt { throw Stop() } }
        run.trainingWillStart = { _, step, p in willStart?(step, p) }
        return try run.run(outDirectory: outDir, resume: resume, force: false, plan: plan)
    }

    func stages(_ outDir: String) throws -> [JSON] {
        try XCTUnwrap(JSON.parse(try String(contentsOfFile: outDir + "/distill.json", encoding: .utf8))["stages"]?.array)
    }

    /// metrics.jsonl without the wall-clock fields.
    func metrics(_ outDir: String) throws -> [String] {
        try String(contentsOfFile: outDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
            let j = try JSON.parse(String(line))
            return ["step", "loss", "ce", "soft", "lr", "grad_norm", "tokens"].map { j[$0]?.serialized() ?? "-" }.joined(separator: " ")
        }
    }

    /// (1) Adding a source to a finished run captures only that source; the fused targets are rebuilt over
    /// both sources; OUT_DIR/spec.yml and distill.json record the added source and the new stage.
    /// (2) Training continues from the finished run's last checkpoint: the first continued step starts at
    /// step N with exactly the weights of the finished run's model (bit for bit), the step counter goes on
    /// to 2N, the metrics log keeps the first N lines, and the lr schedule restarts (no warm-up: full lr).
    func testAddSourceCapturesOnlyItAndContinuesFromTheLastCheckpoint() throws {
        let spec = try writeSpec()
        let first = try run(spec, out)
        let n = try XCTUnwrap(first.training.first?.summary.steps)
        XCTAssertGreaterThanOrEqual(n, 4)
        let finished = try SafetensorsFile(path: out + "/model/model.safetensors")
        let firstLog = try metrics(out)

        var start: (step: Int, values: [String: [Float]])?
        let second = try run(spec, out, adding: [dir + "/other"]) { step, parameters in
            start = (step, Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.value) }))
        }
        // (1) captures: the target and `same` come from the cache, only `other` is computed.
        let captures = Dictionary(uniqueKeysWithValues: second.captures.map { ($0.name, $0.stats) })
        XCTAssertEqual(Set(captures.keys), ["target:target", "same", "other"])
        for name in ["target:target", "same"] {
            XCTAssertEqual(captures[name]?.tokensComputed, 0, name)
            XCTAssertEqual(captures[name]?.shardsReused, captures[name]?.shardsTotal, name)
        }
        XCTAssertGreaterThan(captures["other"]?.tokensComputed ?? 0, 0)
        XCTAssertEqual(captures["other"]?.shardsReused, 0)
        XCTAssertEqual(second.fused.first?.log.names, ["target:target", "same", "other"])
        XCTAssertNotEqual(second.fused.first?.folder, first.fused.first?.folder)
        XCTAssertEqual(try DistillSpec.load(path: out + "/spec.yml").sources.map(\.name), ["same", "other"])
        let recorded = try stages(out)
        XCTAssertEqual(recorded.map { $0["kind"]?.string }, ["initial", "add_source"])
        XCTAssertEqual(recorded[1]["added"]?.array?.first?["name"]?.string, "other")
        XCTAssertEqual(recorded[1]["continued_from_step"]?.int, n)
        XCTAssertEqual(recorded[1]["last_step"]?.int, 2 * n)
        XCTAssertEqual(recorded.map { $0["status"]?.string }, ["complete", "complete"])

        // (2) the continuation starts from the finished run's weights, bit for bit, at step N.
        let s = try XCTUnwrap(start)
        XCTAssertEqual(s.step, n)
        XCTAssertFalse(s.values.isEmpty)
        for (name, value) in s.values {
            let saved = try finished.tensor(name).floats()
            XCTAssertEqual(saved.map(\.bitPattern), value.map(\.bitPattern), name)
        }
        let training = try XCTUnwrap(second.training.first)
        XCTAssertEqual(training.summary.resumedFrom, n)
        XCTAssertEqual(training.summary.steps, 2 * n)
        let log = try metrics(out)
        XCTAssertEqual(log.count, 2 * n)
        XCTAssertEqual(Array(log.prefix(n)), firstLog)
        let stepsLogged = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { try JSON.parse(String($0)) }
        XCTAssertEqual(stepsLogged.map { $0["step"]?.int ?? -1 }, Array(1...(2 * n)))
        XCTAssertEqual(stepsLogged[n]["lr"]?.double, 0.01, "the schedule restarts at the continuation (warm-up 0: full lr)")
        XCTAssertNotEqual(try SafetensorsFile(path: out + "/model/model.safetensors").tensor("model.norm.weight").floats(),
                          try finished.tensor("model.norm.weight").floats(), "the continuation trained")

        // A plain --resume of the finished continuation (with the original spec) reuses everything: no step runs.
        let again = try run(spec, out, resume: true)
        XCTAssertEqual(again.training.first?.summary.resumedFrom, 2 * n)
        XCTAssertEqual(again.stages.count, 2)
        XCTAssertEqual(try metrics(out), log)
    }

    /// (3) A continuation killed twice — before its first checkpoint (the finished run's is the only one)
    /// and again after a few steps — then resumed with the original spec gives the log, the weights and the
    /// lineage of an uninterrupted continuation, bit for bit.
    func testInterruptedContinuationResumesToTheSameResult() throws {
        let spec = try writeSpec()
        let n = try XCTUnwrap(try run(spec, out).training.first?.summary.steps)
        let copy = dir + "/out-interrupted"
        try FileManager.default.copyItem(atPath: out, toPath: copy)
        try run(spec, out, adding: [dir + "/other"])

        XCTAssertThrowsError(try run(spec, copy, adding: [dir + "/other"], stopAt: n + 1))
        XCTAssertEqual(try stages(copy).last?["status"]?.string, "running")
        XCTAssertThrowsError(try run(spec, copy, resume: true, stopAt: n + 3))
        let resumed = try run(spec, copy, resume: true)
        XCTAssertEqual(resumed.training.first?.summary.resumedFrom, n + 2)
        XCTAssertEqual(try metrics(copy), try metrics(out))
        XCTAssertEqual(FileManager.default.contents(atPath: copy + "/model/model.safetensors"),
                       FileManager.default.contents(atPath: out + "/model/model.safetensors"))
        XCTAssertEqual(try stages(copy).map { $0.serialized() }, try stages(out).map { $0.serialized() })
        XCTAssertEqual(try DistillSpec.load(path: copy + "/spec.yml").sources.map(\.name), ["same", "other"])
    }

    /// `--resume` with a spec that lists one more source is the same as `--add-source`: the same stage,
    /// the same weights.
    func testResumeWithOneMoreSourceInTheSpecAddsIt() throws {
        let spec = try writeSpec()
        try run(spec, out)
        let copy = dir + "/out-by-spec"
        try FileManager.default.copyItem(atPath: out, toPath: copy)
        try run(spec, out, adding: [dir + "/other"])
        var wider = spec
        wider.sources.append(SourceSpec(name: "other", model: dir + "/other"))
        let report = try run(wider, copy, resume: true)
        XCTAssertEqual(report.stages.last?.kind, .addSource)
        XCTAssertEqual(report.stages.last?.added.map(\.name), ["other"])
        XCTAssertEqual(FileManager.default.contents(atPath: copy + "/model/model.safetensors"),
                       FileManager.default.contents(atPath: out + "/model/model.safetensors"))
        XCTAssertEqual(try metrics(copy), try metrics(out))
    }

    /// (4) What cannot be added, each with a message that names the problem and what to do.
    func testAddSourceErrors() throws {
        let spec = try writeSpec()
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        // Not a run yet.
        var m = message { try run(spec, out, adding: [dir + "/other"]) }
        XCTAssertTrue(m.contains("no such run"), m)
        // A run that did not finish (stopped at step 3).
        XCTAssertThrowsError(try run(spec, out, stopAt: 3))
        m = message { try run(spec, out, adding: [dir + "/other"]) }
        XCTAssertTrue(m.contains("has not finished") && m.contains("--resume"), m)
        try run(spec, out, resume: true)
        // A model whose tokens cannot be decoded (no tokenizer.json).
        try writeTinyLlama(dir + "/mute", vocab: 256, seed: 4)
        m = message { try run(spec, out, adding: [dir + "/mute"]) }
        XCTAssertTrue(m.contains("cannot be decoded") && m.contains("tokenizer.json"), m)
        // The same source twice: already in the run, or given twice.
        m = message { try run(spec, out, adding: [dir + "/same"]) }
        XCTAssertTrue(m.contains("already has this source") && m.contains("'same'"), m)
        m = message { try run(spec, out, adding: [dir + "/other", dir + "/other/"]) }
        XCTAssertTrue(m.contains("given twice"), m)
        m = message { try run(spec, out, adding: [dir + "/nowhere"]) }
        XCTAssertTrue(m.contains("no such model"), m)
        m = message { _ = try DistillPlan.make(spec: spec, outDirectory: out, resume: false, force: true, adding: [dir + "/other"]) }
        XCTAssertTrue(m.contains("--force"), m)
        // A finished run whose checkpoint is gone.
        try FileManager.default.removeItem(atPath: out + "/checkpoints")
        m = message { try run(spec, out, adding: [dir + "/other"]) }
        XCTAssertTrue(m.contains("no checkpoint") && m.contains("checkpoints"), m)
        XCTAssertEqual(try stages(out).count, 1, "a refused addition records nothing")
    }

    /// Per-domain perplexity recorded by distill equals FuseEval's perplexity of the same text, for the
    /// target ("before") and the trained model ("after"); with a token budget, the first `domain_tokens`
    /// tokens are scored; the "before" numbers are cached by content key.
    func testDomainPerplexityEqualsFuseEval() throws {
        let spec = try writeSpec()
        let report = try run(spec, out)
        XCTAssertEqual(report.domains.map(\.name), ["man", "py"])
        let tokenizer = try loadTokenizer(dir + "/target")
        for d in report.domains {
            XCTAssertEqual(d.values.map(\.label), ["before", "after"])
            let task = try TaskFile(path: d.path, bytes: Array(JSON.object([("text", .string(try String(contentsOfFile: d.path, encoding: .utf8)))]).serialized().utf8))
            for (label, model) in [("before", dir + "/target"), ("after", out + "/model")] {
                let eval = try Evaluator(model: try ModelRegistry.load(model), codec: TestCodec(tokenizer: tokenizer)).run(task)
                XCTAssertEqual(d.value(label), eval.metrics["token_perplexity"], "\(d.name) \(label)")
                XCTAssertEqual(Double(d.tokens), eval.metrics["tokens"])
            }
        }
        XCTAssertNotEqual(report.domains[0].value("before"), report.domains[0].value("after"))
        let json = try JSON.parse(try String(contentsOfFile: out + "/distill.json", encoding: .utf8))
        XCTAssertEqual(json["domain_perplexity"]?["domains"]?.array?.first?["perplexity"]?["after"]?.double, report.domains[0].value("after"))
        let cached = try FileManager.default.contentsOfDirectory(atPath: cache + "/perplexity")
        XCTAssertEqual(cached.count, 2)

        // A budget of 12 tokens: the first 12 tokens of the text, scored as ids.
        try FileManager.default.removeItem(atPath: out)
        let small = try run(try writeSpec(domainTokens: 12), out)
        let ids = Array(tokenizer.encode(try String(contentsOfFile: dir + "/man.txt", encoding: .utf8), addSpecialTokens: true).prefix(12))
        let task = try TaskFile(path: "man", bytes: Array(JSON.object([("text_ids", .array(ids.map { .int($0) }))]).serialized().utf8))
        let eval = try Evaluator(model: try ModelRegistry.load(dir + "/target"), codec: nil).run(task)
        XCTAssertEqual(small.domains[0].tokens, 12)
        XCTAssertEqual(small.domains[0].value("before"), eval.metrics["token_perplexity"])
    }

    /// FuseChat: perplexity after each pair and after the merge; adding a source trains one more pair
    /// (from the target, as every pair), reuses the finished pair (no step runs) and redoes the merge.
    func testFuseChatPerplexityAndAddedPair() throws {
        let spec = try writeSpec(extra: "fusechat: {enabled: true, merge_method: linear, parameters: {weight: 0.5}}")
        let first = try run(spec, out)
        XCTAssertEqual(first.domains[0].values.map(\.label), ["before", "after pair-same", "after merge"])
        let tokenizer = try loadTokenizer(dir + "/target")
        let task = try TaskFile(path: dir + "/man.txt", bytes: Array(JSON.object([("text", .string(try String(contentsOfFile: dir + "/man.txt", encoding: .utf8)))]).serialized().utf8))
        let merged = try Evaluator(model: try ModelRegistry.load(out + "/model"), codec: TestCodec(tokenizer: tokenizer)).run(task)
        XCTAssertEqual(first.domains[0].value("after merge"), merged.metrics["token_perplexity"])
        let pairLog = try String(contentsOfFile: out + "/pairs/pair-same/metrics.jsonl", encoding: .utf8)

        let second = try run(spec, out, adding: [dir + "/other"])
        XCTAssertEqual(second.training.map(\.name), ["pair-same", "pair-other"])
        XCTAssertEqual(second.training[0].summary.resumedFrom, second.training[0].summary.steps, "the finished pair is reused")
        XCTAssertNil(second.training[1].summary.resumedFrom, "the new pair starts from the target")
        XCTAssertEqual(try String(contentsOfFile: out + "/pairs/pair-same/metrics.jsonl", encoding: .utf8), pairLog)
        XCTAssertEqual(second.domains[0].values.map(\.label), ["before", "after pair-same", "after pair-other", "after merge"])
        XCTAssertEqual(second.domains[0].value("after pair-same"), first.domains[0].value("after pair-same"))
        XCTAssertNotEqual(second.domains[0].value("after merge"), first.domains[0].value("after merge"))
        let config = try String(contentsOfFile: out + "/merge.yml", encoding: .utf8)
        XCTAssertTrue(config.contains("pair-same/model") && config.contains("pair-other/model"), config)
        XCTAssertEqual(try stages(out).map { $0["status"]?.string }, ["complete", "complete"])
    }

    /// corpus.domains is checked with the other spec keys: key path, a did-you-mean, missing files; the
    /// default is held_out as one domain.
    func testDomainsSpecKeys() throws {
        func parse(_ corpus: String) throws -> DistillSpec {
            try DistillSpec.parse(yaml: "target: \(dir!)/target\nsources: [\(dir!)/same]\ncorpus: \(corpus)\n", path: "s.yml")
        }
        XCTAssertEqual(try parse("{train: \(dir!)/train.txt, held_out: \(dir!)/man.txt}").corpus.domains, [DomainSpec(name: "held_out", path: dir + "/man.txt")])
        XCTAssertEqual(try parse("{train: \(dir!)/train.txt}").corpus.domains, [])
        XCTAssertThrowsError(try parse("{train: \(dir!)/train.txt, domain: {a: \(dir!)/man.txt}}")) { e in
            XCTAssertTrue("\(e)".contains("corpus.domain") && "\(e)".contains("did you mean 'domains'"), "\(e)")
        }
        XCTAssertThrowsError(try parse("{train: \(dir!)/train.txt, domains: {a: \(dir!)/missing.txt}}")) { e in
            XCTAssertTrue("\(e)".contains("corpus.domains.a") && "\(e)".contains("missing.txt"), "\(e)")
        }
        XCTAssertThrowsError(try parse("{train: \(dir!)/train.txt, domains: [\(dir!)/man.txt]}")) { e in
            XCTAssertTrue("\(e)".contains("corpus.domains") && "\(e)".contains("mapping"), "\(e)")
        }
        XCTAssertThrowsError(try parse("{train: \(dir!)/train.txt, domain_tokens: 1}")) { e in
            XCTAssertTrue("\(e)".contains("corpus.domain_tokens"), "\(e)")
        }
    }
}
