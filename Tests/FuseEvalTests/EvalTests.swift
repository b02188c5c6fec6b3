import Foundation
import XCTest
import FuseEval
import FuseModels

func fixturePath(_ relative: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(relative).path
}

/// Metrics against transformers on the llama_gqa fixture (Tools/fixtures/runtime_fixtures.py, eval/).
final class EvalTests: XCTestCase {
    struct Expected: Decodable {
        let mc_loglik: [[Double]]
        let acc: Double, acc_norm: Double, token_perplexity: Double, tokens: Int, exact_match: Double
    }

    func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: fixturePath("runtime/eval/expected.json"))))
    }

    func testMultipleChoiceMatchesTransformers() throws {
        let model = try ModelRegistry.load(fixturePath("runtime/llama_gqa"))
        let task = try TaskFile(path: fixturePath("runtime/eval/mc.jsonl"))
        let want = try expected()
        var evaluator = Evaluator(model: model, batchSize: 3)
        // Every choice's summed log-likelihood, batched and padded, equals transformers' (f64 log-softmax).
        for (i, example) in task.examples.enumerated() {
            guard case let .multipleChoice(.ids(ctx), choices, _, _) = example else { return XCTFail("not an id example") }
            let ll = try evaluator.logLikelihoods(choices.map { c -> ([Int], [Int]) in
                guard case let .ids(ids) = c else { return (ctx, []) }
                return (ctx, ids)
            })
            for (a, b) in zip(ll, want.mc_loglik[i]) { XCTAssertEqual(a, b, accuracy: 1e-3, "example \(i)") }
        }
        let report = try evaluator.run(task)
        XCTAssertEqual(report.metrics["acc"], want.acc)
        XCTAssertEqual(report.metrics["acc_norm"], want.acc_norm)
        XCTAssertNotEqual(want.acc, want.acc_norm)   // the fixture makes the two metrics disagree
        evaluator.limit = 2
        XCTAssertEqual(try evaluator.run(task).examples, 2)
    }

    func testRollingPerplexityMatchesTransformers() throws {
        let model = try ModelRegistry.load(fixturePath("runtime/llama_gqa"))
        let report = try Evaluator(model: model).run(TaskFile(path: fixturePath("runtime/eval/ppl.jsonl")))
        let want = try expected()
        XCTAssertEqual(report.metrics["tokens"], Double(want.tokens))
        XCTAssertEqual(report.metrics["token_perplexity"]!, want.token_perplexity, accuracy: want.token_perplexity * 1e-5)
        // Scored in slices of 7 positions through the KV cache: the same numbers.
        var sliced = Evaluator(model: model)
        sliced.sliceTokens = 7
        let r2 = try sliced.run(TaskFile(path: fixturePath("runtime/eval/ppl.jsonl")))
        XCTAssertEqual(r2.metrics["token_perplexity"]!, want.token_perplexity, accuracy: want.token_perplexity * 1e-5)
    }

    func testExactMatchMatchesTransformersGreedy() throws {
        let model = try ModelRegistry.load(fixturePath("runtime/llama_gqa"))
        let report = try Evaluator(model: model).run(TaskFile(path: fixturePath("runtime/eval/gen.jsonl")))
        XCTAssertEqual(report.metrics["exact_match"]!, try expected().exact_match, accuracy: 1e-12)
    }

    /// Bad task files name the file, line and problem.
    func testBadTaskFiles() {
        func message(_ text: String) -> String {
            do { _ = try TaskFile(path: "t.jsonl", bytes: Array(text.utf8)); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message("").contains("t.jsonl: the task file has no examples"))
        XCTAssertTrue(message("\n  \n").contains("no examples"))
        XCTAssertTrue(message("{\"text\": \"a\"}\n{\"text\": \"b\"\n").hasPrefix("t.jsonl:2: invalid JSON"), message("{\"text\": \"a\"}\n{\"text\": \"b\"\n"))
        XCTAssertTrue(message("{\"text\": \"a\"}\n\n{\"prompt\": \"q\", \"answer\": \"a\"}").hasPrefix("t.jsonl:3: a generation example in a perplexity task"))
        XCTAssertTrue(message("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": 2}").contains("t.jsonl:1: 'answer' 2 is not an index into 2 choices"))
        XCTAssertTrue(message("{\"context\": \"c\", \"choices\": [\"a\"], \"answer\": 0}").contains("needs at least 2"))
        XCTAssertTrue(message("[1, 2]").contains("t.jsonl:1: expected a JSON object"))
        XCTAssertTrue(message("{\"question\": \"?\"}").contains("unknown example"))
        XCTAssertTrue(message("{\"text_ids\": [1, -2]}").contains("not a token id"))
        let task = try? TaskFile(path: "t.jsonl", bytes: Array("{\"text\": \"hello\"}".utf8))
        XCTAssertEqual(task?.kind, .perplexity)
        XCTAssertThrowsError(try TaskFile(path: "/nonexistent/t.jsonl"))
    }

    /// Text examples without a tokenizer ask for one.
    func testTextNeedsTokenizer() throws {
        let model = try ModelRegistry.load(fixturePath("runtime/llama_gqa"))
        let task = try TaskFile(path: "t.jsonl", bytes: Array("{\"text\": \"hello world\"}".utf8))
        XCTAssertThrowsError(try Evaluator(model: model).run(task)) { XCTAssertTrue("\($0)".contains("t.jsonl:1: the example is text but no tokenizer")) }
    }
}

/// The documented example task files parse, one kind each.
final class ExampleTaskTests: XCTestCase {
    func testExamplesParse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent("examples/tasks").path
        let expected: [String: TaskKind] = ["multiple_choice.jsonl": .multipleChoice, "generation.jsonl": .generation,
                                            "perplexity.jsonl": .perplexity, "token_ids.jsonl": .multipleChoice]
        for (file, kind) in expected {
            let task = try TaskFile(path: dir + "/" + file)
            XCTAssertEqual(task.kind, kind, file)
            XCTAssertGreaterThan(task.examples.count, 1, file)
        }
    }
}
