import Foundation
import FuseIO

/// Short display names for models: the last path component, made unique.
func shortNames(_ models: [String]) -> [String] {
    let last = models.map { ($0 as NSString).lastPathComponent.isEmpty ? $0 : ($0 as NSString).lastPathComponent }
    return last.enumerated().map { i, n in last.filter { $0 == n }.count > 1 ? "\(n) (\(i))" : n }
}

extension MergeAnalysis {
    /// Rows of the per-layer plots: "embed/other" for tensors outside layers, then each layer.
    var layerRows: [(label: String, filter: (TensorAnalysis) -> Bool)] {
        var rows: [(String, (TensorAnalysis) -> Bool)] = []
        if tensors.contains(where: { $0.layer == nil && $0.sums != nil }) { rows.append(("outside layers", { $0.layer == nil })) }
        for l in layers { rows.append(("layer \(l)", { $0.layer == l })) }
        return rows
    }

    /// Source models (not the base) that some tensor was measured against, in plan order.
    var sourceModels: [Int] {
        let used = Set(tensors.filter { $0.sums != nil }.flatMap(\.sources))
        return models.indices.filter { used.contains($0) && $0 != base }
    }

    public var json: JSON {
        let names = models
        let all = totals { _ in true }
        func opt(_ v: Double?) -> JSON { v.map { .double($0) } ?? .null }
        let perSource: [JSON] = sourceModels.map { m in
            .object([("model", .string(names[m])), ("task_vector_norm", opt(all.norm(m))),
                     ("merged_cosine", opt(all.mergedCosine(m))), ("relative_distance", opt(all.relativeDistance(m)))])
        }
        let pairs: [JSON] = sourceModels.flatMap { a in sourceModels.filter { $0 > a }.map { b in
            JSON.object([("a", .string(names[a])), ("b", .string(names[b])), ("cosine", opt(all.cosine(a, b)))])
        } }
        let layersJSON: [JSON] = layerRows.map { row in
            let t = totals(where: row.filter)
            return .object([("layer", .string(row.label)), ("conflict_rate", .double(t.conflictRate)),
                            ("kept_fraction", base != nil ? .double(t.keptFraction) : .null),
                            ("task_vector_norms", .array(sourceModels.map { opt(t.norm($0)) })),
                            ("merged_cosines", .array(sourceModels.map { opt(t.mergedCosine($0)) }))])
        }
        let tensorJSON: [JSON] = tensors.map { t in
            var p: [(String, JSON)] = [("name", .string(t.name)), ("layer", t.layer.map { .int($0) } ?? .null),
                                       ("sources", .array(t.sources.map { .string(names[$0]) }))]
            if let s = t.sums {
                p += [("elements", .int(s.elements)), ("task_vector_norms", .array(s.norms.map { .double($0) })),
                      ("cosines", .array(s.cosines.map { .array($0.map { .double($0) }) })),
                      ("conflict_rate", .double(s.conflictRate)), ("kept_fraction", base != nil ? .double(s.keptFraction) : .null),
                      ("merged_cosines", .array(s.mergedCosines.map { .double($0) })),
                      ("relative_distances", .array(s.relativeDistances.map { .double($0) }))]
            }
            if let c = t.copiedFrom { p.append(("copied_from", .object([("model", .string(names[c.model])), ("tensor", .string(c.tensor))]))) }
            if let why = t.skipped { p.append(("skipped", .string(why))) }
            return .object(p)
        }
        return .object([("method", .string(method)), ("models", .array(names.map { .string($0) })),
                        ("base", base.map { .string(names[$0]) } ?? .null), ("reference", .string(reference)),
                        ("conflict_rate", .double(all.conflictRate)), ("kept_fraction", base != nil ? .double(all.keptFraction) : .null),
                        ("sources", .array(perSource)), ("pairwise", .array(pairs)), ("layers", .array(layersJSON)),
                        ("tensors", .array(tensorJSON)), ("seconds", .double(seconds))])
    }
}

