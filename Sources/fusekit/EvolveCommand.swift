import ArgumentParser
import Foundation
import FuseEvolve
import FuseReport
import FuseIO

struct EvolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evolve",
        abstract: "Evolve a fused model: Evolver / DE in weight space, CMA-ES over merge recipes, or a greedy soup.",
        discussion: """
        SPEC.yml names the sources, the search and the fitness tasks (`fusekit eval`
        JSONL files); the format is in docs/formats.md ("Evolve specs"). OUT_DIR gets
        state.json (resumable), log.jsonl (one line per generation), model/ (the
        result, an HF folder as `fusekit merge` writes it), recipe.yml (recipe
        search: mergekit YAML that `fusekit merge` reruns) and run.json.

        Example spec:
          sources: [./ft-arith, ./ft-facts, ./ft-format]
          search: evolver          # evolver | de | cma-es | greedy-soup
          fitness:
            dev: [{task: dev.jsonl, weight: 1}]
            held_out: [test.jsonl]
          generations: 15
          options: {f: 0.5, cr: 0.5, crossover: element, form: individual}

        Examples:
          fusekit evolve spec.yml runs/evo --seed 1
          fusekit evolve spec.yml runs/evo --resume      # after a crash or Ctrl-C
          fusekit evolve spec.yml runs/evo --add-source ./ft-new
          fusekit evolve spec.yml runs/evo --workers 2   # `fusekit eval` workers
        """)

    @Argument(help: "The evolve spec (YAML).")
    var spec: String

    @Argument(help: "The run folder (state, log, result).")
    var outDir: String

    @Flag(name: .long, help: "Continue the run in OUT_DIR from its last checkpoint.")
    var resume = false

    @Option(name: .long, help: "Seed (overrides the spec's); the same seed gives the same bytes with any --threads.")
    var seed: UInt64?

    @Flag(name: .long, help: "Start over if OUT_DIR exists.")
    var force = false

    @Option(name: .customLong("add-source"), help: "Add a model to a finished run and continue from its checkpoint (repeatable).")
    var addSource: [String] = []

    @Option(name: .long, help: "Score candidates with N `fusekit eval` worker processes (0: in this process).")
    var workers = 0

    @Option(name: .customLong("batch-size"), help: "Sequences per forward call when scoring choices.")
    var batchSize = 8

    @Option(name: .customLong("max-memory"), help: "Memory budget of weight-space search, e.g. 4GB, 1.5GiB: individuals beyond it wait on disk (same results, more reads).")
    var maxMemory: String?

    @OptionGroup var runOptions: RunOptions

    mutating func validate() throws {
        if workers < 0 { throw ValidationError("--workers must be 0 or more") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let m = maxMemory, (parseByteSize(m) ?? 0) <= 0 { throw ValidationError("--max-memory '\(m)' is not a positive size such as 4GB, 800MB or 1.5GiB") }
        if resume && force { throw ValidationError("give --resume or --force, not both") }
        if force && !addSource.isEmpty { throw ValidationError("--add-source continues a finished run; it cannot be combined with --force") }
    }

    func run() throws {
        runOptions.apply()
        let text: String
        do { text = try String(contentsOfFile: spec, encoding: .utf8) } catch {
            throw EvolveError.spec(path: "", line: nil, message: "\(spec): cannot read the spec (\(error.localizedDescription))")
        }
        let directory = URL(fileURLWithPath: spec).standardizedFileURL.deletingLastPathComponent().path
        let parsed = try EvolveSpec.parse(yaml: text, directory: directory)
        let added = try addSource.map { path -> String in
            let full = URL(fileURLWithPath: path).standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: full) else { throw ValidationError("--add-source \(path): no such model") }
            return full
        }
        let evaluator: CandidateEvaluator
        if workers > 0 {
            let exe = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
            let executable = FileManager.default.isExecutableFile(atPath: exe) ? exe : (Bundle.main.executablePath ?? exe)
            evaluator = WorkerEvaluator(command: [executable, "eval", "--batch-size", String(batchSize)] + (runOptions.threads.map { ["--threads", String($0)] } ?? []),
                                        workers: workers)
        } else {
            evaluator = InProcessEvaluator(codec: try loadCodec(modelPath: parsed.sources[0]), batchSize: batchSize)
        }
        var options = EvolveOptions(evaluator: evaluator)
        options.seed = seed
        options.resume = resume
        options.force = force
        options.addSources = added
        options.maxMemoryBytes = maxMemory.flatMap(parseByteSize)
        let quiet = runOptions.quiet
        options.progress = { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
        let started = Date()
        let summary = try EvolveRun.run(spec: parsed, outDir: outDir, options: options)
        // run.json in FuseReport's schema (the search's own summary becomes its measurements).
        var log = RunLog(command: "evolve", status: .complete, started: started)
        log.finished = Date()
        log.config = ("fusekit-evolve", text)
        let roles: [(String, String)] = (parsed.base.map { [("base", $0)] } ?? []) + (parsed.sources + added).map { ("source", $0) }
        log.inputs = roles.map { RunLog.Input(role: $0.0, name: $0.1, path: $0.1, identity: modelIdentity(path: $0.1)) }
        log.timings = [("total_seconds", summary.seconds)]
        log.measurements = summary.json
        log.logs = [("generations", "log.jsonl"), ("state", "state.json")] + (summary.recipe != nil ? [("recipe", "recipe.yml")] : [])
        try log.write(to: outDir)
        if runOptions.json {
            printJSON(summary.json)
        } else {
            var line = String(format: "evolved %@ in %@: best dev %.6g", summary.search, formatSeconds(summary.seconds), summary.bestDev)
            if let h = summary.heldOut { line += String(format: ", held-out %.6g", h) }
            line += " after \(summary.generations) generations, \(summary.evaluations) evaluations; model: \(summary.model)"
            if let r = summary.recipe { line += ", recipe: \(r)" }
            print(line + ", peak memory \(formatBytes(summary.peakMemoryBytes))")
        }
    }
}
