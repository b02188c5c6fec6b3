import Foundation
import FuseIO

/// A finished report: the page and the same numbers as JSON (`--json`).
public struct Report {
    public var page: ReportPage
    public var json: JSON

    /// Builds the report of a run folder. Problems that still leave something to show (an
    /// unfinished run, a newer schema, inputs that moved) become warnings on a partial report;
    /// only a missing or foreign run.json is an error.
    public static func build(runDirectory dir: String, progress: ((Int, Int, String) -> Void)? = nil) throws -> Report {
        var log: RunLog
        do { log = try RunLog.read(from: dir) } catch ReportError.missingRunLog(let d) {
            // An evolve run writes run.json at the end; its state.json shows an interrupted one.
            guard let state = try? readJSONFile(dir + "/state.json"), state["format"]?.string == "fusekit-evolve-state" else {
                throw ReportError.missingRunLog(directory: d)
            }
            log = RunLog(command: "evolve", status: .running)
            log.inputs = (state["sources"]?.array ?? []).compactMap(\.string).map { RunLog.Input(role: "source", name: $0, path: $0, identity: nil) }
            log.measurements = .object([("search", state["search"] ?? .null)])
            log.logs = [("generations", "log.jsonl")]
        }
        var page = ReportPage(title: "FuseKit \(log.command) report",
                              subtitle: "\((dir as NSString).standardizingPath) · \(log.status.rawValue) · made \(isoDate(log.started))")
        var json: [(String, JSON)] = [("run", log.json)]
        if log.version > RunLog.currentVersion {
            page.warnings.append("run.json has schema version \(log.version), newer than this FuseKit understands (\(RunLog.currentVersion)); the report shows the fields it knows. Update fusekit for the full report.")
        }
        if !log.unknownKeys.isEmpty {
            page.warnings.append("run.json has fields this FuseKit does not know: \(log.unknownKeys.joined(separator: ", ")).")
        }
        switch log.status {
        case .running: page.warnings.append("This run did not finish (status 'running' — interrupted or still going): what follows covers only what it wrote.")
        case .failed: page.warnings.append("This run failed; what follows covers only what it wrote.")
        case .complete: break
        }
        switch log.command {
        case "merge":
            do {
                let analysis = try MergeAnalysis.analyze(runDirectory: dir, log: log, progress: progress)
                mergeSections(analysis, into: &page)
                json.append(("merge", analysis.json))
            } catch {
                page.warnings.append("The merge could not be analysed: \(error)")
            }
        case "evolve":
            let analysis = EvolveAnalysis.analyze(runDirectory: dir, log: log, progress: progress)
            evolveSections(analysis, into: &page)
            json.append(("evolve", analysis.json))
        case "distill":
            distillSections(log, directory: dir, into: &page, json: &json)
        case "train", "transfer":
            if log.command == "transfer" { transferSections(log, into: &page) }
            let path = dir + "/" + (log.logs.first { $0.0 == "metrics" }?.1 ?? "metrics.jsonl")
            if let curves = TrainingCurves.read(path) {
                trainingSections(curves, into: &page, what: log.command == "train" ? "Training" : "Its training")
                json.append(("training", curves.json))
            } else {
                page.warnings.append("\(path): no training metrics to plot")
            }
        default:
            page.warnings.append("This FuseKit has no analysis for '\(log.command)' runs yet; showing the run's record only.")
        }
        page.sections.append(runSection(log))
        return Report(page: page, json: .object(json))
    }

    /// `--compare A B`.
    public static func compare(_ a: String, _ b: String, progress: ((Int, Int, String) -> Void)? = nil) throws -> Report {
        let c = try ModelComparison.compare(a, b, progress: progress)
        var page = ReportPage(title: "FuseKit comparison", subtitle: "\(a)  vs  \(b)")
        compareSections(c, into: &page)
        return Report(page: page, json: c.json)
    }

    /// Writes the HTML page atomically.
    public func write(html path: String) throws {
        try writeFileAtomically(path: path, contents: page.html())
    }
}

/// The record of the run itself: inputs with identities, timings, the config.
func runSection(_ log: RunLog) -> ReportPage.Section {
    var body = htmlTable(header: ["role", "name", "path", "identity (SHA-256)"],
                         rows: log.inputs.map { [$0.role, $0.name, $0.path, String(($0.identity ?? "n/a").prefix(16))] })
    if !log.timings.isEmpty {
        body += htmlTable(header: ["phase", "seconds"], rows: log.timings.map { [$0.0, String(format: "%.2f", $0.1)] })
    }
    body += "<p>Command: <code>\(SVG.escape(log.argv.joined(separator: " ")))</code><br>FuseKit \(SVG.escape(log.fusekitVersion)), started \(isoDate(log.started))"
        + (log.finished.map { ", finished \(isoDate($0))" } ?? "") + "</p>"
    if let c = log.config {
        body += "<details><summary>Configuration (\(SVG.escape(c.format)))</summary><pre>\(SVG.escape(c.text))</pre></details>"
    }
    return .init(title: "The run", intro: "What was run, on which inputs, and how long it took.", body: body)
}
