import Foundation
import FuseIO

/// The training curves of a run that trained something (train, transfer, distill): FuseTrain's
/// metrics.jsonl, one object per optimiser step (`step`, `loss`, `lr`, `grad_norm`, `tokens_per_s`,
/// optional `eval_loss` and per-component losses such as `ce` and `soft`).
public struct TrainingCurves: Sendable {
    public var steps: [Int]
    /// Series by key, aligned with `steps` (nil where a step lacks the key).
    public var series: [(String, [Double?])]

    public static func read(_ path: String) -> TrainingCurves? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var steps: [Int] = [], rows: [JSON] = []
        for line in text.split(separator: "\n") {
            guard let j = try? JSON.parse(String(line)), let s = j["step"]?.int else { continue }
            steps.append(s); rows.append(j)
        }
        guard !steps.isEmpty else { return nil }
        var keys: [String] = []
        for r in rows { for (k, v) in r.object ?? [] where v.double != nil && k != "step" && !keys.contains(k) { keys.append(k) } }
        return TrainingCurves(steps: steps, series: keys.map { k in (k, rows.map { $0[k]?.double }) })
    }

    public func values(_ key: String) -> [Double?]? { series.first { $0.0 == key }?.1 }

    public var json: JSON {
        .object([("steps", .array(steps.map { .int($0) }))] + series.map { k, v in (k, JSON.array(v.map { $0.map { .double($0) } ?? .null })) })
    }
}

func trainingSections(_ c: TrainingCurves, into page: inout ReportPage, what: String) {
    let x = c.steps.map(Double.init)
    let lossKeys = ["loss", "eval_loss", "ce", "soft", "kl"].filter { c.values($0) != nil }
    if let loss = c.values("loss")?.compactMap({ $0 }), let first = loss.first, let last = loss.last {
        var s = "\(what): \(c.steps.count) logged steps; the training loss went from \(SVG.fmt(first, digits: 4)) to \(SVG.fmt(last, digits: 4))"
        if let ev = c.values("eval_loss")?.compactMap({ $0 }), let e0 = ev.first, let e1 = ev.last { s += ", the held-out loss from \(SVG.fmt(e0, digits: 4)) to \(SVG.fmt(e1, digits: 4))" }
        page.summary.append(s + ".")
    }
    if !lossKeys.isEmpty {
        page.sections.append(.init(title: "Loss curves", intro: "Per optimiser step (components are the parts of a mixed loss; eval_loss on the held-out data).",
                                   body: SVG.lines(x: x, series: lossKeys.map { ($0, c.values($0)!) }, xLabel: "step", yLabel: "loss", caption: "loss per step")))
    }
    if let rate = c.values("tokens_per_s"), let lr = c.values("lr") {
        page.sections.append(.init(title: "Throughput and learning rate", intro: "Tokens per second of each step, and the schedule's learning rate.",
                                   body: SVG.lines(x: x, series: [("tokens/s", rate)], xLabel: "step", yLabel: "tokens/s", caption: "throughput")
                                       + SVG.lines(x: x, series: [("lr", lr)], xLabel: "step", yLabel: "learning rate", caption: "learning rate")))
    }
}

func transferSections(_ log: RunLog, into page: inout ReportPage) {
    let m = log.measurements
    if let map = m["layer_map"]?.array?.compactMap(\.int), !map.isEmpty {
        page.summary.append("Student layers took their LoRA initialisation from teacher layers \(map.map(String.init).joined(separator: ", ")) (\(m["modules"]?.int ?? 0) modules).")
        let teachers = Array(Set(map)).sorted()
        page.sections.append(.init(title: "Which teacher layer each student layer learned from",
                                   intro: "Chosen by summed sensitivity |θ ⊙ ∂L/∂θ| on the seed samples (or by the spec's layer rule).",
                                   body: SVG.lines(x: map.indices.map(Double.init), series: [("teacher layer", map.map { Double($0) })],
                                                   xLabel: "student layer", yLabel: "teacher layer", caption: "layer map")
                                       + "<p>\(teachers.count) distinct teacher layers used.</p>"))
    }
    if let d = m["step0_loss_difference"]?.double {
        page.summary.append("At step 0 the student's loss changed by \(SVG.fmt(d)) after the injection (it should be ~0: the start is the student itself).")
    }
    if let t = m["truncation_energy_lost"]?.double {
        page.summary.append("The rank truncation kept \(percent(1 - t)) of the extracted matrices' energy.")
    }
}
