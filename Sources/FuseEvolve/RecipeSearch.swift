import Foundation
import FuseIO
import FuseMerge
import FuseTensor

/// The genome of a merge recipe (fusion-methods.md §4.2, parameter space; mergekit-evolve's genome):
/// for each searched parameter, source and layer group one gene, mapped to [0, 1] by clamping; or, for
/// a frankenmerge, one gene per (output layer, source) with the layer taken from the source whose gene
/// is largest. A genome becomes mergekit YAML, parsed by FuseMerge like any config, so the best recipe
/// reruns with `fusekit merge` (and mergekit) to the same model.
struct RecipeGenome {
    let sources: [String]
    let base: String?
    let options: RecipeOptions
    let layers: Int
    let outDType: DType

    /// One block of `layerGroups` genes per (parameter, source) for per-model parameters (weight,
    /// density, ...) and per parameter for shared ones (slerp's t, lambda), in `options.parameters` order.
    var blocks: [(parameter: String, source: Int?)] {
        let scopes = Dictionary((MethodRegistry.method(named: options.method)?.parameters ?? []).map { ($0.name, $0.scope) },
                                uniquingKeysWith: { a, _ in a })
        return options.parameters.flatMap { p -> [(parameter: String, source: Int?)] in
            scopes[p] == .shared ? [(p, nil)] : sources.indices.map { (p, $0) }
        }
    }

    var dimension: Int { options.frankenmerge ? layers * sources.count : blocks.count * options.layerGroups }

    static func clamp(_ x: Double) -> Double { (min(1, max(0, x)) * 1e6).rounded() / 1e6 }

    static func number(_ v: Double) -> String {
        var s = String(format: "%.6f", v)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s += "0" }
        return s
    }

    static func dtypeName(_ d: DType) -> String {
        switch d { case .bf16: return "bfloat16"; case .f16: return "float16"; default: return "float32" }
    }

    /// The recipe as mergekit YAML.
    func yaml(_ x: [Double]) -> String {
        var s = "# written by fusekit evolve (recipe search); rerun with: fusekit merge recipe.yml OUT_DIR\n"
        s += "merge_method: \(options.method)\n"
        if options.frankenmerge {
            s += "slices:\n"
            let m = sources.count
            for l in 0..<layers {
                let genes = x[(l * m)..<(l * m + m)]
                let pick = genes.indices.max { genes[$0] < genes[$1] || (genes[$0] == genes[$1] && $0 > $1) } ?? l * m
                s += "  - sources:\n      - model: \(quoted(sources[pick - l * m]))\n        layer_range: [\(l), \(l + 1)]\n"
            }
        } else {
            if let base { s += "base_model: \(quoted(base))\n" }
            let g = options.layerGroups
            func values(_ block: Int) -> String {
                let v = x[(block * g)..<(block * g + g)].map { Self.number(Self.clamp($0)) }
                return g == 1 ? v[0] : "[" + v.joined(separator: ", ") + "]"
            }
            let blocks = self.blocks
            let shared = blocks.indices.filter { blocks[$0].source == nil }
            if !shared.isEmpty {
                s += "parameters:\n" + shared.map { "  \(blocks[$0].parameter): \(values($0))\n" }.joined()
            }
            s += "models:\n"
            for (m, source) in sources.enumerated() {
                s += "  - model: \(quoted(source))\n"
                let mine = blocks.indices.filter { blocks[$0].source == m }
                if !mine.isEmpty { s += "    parameters:\n" + mine.map { "      \(blocks[$0].parameter): \(values($0))\n" }.joined() }
            }
        }
        s += "dtype: float32\nout_dtype: \(Self.dtypeName(outDType))\n"
        return s
    }

    func quoted(_ p: String) -> String { "\"" + p.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }

    func config(_ x: [Double]) throws -> MergeConfig { try MergeConfig.parse(yaml: yaml(x)) }
}

/// CMA-ES over a recipe genome: λ candidates per generation, each merged in memory by FuseMerge and
/// scored on dev (as a batch, so workers score them in parallel); the best recipe so far (strictly
/// better replaces) is the output.
struct RecipeSearch {
    let run: EvolveRun
    var spec: EvolveSpec { run.spec }

