import Foundation
import FuseIO
import FuseTensor
@testable import FuseReport
import XCTest

final class EvolveReportTests: XCTestCase {
    /// A run folder in the documented evolve layout (log.jsonl + run.json + model/): the curves come
    /// from the log, the torn last line is skipped, and the winner — 0.8·a + 0.2·b — is found
    /// closest to a, with numbers equal to a direct computation.
    func testEvolveRunReport() throws {
        let dir = NSTemporaryDirectory() + "fusekit-evolve-report-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/model", withIntermediateDirectories: true)
        let a = try WeightStore(path: fixture("merge/models/a-f32")), b = try WeightStore(path: fixture("merge/models/b-f32"))
        var tensors: [(String, Tensor)] = []
        for name in a.names {
            let x = try a.floats(name), y = try b.floats(name)
            tensors.append((name, try Tensor(floats: zip(x, y).map { 0.8 * $0 + 0.2 * $1 }, shape: a.info(name)!.shape)))
        }
        try writeSafetensors(path: dir + "/model/model.safetensors", tensors: tensors)
        try FileManager.default.copyItem(atPath: fixture("merge/models/a-f32/config.json"), toPath: dir + "/model/config.json")
        let lines = [
            #"{"generation": 0, "best": -5.0, "median": -5.5, "held_out": -5.1, "search": "evolver", "lineage": ["source 0: a"]}"#,
            #"{"generation": 1, "best": -4.5, "median": -5.0, "held_out": -4.9, "search": "evolver", "lineage": ["source 0: a", "g1: ind0 <- trial"]}"#,
            #"{"generation": 2, "best": -4.5, "med"#,
        ]
        try (lines.joined(separator: "\n")).write(toFile: dir + "/log.jsonl", atomically: true, encoding: .utf8)
        var log = RunLog(command: "evolve", status: .complete)
        log.inputs = [.init(role: "source", name: "a", path: fixture("merge/models/a-f32"), identity: nil),
                      .init(role: "source", name: "b", path: fixture("merge/models/b-f32"), identity: nil)]
        log.measurements = .object([("search", .string("evolver"))])
        log.logs = [("generations", "log.jsonl")]
        try log.write(to: dir)

        let report = try Report.build(runDirectory: dir)
        let e = try XCTUnwrap(report.json["evolve"])
        XCTAssertEqual(e["generations"]?.array?.count, 2)
        XCTAssertEqual(e["generations"]?.array?.last?["best"]?.double, -4.5)
        XCTAssertEqual(e["lineage"]?.array?.count, 2)
        let sources = try XCTUnwrap(e["sources"]?.array)
        let da = try XCTUnwrap(sources[0]["relative_distance"]?.double), db = try XCTUnwrap(sources[1]["relative_distance"]?.double)
        XCTAssertLessThan(da, db, "the winner is 0.8 a + 0.2 b")
        // ‖w − a‖/‖a‖ over the model = 0.2‖b − a‖/‖a‖
        var diff = 0.0, norm = 0.0
        for name in a.names {
            let x = try a.floats(name), y = try b.floats(name)
            for (u, v) in zip(x, y) { diff += pow(0.2 * Double(v - u), 2); norm += Double(u) * Double(u) }
        }
        XCTAssertEqual(da, (diff / norm).squareRoot(), accuracy: 1e-5)
        XCTAssertTrue(report.page.summary.contains { $0.contains("closest to a-f32") }, "\(report.page.summary)")
        XCTAssertTrue(report.page.summary.contains { $0.contains("from -5 to -4.5") }, "\(report.page.summary)")
        XCTAssertTrue(report.page.warnings.isEmpty, "\(report.page.warnings)")
        let html = report.page.html()
        try report.write(html: dir + "/report.html")
        XCTAssertEqual(report.page.plotCount, 2)
        XCTAssertFalse(html.contains("data-points=\"0\""))
        try renderInChromium(dir + "/report.html", plots: report.page.plotCount)

        // Interrupted: no run.json, a state.json — a partial report that says so.
        try FileManager.default.removeItem(atPath: dir + "/run.json")
        try #"{"format": "fusekit-evolve-state", "search": "evolver", "sources": []}"#.write(toFile: dir + "/state.json", atomically: true, encoding: .utf8)
        let partial = try Report.build(runDirectory: dir)
        XCTAssertTrue(partial.page.warnings.contains { $0.contains("did not finish") }, "\(partial.page.warnings)")
        XCTAssertEqual(partial.json["evolve"]?["generations"]?.array?.count, 2)
    }
}

