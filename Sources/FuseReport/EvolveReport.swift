import Foundation
import FuseIO

/// What the report shows of an evolve run: its per-generation log (docs/formats.md "Evolve logs") and
/// how close the winner is to each source.
public struct EvolveAnalysis: Sendable {
    public struct Generation: Sendable {
        public var generation: Int
        public var best: Double
        public var median: Double?
        public var heldOut: Double?
        public var sigma: Double?
        public var accepted: Int?
        public var trials: Int?
    }
    public var search: String
    public var generations: [Generation]
    /// The winner's lineage, oldest first, as the log words it.
    public var lineage: [String]
    /// Source paths (run.json inputs with role `source`) and, per layer row, sums against the winner.
    public var sources: [String]
    public var survival: MergeAnalysis?
    public var warnings: [String]

    /// Reads OUT_DIR/log.jsonl (a torn last line is skipped) and measures OUT_DIR/model against the
    /// sources when both exist.
    public static func analyze(runDirectory dir: String, log: RunLog, progress: ((Int, Int, String) -> Void)? = nil) -> EvolveAnalysis {
        var warnings: [String] = []
        var generations: [Generation] = []
        var lineage: [String] = []
        var search = log.measurements["search"]?.string ?? "unknown"
        let logPath = dir + "/" + (log.logs.first { $0.0 == "generations" }?.1 ?? "log.jsonl")
        if let text = try? String(contentsOfFile: logPath, encoding: .utf8) {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
            for (i, line) in lines.enumerated() {
                guard let j = try? JSON.parse(String(line)), let g = j["generation"]?.int, let best = j["best"]?.double else {
                    if i < lines.count - 1 { warnings.append("\(logPath): line \(i + 1) is not a generation record; skipped") }
                    continue
                }
                generations.append(Generation(generation: g, best: best, median: j["median"]?.double, heldOut: j["held_out"]?.double,
                                              sigma: j["sigma"]?.double, accepted: j["accepted"]?.int, trials: j["trials"]?.int))
                if let s = j["search"]?.string { search = s }
                if let l = j["lineage"]?.array { lineage = l.map { $0.string ?? $0.serialized() } }
            }
        } else {
            warnings.append("\(logPath): missing or unreadable; no fitness curves")
        }
        let sources = log.inputs.filter { $0.role == "source" }.map(\.path)
        var survival: MergeAnalysis?
        let model = dir + "/model"
        if FileManager.default.fileExists(atPath: model + "/config.json"), sources.count >= 2 {
            do { survival = try measureSurvival(model: model, sources: sources, progress: progress) } catch {
                warnings.append("the winner could not be compared with its sources: \(error)")
            }
        } else if log.status == .complete {
            warnings.append("\(model): no finished model to compare with the sources")
        }
        return EvolveAnalysis(search: search, generations: generations, lineage: lineage, sources: sources, survival: survival, warnings: warnings)
    }

    /// Every winner tensor against the same tensor of each source, with the sources' mean as reference.
    static func measureSurvival(model: String, sources: [String], progress: ((Int, Int, String) -> Void)?) throws -> MergeAnalysis {
        let start = Date()
        let merged = try WeightStore(path: model)
        let stores = try sources.map { try WeightStore(path: $0) }
        let reader = RowReader()
        var tensors: [TensorAnalysis] = []
        for (n, name) in merged.names.enumerated() {
            progress?(n, merged.names.count, name)
            var t = TensorAnalysis(name: name, layer: layerIndex(of: name), sources: Array(stores.indices))
            guard let info = merged.info(name), stores.allSatisfy({ $0.info(name)?.elementCount == info.elementCount }) else {
                t.skipped = "not in every source with the same shape"
                tensors.append(t); continue
            }
            let inputs = try stores.map { try reader.rows($0, name) }
            t.sums = try MergeAnalysis.measure(inputs: inputs, sourceSlots: Array(stores.indices), base: nil, merged: try reader.rows(merged, name))
            tensors.append(t)
        }
        progress?(merged.names.count, merged.names.count, "")
        return MergeAnalysis(method: "evolved", models: sources, base: nil, reference: "mean of sources", tensors: tensors,
                             seconds: Date().timeIntervalSince(start))
    }

