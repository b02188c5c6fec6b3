import Foundation
import FuseIO
import FuseModels
import FuseNN
import FuseTensor
import FuseTokenizers
import FuseTrain

/// What `fusekit transfer` did, for the CLI's summary and run.json.
public struct TransferSummary {
    public var layerMap: [Int]
    public var modules: Int
    public var seedSamples: Int
    /// Σ‖W_ext − B₀A₀‖² / Σ‖W_ext‖² over the extracted matrices (share of energy the rank dropped).
    public var truncationLoss: Double
    /// |loss(student) − loss(step-0 model)| on the first training batch: 0 up to rounding when the
    /// injection leaves the student intact.
    public var stepZeroLossDifference: Double
    public var sensitivitySeconds: Double
    public var extractionSeconds: Double
    public var training: TrainSummary
    public var outputs: [String: String]
}

/// Runs the whole method: sensitivity of the teacher on the seeds, layer and module pairing,
/// extraction, injection into the student, LoRA training, and the outputs (trained PEFT adapter, the
/// release's delta adapter −B₀A₀, and the merged model W_S − s·B₀A₀ + s·B·A). Extraction results are
/// saved under OUT_DIR/extraction and reused by `resume`; training resumes from its checkpoints.
public enum TransferRun {
    public typealias TokenizerLookup = (_ modelPath: String, _ store: WeightStore) throws -> (any TextEncoder, Int?)

