// Adding sources to a finished distill run (`fusekit distill SPEC OUT --add-source MODEL`, or `--resume`
// with a spec that lists one more source). A run is a list of stages, recorded in OUT_DIR/distill.json
// ("stages") so a crash, `--resume` and the report all see the lineage:
//
//   stage 0  initial     the spec's sources; training steps 0 → N
//   stage 1  add_source  + the added sources; captures only them (the rest are cached by content key),
//                        rebuilds the fused targets over all sources, and trains on from the checkpoint of
//                        step N: weights, Adam moments and step count carry over, the data stream goes on
//                        where it stopped, and `training.epochs` more passes run (N → N + M) with the
//                        warm-up + cosine schedule restarted over those M steps (a fresh schedule at the
//                        configured lr: a decayed lr would leave the new teacher almost no say).
//
// FuseChat trains one copy of the target per source pair from the target itself, so an added source
// adds one pair (trained from the target, as every pair is); the finished pairs are reused and the merge
// is redone over all pairs.
//
// OUT_DIR/spec.yml is rewritten to list the added sources, so `--resume` with the original spec after a
// kill -9 still knows them: a recorded source that the given spec lacks is kept when a stage added it.
import Foundation
import FuseIO
import Yams

/// One stage of a distill run's lineage.
public struct DistillStage: Sendable, Equatable {
    public enum Kind: String, Sendable { case initial, addSource = "add_source" }
    public var index: Int
    public var kind: Kind
    /// Every source fused in this stage, by name.
    public var sources: [String]
    /// The sources this stage added (empty for the initial stage).
    public var added: [SourceSpec] = []
    /// The step whose checkpoint the training continued from (FuseLLM add_source stages).
    public var continuedFrom: Int?
    /// The step the stage's training finished at (nil until it finishes, or without training).
    public var lastStep: Int?
    public var complete = false

    public init(index: Int, kind: Kind, sources: [String]) {
        self.index = index; self.kind = kind; self.sources = sources
    }

    public var json: JSON {
        .object([
            ("index", .int(index)), ("kind", .string(kind.rawValue)), ("sources", .array(sources.map { .string($0) })),
            ("added", .array(added.map { .object([("name", .string($0.name)), ("model", .string($0.model))]) })),
            ("continued_from_step", continuedFrom.map { .int($0) } ?? .null), ("last_step", lastStep.map { .int($0) } ?? .null),
            ("status", .string(complete ? "complete" : "running")),
        ])
    }

    init(json j: JSON, path: String) throws {
        guard let index = j["index"]?.int, let kind = j["kind"]?.string.flatMap(Kind.init(rawValue:)),
              let sources = j["sources"]?.array?.compactMap(\.string) else {
            throw DistillError.cache(path: path, message: "a 'stages' entry lacks index, kind or sources (\(j.serialized()))")
        }
        self.init(index: index, kind: kind, sources: sources)
        added = (j["added"]?.array ?? []).compactMap { a in
            guard let n = a["name"]?.string, let m = a["model"]?.string else { return nil }
            return SourceSpec(name: n, model: m)
        }
        continuedFrom = j["continued_from_step"]?.int
        lastStep = j["last_step"]?.int
        complete = j["status"]?.string == "complete"
    }
}

/// What a distill command does in its output folder: the spec it runs with (the given one plus any
/// sources earlier stages added) and the stage it runs (new, resumed, or one that adds sources).
public struct DistillPlan: Sendable {
    public var spec: DistillSpec
    /// Stages before `stage`, as recorded.
    public var earlier: [DistillStage]
    public var stage: DistillStage
    /// The output folder exists and this run continues it.
    public var continuing: Bool

