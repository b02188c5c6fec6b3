import Foundation
import FuseIO
import FuseTensor

/// Vocabulary alignment for `tokenizer_source` / `tokenizer.source` (mergekit `tokenizer/build.py` and
/// `tokenizer/embed.py`): builds the output vocabulary (base, one model's, or the union), then rebuilds
/// every token-indexed tensor of every input with one row per output token, matched by token string:
/// the model's own row when it has the token; else the fallback row: the one model that has it, the
/// base's row when the base has it, the mean over the models that have it, or zeros when none does.
/// Rows added by `pad_to_multiple_of` are the mean of the real rows.
final class VocabularyAlignment: RowMapper, @unchecked Sendable {
    /// Output tokens in id order.
    let tokens: [String]
    var outputCount: Int
    /// For each plan model: output id -> that model's id (-1 when it lacks the token).
    let maps: [[Int]]
    let baseModel: Int?
    /// tokenizer.json to write, and the folder to copy the other tokenizer files from.
    let tokenizerJSON: JSON?
    let tokenizerFolder: String?
    let forced: Set<String>

    init(tokens: [String], outputCount: Int, maps: [[Int]], baseModel: Int?, tokenizerJSON: JSON?, tokenizerFolder: String?, forced: Set<String>) {
        self.tokens = tokens
        self.outputCount = outputCount
        self.maps = maps
        self.baseModel = baseModel
        self.tokenizerJSON = tokenizerJSON
        self.tokenizerFolder = tokenizerFolder
        self.forced = forced
    }

    /// id -> token of a model's tokenizer.json (vocab plus added tokens), ids below `limit` only.
    static func vocabulary(of source: ModelSource, model: String) throws -> (tokens: [Int: String], json: JSON) {
        try vocabulary(folder: source.folderPath, vocabSize: source.modelConfig?["vocab_size"]?.int, model: model)
    }

