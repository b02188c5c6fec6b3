import Foundation
import FuseIO
import FuseTensor

/// Greedy soup (Wortsman et al., arXiv 2203.05482, as the overview's greedy search): sources sorted by
/// dev score, best first; each is added to the uniform average only if the average's dev score
/// strictly improves. One step (one source tried) per generation in the log. `--add-source` appends
/// a model to the queue and continues.
struct GreedySoup {
    let run: EvolveRun
    var spec: EvolveSpec { run.spec }

    func search() throws -> (model: String, recipe: String?, best: Double, heldOut: Double?) {
        var all = run.state.sources
        for p in run.options.addSources where !all.contains(p) { all.append(p) }
        let first = try load(all[0])
        var weights = [first]
        for p in all.dropFirst() {
            let w = try load(p)
            try first.checkCompatible(w, all[0], p)
            weights.append(w.reordered(to: first.layout))
        }
        let linear = FuseMergeMerger(method: "linear")
        func soupOf(_ members: [Int]) throws -> WeightSet {
            members.count == 1 ? weights[members[0]] : try linear.merge(members.map { weights[$0] }, base: nil, config: run.donor.config, seed: run.seed)
        }
        if run.state.order == nil {
            let scores = try run.dev(weights.map { .weights($0) })
            run.state.scores = scores
            let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
            run.state.order = order; run.state.soup = [order[0]]; run.state.populationScore = scores[order[0]]; run.state.tried = 1
            run.state.lineage = [["source \(order[0]) (best alone, dev \(scores[order[0]]))"]]
            try checkpoint(try soupOf([order[0]]), accepted: true, tried: order[0])
        }
        if all.count > run.state.sources.count {
            let added = Array(all[run.state.sources.count...])
            let scores = try run.dev(added.indices.map { .weights(weights[run.state.sources.count + $0]) })
            run.state.scores? += scores
            let known = run.state.sources.count
            run.state.order? += added.indices.map { known + $0 }
            run.state.sources = all
            run.state.targetGenerations = (run.state.order?.count ?? 0) - 1
        }
        run.state.targetGenerations = (run.state.order?.count ?? 1) - 1
        while let order = run.state.order, let tried = run.state.tried, tried < order.count, run.budgetAllows(1) {
            let next = order[tried]
            let members = (run.state.soup ?? []) + [next]
            let candidate = try soupOf(members)
            let s = try run.dev(.weights(candidate), mustBeat: run.state.populationScore ?? -.infinity)
            let improved = s.map { $0 > (run.state.populationScore ?? -.infinity) } ?? false
            if improved, let s {
                run.state.soup = members; run.state.populationScore = s
                run.state.lineage?[0].append("+ source \(next): dev \(s)")
            }
            run.state.tried = tried + 1
            run.state.generation += 1
            try checkpoint(try soupOf(run.state.soup ?? [order[0]]), accepted: improved, tried: next)
        }
        let soup = try soupOf(run.state.soup ?? [0])
        let members = (run.state.soup ?? []).map { String($0) }.joined(separator: ", ")
        let model = try run.writeModel(soup, description: "the uniform average of sources \(members) (greedy soup)")
        return (model, nil, run.state.populationScore ?? .nan, try run.heldOut(.weights(soup)))
    }

    func load(_ path: String) throws -> WeightSet {
        let store: WeightStore
        do { store = try WeightStore(path: path) } catch { throw EvolveError.spec(path: "sources", line: nil, message: "cannot open '\(path)': \(error)") }
        return try WeightSet.load(store, path: path)
    }

    func checkpoint(_ soup: WeightSet, accepted: Bool, tried: Int) throws {
        let held = try run.heldOut(.weights(soup))
        let best = run.state.populationScore ?? .nan
        let members = (run.state.soup ?? []).map { JSON.string(run.state.sources.indices.contains($0) ? run.state.sources[$0] : "source \($0)") }
        try run.record([("search", .string("greedy-soup")), ("tried", .int(tried)), ("accepted", .bool(accepted)),
                        ("soup", .array(members)), ("winner", .string("soup")),
                        ("lineage", .array((run.state.lineage?.first ?? []).map { .string($0) })),
                        ("scores", .array((run.state.scores ?? []).map { .double($0) }))],
                       best: best, median: median(run.state.scores ?? []), heldOut: held)
        try run.saveState()
    }
}
