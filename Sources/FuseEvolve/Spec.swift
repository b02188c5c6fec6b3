import Foundation
import FuseIO
import FuseEval
import FuseMerge
import FuseTensor
import Yams

/// Which search `fusekit evolve` runs.
public enum SearchKind: String, CaseIterable, Sendable {
    /// Evolver's weight evolution (fusion-methods.md §3.2), the released code's operators.
    case evolver
    /// Classic DE/rand/1/bin in weight space.
    case de
    /// CMA-ES over a merge recipe's parameters (fusion-methods.md §4.2, parameter space).
    case cmaES = "cma-es"
    /// Sources sorted by dev score, each added to the uniform average only if the dev score improves.
    case greedySoup = "greedy-soup"

    var isWeightSpace: Bool { self == .evolver || self == .de }
}

/// Evolver's two released forms (fusion-methods.md §3.2).
public enum EvolverForm: String, CaseIterable, Sendable {
    /// Mode A: individuals scored alone; the output is the best individual.
    case individual
    /// Mode B: the population's fitness is the dev score of merge(population); the output is that merge.
    case population
}

/// When trials replace their targets.
public enum Schedule: String, CaseIterable, Sendable {
    /// Each trial is built from the population as left by the previous trial (the released code).
    case sequential
    /// All trials of a generation are built from the generation's start (classic DE); they can be
    /// evaluated by parallel workers.
    case generation
}

/// A merge of the population through FuseMerge: a registry method name and its parameters (the same
/// for every individual). Fisher and RegMean plug in here once they exist (see `PopulationMerger`).
public struct MergerSpec: Equatable, Sendable {
    public var method: String
    public var parameters: [String: Double]
    /// Named files a merger reads (Fisher or RegMean statistics), resolved against the spec's folder.
    public var files: [String: String] = [:]
    public init(method: String, parameters: [String: Double] = [:]) { self.method = method; self.parameters = parameters }
}

public struct WeightSearchOptions: Equatable, Sendable {
    public var form: EvolverForm = .individual
    public var f: Float
    public var cr: Float
    public var crossover: CrossoverUnit = .element
    public var schedule: Schedule
    public var merger = MergerSpec(method: "linear")
    /// Extra initial individuals, each the average of two random sources ("more from merges of them").
    public var mergedIndividuals = 0
}

/// A gene of a recipe: one merge parameter per (source, layer group).
public struct RecipeOptions: Equatable, Sendable {
    public var method = "ties"
    public var parameters: [String] = []
    /// Anchors of each per-layer parameter (a mergekit gradient); the layer count gives one per layer.
    public var layerGroups = 1
    public var sigma = 0.2
    /// The initial value of every gene.
    public var initial = 0.5
    /// Per output layer, which source it comes from (a passthrough frankenmerge over `slices`).
    public var frankenmerge = false
}

public struct FitnessTask: Sendable {
    public let path: String
    public let weight: Double
    /// Metric of the task's EvalReport; lower-is-better metrics are negated so fitness is maximised.
    public let metric: String
    public let limit: Int?
    public let task: TaskFile
    var sign: Double { Self.lowerIsBetter.contains(metric) ? -1 : 1 }
    static let lowerIsBetter: Set<String> = ["nll_per_token", "token_perplexity", "bits_per_byte", "byte_perplexity"]
    /// The largest value sign·metric can take: accuracies reach 1, NLLs and bits 0, perplexities 1.
    var bestPossible: Double {
        switch metric {
        case "token_perplexity", "byte_perplexity": return -1
        case "nll_per_token", "bits_per_byte": return 0
        default: return 1
        }
    }
    static func metrics(for kind: TaskKind) -> [String] {
        switch kind {
        case .multipleChoice: return ["acc", "acc_norm"]
        case .generation: return ["exact_match"]
        case .perplexity: return ["nll_per_token", "token_perplexity", "bits_per_byte", "byte_perplexity"]
        }
    }
}