    /// Decides the plan for `fusekit distill SPEC OUT [--resume] [--force] [--add-source MODEL ...]`.
    /// Every check runs before any model loads (tokenizers only, to prove an added source can decode).
    public static func make(spec given: DistillSpec, outDirectory out: String, resume: Bool, force: Bool, adding: [String]) throws -> DistillPlan {
        let fm = FileManager.default
        let exists = fm.fileExists(atPath: out)
        if !adding.isEmpty {
            if force { throw DistillError.invalidArgument("--add-source continues a finished run; it cannot be combined with --force") }
            guard exists else { throw DistillError.invalidArgument("\(out): no such run; --add-source adds sources to a finished `fusekit distill` run (run the spec first)") }
        }
        let initial = DistillStage(index: 0, kind: .initial, sources: given.sources.map(\.name))
        guard exists, !force else { return DistillPlan(spec: given, earlier: [], stage: initial, continuing: false) }
        guard resume || !adding.isEmpty else { throw DistillError.outputExists(path: out) }

        let stages = try recordedStages(out, spec: given)
        var spec = given
        // Sources a stage added that the given spec lacks: kept (resume with the original spec).
        let recordedAdded = stages.flatMap(\.added)
        for s in recordedAdded where !spec.sources.contains(where: { $0.name == s.name }) { spec.sources.append(s) }
        let recorded = stages.last?.sources ?? []
        if let last = stages.last {
            for name in recorded where !spec.sources.contains(where: { $0.name == name }) {
                throw DistillError.invalidArgument("\(out): the run has source '\(name)' (stage \(last.index)) that \(given.path) lacks; resume with the run's own spec, \(out)/spec.yml")
            }
        }
        // New sources: in the given spec but not in the run, then the --add-source models.
        var new = stages.isEmpty ? [] : spec.sources.filter { !recorded.contains($0.name) }
        var seenPaths = Set(spec.sources.map { canonicalPath($0.model) })
        for path in adding {
            try checkModelPath(path)
            let source = SourceSpec(name: DistillSpec.defaultName(path), model: path)
            if adding.filter({ canonicalPath($0) == canonicalPath(path) }).count > 1 {
                throw DistillError.invalidArgument("--add-source \(path) is given twice; give each added model once")
            }
            if !seenPaths.insert(canonicalPath(path)).inserted || spec.sources.contains(where: { $0.name == source.name }) {
                let existing = spec.sources.first { canonicalPath($0.model) == canonicalPath(path) || $0.name == source.name }
                throw DistillError.invalidArgument("--add-source \(path): the run in \(out) already has this source"
                                                   + (existing.map { " ('\($0.name)', \($0.model))" } ?? "") + "; add a different model")
            }
            new.append(source); spec.sources.append(source)
        }
        for s in new {
            do { _ = try loadTokenizer(s.model) } catch {
                throw DistillError.invalidArgument("cannot add source '\(s.name)': its tokens cannot be decoded to text, which alignment needs (\(error))")
            }
        }
        guard let last = stages.last else {
            if !new.isEmpty || !adding.isEmpty {
                throw DistillError.invalidArgument("\(out): the run has not finished its first stage (no distill.json with finished training); finish it with --resume before adding sources")
            }
            return DistillPlan(spec: spec, earlier: [], stage: initial, continuing: true)
        }
        if new.isEmpty { return DistillPlan(spec: spec, earlier: Array(stages.dropLast()), stage: last, continuing: true) }

        guard last.complete else {
            throw DistillError.invalidArgument("\(out): stage \(last.index) (\(last.kind.rawValue)) has not finished; finish it with `fusekit distill \(given.path) \(out) --resume`, then add sources")
        }
        guard spec.training.enabled else {
            throw DistillError.invalidArgument("\(out): training.enabled is false, so the run has no checkpoint to continue from; enable training to add sources")
        }
        var stage = DistillStage(index: last.index + 1, kind: .addSource, sources: spec.sources.map(\.name))
        stage.added = new
        if spec.fuseChat.enabled {
            for name in recorded where !fm.fileExists(atPath: out + "/pairs/pair-\(name)/checkpoints") {
                throw DistillError.invalidArgument("\(out)/pairs/pair-\(name)/checkpoints: missing; the run has no checkpoint of pair '\(name)' to reuse (rerun it with --force)")
            }
        } else {
            guard let step = last.lastStep, fm.fileExists(atPath: out + String(format: "/checkpoints/step-%08d/trainer.json", step)) else {
                throw DistillError.invalidArgument("\(out)/checkpoints: no checkpoint of the finished run's last step" + (last.lastStep.map { " (\($0))" } ?? "")
                                                   + "; training.save_every must have been set for it to be kept (rerun with --force)")
            }
            stage.continuedFrom = step
        }
        return DistillPlan(spec: spec, earlier: stages, stage: stage, continuing: true)
    }

    /// The stages in OUT_DIR/distill.json; a run written before stages were recorded is one initial
    /// stage (sources from OUT_DIR/spec.yml), complete when distill.json holds its training. Empty when
    /// there is no distill.json yet.
    static func recordedStages(_ out: String, spec: DistillSpec) throws -> [DistillStage] {
        let path = out + "/distill.json"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw DistillError.cache(path: path, message: "not valid JSON (\(error))") }
        if let list = json["stages"]?.array { return try list.map { try DistillStage(json: $0, path: path) } }
        let specPath = out + "/spec.yml"
        let sources = (try? String(contentsOfFile: specPath, encoding: .utf8)).flatMap { try? DistillSpec.parse(yaml: $0, path: specPath, checkFiles: false) }?.sources ?? spec.sources
        var stage = DistillStage(index: 0, kind: .initial, sources: sources.map(\.name))
        let training = json["training"]?.array ?? []
        stage.lastStep = training.first?["steps"]?.int
        stage.complete = !training.isEmpty && (!spec.fuseChat.enabled || json["merge"]?["output"] != nil)
        return [stage]
    }

    static func canonicalPath(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }

    /// An added model must exist and be a .gguf file or an HF folder (as the spec's model paths).
    static func checkModelPath(_ p: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
            throw DistillError.invalidArgument("--add-source \(p): no such model; give a .gguf file or an HF folder (config.json + *.safetensors)")
        }
        if isDir.boolValue ? !FileManager.default.fileExists(atPath: p + "/config.json") : !p.hasSuffix(".gguf") {
            throw DistillError.invalidArgument("--add-source \(p): not a .gguf file or an HF folder with config.json")
        }
    }
}

extension DistillSpec {
    /// The spec text with `sources` appended to its `sources` list (each as {model, name}). The text is
    /// re-emitted by Yams, so comments are not kept; a header line says where it came from.
    public static func text(_ yaml: String, addingSources sources: [SourceSpec], path: String) throws -> String {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw DistillError.spec(path: path, key: "", line: nil, message: "malformed YAML: \(error)") }
        guard case var .mapping(map)? = root, let list = map["sources"]?.sequence else {
            throw DistillError.spec(path: path, key: "sources", line: nil, message: "expected a mapping with a sources list")
        }
        var items = Array(list)
        for s in sources { items.append(Node([(Node("model"), Node(s.model)), (Node("name"), Node(s.name))])) }
        map["sources"] = Node(items)
        let body: String
        do { body = try Yams.serialize(node: .mapping(map)) } catch {
            throw DistillError.spec(path: path, key: "", line: nil, message: "cannot write the spec back (\(error))")
        }
        return "# \(path) with the sources added by `fusekit distill --add-source` (rewritten: comments dropped)\n" + body
    }
}
