import Foundation
import FuseIO
import FuseMerge
import FuseTensor

/// Weight-space search: Evolver (fusion-methods.md §3.2, both released forms) and classic
/// DE/rand/1/bin. Individuals are whole models in Float32; trials are built tensor by tensor
/// (Operators.swift); selection is strict improvement on the dev set; held-out is only logged.
///
/// Where FuseKit differs from the released code, on purpose: selection never looks at test scores
/// (the code's mode B restores the best population by test score, §3.4); every random choice is
/// seeded; `schedule: generation` (the DE default) builds a generation's trials from its start so
/// workers can score them in parallel.
struct WeightSearch {
    let run: EvolveRun
    var spec: EvolveSpec { run.spec }
    var options: WeightSearchOptions { spec.weightOptions }
    var rule: MutationRule { spec.search == .de ? .randOne(f: options.f) : .evolver(f: options.f) }
    var crossover: CrossoverOptions { CrossoverOptions(rate: options.cr, unit: options.crossover, forceOne: spec.search == .de) }
    var merger: PopulationMerger { PopulationMergers.make(options.merger) }

    func search() throws -> (model: String, recipe: String?, best: Double, heldOut: Double?) {
        let base = try spec.base.map { try loadSource($0, "base") }
        let population = try initialPopulation(base: base)
        let layout = population.layout
        let config = run.donor.config

        func merged(_ p: [ModelSource]) throws -> WeightSet {
            try run.timed("merge") { try merger.merge(p, layout: layout, base: base, config: config, seed: run.seed) }
        }

        // Added sources (--add-source) join the population and are scored like the others.
        if !run.options.addSources.isEmpty && !run.state.finished && run.options.addSources.contains(where: { !run.state.sources.contains($0) }) {
            for path in run.options.addSources where !run.state.sources.contains(path) {
                let added = try loadSource(path, "--add-source")
                try population.individual(0).checkCompatible(added, run.state.sources[0], path)
                try population.append(added.reordered(to: layout))
                run.state.sources.append(path)
                let origin = "source \(run.state.sources.count - 1): \(path) (added after generation \(run.state.generation))"
                run.state.lineage?.append([origin])
                if options.form == .individual {
                    let score = try run.dev([.weights(try population.individual(population.count - 1))])[0]
                    run.state.scores?.append(score)
                } else {
                    run.state.populationScore = try run.dev([.weights(try merged(population.sources()))])[0]
                }
            }
            run.state.targetGenerations = run.state.generation + spec.generations
        }

        var generationsLeft = run.state.targetGenerations - run.state.generation
        while generationsLeft > 0 && !exhausted(population.count) {
            let g = run.state.generation + 1
            var accepted = 0
            var trials: [JSON] = []
            let n = population.count
            if options.form == .individual {
                var scores = run.state.scores ?? []
                if options.schedule == .sequential {
                    for i in 0..<n {
                        guard run.budgetAllows(1) else { break }
                        let (trial, refs, taken, recipe) = try makeTrial(i, g, population, scores)
                        let s = try run.dev(.weights(trial), mustBeat: scores[i])
                        trials.append(trialRecord(i, refs, taken, s, scores[i]))
                        if let s, s > scores[i] {
                            run.state.lineage?[i].append(lineageEntry(g, i, refs, taken, s, scores[i]))
                            try population.replace(i, with: trial, recipe: recipe); scores[i] = s; accepted += 1
                        }
                    }
                } else {
                    let count = spec.budget.map { max(0, min(n, $0 - run.state.evaluations)) } ?? n
                    let made = try (0..<count).map { try makeTrial($0, g, population, scores) }
                    let values = try run.dev(made.map { .weights($0.0) })
                    trials += (0..<count).map { trialRecord($0, made[$0].1, made[$0].2, values[$0], scores[$0]) }
                    for i in 0..<count where values[i] > scores[i] {
                        run.state.lineage?[i].append(lineageEntry(g, i, made[i].1, made[i].2, values[i], scores[i]))
                        try population.replace(i, with: made[i].0, recipe: made[i].3); scores[i] = values[i]; accepted += 1
                    }
                }
                run.state.scores = scores
            } else {
                var score = run.state.populationScore ?? -.infinity
                var orderRNG = SeededRNG(seed: run.seed, name: "order/\(g)")
                var order = Array(0..<n)
                for k in stride(from: n - 1, to: 0, by: -1) { order.swapAt(k, uniform(k + 1, &orderRNG)) }
                for i in order {
                    guard run.budgetAllows(1) else { break }
                    let (trial, refs, taken, recipe) = try makeTrial(i, g, population, nil)
                    var candidate = population.sources()
                    candidate[i] = InMemoryModel(trial, config: config)
                    let s = try run.dev(.weights(try merged(candidate)), mustBeat: score)
                    trials.append(trialRecord(i, refs, taken, s, score))
                    if let s, s > score {
                        run.state.lineage?[i].append(lineageEntry(g, i, refs, taken, s, score))
                        try population.replace(i, with: trial, recipe: recipe); score = s; accepted += 1
                    }
                }
                run.state.populationScore = score
            }
            run.state.generation = g
            generationsLeft -= 1
            try checkpoint(population, accepted: accepted, trials: trials, merged: merged)
        }
        let output = options.form == .individual ? try population.individual(bestIndex()) : try merged(population.sources())
        let what = options.form == .individual ? "the best individual, ind\(bestIndex())"
                                                : "the \(options.merger.method) merge of the evolved population"
        let model = try run.writeModel(output, description: what)
        run.spills = population.spills; run.reloads = population.reloads
        let best = options.form == .individual ? (run.state.scores?[bestIndex()] ?? .nan) : (run.state.populationScore ?? .nan)
        return (model, nil, best, try run.heldOut(.weights(output)))
    }

