import Foundation
import FuseIO

/// What the report shows of a distill run (FuseLLM / FuseChat): alignment coverage per source, which
/// candidate MinCE chose how often (or AvgCE's mean weights), and the loss curves per component of
/// every training (run.json measurements and the metrics logs it names).
func distillSections(_ log: RunLog, directory dir: String, into page: inout ReportPage, json: inout [(String, JSON)]) {
    let m = log.measurements
    let fusion = m["fusion"]?.string ?? "?"
    let coverage = (m["alignment_coverage"]?.object ?? []).compactMap { k, v in v.double.map { (k, $0) } }
    if !coverage.isEmpty {
        page.summary.append("Fusion: \(fusion) over \(m["sequences"]?.int ?? 0) corpus sequences, λ = \(SVG.fmt(m["lambda"]?.double ?? .nan)). "
                            + "Aligned distributions reached " + coverage.map { "\(percent($0.1)) of target positions from \($0.0)" }.joined(separator: ", ")
                            + "; the rest fall back to the gold token.")
        let oneHot = Dictionary(uniqueKeysWithValues: (m["one_hot_fraction"]?.object ?? []).compactMap { k, v in v.double.map { (k, $0) } })
        page.sections.append(.init(
            title: "How well the tokenizers line up",
            intro: "Share of the target's positions that received an aligned distribution from each source (token alignment by edit-distance DTW, vocabulary mapping by exact match then minimum edit distance).",
            body: SVG.heatmap(rowLabels: coverage.map(\.0), columnLabels: ["aligned", "one-hot fallback"],
                              values: coverage.map { [$0.1, oneHot[$0.0]] }, diverging: false, caption: "alignment coverage")))
    }
    for (set, choices) in m["min_ce_chosen"]?.object ?? [] {
        let counts = (choices.object ?? []).compactMap { k, v in v.int.map { (k, $0) } }
        let total = counts.reduce(0) { $0 + $1.1 }
        guard total > 0 else { continue }
        let top = counts.max { $0.1 < $1.1 }!
        page.summary.append("MinCE\(set.isEmpty ? "" : " (\(set))") chose \(top.0) for \(percent(Double(top.1) / Double(total))) of sequences"
                            + (Double(top.1) / Double(total) > 0.8 && top.0.lowercased().contains("target") ? " — above 80% the target mostly teaches itself, so little source knowledge flows." : "."))
        let weights = Dictionary(uniqueKeysWithValues: ((m["mean_weight"]?[set])?.object ?? []).compactMap { k, v in v.double.map { (k, $0) } })
        page.sections.append(.init(
            title: "Which source taught\(set.isEmpty ? "" : " (\(set))")",
            intro: "How often MinCE picked each candidate's distribution (the one with the lowest cross-entropy against the gold tokens), and the mean fusion weight per candidate.",
            body: SVG.heatmap(rowLabels: counts.map(\.0), columnLabels: ["share chosen", "mean weight"],
                              values: counts.map { [Double($0.1) / Double(total), weights[$0.0]] }, diverging: false, caption: "MinCE choices")))
    }
    for (name, t) in m["training"]?.object ?? [] {
        if let l = t["final_loss"]?.double {
            let parts = (t.object ?? []).filter { $0.0.hasPrefix("final_") && $0.0 != "final_loss" }.compactMap { k, v in v.double.map { "\(k.dropFirst(6)) \(SVG.fmt($0, digits: 4))" } }
            page.summary.append("Training\(name.isEmpty ? "" : " \(name)"): \(t["steps"]?.int ?? 0) steps, final loss \(SVG.fmt(l, digits: 4))" + (parts.isEmpty ? "." : " (" + parts.joined(separator: ", ") + ")."))
        }
    }
    var curves: [(String, JSON)] = []
    for (label, file) in log.logs where label.hasPrefix("metrics") {
        guard let c = TrainingCurves.read(dir + "/" + file) else { page.warnings.append("\(dir)/\(file): no training metrics to plot"); continue }
        var sub = ReportPage(title: "", subtitle: "")
        trainingSections(c, into: &sub, what: label == "metrics" ? "Its training" : "Training " + label.dropFirst("metrics ".count))
        page.summary += sub.summary
        page.sections += sub.sections.map { s in
            var s = s
            if label != "metrics" { s.title += " — " + label.dropFirst("metrics ".count) }
            return s
        }
        curves.append((label, c.json))
    }
    if let merge = m["merge"], let method = merge["method"]?.string {
        page.summary.append("FuseChat: the pairwise-trained targets were merged with \(method).")
    }
    json.append(("distill", .object([("measurements", m), ("curves", .object(curves))])))
}
