import FuseIO
import FuseMerge
import FuseTensor

/// Merges a population into one model (Evolver's mode B merger, greedy soup's average). Pluggable:
/// Fisher and RegMean, which need statistics from training, conform to this and add one line to
/// `PopulationMergers.all`.
public protocol PopulationMerger: Sendable {
    var name: String { get }
    /// Merges the population's models (and `base`, for task-vector methods) into one weight set in
    /// `layout`. The models are sources so that spilled individuals stream from their files.
    func merge(_ population: [ModelSource], layout: WeightLayout, base: WeightSet?, config: JSON?, seed: UInt64) throws -> WeightSet
}

extension PopulationMerger {
    /// Merges individuals held in memory.
    public func merge(_ population: [WeightSet], base: WeightSet?, config: JSON?, seed: UInt64) throws -> WeightSet {
        guard let first = population.first else { throw EvolveError.invalidArgument("merger \(name): empty population") }
        return try merge(population.map { InMemoryModel($0, config: config) }, layout: first.layout, base: base, config: config, seed: seed)
    }
}

/// A FuseMerge registry method run on the in-memory population: each individual is a model of an
/// ordinary mergekit config (`models: [ind0, ind1, ...]`, the given parameters set globally with
/// weight 1 unless given), planned and executed exactly as `fusekit merge` would.
public struct FuseMergeMerger: PopulationMerger {
    public let name: String
    public let parameters: [String: Double]
    /// Per-individual string parameters (statistics files of fisher / regmean), by individual index.
    public let perModel: [Int: ParameterSettings]
    public init(method: String, parameters: [String: Double] = [:], perModel: [Int: ParameterSettings] = [:]) {
        name = method; self.parameters = parameters; self.perModel = perModel
    }

    public func merge(_ population: [ModelSource], layout: WeightLayout, base: WeightSet?, config: JSON?, seed: UInt64) throws -> WeightSet {
        guard !population.isEmpty else { throw EvolveError.invalidArgument("merger \(name): empty population") }
        var sources: [ModelReference: ModelSource] = [:]
        var models: [InputModel] = []
        for (k, source) in population.enumerated() {
            let ref = ModelReference(path: "ind\(k)")
            sources[ref] = source
            models.append(InputModel(model: ref, parameters: perModel[k] ?? [:]))
        }
        var baseRef: ModelReference?
        if let base {
            let ref = ModelReference(path: "base")
            sources[ref] = InMemoryModel(base, config: config)
            baseRef = ref
        }
        var settings: ParameterSettings = ["weight": .number(1)]
        for (k, v) in parameters { settings[k] = .number(v) }
        let mergeConfig = MergeConfig(mergeMethod: name, baseModel: baseRef, models: models, dtype: .f32, outDType: .f32, parameters: settings)
        let plan = try MergePlanner(config: mergeConfig, sources: sources).plan()
        let ordered: [ModelSource] = plan.models.compactMap { sources[$0] }
        let sink = InMemorySink()
        var options = ExecutionOptions(seed: seed)
        options.prefetchBudgetBytes = 256 << 20
        try MergeExecutor(plan: plan, sources: ordered, options: options).run(into: sink)
        let merged = Dictionary(sink.tensors, uniquingKeysWith: { a, _ in a })
        return WeightSet(layout: layout, tensors: try layout.names.map { name in
            guard let t = merged[name] else { throw EvolveError.incompatibleModels("merger \(self.name) produced no tensor '\(name)'") }
            return try t.floats()
        })
    }
}

/// The mergers a spec may name (`options.merger`): one line each, a name and how to build it from the
/// spec. Fisher and RegMean (statistics from FuseTrain) add their lines here.
public enum PopulationMergers {
    public typealias Factory = @Sendable (MergerSpec) -> PopulationMerger
    static let fuseMerge: Factory = { FuseMergeMerger(method: $0.method, parameters: $0.parameters) }

    public static let all: [(name: String, make: Factory)] = [
        ("linear", fuseMerge),
        ("task_arithmetic", fuseMerge),
        ("ties", fuseMerge),
        ("dare_ties", fuseMerge),
        ("dare_linear", fuseMerge),
        ("breadcrumbs", fuseMerge),
        ("breadcrumbs_ties", fuseMerge),
        ("della", fuseMerge),
        ("della_linear", fuseMerge),
        ("karcher", fuseMerge),
        ("model_stock", fuseMerge),
        ("fisher", statistics(parameter: "fisher")),
        ("regmean", statistics(parameter: "gram")),
    ]

    /// Fisher and RegMean read one statistics file per model (`fusekit stats`): `options.merger.files`
    /// maps each individual's index ("0", "1", ... — individual k starts as source k) to its file. The
    /// statistics are the sources'; evolved individuals keep their source's file.
    static func statistics(parameter: String) -> Factory {
        { spec in
            var perModel: [Int: ParameterSettings] = [:]
            for (key, path) in spec.files { if let k = Int(key) { perModel[k] = [parameter: .value(.scalar(.string(path)))] } }
            return FuseMergeMerger(method: spec.method, parameters: spec.parameters, perModel: perModel)
        }
    }

    public static var names: [String] { all.map(\.name) }

    /// The merger for `spec`; its name was checked when the spec was parsed.
    public static func make(_ spec: MergerSpec) -> PopulationMerger {
        (all.first { $0.name == spec.method }?.make ?? fuseMerge)(spec)
    }
}
