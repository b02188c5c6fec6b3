import Foundation
import FuseIO
import FuseTensor

/// A model with a PEFT LoRA adapter folded into its weights, as peft's `merge_and_unload` does it
/// (peft/tuners/lora/layer.py `Linear.merge` / `get_delta_weight`, `Embedding.merge`):
///
///     ΔW = (B·A) · scale           computed in Float32 (peft upcasts bf16/f16 adapters on load)
///     W' = round_dtype(W + ΔW)     one rounding to the weight's dtype (`base_layer.weight.data += ΔW`);
///                                  embeddings round ΔW to the weight's dtype first (`Embedding.merge`)
///
/// ΔW is transposed for fan_in_fan_out (GPT-2's Conv1D, in × out) and for embeddings (vocab × dim);
/// scale is alpha / r, or alpha / √r with use_rslora (`PEFTConfig.scale`). Whole tensors the adapter
/// saved (modules_to_save, embedding base layers) replace the model's. Tensors are produced one at a
/// time on demand, so merges read a `model+lora` reference with no copy of the merged model
/// (mergekit writes one to its cache first); `applyLora` streams it into a folder.
public final class LoraAppliedSource: ModelSource {
    public let base: WeightStore
    public let adapter: PEFTAdapter
    public let adapterPath: String
    /// dtype the weights are loaded in before the adapter is added (transformers' `torch_dtype`);
    /// nil keeps each tensor's stored dtype.
    public let dtype: DType?
    /// Output tensor name → adapted module.
    private let moduleOf: [String: String]

    public init(base: WeightStore, adapter: PEFTAdapter, adapterPath: String, dtype: DType? = nil) throws {
        self.base = base
        self.adapter = adapter
        self.adapterPath = adapterPath
        self.dtype = dtype
        var moduleOf: [String: String] = [:]
        let file = adapterPath + "/" + PEFTAdapter.weightsFile
        for module in adapter.modules {
            let f = adapter.factors[module]! // invariant: from keys
            let name = module + ".weight"
            guard let info = base.info(name) else {
                throw MergeError.io("\(file): adapter module '\(module)' has no weight '\(name)' in \(base.path); the adapter was trained on another architecture or base model")
            }
            let out = f.b.shape[0], inner = f.a.shape[1]
            let expected = (f.isEmbedding || adapter.config.fanInFanOut) ? [inner, out] : [out, inner]
            guard info.shape == expected else {
                throw MergeError.shapeMismatch(tensor: name, shapes: [(base.path, info.shape), ("\(file) (B·A\(expected == [out, inner] ? "" : "ᵀ"))", expected)])
            }
            moduleOf[name] = module
        }
        for (name, t) in adapter.fullTensors {
            guard let info = base.info(name) else {
                throw MergeError.io("\(file): tensor '\(PEFTAdapter.prefix + name)' replaces '\(name)', which \(base.path) does not have; the adapter was trained on another base model")
            }
            guard info.shape == t.shape else {
                throw MergeError.shapeMismatch(tensor: name, shapes: [(base.path, info.shape), (file, t.shape)])
            }
        }
        self.moduleOf = moduleOf
    }

    public convenience init(modelPath: String, adapterPath: String, dtype: DType? = nil) throws {
        try self.init(base: WeightStore(path: modelPath), adapter: PEFTAdapter.read(path: adapterPath), adapterPath: adapterPath, dtype: dtype)
    }

    public var tensorNames: [String] { base.names }
    public var modelConfig: JSON? { base.config }
    public var folderPath: String? { base.folder }

    /// The dtype a tensor comes out in: the load dtype, else the stored one (f32 for quantized GGUF blocks).
    func resultDType(_ stored: DType) -> DType { dtype ?? (stored.isFloat ? stored : .f32) }

    public func tensorInfo(_ name: String) -> TensorInfo? {
        guard let info = base.info(name) else { return nil }
        guard info.dtype.isFloat || info.dtype.isQuantized else { return info }
        return TensorInfo(name: name, dtype: resultDType(info.dtype), shape: info.shape)
    }

    /// Whether the adapter changes this tensor.
    public func isAdapted(_ name: String) -> Bool { moduleOf[name] != nil || adapter.fullTensors[name] != nil }

    public func release(_ name: String) { base.release(name) }
    public func prefetch(_ name: String) { base.prefetch(name) }