/// A parsed, validated `fusekit evolve` spec (format in docs/formats.md, "Evolve specs").
public struct EvolveSpec: Sendable {
    public var sources: [String]
    public var base: String?
    public var search: SearchKind
    public var dev: [FitnessTask]
    public var heldOut: [FitnessTask]
    /// Weight space: individuals (default: one per source). CMA-ES: λ (default 4 + ⌊3 ln N⌋).
    public var population: Int?
    public var generations: Int
    /// Most dev evaluations in all (nil: no limit beyond generations).
    public var budget: Int?
    public var seed: UInt64
    public var outDType: DType = .f32
    /// Stop scoring a trial when even perfect scores on its remaining dev tasks could not beat the score
    /// it must beat (the same decisions, fewer evaluations).
    public var earlyStop = true
    public var weightOptions: WeightSearchOptions
    public var recipe = RecipeOptions()
    /// The spec's text (hashed into the state so --resume refuses a changed spec).
    public var sourceText: String

    static let topLevelKeys = ["sources", "base", "search", "fitness", "population", "generations", "budget", "seed",
                               "out_dtype", "early_stop", "options"]
    static let optionKeys: [SearchKind: [String]] = [
        .evolver: ["form", "f", "cr", "crossover", "schedule", "merger", "merged_individuals"],
        .de: ["form", "f", "cr", "crossover", "schedule", "merger", "merged_individuals"],
        .cmaES: ["method", "parameters", "layer_groups", "sigma", "initial", "frankenmerge"],
        .greedySoup: [],
    ]
    static let recipeMethods = ["linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties",
                                "della", "della_linear", "slerp", "nuslerp", "passthrough"]

    /// Parses and checks every key; relative paths resolve against `directory` (the spec's folder).
    /// Task files are read and parsed here, before any model loads.
    public static func parse(yaml text: String, directory: String) throws -> EvolveSpec {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw EvolveError.spec(path: "", line: nil, message: "malformed YAML: \(error)")
        }
        guard let root, let map = root.mapping else {
            throw EvolveError.spec(path: "", line: root?.mark?.line, message: "expected a mapping at the top level (sources, search, fitness, ...)")
        }
        let r = SpecReader(directory: directory)
        try r.checkKeys(map, allowed: topLevelKeys, path: "")
        guard let sourcesNode = map["sources"] else { throw r.error(nil, "sources", "missing; list the models to fuse (HF folders or .gguf files)") }
        guard let list = sourcesNode.sequence, !list.isEmpty else { throw r.error(sourcesNode, "sources", "expected a non-empty list of model paths") }
        let sources = try list.enumerated().map { try r.modelPath($1, "sources[\($0)]") }
        let base = try map["base"].map { try r.modelPath($0, "base") }