final class TrainingReportTests: XCTestCase {
    func testTransferRunReport() throws {
        let dir = NSTemporaryDirectory() + "fusekit-transfer-report-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let metrics = (1...5).map { #"{"step": \#($0), "loss": \#(3.0 - 0.4 * Double($0)), "lr": 0.001, "grad_norm": 1.0, "tokens_per_s": 900.5}"# }
            + [#"{"step": 6, "loss": 0.5, "lr": 0.0005, "grad_norm": 1.0, "tokens_per_s": 901, "eval_loss": 0.9}"#, #"{"step": 7, "lo"#]
        try metrics.joined(separator: "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        var log = RunLog(command: "transfer", status: .complete)
        log.measurements = .object([("layer_map", .array([0, 0, 1, 2].map { .int($0) })), ("modules", .int(28)),
                                    ("step0_loss_difference", .double(2e-7)), ("truncation_energy_lost", .double(0.25))])
        log.logs = [("metrics", "metrics.jsonl")]
        try log.write(to: dir)
        let r = try Report.build(runDirectory: dir)
        XCTAssertEqual(r.json["training"]?["steps"]?.array?.count, 6)
        XCTAssertEqual(r.json["training"]?["loss"]?.array?.first?.double ?? 0, 2.6, accuracy: 1e-12)
        XCTAssertTrue(r.page.summary.contains { $0.contains("teacher layers 0, 0, 1, 2") }, "\(r.page.summary)")
        XCTAssertTrue(r.page.summary.contains { $0.contains("from 2.6 to 0.5") && $0.contains("held-out loss from 0.9 to 0.9") }, "\(r.page.summary)")
        XCTAssertTrue(r.page.summary.contains { $0.contains("75.0%") })
        XCTAssertTrue(r.page.warnings.isEmpty, "\(r.page.warnings)")
        try r.write(html: dir + "/report.html")
        try renderInChromium(dir + "/report.html", plots: r.page.plotCount)
    }

    func testDistillRunReport() throws {
        let dir = NSTemporaryDirectory() + "fusekit-distill-report-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let metrics = (1...4).map { #"{"step": \#($0), "loss": \#(2.0 / Double($0)), "lr": 0.001, "grad_norm": 1.0, "tokens_per_s": 50, "ce": \#(2.2 / Double($0)), "soft": \#(0.2 / Double($0))}"# }
        try metrics.joined(separator: "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        var log = RunLog(command: "distill", status: .complete)
        log.measurements = .object([
            ("fusion", .string("min_ce")), ("lambda", .double(0.9)), ("sequences", .int(128)),
            ("alignment_coverage", .object([("gemma", .double(0.849))])), ("one_hot_fraction", .object([("gemma", .double(0.151))])),
            ("min_ce_chosen", .object([("", .object([("target", .int(121)), ("gemma", .int(7))]))])),
            ("mean_weight", .object([("", .object([("target", .double(0.5)), ("gemma", .double(0.5))]))])),
            ("training", .object([("target", .object([("steps", .int(4)), ("final_loss", .double(0.5)), ("final_ce", .double(0.55)), ("final_soft", .double(0.05))]))])),
            ("stages", .array([
                .object([("index", .int(0)), ("kind", .string("initial")), ("sources", .array([.string("gemma")])), ("added", .array([])),
                         ("continued_from_step", .null), ("last_step", .int(2)), ("status", .string("complete"))]),
                .object([("index", .int(1)), ("kind", .string("add_source")), ("sources", .array([.string("gemma"), .string("qwen")])),
                         ("added", .array([.object([("name", .string("qwen")), ("model", .string("/m/qwen.gguf"))])])),
                         ("continued_from_step", .int(2)), ("last_step", .int(4)), ("status", .string("complete"))]),
            ])),
            ("domain_perplexity", .object([("domain_tokens", .int(4096)), ("domains", .array([
                .object([("name", .string("python3.11-doc")), ("path", .string("/c/held_out/python3.11-doc.txt")), ("tokens", .int(3000)),
                         ("perplexity", .object([("before", .double(6.0)), ("after", .double(5.46))]))]),
                .object([("name", .string("manpages-dev")), ("path", .string("/c/held_out/manpages-dev.txt")), ("tokens", .int(1000)),
                         ("perplexity", .object([("before", .double(5.0)), ("after", .double(4.25))]))]),
            ]))])),
        ])
        log.logs = [("metrics", "metrics.jsonl"), ("distill", "distill.json")]
        try log.write(to: dir)
        let r = try Report.build(runDirectory: dir)
        let summary = r.page.summary.joined(separator: "\n")
        XCTAssertTrue(summary.contains("84.9% of target positions from gemma"), summary)
        XCTAssertTrue(summary.contains("MinCE chose target for 94.5% of sequences"), summary)
        XCTAssertTrue(summary.contains("above 80%"), summary)
        XCTAssertTrue(summary.contains("final loss 0.5 (ce 0.55, soft 0.05)"), summary)
        XCTAssertEqual(r.json["distill"]?["curves"]?["metrics"]?["soft"]?.array?.count, 4)
        // Per-domain perplexity: python −9%, manpages-dev −15%; overall exp((3000·ln 6 + 1000·ln 5)/4000) → exp((3000·ln 5.46 + 1000·ln 4.25)/4000).
        let before = Foundation.exp((3000 * Foundation.log(6.0) + 1000 * Foundation.log(5.0)) / 4000)
        let after = Foundation.exp((3000 * Foundation.log(5.46) + 1000 * Foundation.log(4.25)) / 4000)
        let sentence = "Held-out perplexity fell from \(String(format: "%.3g", before)) to \(String(format: "%.3g", after)) (−\(String(format: "%.0f", (1 - after / before) * 100))%); most on manpages-dev (−15%), least on python3.11-doc (−9%)."
        XCTAssertTrue(summary.contains(sentence), "expected \(sentence) in\n\(summary)")
        XCTAssertEqual(r.json["distill"]?["domain_perplexity"]?["overall"]?["after"]?.double ?? 0, after, accuracy: 1e-9)
        XCTAssertEqual(r.json["distill"]?["domain_perplexity"]?["final"]?.string, "after")
        XCTAssertTrue(summary.contains("Stage 1 added qwen to the finished run and trained on from the checkpoint of step 2 to step 4."), summary)
        let html = r.page.html()
        XCTAssertTrue(html.contains("Held-out perplexity per domain") && html.contains("<td>manpages-dev</td>") && html.contains("<td>−15%</td>"))
        XCTAssertTrue(html.contains("held-out perplexity per domain</title>"), "the bar chart is on the page")
        XCTAssertTrue(html.contains("Stages of the run"))
        XCTAssertTrue(r.page.warnings.isEmpty, "\(r.page.warnings)")
        try r.write(html: dir + "/report.html")
        try renderInChromium(dir + "/report.html", plots: r.page.plotCount)
    }
}