    func genome() throws -> RecipeGenome {
        let key = "num_hidden_layers"
        guard let layers = run.donor.config?[key]?.int ?? run.donor.config?["text_config"]?[key]?.int, layers > 0 else {
            throw EvolveError.incompatibleModels("\(run.donor.path): config.json has no positive '\(key)'; recipe search needs the layer count")
        }
        if spec.recipe.layerGroups > layers {
            throw EvolveError.spec(path: "options.layer_groups", line: nil, message: "\(spec.recipe.layerGroups) groups but the models have \(layers) layers; use at most \(layers)")
        }
        return RecipeGenome(sources: spec.sources, base: spec.base, options: spec.recipe, layers: layers, outDType: spec.outDType)
    }

    func search() throws -> (model: String, recipe: String?, best: Double, heldOut: Double?) {
        let genome = try genome()
        if run.state.cma == nil {
            let x0: [Double]
            if spec.recipe.frankenmerge {
                // Start from source 0 on every layer, lightly: its genes at `initial`, the others below it.
                x0 = (0..<genome.dimension).map { $0 % spec.sources.count == 0 ? spec.recipe.initial : spec.recipe.initial - spec.recipe.sigma }
            } else {
                x0 = [Double](repeating: spec.recipe.initial, count: genome.dimension)
            }
            run.state.cma = try CMAES(mean: x0, sigma: spec.recipe.sigma, population: spec.population)
            // Generation 0 scores the starting recipe (the mean), so the search has a baseline.
            let config = try genome.config(x0)
            let s = try run.dev([.recipe(config)])[0]
            run.state.bestGenome = x0; run.state.bestScore = s; run.state.bestRecipe = config.sourceText
            run.state.bestLineage = "generation 0: the initial mean"
            try checkpoint([s], genome: genome)
        }
        while run.state.generation < run.state.targetGenerations, var cma = run.state.cma, run.budgetAllows(cma.lambda) {
            let g = run.state.generation + 1
            var rng = SeededRNG(seed: run.seed, name: "cma/\(g)")
            let xs = try cma.ask(&rng)
            let configs = try xs.map { try genome.config($0) }
            let values = try run.dev(configs.map { .recipe($0) })
            try cma.tell(xs, values.map { -$0 })
            if let k = values.indices.max(by: { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) }),
               values[k] > (run.state.bestScore ?? -.infinity) {
                run.state.bestScore = values[k]; run.state.bestGenome = xs[k]; run.state.bestRecipe = configs[k].sourceText
                run.state.bestLineage = "generation \(g): candidate \(k) of \(xs.count)"
            }
            run.state.cma = cma
            run.state.generation = g
            try checkpoint(values, genome: genome)
        }
        guard let text = run.state.bestRecipe else { throw EvolveError.state(path: run.statePath, message: "no best recipe recorded") }
        let recipePath = run.outDir + "/recipe.yml"
        try writeFileAtomically(path: recipePath, contents: text)
        // The model is made exactly as `fusekit merge recipe.yml` makes it.
        var mergeOptions = MergeRunOptions()
        mergeOptions.seed = run.seed
        mergeOptions.force = true
        let config = try MergeConfig.parse(yaml: text)
        _ = try runMerge(config: config, outPath: run.outDir + "/model", options: mergeOptions, workingDirectory: "/")
        return (run.outDir + "/model", recipePath, run.state.bestScore ?? .nan, try run.heldOut(.recipe(config)))
    }

    func checkpoint(_ values: [Double], genome: RecipeGenome) throws {
        var held: Double?
        if let text = run.state.bestRecipe { held = try run.heldOut(.recipe(try MergeConfig.parse(yaml: text))) }
        let best = run.state.bestScore ?? .nan
        var entry: [(String, JSON)] = [("search", .string("cma-es")), ("candidates", .array(values.map { .double($0) })),
                                       ("generation_best", .double(values.max() ?? .nan))]
        if let cma = run.state.cma { entry += [("sigma", .double(cma.sigma)), ("mean", .array(cma.mean.map { .double($0) }))] }
        entry += [("winner", .string("best recipe")), ("lineage", .array([.string(run.state.bestLineage ?? "")])),
                  ("genome", .array((run.state.bestGenome ?? []).map { .double($0) }))]
        try run.record(entry, best: best, median: median(values), heldOut: held)
        try run.saveState()
    }
}
