import Foundation
import FuseIO
import FuseNN
import FuseTensor

// MARK: - What a training run leaves in OUT_DIR
//
// Full fine-tuning: an HF folder (model.safetensors with every parameter in HF names, config.json,
// the tokenizer and generation files of the source model). LoRA: a PEFT adapter (adapter_config.json,
// adapter_model.safetensors with keys `base_model.model.<module>.lora_A.weight` / `.lora_B.weight`).
// OUT_DIR also holds the run's metrics.jsonl and checkpoints/, which loaders ignore. Each file is
// written to a temporary sibling and renamed; the config file goes last, so a folder with a config
// always has its weights.

/// Writes every parameter of `model` as an HF folder into `directory` (which may already hold the run's
/// log and checkpoints). `config` is the source model's config.json (nil: none is written), `sideFiles`
/// the folder whose tokenizer and generation files are copied.
public func writeFullModel(_ model: any TrainableModel, to directory: String, config: JSON?, sideFiles: String?,
                           extraFiles: [String: [UInt8]] = [:]) throws {
    let fm = FileManager.default
    try? fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let tensors = try model.allParameters.map { ($0.name, try Tensor(floats: $0.value, shape: $0.shape)) }
    try writeSafetensors(path: directory + "/model.safetensors", tensors: tensors, metadata: ["format": "pt"])
    if let folder = sideFiles { try copySideFiles(from: folder, to: directory) }
    for (name, bytes) in extraFiles.sorted(by: { $0.key < $1.key }) {
        try writeFileAtomically(path: directory + "/" + name, bytes: bytes)
    }
    if case var .object(pairs)? = config {
        pairs.removeAll { $0.0 == "torch_dtype" || $0.0 == "dtype" }
        pairs.append(("dtype", .string("float32")))
        try writeFileAtomically(path: directory + "/config.json", contents: JSON.object(pairs).serialized(indent: 2) + "\n")
    }
}

/// Writes the LoRA factors of `model` (its trainable parameters, named `<module>.lora_A.weight` /
/// `.lora_B.weight`) as a PEFT adapter through FuseIO's `PEFTAdapter` (each file atomic).
public func writeLoRAAdapter(_ model: any TrainableModel, settings: LoRASettings, baseModel: String, to directory: String) throws {
    var factors: [String: LoraFactors] = [:]
    var a: [String: Parameter] = [:], b: [String: Parameter] = [:]
    for p in model.trainableParameters {
        if p.name.hasSuffix(".lora_A.weight") { a[String(p.name.dropLast(".lora_A.weight".count))] = p }
        else if p.name.hasSuffix(".lora_B.weight") { b[String(p.name.dropLast(".lora_B.weight".count))] = p }
    }
    guard !a.isEmpty else { throw FuseTrainError.model("the model has no LoRA parameters to save; attach LoRA before training") }
    for (module, pa) in a {
        guard let pb = b[module] else { throw FuseTrainError.model("LoRA module \(module) has lora_A but no lora_B") }
        factors[module] = LoraFactors(a: try Tensor(floats: pa.value, shape: pa.shape), b: try Tensor(floats: pb.value, shape: pb.shape))
    }
    var config = PEFTConfig(r: settings.rank, loraAlpha: Double(settings.alpha), targetModules: settings.targetModules,
                            baseModelNameOrPath: baseModel)
    config.extra = [("lora_dropout", .double(Double(settings.dropout)))]
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try PEFTAdapter(config: config, factors: factors).write(into: directory)
}