func mergeSections(_ a: MergeAnalysis, into page: inout ReportPage) {
    let names = shortNames(a.models)
    let sources = a.sourceModels
    let all = a.totals { _ in true }
    let measured = a.tensors.filter { $0.sums != nil }
    let copied = a.tensors.filter { $0.copiedFrom != nil }
    let parameters = measured.reduce(0) { $0 + ($1.sums?.elements ?? 0) }

    // Summary in words.
    var s: [String] = []
    let baseText = a.base.map { " on base \(names[$0])" } ?? ""
    if measured.isEmpty {
        let donors = Set(copied.compactMap { $0.copiedFrom?.model }).count
        s.append("A \(a.method) merge: all \(copied.count) tensors were copied whole from \(donors) model(s), nothing was combined.")
        var layerSource: [Int: (Int, String)] = [:]
        for t in copied { if let l = t.layer, let c = t.copiedFrom, layerSource[l] == nil { layerSource[l] = (c.model, c.tensor) } }
        let runs = provenanceRuns(layers: layerSource.keys.sorted(), layerSource: layerSource, names: names)
        if !runs.isEmpty {
            s.append("Output layers " + runs.map { "\($0[0]) come from \($0[1]) (its layers \($0[2]))" }.joined(separator: "; ") + ".")
        }
    } else {
        s.append("A \(a.method) merge of \(sources.count) model(s)\(baseText): \(measured.count) tensors (\(parameters.formatted()) parameters) measured"
                 + (copied.isEmpty ? "." : ", \(copied.count) copied whole from a single source."))
    }
    if sources.count >= 1 {
        let byNorm = sources.compactMap { m in all.norm(m).map { (m, $0) } }.sorted { $0.1 > $1.1 }
        if let big = byNorm.first, let small = byNorm.last, byNorm.count > 1 {
            s.append("\(names[big.0]) differs most from the \(a.reference) (task-vector norm \(SVG.fmt(big.1))); \(names[small.0]) least (\(SVG.fmt(small.1))).")
        }
        let pairs = sources.flatMap { x in sources.filter { $0 > x }.compactMap { y in all.cosine(x, y).map { (x, y, $0) } } }.sorted { $0.2 > $1.2 }
        if a.base == nil {
            s.append("Without a base model, task vectors are taken from the sources' mean, so their agreement and sign conflicts say little (with two sources they are exact opposites); distances tell more.")
            let near = sources.compactMap { m in all.relativeDistance(m).map { (m, $0) } }.sorted { $0.1 < $1.1 }
            if let top = near.first, near.count > 1 {
                s.append("The merged model is closest to \(names[top.0]) (‖merged − source‖ / ‖source‖ = \(SVG.fmt(top.1))) and farthest from \(names[near.last!.0]) (\(SVG.fmt(near.last!.1))).")
            }
        } else if let top = pairs.first {
            s.append("The most aligned pair of sources is \(names[top.0]) and \(names[top.1]) (cosine of task vectors \(SVG.fmt(top.2, digits: 2)))" +
                     (pairs.count > 1 ? "; the least aligned is \(names[pairs.last!.0]) and \(names[pairs.last!.1]) (\(SVG.fmt(pairs.last!.2, digits: 2)))." : "."))
        }
        if sources.count >= 2 && a.base != nil {
            s.append("Sources pull parameters in opposite directions on \(percent(all.conflictRate)) of parameters (sign conflicts; TIES-style methods resolve these by a vote).")
        }
        if a.base != nil {
            s.append("The merge changed \(percent(all.keptFraction)) of parameters relative to the base" + (all.keptFraction < 0.95 ? " — the rest was sparsified away or agreed with the base." : "."))
        }
        let pull = sources.compactMap { m in all.mergedCosine(m).map { (m, $0) } }.sorted { $0.1 > $1.1 }
        if a.base != nil, let top = pull.first {
            s.append("The merged model moved most toward \(names[top.0]) (cosine \(SVG.fmt(top.1, digits: 2)) between its change and that source's task vector)" +
                     (pull.count > 1 ? " and least toward \(names[pull.last!.0]) (\(SVG.fmt(pull.last!.1, digits: 2)))." : "."))
        }
    }
    page.summary += s

    let rows = a.layerRows
    let layerSums = rows.map { a.totals(where: $0.filter) }   // one pass over the tensors per layer, shared below
    /// A layer × source heatmap section of `value(layer sums, source)`.
    func layerHeatmap(_ title: String, _ intro: String, caption: String, diverging: Bool, _ value: (ModelSums, Int) -> Double?) {
        page.sections.append(.init(
            title: title, intro: intro,
            body: SVG.heatmap(rowLabels: rows.map(\.label), columnLabels: sources.map { names[$0] },
                              values: layerSums.map { t in sources.map { value(t, $0) } }, diverging: diverging, caption: caption)))
    }
    if !sources.isEmpty && !rows.isEmpty {
        layerHeatmap("How far each source is from the \(a.reference), layer by layer",
                     "Norm of each source's task vector (its weights minus the \(a.reference)) summed over the tensors of each layer. Large values mark where a source learned the most.",
                     caption: "task-vector norm per layer and source", diverging: false) { $0.norm($1) }
        layerHeatmap("What each source contributed",
                     "Cosine between the merge's change (merged minus \(a.reference)) and each source's task vector, per layer: 1 means the merged layer moved exactly toward that source, 0 that it ignored it, negative that it moved away.",
                     caption: "merged change vs source task vectors", diverging: true) { $0.mergedCosine($1) }
    }
    if a.base == nil && !sources.isEmpty && !rows.isEmpty {
        layerHeatmap("How close the merged model is to each source",
                     "‖merged − source‖ / ‖source‖ over each layer's tensors: 0 means the layer is that source's, larger means farther away.",
                     caption: "relative distance of the merge to each source", diverging: false) { $0.relativeDistance($1) }
    }
    if sources.count >= 2 && (a.base != nil || sources.count > 2) {
        let matrix = sources.map { x in sources.map { y in all.cosine(x, y) } }
        page.sections.append(.init(
            title: "Do the sources agree?",
            intro: "Cosine similarity of the sources' task vectors over the whole model. Near 0 is typical for independent fine-tunes; clearly positive means they learned overlapping things, negative that they conflict.",
            body: SVG.heatmap(rowLabels: sources.map { names[$0] }, columnLabels: sources.map { names[$0] }, values: matrix, diverging: true,
                              caption: "pairwise task-vector cosine")))
    }
    if !rows.isEmpty && !sources.isEmpty {
        let x = rows.indices.map(Double.init)
        var series: [(name: String, values: [Double?])] = []
        if sources.count >= 2 && a.base != nil { series.append(("sign conflicts", layerSums.map(\.conflictRate))) }
        if a.base != nil { series.append(("changed vs base", layerSums.map(\.keptFraction))) }
        if !series.isEmpty {
            page.sections.append(.init(
                title: "Conflicts and sparsity by layer",
                intro: "Share of parameters where the sources' task vectors disagree in sign, and share the merge changed relative to the base (what survives trimming or dropping). \"other\" is everything outside the decoder layers (embeddings, final norm, head).",
                body: SVG.lines(x: x, series: series, xLabel: "layer", yLabel: "fraction of parameters",
                                caption: "conflict and kept fractions per layer", yRange: (0, 1),
                                xTicks: rows.map { $0.label.replacingOccurrences(of: "layer ", with: "").replacingOccurrences(of: "outside layers", with: "other") })))
        }
    }
    if !copied.isEmpty {
        // Provenance of layer tensors: which model each output layer came from.
        var layerSource: [Int: (Int, String)] = [:]
        for t in copied { if let l = t.layer, layerSource[l] == nil { layerSource[l] = (t.copiedFrom!.model, t.copiedFrom!.tensor) } }
        let layers = layerSource.keys.sorted()
        if !layers.isEmpty {
            let used = Array(Set(layers.map { layerSource[$0]!.0 })).sorted()
            let labels = layers.map { l in "output layer \(l) ← \(names[layerSource[l]!.0]) layer \(layerIndex(of: layerSource[l]!.1).map(String.init) ?? "?")" }
            page.sections.append(.init(
                title: "Where each layer came from",
                intro: "Output layers copied whole from one source (slices, passthrough). Hover a cell for the source layer.",
                body: SVG.strip(labels: labels, categories: layers.map { used.firstIndex(of: layerSource[$0]!.0)! },
                                categoryNames: used.map { names[$0] }, caption: "layer provenance")
                    + htmlTable(header: ["output layers", "source", "source layers"], rows: provenanceRuns(layers: layers, layerSource: layerSource, names: names))))
        }
    }
    if !measured.isEmpty {
        let top = measured.sorted { ($0.sums?.conflictRate ?? 0) > ($1.sums?.conflictRate ?? 0) }
        func row(_ t: TensorAnalysis) -> [String] {
            let s = t.sums!
            return [t.name, s.elements.formatted(), s.norms.map { SVG.fmt($0) }.joined(separator: " / "),
                    sources.count >= 2 ? percent(s.conflictRate) : "—", a.base != nil ? percent(s.keptFraction) : "—",
                    s.mergedCosines.map { SVG.fmt($0, digits: 2) }.joined(separator: " / ")]
        }
        let header = ["tensor", "elements", "task-vector norms", "sign conflicts", "changed", "merged cosines"]
        let order: [String] = measured.first?.sources.map { names[$0] } ?? []
        let intro = "The tensors with the most sign conflicts first; the full list is below. Values per source are in the order "
            + order.joined(separator: " / ") + "."
        var body = htmlTable(header: header, rows: top.prefix(12).map(row))
        body += "<details><summary>All \(measured.count) measured tensors</summary>"
        body += htmlTable(header: header, rows: measured.map(row)) + "</details>"
        page.sections.append(.init(title: "Tensors", intro: intro, body: body))
    }
    let skipped = a.tensors.filter { $0.skipped != nil }
    if !skipped.isEmpty {
        let listed: [String] = skipped.prefix(4).map { "\($0.name) (\($0.skipped ?? ""))" }
        page.warnings.append("\(skipped.count) tensor(s) were not measured: " + listed.joined(separator: ", ") + (skipped.count > 4 ? ", ..." : "."))
    }
}

