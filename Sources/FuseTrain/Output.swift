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

/// The PEFT prefix of adapter keys.
let peftPrefix = "base_model.model."

/// Writes the LoRA factors of `model` (its trainable parameters, named `<module>.lora_A.weight` /
/// `.lora_B.weight`) as a PEFT adapter. Kept in one function so that FuseIO's PEFT writer can take
/// its place when it lands.
public func writeLoRAAdapter(_ model: any TrainableModel, settings: LoRASettings, baseModel: String, to directory: String) throws {
    let lora = model.trainableParameters.filter { $0.name.contains(".lora_A.") || $0.name.contains(".lora_B.") }
    guard !lora.isEmpty else { throw FuseTrainError.model("the model has no LoRA parameters to save; attach LoRA before training") }
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let tensors = try lora.map { (peftPrefix + $0.name, try Tensor(floats: $0.value, shape: $0.shape)) }
    try writeSafetensors(path: directory + "/adapter_model.safetensors", tensors: tensors, metadata: ["format": "pt"])
    let config: JSON = .object([
        ("alpha_pattern", .object([])), ("auto_mapping", .null), ("base_model_name_or_path", .string(baseModel)),
        ("bias", .string("none")), ("fan_in_fan_out", .bool(false)), ("inference_mode", .bool(true)),
        ("init_lora_weights", .bool(true)), ("layers_pattern", .null), ("layers_to_transform", .null),
        ("lora_alpha", .double(Double(settings.alpha))), ("lora_dropout", .double(Double(settings.dropout))),
        ("modules_to_save", .null), ("peft_type", .string("LORA")), ("r", .int(settings.rank)),
        ("rank_pattern", .object([])), ("revision", .null),
        ("target_modules", .array(settings.targetModules.map { .string($0) })),
        ("task_type", .string("CAUSAL_LM")), ("use_dora", .bool(false)), ("use_rslora", .bool(false)),
    ])
    try writeFileAtomically(path: directory + "/adapter_config.json", contents: config.serialized(indent: 2) + "\n")
}