    public static func run(spec: TransferSpec, outDir: String, resume: Bool, tokenizer: TokenizerLookup,
                           log: (String) -> Void = { _ in }, observe: ((StepMetrics) throws -> Void)? = nil) throws -> TransferSummary {
        let fm = FileManager.default
        let extractionDir = outDir + "/extraction"
        try fm.createDirectory(atPath: extractionDir, withIntermediateDirectories: true)
        let initPath = extractionDir + "/init.safetensors", sensitivityPath = extractionDir + "/sensitivity.safetensors"
        let lora = LoRASettings(rank: spec.rank, alpha: spec.alpha, dropout: spec.dropout, targetModules: spec.targetModules)

        let studentStore = try WeightStore(path: spec.student)
        var modules: [ExtractedModule]
        var layerMap: [Int]
        var seedCount = 0
        var sensitivitySeconds = 0.0, extractionSeconds = 0.0
        if resume, fm.fileExists(atPath: initPath) {
            (modules, layerMap) = try loadExtraction(from: initPath)
            log("transfer: reusing \(modules.count) extracted modules from \(initPath)")
        } else {
            let teacherStore = try WeightStore(path: spec.teacher)
            let teacher = try ModelRegistry.loadTrainable(store: teacherStore)
            let (encoder, eos) = try tokenizer(spec.teacher, teacherStore)
            let seeds = try loadSeedSamples(path: spec.seeds, encoder: encoder, eos: eos, seqLen: spec.training.seqLen, limit: spec.maxSeeds)
            seedCount = seeds.count
            let teacherShapes = Dictionary(uniqueKeysWithValues: teacher.allParameters.map { ($0.name, $0.shape) })
            let studentShapes = Dictionary(uniqueKeysWithValues: studentStore.names.compactMap { n in studentStore.info(n).map { (n, $0.shape) } })
            let teacherLayers = layerCount(teacherStore.config, names: Array(teacherShapes.keys))
            let studentLayers = layerCount(studentStore.config, names: Array(studentShapes.keys))
            if spec.layerSelection != .spread && teacherLayers < studentLayers {
                throw TransferError.spec(key: "layer_selection", what: "the teacher has \(teacherLayers) layers and the student \(studentLayers); only 'spread' can map a shallower teacher onto a deeper student")
            }
            // Pair on the identity map first to check every role before the expensive pass.
            _ = try pairModules(student: studentShapes, teacher: teacherShapes, targets: spec.targetModules,
                                layerMap: (0..<studentLayers).map { min($0, teacherLayers - 1) })
            let wanted = Set(spec.targetModules)
            func targeted(_ name: String) -> Bool {
                guard name.hasSuffix(".weight"), decoderLayer(of: name) != nil else { return false }
                let module = String(name.dropLast(".weight".count))
                return wanted.contains { module.hasSuffix("." + $0) || module == $0 }
            }
            let t0 = Date()
            let sensitivity: Sensitivity
            if resume, fm.fileExists(atPath: sensitivityPath) {
                sensitivity = try Sensitivity.load(from: sensitivityPath)
            } else {
                log("transfer: sensitivity of \(spec.teacher) on \(seeds.count) seed samples")
                sensitivity = try Sensitivity.compute(model: teacher, samples: seeds, include: targeted)
                try sensitivity.save(to: sensitivityPath)
            }
            sensitivitySeconds = Date().timeIntervalSince(t0)
            let totals = sensitivity.layerTotals()
            layerMap = try selectLayers(spec.layerSelection, teacherLayers: teacherLayers, studentLayers: studentLayers,
                                        totals: totals, seed: spec.seed)
            let pairs = try pairModules(student: studentShapes, teacher: teacherShapes, targets: spec.targetModules, layerMap: layerMap)
            let heads = HeadLayout(teacherHeadDim: headDim(teacherStore.config), studentHeadDim: headDim(studentStore.config))
            let byName = Dictionary(uniqueKeysWithValues: teacher.allParameters.map { ($0.name, $0) })
            let t1 = Date()
            modules = try extractModules(pairs: pairs, teacherWeights: { name in
                guard let p = byName[name] else { throw TransferError.missingModule(model: spec.teacher, module: name) }
                return p.value
            }, teacherShapes: teacherShapes, studentShapes: studentShapes, sensitivity: sensitivity, rule: spec.dimensionSelection,
               rank: spec.rank, heads: heads)
            extractionSeconds = Date().timeIntervalSince(t1)
            try saveExtraction(modules, layerMap: layerMap, to: initPath)
            log("transfer: extracted \(modules.count) modules; teacher layers for the student's: \(layerMap)")
        }

        // The student with its LoRA starting from the extraction.
        let student = try ModelRegistry.loadTrainable(store: studentStore)
        let (encoder, eos) = try tokenizer(spec.student, studentStore)
        let data = try TrainingData.load(path: spec.training.data, encoder: encoder, eos: eos, seqLen: spec.training.seqLen)
        let evalData = try spec.training.eval.map { try TrainingData.load(path: $0, encoder: encoder, eos: eos, seqLen: spec.training.seqLen) }
        guard let firstSequence = data.sequences.first else { throw TransferError.invalidArgument("\(spec.training.data): no training sequences") }
        let probe = makeBatch([firstSequence])
        let before = try student.evaluateLoss(probe, loss: .crossEntropy).loss
        try student.attachLoRA(lora, seed: spec.seed)
        switch spec.initialisation {
        case .transfer: try inject(modules, into: student, scale: lora.scale)
        case .random: try inject(randomized(modules, seed: spec.seed), into: student, scale: lora.scale)
        case .zero: break
        }
        let after = try student.evaluateLoss(probe, loss: .crossEntropy).loss

        var settings = TrainerSettings(steps: spec.training.steps, optimizer: AdamWSettings(lr: spec.training.lr, weightDecay: spec.training.weightDecay))
        settings.batchSize = spec.training.batchSize
        settings.gradAccum = spec.training.gradAccum
        settings.warmup = spec.training.warmup
        settings.clip = spec.training.clip
        settings.seed = spec.seed
        settings.saveEvery = spec.training.saveEvery
        settings.evalEvery = spec.training.evalEvery
        let trainer = try Trainer(model: student, data: data, evalData: evalData, settings: settings, outputDirectory: outDir)
        let trained = try trainer.run(resume: resume && fm.fileExists(atPath: trainer.checkpointDirectory)) { try observe?($0) }

        // Outputs: the trained adapter (its base is the student minus s·B₀A₀), the delta adapter that
        // makes that base from the student, and the merged model.
        var outputs: [String: String] = [:]
        try writeLoRAAdapter(student, settings: lora, baseModel: spec.student, to: outDir + "/adapter")
        outputs["adapter"] = outDir + "/adapter"
        if spec.initialisation != .zero {
            try writeDeltaAdapter(spec.initialisation == .transfer ? modules : randomized(modules, seed: spec.seed), settings: lora,
                                  baseModel: spec.student, to: outDir + "/delta_adapter")
            outputs["delta_adapter"] = outDir + "/delta_adapter"
        }
        try mergeLoRA(into: student, scale: lora.scale)
        let merged = outDir + "/merged"
        // A GGUF student has no tokenizer files to copy: make them from its vocabulary.
        let tokenizerFiles = try studentStore.ggufFile.map { try TokenizerFiles.huggingFaceFiles(from: GGUFVocabulary(gguf: $0)).mapValues { Array($0.utf8) } } ?? [:]
        try writeFullModel(student, to: merged, config: studentStore.config, sideFiles: studentStore.folder, extraFiles: tokenizerFiles)
        outputs["merged"] = merged

        let energy = modules.reduce((0.0, 0.0)) { ($0.0 + $1.residual * $1.residual, $0.1 + $1.norm * $1.norm) }
        return TransferSummary(layerMap: layerMap, modules: modules.count, seedSamples: seedCount,
                               truncationLoss: energy.1 > 0 ? energy.0 / energy.1 : 0, stepZeroLossDifference: abs(after - before),
                               sensitivitySeconds: sensitivitySeconds, extractionSeconds: extractionSeconds, training: trained, outputs: outputs)
    }