func provenanceRuns(layers: [Int], layerSource: [Int: (Int, String)], names: [String]) -> [[String]] {
    var out: [[String]] = []
    var i = 0
    while i < layers.count {
        let (m, first) = layerSource[layers[i]]!
        var j = i
        while j + 1 < layers.count, layerSource[layers[j + 1]]!.0 == m,
              let a = layerIndex(of: layerSource[layers[j]]!.1), let b = layerIndex(of: layerSource[layers[j + 1]]!.1), b == a + 1 { j += 1 }
        let srcFirst = layerIndex(of: first).map(String.init) ?? "?", srcLast = layerIndex(of: layerSource[layers[j]]!.1).map(String.init) ?? "?"
        func span(_ a: String, _ b: String) -> String { a == b ? a : "\(a)–\(b)" }
        out.append([span(String(layers[i]), String(layers[j])), names[m], span(srcFirst, srcLast)])
        i = j + 1
    }
    return out
}

extension ModelComparison {
    public var json: JSON {
        .object([("a", .string(a)), ("b", .string(b)),
                 ("tensors", .array(rows.map { r in
                     .object([("name", .string(r.name)), ("elements", .int(r.elements)), ("relative_difference", .double(r.relativeDifference)),
                              ("cosine", .double(r.cosine)), ("max_abs_difference", .double(r.maxAbsDifference)),
                              ("equal_fraction", .double(r.equalFraction))])
                 })),
                 ("only_in_a", .array(onlyInA.map { .string($0) })), ("only_in_b", .array(onlyInB.map { .string($0) })),
                 ("shape_mismatches", .array(shapeMismatches.map { .object([("name", .string($0.0)), ("a", .array($0.1.map { .int($0) })), ("b", .array($0.2.map { .int($0) }))]) })),
                 ("seconds", .double(seconds))])
    }
}