    func exhausted(_ n: Int) -> Bool { !run.budgetAllows(1) }

    func loadSource(_ path: String, _ what: String) throws -> WeightSet {
        let store: WeightStore
        do { store = try WeightStore(path: path) } catch { throw EvolveError.spec(path: what, line: nil, message: "cannot open '\(path)': \(error)") }
        return try WeightSet.load(store, path: path)
    }

    /// The starting population (or the checkpoint when continuing): one individual per source, then
    /// averages of two random sources up to the population size, scored on dev.
    func initialPopulation(base: WeightSet?) throws -> Population {
        let first = try loadSource(spec.sources[0], "sources[0]")
        let maxResident = try residentLimit(layout: first.layout, base: base != nil)
        let folder = run.outDir + "/population"
        if let files = run.state.populationFiles {
            let p = try run.timed("restore") {
                try Population.restore(files: files, recipes: run.state.populationRecipes ?? [:], folder: folder, layout: first.layout,
                                       config: run.donor.config, maxResident: maxResident)
            }
            if let expected = run.state.populationHash, PopulationCheckpoint.populationHash(p.hashes) != expected {
                throw EvolveError.state(path: folder, message: "the population files do not match state.json (hash differs); the checkpoint is corrupt — start over with --force")
            }
            return p
        }
        let population = Population(layout: first.layout, folder: folder, config: run.donor.config, maxResident: maxResident)
        if run.state.generation > 0 || run.state.populationFile != nil, let file = run.state.populationFile {
            // A checkpoint of the earlier format: the whole population in one file.
            let count = run.state.lineage?.count ?? 0
            for w in try PopulationCheckpoint.load(path: run.outDir + "/" + file, layout: first.layout, count: count,
                                                   expectedHash: run.state.populationHash) { try population.append(w) }
            return population
        }
        try population.append(first)
        var lineage = [["source 0: \(spec.sources[0])"]]
        for (k, path) in spec.sources.enumerated().dropFirst() {
            let w = try loadSource(path, "sources[\(k)]")
            try first.checkCompatible(w, spec.sources[0], path)
            try population.append(w.reordered(to: first.layout))
            lineage.append(["source \(k): \(path)"])
        }
        if let base, let b = spec.base { try first.checkCompatible(base, spec.sources[0], b) }
        let total = spec.population ?? (spec.sources.count + options.mergedIndividuals)
        let linear = FuseMergeMerger(method: "linear")
        for k in 0..<max(0, total - spec.sources.count) {
            var rng = SeededRNG(seed: run.seed, name: "initial/\(k)")
            let pair = distinctOthers(2, among: spec.sources.count, excluding: -1, &rng)
            let sources = population.sources()
            try population.append(try linear.merge(pair.map { sources[$0] }, layout: first.layout, base: nil, config: run.donor.config, seed: run.seed))
            lineage.append(["average of sources \(pair[0]) and \(pair[1])"])
        }
        run.state.lineage = lineage
        if options.form == .individual {
            run.state.scores = try run.dev(try population.indices.map { .weights(try population.individual($0)) })
        } else {
            run.state.populationScore = try run.dev([.weights(try merger.merge(population.sources(), layout: first.layout, base: base,
                                                                              config: run.donor.config, seed: run.seed))])[0]
        }
        try checkpoint(population, accepted: 0, trials: []) { p in
            try merger.merge(p, layout: first.layout, base: base, config: run.donor.config, seed: run.seed)
        }
        return population
    }

    /// Individuals the population may keep in memory under `--max-memory`: the budget less the working
    /// set (the trial, the candidate being scored and its loaded model, and the base when there is one),
    /// in individuals of `layout`'s size; nil without a budget.
    func residentLimit(layout: WeightLayout, base: Bool) throws -> Int? {
        guard let budget = run.options.maxMemoryBytes else { return nil }
        let individual = layout.parameterCount * MemoryLayout<Float>.size
        let working = Population.workingSet + (base ? 1 : 0)
        let fit = budget / max(1, individual)
        guard fit >= working + 1 else {
            throw EvolveError.invalidArgument("--max-memory \(formatByteCount(budget)) is below what weight-space search needs: "
                + "\(working + 1) models of \(formatByteCount(individual)) (the trial, the candidate being scored and its loaded model"
                + (base ? ", the base" : "") + ", and at least one individual); give at least \(formatByteCount((working + 1) * individual))")
        }
        return fit - working
    }

