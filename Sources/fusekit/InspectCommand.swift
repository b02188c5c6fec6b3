import ArgumentParser
import Foundation
import FuseIO
import FuseTensor

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's architecture, parameter count, tensors, metadata and tokenizer.",
        discussion: """
        Examples:
          fusekit inspect models/smollm2.gguf
          fusekit inspect ./my-merge --json
        """)

    @Argument(help: "An HF folder, a .safetensors file or a .gguf file.")
    var model: String

    @Flag(name: .long, help: "Print the report as JSON (stable keys: format, architecture, parameters, bytes, tensors, metadata, tokenizer).")
    var json = false

    @Option(name: .long, help: "Show at most this many tensors in the table (all with --json).")
    var maxTensors = 40

    func run() throws {
        let report = try ModelReport(path: model)
        if json { printJSON(report.json); return }
        print(report.text(maxTensors: maxTensors))
    }
}

/// What `inspect` knows about a model, built once and rendered as text or JSON.
struct ModelReport {
    var path: String
    var format: String
    var architecture: String?
    var modelType: String?
    var parameters = 0
    var bytes = 0
    var tensors: [(name: String, dtype: String, shape: [Int], bytes: Int)] = []
    var metadata: [(String, JSON)] = []
    var tokenizer: [(String, JSON)] = []

    init(path: String) throws {
        self.path = path
        if path.hasSuffix(".gguf") {
            format = "gguf"
            try describeGGUF(try GGUFFile(path: path))
            return
        }
        let store = try WeightStore(path: path)
        format = store.folder != nil ? "hf-folder" : "safetensors"
        for name in store.names {
            guard let info = store.info(name) else { continue }
            tensors.append((name, info.dtype.traits.safetensorsName ?? info.dtype.rawValue, info.shape, info.byteCount))
            parameters += info.elementCount
            bytes += info.byteCount
        }
        if let config = store.config {
            architecture = config["architectures"]?.array?.first?.string
            modelType = config["model_type"]?.string
            metadata = config.object ?? []
        }
        if let folder = store.folder { tokenizer = ModelReport.tokenizerSummary(folder: folder) }
    }

    /// GGUF: the file's own tensor names and block types (shapes in PyTorch order, i.e. `ne`
    /// reversed), every metadata key (long arrays summarised), and the vocabulary's summary.
    mutating func describeGGUF(_ file: GGUFFile) throws {
        architecture = file.architecture
        format = "gguf v\(file.version)"
        for t in file.tensors {
            tensors.append((t.name, t.dtype.rawValue.uppercased(), t.shape, t.byteCount))
            parameters += t.elementCount
            bytes += t.byteCount
        }
        metadata = file.keys.compactMap { k in file.metadata[k].map { (k, ModelReport.json($0)) } }
        let m = file.metadata
        if let model = m["tokenizer.ggml.model"]?.string {
            tokenizer = [("source", .string("gguf")), ("type", .string(model))]
            if let pre = m["tokenizer.ggml.pre"]?.string { tokenizer.append(("pre", .string(pre))) }
            tokenizer.append(("vocab_size", .int(m["tokenizer.ggml.tokens"]?.array?.count ?? 0)))
            if let merges = m["tokenizer.ggml.merges"]?.array { tokenizer.append(("merges", .int(merges.count))) }
            for k in ["bos_token_id", "eos_token_id", "add_bos_token", "add_eos_token"] {
                if let v = m["tokenizer.ggml." + k] { tokenizer.append((k, ModelReport.json(v))) }
            }
        }
    }

    /// A GGUF value as JSON; arrays longer than 64 become {type, count, first}.
    static func json(_ v: GGUFValue) -> JSON {
        switch v {
        case let .string(s): return .string(s)
        case let .bool(b): return .bool(b)
        case let .float32(f): return .number(f.isFinite ? "\(f)" : "null")   // shortest decimal of the f32
        case let .array(a):
            let items = a.values.prefix(a.count > 64 ? 8 : 64).map { json($0) }
            if a.count > 64 {
                return .object([("type", .string(a.elementType.description)), ("count", .int(a.count)), ("first", .array(items))])
            }
            return .array(items)
        default:
            if let i = v.int { return .int(i) }
            if let d = v.double { return .double(d) }
            return .string(v.description)
        }
    }