func compareSections(_ c: ModelComparison, into page: inout ReportPage) {
    let identical = c.rows.filter { $0.equalFraction == 1 }.count
    let total = c.rows.reduce(0) { $0 + $1.elements }
    let equalElements = c.rows.reduce(0.0) { $0 + $1.equalFraction * Double($1.elements) }
    page.summary.append("\(c.rows.count) tensors in common (\(total.formatted()) parameters); \(identical) are bit-identical and \(percent(total > 0 ? equalElements / Double(total) : 1)) of all parameters are equal.")
    if let worst = c.rows.max(by: { $0.relativeDifference < $1.relativeDifference }), worst.relativeDifference > 0 {
        page.summary.append("The largest change is in \(worst.name): relative difference \(SVG.fmt(worst.relativeDifference)), cosine \(SVG.fmt(worst.cosine, digits: 4)).")
    }
    if !c.onlyInA.isEmpty || !c.onlyInB.isEmpty || !c.shapeMismatches.isEmpty {
        page.summary.append("\(c.onlyInA.count) tensor(s) only in A, \(c.onlyInB.count) only in B, \(c.shapeMismatches.count) with different shapes.")
    }
    let layers = Array(Set(c.rows.compactMap(\.layer))).sorted()
    if !layers.isEmpty {
        func agg(_ l: Int) -> (Double, Double) {
            let rs = c.rows.filter { $0.layer == l }
            let aa = rs.reduce(0.0) { $0 + $1.normA * $1.normA }
            let dd = rs.reduce(0.0) { $0 + pow($1.relativeDifference * $1.normA, 2) }
            let ab = rs.reduce(0.0) { $0 + $1.cosine * $1.normA * $1.normB }
            let bb = rs.reduce(0.0) { $0 + $1.normB * $1.normB }
            return (aa > 0 ? (dd / aa).squareRoot() : 0, cosine(ab, aa, bb))
        }
        let v = layers.map(agg)
        page.sections.append(.init(title: "Difference by layer",
                                   intro: "‖A − B‖ / ‖A‖ over each layer's tensors.",
                                   body: SVG.lines(x: layers.map(Double.init), series: [("relative difference", v.map { $0.0 })],
                                                   xLabel: "layer", yLabel: "relative difference", caption: "relative difference per layer")))
    }
    let sorted = c.rows.sorted { $0.relativeDifference > $1.relativeDifference }
    func row(_ r: ModelComparison.Row) -> [String] {
        [r.name, r.elements.formatted(), SVG.fmt(r.relativeDifference), SVG.fmt(r.cosine, digits: 5), SVG.fmt(r.maxAbsDifference), percent(r.equalFraction)]
    }
    let header = ["tensor", "elements", "relative difference", "cosine", "max |A−B|", "equal"]
    page.sections.append(.init(title: "Tensors", intro: "Most changed first.",
                               body: htmlTable(header: header, rows: sorted.prefix(15).map(row))
                                   + "<details><summary>All \(c.rows.count) tensors</summary>" + htmlTable(header: header, rows: sorted.map(row)) + "</details>"))
}