    public var json: JSON {
        func opt(_ v: Double?) -> JSON { v.map { .double($0) } ?? .null }
        var pairs: [(String, JSON)] = [
            ("search", .string(search)),
            ("generations", .array(generations.map { g in
                .object([("generation", .int(g.generation)), ("best", .double(g.best)), ("median", opt(g.median)),
                         ("held_out", opt(g.heldOut)), ("sigma", opt(g.sigma))])
            })),
            ("lineage", .array(lineage.map { .string($0) })),
        ]
        if let s = survival {
            let all = s.totals { _ in true }
            pairs.append(("sources", .array(s.models.indices.map { m in
                .object([("model", .string(s.models[m])), ("relative_distance", opt(all.relativeDistance(m))),
                         ("cosine_to_winner_change", opt(all.mergedCosine(m)))])
            })))
        }
        return .object(pairs)
    }
}

func evolveSections(_ e: EvolveAnalysis, into page: inout ReportPage) {
    page.warnings += e.warnings
    if let first = e.generations.first, let last = e.generations.last {
        let gain = last.best - first.best
        page.summary.append("\(e.search.first.map { "aeiou".contains($0) } == true ? "An" : "A") \(e.search) search over \(e.sources.count) source(s): \(e.generations.count) logged generation(s); the dev fitness went from \(SVG.fmt(first.best, digits: 4)) to \(SVG.fmt(last.best, digits: 4)) (\(gain >= 0 ? "+" : "")\(SVG.fmt(gain, digits: 3))).")
        if let h0 = first.heldOut, let h1 = last.heldOut {
            page.summary.append("Held-out fitness (logged, never used to choose) moved from \(SVG.fmt(h0, digits: 4)) to \(SVG.fmt(h1, digits: 4))" + (h1 < h0 && last.best > first.best ? " — the dev gain did not carry over; watch for overfitting the dev set." : "."))
        }
        let stalled = e.generations.reversed().prefix { $0.best == last.best }.count
        if stalled > 1 { page.summary.append("The best score has not changed for the last \(stalled - 1) generation(s).") }
        let x = e.generations.map { Double($0.generation) }
        var series: [(name: String, values: [Double?])] = [("best (dev)", e.generations.map { $0.best })]
        if e.generations.contains(where: { $0.median != nil }) { series.append(("median (dev)", e.generations.map { $0.median })) }
        if e.generations.contains(where: { $0.heldOut != nil }) { series.append(("held-out", e.generations.map { $0.heldOut })) }
        page.sections.append(.init(title: "Did the search converge?",
                                   intro: "Fitness per generation (higher is better). The output is the best-on-dev model; held-out scores are only logged.",
                                   body: SVG.lines(x: x, series: series, xLabel: "generation", yLabel: "fitness", caption: "fitness per generation",
                                                   xTicks: e.generations.map { String($0.generation) })))
        if e.generations.contains(where: { $0.sigma != nil }) {
            page.sections.append(.init(title: "CMA-ES step size", intro: "σ per generation: it shrinks as the search closes in.",
                                       body: SVG.lines(x: x, series: [("sigma", e.generations.map { $0.sigma })], xLabel: "generation", yLabel: "σ",
                                                       caption: "sigma per generation", logY: true)))
        }
    } else {
        page.warnings.append("The run logged no generation yet.")
    }
    if !e.lineage.isEmpty {
        page.sections.append(.init(title: "How the winner came to be", intro: "The winner's lineage, oldest first, as the run logged it.",
                                   body: "<ol>" + e.lineage.map { "<li><code>\(SVG.escape($0))</code></li>" }.joined() + "</ol>"))
    }
    if let s = e.survival {
        let names = shortNames(s.models)
        let all = s.totals { _ in true }
        let near = s.models.indices.compactMap { m in all.relativeDistance(m).map { (m, $0) } }.sorted { $0.1 < $1.1 }
        if let top = near.first {
            page.summary.append("The winner is closest to \(names[top.0]) (‖winner − source‖ / ‖source‖ = \(SVG.fmt(top.1)))"
                                + (near.count > 1 ? " and farthest from \(names[near.last!.0]) (\(SVG.fmt(near.last!.1)))." : "."))
        }
        let rows = s.layerRows
        let pull = rows.map { r in let t = s.totals(where: r.filter); return s.models.indices.map { t.mergedCosine($0) } }
        page.sections.append(.init(
            title: "How much of each source survives in the winner",
            intro: "Per layer, the cosine between the winner's departure from the sources' mean and each source's own departure from it: high means that layer of the winner leans toward that source.",
            body: SVG.heatmap(rowLabels: rows.map(\.label), columnLabels: names, values: pull, diverging: true, caption: "winner vs sources per layer")))
    }
}