    /// The same from a folder; `vocabSize` nil keeps every token (mergekit loads a `tokenizer_source` model's
    /// tokenizer whole, where the base's is stripped to its config's vocab_size).
    static func vocabulary(folder: String?, vocabSize: Int?, model: String) throws -> (tokens: [Int: String], json: JSON) {
        guard let folder else {
            throw MergeError.unsupported("tokenizer_source needs HF folders with tokenizer.json; '\(model)' is not one")
        }
        let path = folder + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: path) else {
            throw MergeError.unsupported("\(model): no tokenizer.json (FuseKit aligns vocabularies through tokenizer.json)")
        }
        let json = try readJSONFile(path)
        var tokens: [Int: String] = [:]
        if let vocab = json["model"]?["vocab"] {
            if let pairs = vocab.object { for (t, id) in pairs { if let i = id.int { tokens[i] = t } } }
            else if let list = vocab.array { for (i, e) in list.enumerated() { if let t = e.array?.first?.string { tokens[i] = t } } }
        }
        for added in json["added_tokens"]?.array ?? [] {
            if let id = added["id"]?.int, let t = added["content"]?.string { tokens[id] = t }
        }
        let limit = vocabSize ?? Int.max
        return (tokens.filter { $0.key < limit }, json)
    }

    static func build(source: TokenizerSource, config: MergeConfig, plan: MergePlan, sources: [ModelSource],
                      workingDirectory: String = FileManager.default.currentDirectoryPath) throws -> VocabularyAlignment {
        let baseIndex = config.baseModel.flatMap { plan.models.firstIndex(of: $0) }
        var donorIndex = baseIndex ?? 0
        // A named source gives the output vocabulary whole; it may be a model outside the merge (its folder
        // is read for its tokenizer only), as mergekit's build_tokenizer allows.
        var named: (tokens: [Int: String], json: JSON, folder: String)?
        if case let .model(ref) = source {
            if let i = plan.models.firstIndex(of: ref) { donorIndex = i }
            let folder = ref.path.hasPrefix("/") ? ref.path : workingDirectory + "/" + ref.path
            guard FileManager.default.fileExists(atPath: folder + "/tokenizer.json") else {
                throw MergeError.config(path: config.tokenizer != nil ? "tokenizer.source" : "tokenizer_source", line: nil,
                                        message: "'\(ref)' has no tokenizer.json (FuseKit aligns vocabularies through tokenizer.json)")
            }
            let v = try vocabulary(folder: folder, vocabSize: nil, model: ref.description)
            named = (v.tokens, v.json, folder)
        }
        var vocabularies: [[Int: String]] = [], addedTokenIDs: [Set<Int>] = []
        var donorJSON: JSON?
        for (k, s) in sources.enumerated() {
            let v = try vocabulary(of: s, model: plan.models[k].description)
            vocabularies.append(v.tokens)
            addedTokenIDs.append(Set((v.json["added_tokens"]?.array ?? []).compactMap { $0["id"]?.int }))
            if k == donorIndex { donorJSON = v.json }
        }
        if let named { donorJSON = named.json }
        var tokens = (named?.tokens ?? vocabularies[donorIndex]).sorted { $0.key < $1.key }.map(\.value)
        var added: [String] = []
        if case .union = source {
            // mergekit `build_union_tokenizer`: every model's regular tokens missing from the base, model
            // by model (base first), then every model's added (special) tokens.
            var known = Set(tokens)
            for special in [false, true] {
                for (k, v) in vocabularies.enumerated() {
                    for (id, t) in v.sorted(by: { $0.key < $1.key }) where !known.contains(t) && addedTokenIDs[k].contains(id) == special {
                        known.insert(t); tokens.append(t); added.append(t)
                    }
                }
            }
        }
        var forced = Set<String>()
        for entry in config.tokenizer?.tokens ?? [] {
            if !tokens.contains(entry.token) { tokens.append(entry.token); added.append(entry.token) }
            if entry.force { forced.insert(entry.token) }
        }
        var count = tokens.count
        if let m = config.tokenizer?.padToMultipleOf, m > 0 { count = (count + m - 1) / m * m }
        let maps = vocabularies.map { v -> [Int] in
            var byToken: [String: Int] = [:]
            for (id, t) in v where byToken[t] == nil || id < (byToken[t] ?? Int.max) { byToken[t] = id }
            return tokens.map { byToken[$0] ?? -1 }
        }
        var json = donorJSON
        if !added.isEmpty, case var .object(pairs)? = json {
            var list = json?["added_tokens"]?.array ?? []
            let firstNew = (named?.tokens ?? vocabularies[donorIndex]).keys.max().map { $0 + 1 } ?? 0
            for (k, t) in added.enumerated() {
                list.append(.object([("id", .int(firstNew + k)), ("content", .string(t)), ("single_word", .bool(false)),
                                     ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(false)), ("special", .bool(false))]))
            }
            if let i = pairs.firstIndex(where: { $0.0 == "added_tokens" }) { pairs[i].1 = .array(list) } else { pairs.append(("added_tokens", .array(list))) }
            json = .object(pairs)
        }
        return VocabularyAlignment(tokens: tokens, outputCount: count, maps: maps, baseModel: baseIndex,
                                   tokenizerJSON: json, tokenizerFolder: named?.folder ?? sources[donorIndex].folderPath, forced: forced)
    }

    /// The plan with every token-indexed tensor resized to the output vocabulary.
    func adjust(_ plan: MergePlan) -> MergePlan {
        var p = plan
        for i in p.entries.indices where p.entries[i].vocabularyAxis == 0 && !p.entries[i].shape.isEmpty {
            p.entries[i].shape[0] = outputCount
        }
        return p
    }

    func align(entry: PlanEntry, inputs: inout [Scratch], shape: inout [Int]) throws {
        let rowLength = shape.dropFirst().reduce(1, *)
        guard entry.vocabularyAxis == 0, rowLength > 0 else { return }
        let rowsOf = inputs.map { $0.buffer.count / rowLength }
        let real = tokens.count
        let pr = Precision(entry.computeDType)
        var aligned: [Scratch] = []
        for (k, input) in inputs.enumerated() {
            let model = entry.inputs[k].model
            let out = Scratch(count: outputCount * rowLength)
            for r in 0..<real {
                let own = maps[model][r]
                let token = tokens[r]
                var sourceRow: (Int, Int)?       // (input index, row)
                if own >= 0 && own < rowsOf[k] && !forced.contains(token) { sourceRow = (k, own) }
                if let (i, row) = sourceRow {
                    for c in 0..<rowLength { out.buffer[r * rowLength + c] = inputs[i].buffer[row * rowLength + c] }
                    continue
                }
                // Fallback: models (among this tensor's inputs) that have the token.
                let having = entry.inputs.indices.filter { maps[entry.inputs[$0].model][r] >= 0 && maps[entry.inputs[$0].model][r] < rowsOf[$0] }
                let chosen: [Int]
                if having.count == 1 { chosen = having }
                else if let b = baseModel, let bi = entry.inputs.firstIndex(where: { $0.model == b }), having.contains(bi) { chosen = [bi] }
                else { chosen = having }
                guard !chosen.isEmpty else { continue }   // zeros
                // Summed model by model and divided, in the computation dtype (mergekit's embed + tensor; /= count).
                for c in 0..<rowLength {
                    var s: Float = 0
                    for i in chosen { s = pr.r(s + inputs[i].buffer[maps[entry.inputs[i].model][r] * rowLength + c]) }
                    out.buffer[r * rowLength + c] = pr.r(s / Float(chosen.count))
                }
            }
            if outputCount > real && real > 0 {
                for c in 0..<rowLength {
                    var s = 0.0
                    for r in 0..<real { s += Double(out.buffer[r * rowLength + c]) }
                    let mean = pr.r(Float(s / Double(real)))
                    for r in real..<outputCount { out.buffer[r * rowLength + c] = mean }
                }
            }
            aligned.append(out)
        }
        inputs = aligned
        shape[0] = outputCount
    }

    /// tokenizer.json (with any added tokens) plus the donor's other tokenizer files.
    func writeTokenizer(to directory: String) throws {
        if let folder = tokenizerFolder {
            let fm = FileManager.default
            for name in ["tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "added_tokens.json", "merges.txt",
                         "vocab.json", "chat_template.jinja", "chat_template.json", "generation_config.json"] {
                let from = folder + "/" + name
                if fm.fileExists(atPath: from), !fm.fileExists(atPath: directory + "/" + name) {
                    try? fm.copyItem(atPath: from, toPath: directory + "/" + name)
                }
            }
        }
        if let json = tokenizerJSON {
            try writeFileAtomically(path: directory + "/tokenizer.json", contents: json.serialized(indent: 2) + "\n")
        }
    }
}