    /// The trial for individual i in generation g: references chosen as the released code does (mode A:
    /// best other with probability 1 − p, p = 0.5 + 0.5/(G − g + 1) for the 1-based g; mode B: uniform),
    /// or three distinct others for DE.
    func makeTrial(_ i: Int, _ g: Int, _ population: Population, _ scores: [Double]?) throws -> (WeightSet, [Int], Double, IndividualRecipe) {
        var rng = SeededRNG(seed: run.seed, name: "reference/\(g)/\(i)")
        let n = population.count
        let refs: [Int]
        if spec.search == .de {
            refs = distinctOthers(3, among: n, excluding: i, &rng)
        } else if let scores {
            let p = 0.5 + 0.5 / Double(run.state.targetGenerations - (g - 1))
            if rng.nextDouble() < p {
                refs = distinctOthers(1, among: n, excluding: i, &rng)
            } else {
                refs = [(0..<n).filter { $0 != i }.max { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 > $1) } ?? (i + 1) % n]
            }
        } else {
            refs = distinctOthers(1, among: n, excluding: i, &rng)
        }
        let target = try population.individual(i)
        let references = try refs.map { try population.individual($0) }
        let stream = "trial/\(g)/\(i)"
        let (trial, taken) = run.timed("trial") {
            FuseEvolve.makeTrial(target: target, references: references, rule: rule, crossover: crossover, seed: run.seed, stream: stream)
        }
        let recipe = IndividualRecipe(target: population.hashes[i], references: refs.map { population.hashes[$0] }, rule: rule,
                                      crossover: crossover, seed: run.seed, stream: stream)
        return (trial, refs, taken, recipe)
    }

    func lineageEntry(_ g: Int, _ i: Int, _ refs: [Int], _ taken: Double, _ new: Double, _ old: Double) -> String {
        let how = spec.search == .de ? "DE/rand/1 from \(refs.map { "ind\($0)" }.joined(separator: ", ")) (F \(options.f))"
                                     : "x + f(x_r − x) with ind\(refs[0]) (f \(options.f))"
        return String(format: "g%d: ind%d ← %@, cr %.2f, %.1f%% from the mutant; dev %.6g > %.6g", g, i, how, Double(options.cr), taken * 100, new, old)
    }

    /// One trial for the log: target, references, share from the mutant, its dev score (null when scoring
    /// stopped early because it could not beat its parent), the score it had to beat, and whether it
    /// replaced the target.
    func trialRecord(_ i: Int, _ refs: [Int], _ taken: Double, _ dev: Double?, _ parent: Double) -> JSON {
        .object([("individual", .int(i)), ("references", .array(refs.map { .int($0) })), ("from_mutant", .double(taken)),
                 ("dev", dev.map { .double($0) } ?? .null), ("parent", .double(parent)), ("accepted", .bool(dev.map { $0 > parent } ?? false))])
    }

    func bestIndex() -> Int {
        let s = run.state.scores ?? []
        return s.indices.max { s[$0] < s[$1] || (s[$0] == s[$1] && $0 > $1) } ?? 0
    }

    /// Logs the generation, then writes the population and the state (in that order: a crash between
    /// them replays the generation and rewrites the same log line).
    func checkpoint(_ population: Population, accepted: Int, trials: [JSON], merged: ([ModelSource]) throws -> WeightSet) throws {
        let winner: Candidate, best: Double, med: Double, winnerName: String, winnerLineage: [String]
        if options.form == .individual {
            let b = bestIndex()
            winner = .weights(try population.individual(b)); best = run.state.scores?[b] ?? .nan; med = median(run.state.scores ?? [])
            winnerName = "ind\(b)"; winnerLineage = run.state.lineage?[b] ?? []
        } else {
            winner = .weights(try merged(population.sources())); best = run.state.populationScore ?? .nan; med = best
            winnerName = "merge(population)"; winnerLineage = (run.state.lineage ?? []).enumerated().map { "ind\($0): \($1.joined(separator: "; "))" }
        }
        let held = try run.heldOut(winner)
        var entry: [(String, JSON)] = [("search", .string(spec.search.rawValue)), ("form", .string(options.form.rawValue)),
                                       ("trials", .int(trials.count)), ("accepted", .int(accepted)), ("candidates", .array(trials)), ("winner", .string(winnerName)),
                                       ("lineage", .array(winnerLineage.map { .string($0) }))]
        if let scores = run.state.scores { entry.append(("scores", .array(scores.map { .double($0) }))) }
        try run.record(entry, best: best, median: med, heldOut: held)
        let old = run.state.populationFile
        let saved = try run.timed("checkpoint") { try population.checkpoint() }
        run.state.populationFiles = saved.files
        run.state.populationRecipes = saved.recipes.isEmpty ? nil : saved.recipes
        run.state.populationFile = nil
        run.state.populationHash = PopulationCheckpoint.populationHash(population.hashes)
        try run.saveState()
        population.removeUnreferenced()
        if let old { try? FileManager.default.removeItem(atPath: run.outDir + "/" + old) }
    }
}
