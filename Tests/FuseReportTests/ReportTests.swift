import Foundation
import FuseIO
import FuseMerge
@testable import FuseReport
import XCTest

final class ReportTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = NSTemporaryDirectory() + "fusekit-report-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var h = SHA256()
        for _ in 0..<1000 { h.update([UInt8](repeating: UInt8(ascii: "a"), count: 1000)) }
        XCTAssertEqual(h.finalize(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testRunLogRoundTrip() throws {
        var log = RunLog(command: "merge", status: .complete)
        log.inputs = [.init(role: "base", name: "m", path: "/x/m", identity: "abc")]
        log.config = ("mergekit-yaml", "merge_method: linear\n")
        log.timings = [("total_seconds", 1.5)]
        log.measurements = .object([("tensors", .int(3))])
        log.logs = [("generations", "log.jsonl")]
        try log.write(to: dir)
        let back = try RunLog.read(from: dir)
        XCTAssertEqual(back.command, "merge")
        XCTAssertEqual(back.status, .complete)
        XCTAssertEqual(back.inputs, log.inputs)
        XCTAssertEqual(back.config?.text, "merge_method: linear\n")
        XCTAssertEqual(back.timings.first?.1, 1.5)
        XCTAssertEqual(back.measurements["tensors"]?.int, 3)
        XCTAssertEqual(back.logs.first?.1, "log.jsonl")
        XCTAssertEqual(back.version, RunLog.currentVersion)
        XCTAssertTrue(back.unknownKeys.isEmpty)
    }

    func testBadRunLogs() throws {
        XCTAssertThrowsError(try Report.build(runDirectory: dir)) { e in
            XCTAssertTrue("\(e)".contains("no run.json"), "\(e)")
        }
        try "{\"schema\": \"wandb\", \"version\": 1}".write(toFile: dir + "/run.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Report.build(runDirectory: dir)) { e in
            XCTAssertTrue("\(e)".contains("not a FuseKit run log") && "\(e)".contains("wandb"), "\(e)")
        }
        try "{\"schema\": \"fusekit-run\", \"version\": 1, \"comm".write(toFile: dir + "/run.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Report.build(runDirectory: dir)) { e in
            XCTAssertTrue("\(e)".contains("not valid JSON"), "\(e)")
        }
        // A newer version and an interrupted run still give a (partial) report with warnings.
        try """
        {"schema": "fusekit-run", "version": 7, "command": "evolve-v9", "status": "running", "hologram": {}}
        """.write(toFile: dir + "/run.json", atomically: true, encoding: .utf8)
        let r = try Report.build(runDirectory: dir)
        let w = r.page.warnings.joined(separator: "\n")
        XCTAssertTrue(w.contains("version 7"), w)
        XCTAssertTrue(w.contains("hologram"), w)
        XCTAssertTrue(w.contains("did not finish"), w)
        XCTAssertTrue(w.contains("no analysis for 'evolve-v9'"), w)
        XCTAssertTrue(r.page.html().contains("<section>"))
    }

    /// A merge run whose inputs moved away: a partial report that says so.
    func testMissingInputsGivePartialReport() throws {
        var log = RunLog(command: "merge", status: .complete)
        log.config = ("mergekit-yaml", "merge_method: linear\nmodels:\n  - model: /nonexistent/a\n    parameters: {weight: 1}\n")
        try log.write(to: dir)
        let r = try Report.build(runDirectory: dir)
        XCTAssertTrue(r.page.warnings.contains { $0.contains("could not be analysed") && $0.contains("/nonexistent/a") }, "\(r.page.warnings)")
    }

    /// A full merge run through the CLI's path: merge, run.json, report page with every plot
    /// holding data; rendered in headless Chromium when it is installed.
    func testMergeReportPage() throws {
        let text = try String(contentsOfFile: fixture("merge/cases/ties-bf16/config.yml"), encoding: .utf8)
        let out = dir + "/ties"
        var options = MergeRunOptions()
        let cwd = fixture("merge")
        options.finishOutput = { folder, summary in
            var log = RunLog(command: "merge", status: .complete)
            log.config = ("mergekit-yaml", text)
            log.workingDirectory = cwd
            log.timings = [("total_seconds", summary.seconds)]
            try log.write(to: folder)
        }
        _ = try runMerge(config: try MergeConfig.parse(yaml: text), outPath: out, options: options, workingDirectory: cwd)
        let report = try Report.build(runDirectory: out)
        XCTAssertTrue(report.page.warnings.isEmpty, "\(report.page.warnings)")
        XCTAssertGreaterThanOrEqual(report.page.plotCount, 4)
        let html = report.page.html()
        let counts = html.components(separatedBy: "data-points=\"").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
        XCTAssertEqual(counts.count, report.page.plotCount)
        XCTAssertTrue(counts.allSatisfy { $0 > 0 }, "\(counts)")
        XCTAssertFalse(html.contains("http://") || html.contains("https://") || html.contains("src="), "the page must not load anything")
        XCTAssertTrue(report.page.summary.contains { $0.contains("ties merge of 3") })
        try report.write(html: out + "/report.html")
        try renderInChromium(out + "/report.html", plots: report.page.plotCount)

        let compare = try Report.compare(fixture("merge/models/ua-bf16"), out)
        try compare.write(html: dir + "/compare.html")
        try renderInChromium(dir + "/compare.html", plots: compare.page.plotCount)
    }
}

/// Loads the page in headless Chromium: no console errors, and the page's own check finds data
/// in every plot. Skipped where no Chromium is installed (`make test` installs it when root).
func renderInChromium(_ page: String, plots: Int) throws {
    let candidates = ["/usr/bin/chromium-headless-shell", "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/headless_shell"]
    guard let browser = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw XCTSkip("no Chromium installed (apt-get install chromium-headless-shell)")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: browser)
    p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", "--dump-dom", "file://" + page]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let dom = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    XCTAssertTrue(dom.contains("data-check=\"ok:\(plots)\""), "page self-check: \(dom.components(separatedBy: "data-check=").dropFirst().first?.prefix(40) ?? "absent")")
    let consoleErrors = log.split(separator: "\n").filter { $0.contains("CONSOLE") && ($0.contains("ERROR") || $0.contains("Uncaught")) }
    XCTAssertTrue(consoleErrors.isEmpty, consoleErrors.joined(separator: "\n"))
}
