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
    stageSections(m["stages"]?.array ?? [], into: &page)
    let perplexity = domainSections(m["domain_perplexity"], into: &page)
    json.append(("distill", .object([("measurements", m), ("curves", .object(curves))] + (perplexity.map { [("domain_perplexity", $0)] } ?? []))))
}

/// The run's lineage when sources were added to it (`fusekit distill --add-source`): one sentence per
/// added stage and a table of every stage.
func stageSections(_ stages: [JSON], into page: inout ReportPage) {
    guard stages.count > 1 else { return }
    for s in stages.dropFirst() {
        let added = (s["added"]?.array ?? []).compactMap { $0["name"]?.string }
        var line = "Stage \(s["index"]?.int ?? 0) added \(added.joined(separator: ", ")) to the finished run"
        if let from = s["continued_from_step"]?.int {
            line += " and trained on from the checkpoint of step \(from)" + (s["last_step"]?.int.map { " to step \($0)" } ?? "")
        }
        page.summary.append(line + (s["status"]?.string == "complete" ? "." : " (not finished)."))
    }
    let rows = stages.map { s -> [String] in
        [String(s["index"]?.int ?? 0), s["kind"]?.string ?? "?", (s["sources"]?.array ?? []).compactMap(\.string).joined(separator: ", "),
         (s["added"]?.array ?? []).compactMap { $0["name"]?.string }.joined(separator: ", "),
         s["continued_from_step"]?.int.map(String.init) ?? "—", s["last_step"]?.int.map(String.init) ?? "—", s["status"]?.string ?? "?"]
    }
    page.sections.append(.init(
        title: "Stages of the run",
        intro: "Each --add-source is a stage: only the new source is captured, the fused targets are rebuilt over all sources, and training continues from the previous stage's last checkpoint (weights, Adam state, step count) with the lr schedule restarted. The loss curves above run across the stages.",
        body: htmlTable(header: ["stage", "kind", "sources", "added", "continued from step", "last step", "status"], rows: rows)))
}

/// Held-out perplexity per domain before and after training (run.json `domain_perplexity`): a summary
/// sentence, a table and a grouped bar chart. Returns the numbers for --json, with the token-weighted
/// overall perplexity per label (exp of the mean NLL over all scored tokens).
func domainSections(_ measured: JSON?, into page: inout ReportPage) -> JSON? {
    guard let list = measured?["domains"]?.array, !list.isEmpty else { return nil }
    struct Domain { var name: String; var tokens: Int; var values: [(String, Double)] }
    let domains = list.map { d in
        Domain(name: d["name"]?.string ?? "?", tokens: d["tokens"]?.int ?? 0,
               values: (d["perplexity"]?.object ?? []).compactMap { k, v in v.double.map { (k, $0) } })
    }
    var labels: [String] = []
    for d in domains { for (l, _) in d.values where !labels.contains(l) { labels.append(l) } }
    func value(_ d: Domain, _ label: String) -> Double? { d.values.first { $0.0 == label }?.1 }
    func overall(_ label: String) -> Double? {
        var nll = 0.0, tokens = 0
        for d in domains {
            guard let p = value(d, label), p > 0 else { return nil }
            nll += Double(d.tokens) * log(p); tokens += d.tokens
        }
        return tokens > 0 ? exp(nll / Double(tokens)) : nil
    }
    // The final model: the merge (FuseChat), else the one "after" (FuseLLM), else the last measured.
    let final = labels.contains("after merge") ? "after merge" : labels.contains("after") ? "after" : labels.last { $0 != "before" }
    func change(_ from: Double, _ to: Double) -> String {
        let c = (to / from - 1) * 100
        return String(format: "%@%.0f%%", c < 0 ? "−" : "+", abs(c))
    }
    if let final, let b = overall("before"), let a = overall(final) {
        var sentence = "Held-out perplexity \(a < b ? "fell" : "rose") from \(SVG.fmt(b, digits: 3)) to \(SVG.fmt(a, digits: 3)) (\(change(b, a)))"
        let changes = domains.compactMap { d -> (String, Double)? in
            guard let x = value(d, "before"), let y = value(d, final), x > 0 else { return nil }
            return (d.name, y / x - 1)
        }
        if changes.count > 1 {
            let sorted = changes.sorted { $0.1 < $1.1 }   // largest fall first
            let (most, least) = a < b ? (sorted[0], sorted[sorted.count - 1]) : (sorted[sorted.count - 1], sorted[0])
            sentence += "; most on \(most.0) (\(change(1, 1 + most.1))), least on \(least.0) (\(change(1, 1 + least.1)))"
        }
        page.summary.append(sentence + (final == "after" ? "." : " (\(final))."))
    }
    func cell(_ v: Double?) -> String { v.map { SVG.fmt($0, digits: 4) } ?? "—" }
    func changeCell(_ before: Double?, _ after: Double?) -> String {
        guard let before, let after else { return "—" }
        return change(before, after)
    }
    var rows: [[String]] = []
    for d in domains {
        let values: [String] = labels.map { cell(value(d, $0)) }
        let last: String = changeCell(value(d, "before"), final.flatMap { value(d, $0) })
        rows.append([d.name, String(d.tokens)] + values + [last])
    }
    if domains.count > 1 {
        let total = domains.reduce(0) { $0 + $1.tokens }
        let values: [String] = labels.map { cell(overall($0)) }
        rows.append(["all (token-weighted)", String(total)] + values + [changeCell(overall("before"), final.flatMap(overall))])
    }
    let budget = measured?["domain_tokens"]?.int
    page.sections.append(.init(
        title: "Held-out perplexity per domain",
        intro: "Token perplexity of the target before training and of the trained model after, on the first \(budget.map(String.init) ?? "N") tokens of each domain's held-out text (FuseEval's perplexity, as `fusekit eval --perplexity`). Lower is better.",
        body: htmlTable(header: ["domain", "tokens"] + labels + ["change"], rows: rows)
            + SVG.bars(categories: domains.map(\.name), series: labels.map { l -> (name: String, values: [Double?]) in (l, domains.map { value($0, l) }) },
                       yLabel: "perplexity", caption: "held-out perplexity per domain")))
    let overallPairs: [(String, JSON)] = labels.compactMap { l in overall(l).map { (l, JSON.double($0)) } }
    return .object([
        ("labels", .array(labels.map { JSON.string($0) })), ("final", final.map { JSON.string($0) } ?? .null),
        ("overall", .object(overallPairs)), ("domains", .array(list)),
    ])
}