    public func readFloats(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws -> Bool {
        guard let info = base.info(name), info.dtype.isFloat || info.dtype.isQuantized else { return false }
        guard info.elementCount == dst.count, let out = dst.baseAddress else {
            throw MergeError.shapeMismatch(tensor: name, shapes: [(base.path, info.shape), ("destination", [dst.count])])
        }
        let pr = Precision(resultDType(info.dtype))
        if let full = adapter.fullTensors[name] {   // saved whole: modules_to_save, an embedding's base layer
            try full.toFloat32(into: out, count: dst.count)
        } else if try !base.readFloats(name, into: dst) {
            try base.tensor(name).toFloat32(into: out, count: dst.count)
            base.release(name)
        }
        pr.round(dst)   // transformers loads the weight in `dtype`
        guard let module = moduleOf[name], let f = adapter.factors[module] else { return true }
        let delta = try LoraAppliedSource.delta(f, scale: adapter.config.scale(module: module),
                                                transposed: f.isEmbedding || adapter.config.fanInFanOut)
        if f.isEmbedding {   // Embedding.merge: `weight += delta.to(orig_dtype)`, so ΔW is rounded first
            for i in dst.indices { dst[i] = pr.r(dst[i] + pr.r(delta[i])) }
        } else {             // Linear.merge: `weight += delta` with ΔW in Float32, one rounding
            for i in dst.indices { dst[i] = pr.r(dst[i] + delta[i]) }
        }
        return true
    }

    public func loadTensor(_ name: String) throws -> Tensor {
        guard let info = tensorInfo(name) else { throw FuseIOError.missingTensor(path: base.path, tensor: name) }
        guard info.dtype.isFloat else { return try base.tensor(name) }
        var values = [Float](repeating: 0, count: info.elementCount)
        _ = try values.withUnsafeMutableBufferPointer { try readFloats(name, into: $0) }
        return try Tensor(floats: values, shape: info.shape).converted(to: info.dtype)
    }

    /// ΔW = (B·A)·scale in Float32, or its transpose: the rounding order of peft's
    /// `transpose(weight_B @ weight_A, fan_in_fan_out) * scaling` (Float32 matmul, then a Float32 multiply).
    public static func delta(_ f: LoraFactors, scale: Double, transposed: Bool) throws -> [Float] {
        let a = try f.a.floats(), b = try f.b.floats()
        let r = f.rank, out = f.b.shape[0], inner = f.a.shape[1]
        var c = [Float](repeating: 0, count: out * inner)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    guard let pa = pa.baseAddress, let pb = pb.baseAddress, let pc = pc.baseAddress, r > 0 else { return }
                    if transposed {   // (B·A)ᵀ = Aᵀ·Bᵀ: inner × out
                        BLAS.sgemm(transA: true, transB: true, m: inner, n: out, k: r, a: pa, lda: inner, b: pb, ldb: r, c: pc, ldc: out)
                    } else {          // B·A: out × inner
                        BLAS.sgemm(m: out, n: inner, k: r, a: pb, lda: r, b: pa, ldb: inner, c: pc, ldc: inner)
                    }
                }
            }
        }
        let s = Float(scale)   // torch multiplies a Float32 tensor by a Python float in Float32
        for i in c.indices { c[i] *= s }
        return c
    }
}

public struct ApplyLoraSummary: Sendable {
    public var output: String
    public var tensors: Int
    public var adaptedModules: Int
    public var replacedTensors: Int
    public var bytesWritten: Int
    public var seconds: Double
}

/// `fusekit apply-lora`: the base with the adapter merged in, written tensor by tensor as an HF folder
/// (shards, config.json with the dtype, tokenizer and generation files, `extraFiles`), atomically.
public func applyLora(model modelPath: String, adapter adapterPath: String, outPath: String, dtype: DType? = nil,
                      maxShardBytes: Int = 5_000_000_000, force: Bool = false, extraFiles: [String: [UInt8]] = [:],
                      progress: ((Int, Int, String) -> Void)? = nil) throws -> ApplyLoraSummary {
    let start = Date()
    let source = try LoraAppliedSource(modelPath: modelPath, adapterPath: adapterPath, dtype: dtype)
    let infos = source.tensorNames.compactMap { source.tensorInfo($0) }
    let out = try AtomicOutputDirectory(finalPath: outPath, force: force)
    do {
        let writer = try ShardedSafetensorsWriter(directory: out.tempPath, tensors: infos, maxShardBytes: maxShardBytes,
                                                  metadata: ["format": "pt"])
        for (k, info) in infos.enumerated() {
            progress?(k, infos.count, info.name)
            let t = try source.loadTensor(info.name)
            try writer.write(info.name, bytes: t.buffer.bytes)
        }
        try writer.finish(sync: false)
        if case var .object(pairs)? = source.modelConfig {
            let floatTypes = Set(infos.map(\.dtype).filter(\.isFloat))
            if let t = dtype ?? (floatTypes.count == 1 ? floatTypes.first : nil) {
                pairs.removeAll { $0.0 == "torch_dtype" || $0.0 == "dtype" }
                pairs.append(("dtype", .string(torchDTypeName(t))))
            }
            try writeFileAtomically(path: out.tempPath + "/config.json", contents: JSON.object(pairs).serialized(indent: 2) + "\n")
        }
        if let folder = source.folderPath { try copySideFiles(from: folder, to: out.tempPath) }
        // Files the caller derives (a GGUF base's tokenizer files, which FuseMerge cannot make itself).
        for (name, bytes) in extraFiles.sorted(by: { $0.key < $1.key }) {
            try writeFileAtomically(path: out.tempPath + "/" + name, bytes: bytes)
        }
        try out.commit()
    } catch {
        out.abandon()
        throw error
    }
    progress?(infos.count, infos.count, "")
    return ApplyLoraSummary(output: outPath, tensors: infos.count, adaptedModules: source.adapter.factors.count,
                            replacedTensors: source.adapter.fullTensors.count, bytesWritten: infos.reduce(0) { $0 + $1.byteCount },
                            seconds: Date().timeIntervalSince(start))
}
