import Foundation
import FuseTensor

/// Writes any `WeightStore` (HF folder, safetensors file, GGUF) as an HF folder: every tensor streamed
/// through `streamTensor` into planned safetensors shards, config.json with the new dtype, the source
/// folder's side files (tokenizer, generation config, chat template), plus any `extraFiles` (e.g.
/// tokenizer files built from a GGUF vocabulary). The folder appears whole or not at all.
public struct ExportOptions {
    /// Output dtype for floating-point tensors; nil keeps each stored float dtype (quantized -> bf16).
    public var dtype: DType?
    public var maxShardBytes: Int
    public var force: Bool
    public var extraFiles: [String: [UInt8]]
    public var metadata: [String: String]
    public init(dtype: DType? = nil, maxShardBytes: Int = 5_000_000_000, force: Bool = false,
                extraFiles: [String: [UInt8]] = [:], metadata: [String: String] = [:]) {
        self.dtype = dtype; self.maxShardBytes = maxShardBytes; self.force = force
        self.extraFiles = extraFiles; self.metadata = metadata
    }
}

public struct ExportSummary: Sendable {
    public var tensors: Int
    public var parameters: Int
    public var bytesWritten: Int
    public var files: [String]
    public var seconds: Double
}

/// HF's name for a dtype in config.json.
public func torchDTypeName(_ d: DType) -> String {
    switch d {
    case .f32: return "float32"
    case .f16: return "float16"
    case .bf16: return "bfloat16"
    case .f64: return "float64"
    default: return d.rawValue
    }
}

public func exportHFFolder(from store: WeightStore, to path: String, options: ExportOptions,
                           progress: ((Int, Int, String) -> Void)? = nil) throws -> ExportSummary {
    let start = Date()
    var plan: [TensorInfo] = []
    var sources: [any RowSource] = []
    for name in store.names {
        let src = try store.rows(name)
        let stored = src.info.dtype
        let outType: DType
        if stored.isFloat || stored.isQuantized { outType = options.dtype ?? (stored.isQuantized ? .bf16 : stored) }
        else { outType = stored }   // integer and bool tensors are copied as they are
        plan.append(TensorInfo(name: name, dtype: outType, shape: src.info.shape))
        sources.append(src)
    }
    let out = try AtomicOutputDirectory(finalPath: path, force: options.force)
    do {
        let writer = try ShardedSafetensorsWriter(directory: out.tempPath, tensors: plan,
                                                  maxShardBytes: options.maxShardBytes, metadata: options.metadata)
        for (k, (info, src)) in zip(plan, sources).enumerated() {
            progress?(k, plan.count, info.name)
            // read-ahead for the next tensor while this one converts; drop this one's pages after,
            // so resident memory stays at about one tensor whatever the model size
            if k + 1 < plan.count { store.advise(plan[k + 1].name, willNeed: true) }
            if info.dtype.isFloat {
                try streamTensor(src, as: info.dtype, into: writer)
            } else {
                try writer.write(info.name, bytes: try store.tensor(info.name).buffer.bytes)
            }
            store.advise(info.name, willNeed: false)
        }
        progress?(plan.count, plan.count, "")
        try writer.finish()
        // config.json: the source's (or the one derived from GGUF metadata), with the new dtype
        if var config = store.config, case var .object(pairs) = config {
            let floatTypes = Set(plan.map(\.dtype).filter(\.isFloat))
            if floatTypes.count == 1, let t = floatTypes.first {
                pairs.removeAll { $0.0 == "torch_dtype" || $0.0 == "dtype" }
                pairs.append(("dtype", .string(torchDTypeName(t))))
            }
            config = .object(pairs)
            try writeFileAtomically(path: out.tempPath + "/config.json", contents: config.serialized(indent: 2) + "\n")
        }
        if let folder = store.folder { try copySideFiles(from: folder, to: out.tempPath) }
        for (name, bytes) in options.extraFiles.sorted(by: { $0.key < $1.key }) {
            try writeFileAtomically(path: out.tempPath + "/" + name, bytes: bytes)
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: out.tempPath).sorted()) ?? []
        try out.commit()
        return ExportSummary(tensors: plan.count, parameters: plan.reduce(0) { $0 + $1.elementCount },
                             bytesWritten: plan.reduce(0) { $0 + $1.byteCount }, files: files,
                             seconds: Date().timeIntervalSince(start))
    } catch {
        out.abandon()
        throw error
    }
}

/// Files of an HF folder that are not weights: tokenizer, generation config, chat template, README.
public func copySideFiles(from folder: String, to destination: String) throws {
    let fm = FileManager.default
    let skip: Set<String> = ["config.json", "model.safetensors.index.json"]
    for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] {
        if name.hasPrefix(".") || skip.contains(name) || name.hasSuffix(".safetensors") || name.hasSuffix(".gguf")
            || name.hasSuffix(".bin") || name.hasSuffix(".pt") || name.hasSuffix(".pth") { continue }
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder + "/" + name, isDirectory: &isDir), !isDir.boolValue else { continue }
        let target = destination + "/" + name
        if fm.fileExists(atPath: target) { continue }
        do { try fm.copyItem(atPath: folder + "/" + name, toPath: target) } catch {
            throw FuseIOError.writeFailed(path: target, reason: "copying \(name): \(error.localizedDescription)")
        }
    }
}