    /// Decoder depth from config.json, or from the tensor names.
    static func layerCount(_ config: JSON?, names: [String]) -> Int {
        if let n = config?["num_hidden_layers"]?.int ?? config?["n_layer"]?.int { return n }
        return (names.compactMap(decoderLayer(of:)).max() ?? -1) + 1
    }

    static func headDim(_ config: JSON?) -> Int {
        if let d = config?["head_dim"]?.int { return d }
        guard let c = config?["hidden_size"]?.int ?? config?["n_embd"]?.int, let h = config?["num_attention_heads"]?.int ?? config?["n_head"]?.int, h > 0 else { return 0 }
        return c / h
    }
}

/// Random factors with the same Frobenius norms as the extracted ones (the ablation "random init of the
/// same norm"), seeded per module.
public func randomized(_ modules: [ExtractedModule], seed: UInt64) -> [ExtractedModule] {
    modules.map { m in
        var rng = SeededRNG(seed: seed, name: "transfer.random." + m.pair.student, chunk: 0)
        func like(_ x: [Float]) -> [Float] {
            let target = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let r = x.map { _ in Float(rng.nextGaussian()) }
            let n = r.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            return n > 0 ? r.map { $0 * Float(target / n) } : r
        }
        var out = m
        out.b = like(m.b)
        out.a = like(m.a)
        return out
    }
}

/// W ← W + s·B·A for every LoRA module of `model` (the trained adapter folded into the base weights).
public func mergeLoRA(into model: any TrainableModel, scale s: Float) throws {
    var base: [String: Parameter] = [:]
    for p in model.allParameters { base[p.name] = p }
    var a: [String: Parameter] = [:], b: [String: Parameter] = [:]
    for p in model.trainableParameters {
        if p.name.hasSuffix(".lora_A.weight") { a[String(p.name.dropLast(".lora_A.weight".count))] = p }
        if p.name.hasSuffix(".lora_B.weight") { b[String(p.name.dropLast(".lora_B.weight".count))] = p }
    }
    for (module, pa) in a {
        guard let pb = b[module], let w = base[module + ".weight"] else { throw TransferError.missingModule(model: "student", module: module) }
        let (out, r, inF) = (pb.shape[0], pa.shape[0], pa.shape[1])
        var product = [Float](repeating: 0, count: out * inF)
        BLAS.sgemm(m: out, n: inF, k: r, alpha: s, a: pb.value, lda: r, b: pa.value, ldb: inF, beta: 0, c: &product, ldc: inF)
        for j in 0..<product.count { w.value[j] += product[j] }
    }
}

/// The release's delta adapter: (B₀, −A₀) with the same rank and alpha, so applying it to the
/// student gives W_S − s·B₀A₀, the base the trained adapter belongs to.
public func writeDeltaAdapter(_ modules: [ExtractedModule], settings: LoRASettings, baseModel: String, to directory: String) throws {
    var factors: [String: LoraFactors] = [:]
    for m in modules {
        factors[m.pair.student] = LoraFactors(a: try Tensor(floats: m.a.map { -$0 }, shape: [m.rank, m.inFeatures]),
                                              b: try Tensor(floats: m.b, shape: [m.outFeatures, m.rank]))
    }
    let config = PEFTConfig(r: settings.rank, loraAlpha: Double(settings.alpha), targetModules: settings.targetModules, baseModelNameOrPath: baseModel)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try PEFTAdapter(config: config, factors: factors).write(into: directory)
}
