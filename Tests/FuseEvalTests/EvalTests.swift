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

/// One token per UTF-8 byte: a tokenizer the 256-entry fixture vocabulary can run, to test the text paths.
struct ByteCodec: TokenCodec {
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] { text.utf8.map { Int($0) } }
    func decode(_ ids: [Int]) -> String { String(decoding: ids.filter { $0 < 256 }.map { UInt8($0) }, as: UTF8.self) }
}

final class TextTaskTests: XCTestCase {
    /// Text choices: continuation = delimiter + choice, tokens after the context's; the same numbers as
    /// the equivalent id example. acc_norm divides by the choice's characters without the delimiter.
    func testTextMultipleChoiceEqualsIDs() throws {
        let model = try ModelRegistry.load(fixturePath("runtime/llama_gqa"))
        let evaluator = Evaluator(model: model, codec: ByteCodec())
        let text = try TaskFile(path: "t.jsonl", bytes: Array(#"{"context": "Q: sky?\nA:", "choices": ["blue", "a very green colour"], "answer": 0}"#.utf8))
        let ll = try evaluator.logLikelihoods([(Array("Q: sky?\nA:".utf8).map { Int($0) }, Array(" blue".utf8).map { Int($0) }),
                                                (Array("Q: sky?\nA:".utf8).map { Int($0) }, Array(" a very green colour".utf8).map { Int($0) })])
        let report = try evaluator.run(text)
        XCTAssertEqual(report.metrics["acc"], ll[0] >= ll[1] ? 1 : 0)
        XCTAssertEqual(report.metrics["acc_norm"], ll[0] / 4 >= ll[1] / 19 ? 1 : 0)
        XCTAssertTrue(report.details[0].contains(String(format: "%.4f", ll[0])), report.details[0])
    }

    /// Generation with a stop string: the text is cut before it, and exact match compares trimmed text.
    func testGenerationStopString() throws {
        let model = try ModelRegistry.load(fixturePath("runtime/llama_gqa"))
        let prompt = Array("Hello".utf8).map { Int($0) }
        let free = try generate(model: model, prompt: prompt, options: GenerationOptions(maxTokens: 12, stopTokenIDs: []), codec: ByteCodec())
        XCTAssertEqual(free.tokens.count, 12)
        // Stop at the text of the 5th..6th generated bytes: the result is the text before them.
        let stop = ByteCodec().decode(Array(free.tokens[4..<6]))
        var streamed = ""
        let cut = try generate(model: model, prompt: prompt, options: GenerationOptions(maxTokens: 12, stopTokenIDs: [], stopStrings: [stop]),
                               codec: ByteCodec()) { streamed += $0 }
        XCTAssertEqual(cut.stopReason, .stopString)
        let full = ByteCodec().decode(free.tokens)
        XCTAssertEqual(cut.text, String(full[..<full.range(of: stop)!.lowerBound]))
        XCTAssertEqual(streamed, cut.text)
    }

    /// Perplexity on text reports bits per byte from the UTF-8 length.
    func testTextPerplexityBitsPerByte() throws {
        let model = try ModelRegistry.load(fixturePath("runtime/llama_gqa"))
        let task = try TaskFile(path: "t.jsonl", bytes: Array(#"{"text": "the cat sat on the mat"}"#.utf8))
        let r = try Evaluator(model: model, codec: ByteCodec()).run(task)
        let nll = r.metrics["nll_per_token"]! * r.metrics["tokens"]!
        XCTAssertEqual(r.metrics["tokens"], 22)   // BOS predicts every one of the 22 bytes
        XCTAssertEqual(r.metrics["bits_per_byte"]!, nll / 22 / log(2), accuracy: 1e-9)
    }
}
