import Foundation
import FuseTensor

/// One lazy, memory-mapped view of a model's weights, whatever holds them: an HF folder (one
/// `model.safetensors` or shards with `model.safetensors.index.json`), a single `.safetensors` file, or
/// a `.gguf` file (exposed under HF names, see `GGUFWeights`). Nothing is read until a tensor is asked for.
public final class WeightStore: @unchecked Sendable {
    public let path: String
    /// Tensor names in file order (shard by shard).
    public let names: [String]
    /// config.json of an HF folder (or the one derived from GGUF metadata).
    public let config: JSON?
    /// The HF folder, when the model is one (tokenizer files live there).
    public let folder: String?

    private enum Backend {
        case safetensors(files: [SafetensorsFile], fileOf: [String: Int])
        case gguf(GGUFWeights)
        /// Tensors already in memory (a candidate of `fusekit evolve`, scored without writing it out).
        case memory([String: Tensor])
    }
    private let backend: Backend

    /// A store over tensors held in memory, with the config.json an HF folder would have. `path` names
    /// it in errors.
    public init(tensors: [(String, Tensor)], config: JSON?, path: String) throws {
        var map: [String: Tensor] = [:]
        for (name, t) in tensors {
            guard map.updateValue(t, forKey: name) == nil else { throw FuseIOError.duplicateTensor(path: path, tensor: name) }
        }
        self.path = path
        names = tensors.map(\.0)
        self.config = config
        folder = nil
        backend = .memory(map)
    }

    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FuseIOError.cannotOpen(path: path, reason: "no such file or folder")
        }
        if isDir.boolValue {
            folder = path
            config = try WeightStore.readConfig(folder: path)
            let index = path + "/model.safetensors.index.json"
            let single = path + "/model.safetensors"
            if FileManager.default.fileExists(atPath: index) {
                let (files, fileOf, order) = try WeightStore.openSharded(index: index, folder: path)
                backend = .safetensors(files: files, fileOf: fileOf)
                names = order
            } else if FileManager.default.fileExists(atPath: single) {
                let f = try SafetensorsFile(path: single)
                backend = .safetensors(files: [f], fileOf: Dictionary(uniqueKeysWithValues: f.tensors.map { ($0.name, 0) }))
                names = f.tensors.map(\.name)
            } else if let gguf = try? FileManager.default.contentsOfDirectory(atPath: path).filter({ $0.hasSuffix(".gguf") }).sorted(), gguf.count == 1 {
                let g = try GGUFWeights(path: path + "/" + gguf[0])
                backend = .gguf(g)
                names = g.names
            } else {
                throw FuseIOError.notAModel(path: path)
            }
        } else if path.hasSuffix(".gguf") {
            let g = try GGUFWeights(path: path)
            backend = .gguf(g)
            names = g.names
            config = g.config
            folder = nil
        } else if path.hasSuffix(".safetensors") {
            let f = try SafetensorsFile(path: path)
            backend = .safetensors(files: [f], fileOf: Dictionary(uniqueKeysWithValues: f.tensors.map { ($0.name, 0) }))
            names = f.tensors.map(\.name)
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
            config = try? WeightStore.readConfig(folder: dir)
            folder = nil
        } else {
            throw FuseIOError.notAModel(path: path)
        }
    }

    static func readConfig(folder: String) throws -> JSON? {
        let p = folder + "/config.json"
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        return try readJSONFile(p)
    }

    private static func openSharded(index: String, folder: String) throws -> ([SafetensorsFile], [String: Int], [String]) {
        let json = try readJSONFile(index)
        guard let map = json["weight_map"]?.object else {
            throw FuseIOError.corrupt(path: index, what: "no 'weight_map' object; expected {\"weight_map\": {tensor: shard file}}")
        }
        var files: [SafetensorsFile] = []
        var fileIndex: [String: Int] = [:]
        var fileOf: [String: Int] = [:]
        for (tensor, shardJSON) in map {
            guard let shard = shardJSON.string else {
                throw FuseIOError.corrupt(path: index, what: "weight_map entry for '\(tensor)' is not a file name")
            }
            guard !shard.contains("/"), !shard.hasPrefix(".") else {
                throw FuseIOError.corrupt(path: index, what: "weight_map names '\(shard)' for '\(tensor)', which is outside the folder")
            }
            if fileIndex[shard] == nil {
                let p = folder + "/" + shard
                guard FileManager.default.fileExists(atPath: p) else {
                    throw FuseIOError.missingShard(index: index, shard: shard, tensor: tensor)
                }
                fileIndex[shard] = files.count
                files.append(try SafetensorsFile(path: p))
            }
            let k = fileIndex[shard]! // invariant: set just above
            guard files[k].info(tensor) != nil else {
                throw FuseIOError.corrupt(path: index, what: "weight_map puts '\(tensor)' in \(shard), which does not contain it")
            }
            fileOf[tensor] = k
        }
        // Order: shard by shard (sorted by file name), data order inside each shard.
        let ordered = files.enumerated().sorted { $0.element.path < $1.element.path }
        var order: [String] = []
        for (k, f) in ordered { order += f.tensors.map(\.name).filter { fileOf[$0] == k } }
        return (files, fileOf, order)
    }

    public func info(_ name: String) -> TensorInfo? {
        switch backend {
        case let .safetensors(files, fileOf): return fileOf[name].flatMap { files[$0].info(name) }
        case let .gguf(g): return g.info(name)
        case let .memory(map): return map[name].map { TensorInfo(name: name, dtype: $0.dtype, shape: $0.shape) }
        }
    }

    /// The tensor in its stored dtype (zero-copy from the memory map for safetensors).
    public func tensor(_ name: String) throws -> Tensor {
        switch backend {
        case let .safetensors(files, fileOf):
            guard let k = fileOf[name] else { throw FuseIOError.missingTensor(path: path, tensor: name) }
            return try files[k].tensor(name)
        case let .gguf(g): return try g.tensor(name)
        case let .memory(map):
            guard let t = map[name] else { throw FuseIOError.missingTensor(path: path, tensor: name) }
            return t
        }
    }

    /// The tensor's values as Float32.
    public func floats(_ name: String) throws -> [Float] { try tensor(name).floats() }

    /// Which file holds a tensor, and where (for read-ahead hints and error messages).
    public func location(_ name: String) -> (file: MappedFile, range: Range<Int>)? {
        switch backend {
        case let .safetensors(files, fileOf):
            guard let k = fileOf[name], let r = files[k].byteRange(name) else { return nil }
            return (files[k].file, r)
        case .gguf, .memory: return nil
        }
    }

    /// Read-ahead (`willNeed`) or release (`!willNeed`) of a tensor's pages in the memory map. Released
    /// pages stay in the page cache but leave this process's resident set.
    public func advise(_ name: String, willNeed: Bool) {
        switch backend {
        case .safetensors:
            if let (file, range) = location(name) { file.advise(offset: range.lowerBound, count: range.count, willNeed: willNeed) }
        case let .gguf(g): g.advise(name, willNeed: willNeed)
        case .memory: break
        }
    }

    /// The GGUF view behind this store, when it reads a GGUF file.
    var gguf: GGUFWeights? { if case let .gguf(g) = backend { return g }; return nil }

    /// The GGUF file behind this store (metadata, vocabulary), when it reads one.
    public var ggufFile: GGUFFile? { gguf?.file }

    /// Parameter count (elements of every tensor).
    public var parameterCount: Int { names.reduce(0) { $0 + (info($1)?.elementCount ?? 0) } }
}

/// Reads and parses a JSON file, naming the file and byte offset on error.
public func readJSONFile(_ path: String) throws -> JSON {
    let f = try MappedFile(path: path)
    let bytes = try f.bytes(offset: 0, count: f.size, what: "JSON")
    do { return try JSON.parse(bytes) } catch let e as JSON.ParseError {
        throw FuseIOError.badJSON(path: path, offset: e.offset, what: e.message)
    }
}