        guard let searchNode = map["search"] else {
            throw r.error(nil, "search", "missing; one of \(SearchKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let search: SearchKind = try r.choice(searchNode, "search")

        guard let fitnessNode = map["fitness"] else { throw r.error(nil, "fitness", "missing; give fitness.dev (a list of task files)") }
        guard let fitness = fitnessNode.mapping else { throw r.error(fitnessNode, "fitness", "expected a mapping with dev and held_out") }
        try r.checkKeys(fitness, allowed: ["dev", "held_out"], path: "fitness")
        guard let devNode = fitness["dev"] else { throw r.error(fitnessNode, "fitness.dev", "missing; selection needs at least one dev task") }
        let dev = try r.tasks(devNode, "fitness.dev")
        guard !dev.isEmpty else { throw r.error(devNode, "fitness.dev", "the dev set is empty; give at least one task file") }
        let heldOut = try fitness["held_out"].map { try r.tasks($0, "fitness.held_out") } ?? []

        let population = try map["population"].map { try r.int($0, "population", min: 2) }
        let generations = try map["generations"].map { try r.int($0, "generations", min: 1) }
        let budget = try map["budget"].map { try r.int($0, "budget", min: 1) }
        let seed = try map["seed"].map { UInt64(try r.int($0, "seed", min: 0)) } ?? 0
        var outDType = DType.f32
        if let n = map["out_dtype"] {
            let names: [String: DType] = ["float32": .f32, "bfloat16": .bf16, "float16": .f16, "f32": .f32, "bf16": .bf16, "f16": .f16]
            let s = try r.string(n, "out_dtype")
            guard let d = names[s] else { throw r.error(n, "out_dtype", "'\(s)' is not one of float32, bfloat16, float16") }
            outDType = d
        }

        let defaults = search == .de ? (f: Float(0.5), cr: Float(0.5), schedule: Schedule.generation)
                                     : (f: Float(0.5), cr: Float(0.5), schedule: Schedule.sequential)
        var weight = WeightSearchOptions(f: defaults.f, cr: defaults.cr, schedule: defaults.schedule)
        var recipe = RecipeOptions()
        let options = map["options"]?.mapping
        if let n = map["options"], options == nil, !isNull(n) { throw r.error(n, "options", "expected a mapping of \(search.rawValue) options") }
        if let options {
            try r.checkKeys(options, allowed: optionKeys[search] ?? [], path: "options")
            if search.isWeightSpace {
                if let n = options["form"] { weight.form = try r.choice(n, "options.form") }
                if let n = options["f"] { weight.f = Float(try r.double(n, "options.f", range: 0...2)) }
                if let n = options["cr"] { weight.cr = Float(try r.double(n, "options.cr", range: 0...1)) }
                if let n = options["crossover"] { weight.crossover = try r.choice(n, "options.crossover") }
                if let n = options["schedule"] { weight.schedule = try r.choice(n, "options.schedule") }
                if let n = options["merged_individuals"] { weight.mergedIndividuals = try r.int(n, "options.merged_individuals", min: 0) }
                if let n = options["merger"] { weight.merger = try r.merger(n, "options.merger") }
                if weight.form == .population && weight.schedule == .generation {
                    throw r.error(options["schedule"], "options.schedule", "the population form replaces one individual at a time and needs schedule: sequential")
                }
            } else if search == .cmaES {
                if let n = options["method"] {
                    let m = try r.string(n, "options.method")
                    guard recipeMethods.contains(m) else {
                        let hint = didYouMean(m, among: recipeMethods).map { "; did you mean '\($0)'?" } ?? ""
                        throw r.error(n, "options.method", "'\(m)' is not a recipe method\(hint) (known: \(recipeMethods.joined(separator: ", ")))")
                    }
                    recipe.method = m
                }
                if let n = options["parameters"] {
                    guard let seq = n.sequence else { throw r.error(n, "options.parameters", "expected a list such as [weight, density]") }
                    // The method's numeric parameters, from FuseMerge's registry (name, scope, default).
                    let known = MethodRegistry.method(named: recipe.method)?.parameters.filter { $0.kind == .float }.map(\.name) ?? []
                    recipe.parameters = try seq.enumerated().map { k, v in
                        let p = try r.string(v, "options.parameters[\(k)]")
                        guard known.contains(p) else {
                            let hint = didYouMean(p, among: known).map { "; did you mean '\($0)'?" } ?? ""
                            throw r.error(v, "options.parameters[\(k)]", "'\(p)' is not a numeric parameter of \(recipe.method)\(hint) (its parameters: \(known.joined(separator: ", ")))")
                        }
                        return p
                    }
                    if Set(recipe.parameters).count != recipe.parameters.count {
                        throw r.error(n, "options.parameters", "lists a parameter twice")
                    }
                }
                if let n = options["layer_groups"] { recipe.layerGroups = try r.int(n, "options.layer_groups", min: 1) }
                if let n = options["sigma"] { recipe.sigma = try r.double(n, "options.sigma", range: 1e-6...10) }
                if let n = options["initial"] { recipe.initial = try r.double(n, "options.initial", range: 0...1) }
                if let n = options["frankenmerge"] { recipe.frankenmerge = try r.bool(n, "options.frankenmerge") }
            }
        }
        if search == .cmaES {
            if recipe.frankenmerge {
                if map["options"]?.mapping?["method"] == nil { recipe.method = "passthrough" }
                guard recipe.method == "passthrough" else {
                    throw r.error(options?["method"], "options.method", "a frankenmerge stacks layers with passthrough; drop method or set it to passthrough")
                }
                guard recipe.parameters.isEmpty else {
                    throw r.error(options?["parameters"], "options.parameters", "a frankenmerge searches only which source each layer comes from; drop parameters")
                }
            } else {
                if recipe.method == "passthrough" {
                    throw r.error(options?["method"], "options.method", "passthrough has no parameters to search; set frankenmerge: true for per-layer source choice")
                }
                if recipe.parameters.isEmpty { recipe.parameters = defaultRecipeParameters(recipe.method) }
                if ["slerp", "nuslerp"].contains(recipe.method) && sources.count + (base == nil ? 0 : 1) != 2 {
                    throw r.error(map["sources"], "sources", "\(recipe.method) merges exactly two models (sources plus base); got \(sources.count + (base == nil ? 0 : 1))")
                }
            }
            let needsBase = ["task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear"]
            if needsBase.contains(recipe.method) && base == nil {
                throw r.error(nil, "base", "\(recipe.method) merges task vectors over a base model; add 'base'")
            }
        }
        if search.isWeightSpace {
            if weight.form == .population && needsBaseMerger(weight.merger.method) && base == nil {
                throw r.error(options?["merger"], "options.merger.method", "\(weight.merger.method) merges task vectors over a base model; add 'base'")
            }
            let individuals = population ?? (sources.count + weight.mergedIndividuals)
            if search == .de && individuals < 4 {
                throw r.error(map["population"] ?? sourcesNode, map["population"] == nil ? "sources" : "population",
                              "DE/rand/1 needs three distinct others per individual, so at least 4 individuals; got \(individuals)")
            }
            if individuals < 2 {
                throw r.error(map["population"] ?? sourcesNode, map["population"] == nil ? "sources" : "population",
                              "weight-space search needs at least 2 individuals (each trial mixes in another); got \(individuals)")
            }
            if let p = population, p < sources.count {
                throw r.error(map["population"], "population", "\(p) is smaller than the \(sources.count) sources; every source starts as one individual")
            }
        }
        if search == .greedySoup && sources.count < 2 {
            throw r.error(sourcesNode, "sources", "a greedy soup needs at least 2 sources")
        }
        if search == .greedySoup {
            for key in ["population", "generations"] where map[key] != nil {
                throw r.error(map[key], key, "a greedy soup tries each source once, best first; drop '\(key)'")
            }
        }
        let defaultGenerations = search == .cmaES ? 20 : (search == .greedySoup ? 1 : 15)
        var spec = EvolveSpec(sources: sources, base: base, search: search, dev: dev, heldOut: heldOut, population: population,
                              generations: generations ?? defaultGenerations, budget: budget, seed: seed,
                              weightOptions: weight, sourceText: text)
        spec.outDType = outDType
        if let n = map["early_stop"] { spec.earlyStop = try r.bool(n, "early_stop") }
        spec.recipe = recipe
        return spec
    }

    static func defaultRecipeParameters(_ method: String) -> [String] {
        switch method {
        case "linear", "task_arithmetic": return ["weight"]
        case "slerp": return ["t"]
        case "nuslerp": return ["weight"]
        default: return ["weight", "density"]
        }
    }

    static func needsBaseMerger(_ method: String) -> Bool {
        ["task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear"].contains(method)
    }
}