    static func tokenizerSummary(folder: String) -> [(String, JSON)] {
        let path = folder + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let json = try? readJSONFile(path) else { return [("source", .string("tokenizer.json")), ("error", .string("unreadable"))] }
        var out: [(String, JSON)] = [("source", .string("tokenizer.json"))]
        if let model = json["model"] {
            out.append(("type", model["type"] ?? .null))
            if let vocab = model["vocab"] {
                out.append(("vocab_size", .int(vocab.object?.count ?? vocab.array?.count ?? 0)))
            }
            if let merges = model["merges"]?.array { out.append(("merges", .int(merges.count))) }
        }
        if let added = json["added_tokens"]?.array { out.append(("added_tokens", .int(added.count))) }
        return out
    }

    var json: JSON {
        .object([
            ("path", .string(path)),
            ("format", .string(format)),
            ("architecture", architecture.map { .string($0) } ?? .null),
            ("model_type", modelType.map { .string($0) } ?? .null),
            ("parameters", .int(parameters)),
            ("bytes", .int(bytes)),
            ("tensors", .array(tensors.map { t in
                .object([("name", .string(t.name)), ("dtype", .string(t.dtype)),
                         ("shape", .array(t.shape.map { JSON.int($0) })), ("bytes", .int(t.bytes))])
            })),
            ("metadata", .object(metadata)),
            ("tokenizer", tokenizer.isEmpty ? .null : .object(tokenizer)),
        ])
    }

    func text(maxTensors: Int) -> String {
        var lines: [String] = []
        lines.append("model        \(path)")
        lines.append("format       \(format)")
        lines.append("architecture \(architecture ?? "-")\(modelType.map { " (\($0))" } ?? "")")
        lines.append("parameters   \(parameters.formatted()) (\(formatBytes(bytes)) of tensor data)")
        var counts: [String: Int] = [:]
        for t in tensors { counts[t.dtype, default: 0] += 1 }
        lines.append("dtypes       " + counts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        if !tokenizer.isEmpty {
            lines.append("tokenizer    " + tokenizer.map { "\($0.0)=\(ModelReport.short($0.1))" }.joined(separator: " "))
        }
        if !metadata.isEmpty {
            lines.append("")
            lines.append("metadata")
            let width = min(48, metadata.map(\.0.count).max() ?? 0)
            for (k, v) in metadata { lines.append("  " + k.padding(toLength: max(width, k.count), withPad: " ", startingAt: 0) + "  " + ModelReport.short(v)) }
        }
        lines.append("")
        lines.append("tensors (\(tensors.count))")
        let nameWidth = min(60, tensors.prefix(maxTensors).map(\.name.count).max() ?? 4)
        lines.append("  " + "name".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  dtype   shape                bytes")
        for t in tensors.prefix(maxTensors) {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            lines.append("  " + t.name.padding(toLength: max(nameWidth, t.name.count), withPad: " ", startingAt: 0) + "  "
                         + t.dtype.padding(toLength: 6, withPad: " ", startingAt: 0) + "  "
                         + shape.padding(toLength: 19, withPad: " ", startingAt: 0) + "  " + formatBytes(t.bytes))
        }
        if tensors.count > maxTensors { lines.append("  … \(tensors.count - maxTensors) more (--max-tensors N, or --json for all)") }
        return lines.joined(separator: "\n")
    }

    /// A value on one line: long arrays become their length and first items.
    static func short(_ v: JSON) -> String {
        if let a = v.array, a.count > 8 {
            return "[\(a.count) items: " + a.prefix(4).map { $0.serialized() }.joined(separator: ", ") + ", …]"
        }
        let s = v.serialized()
        return s.count > 120 ? String(s.prefix(117)) + "…" : s
    }
}
