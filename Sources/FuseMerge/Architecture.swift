import FuseIO

/// One weight of an architecture (mergekit `_data/architectures/*.json`): its name (layer weights use
/// `{L}` for the layer index), whether it is indexed by token (embeddings, lm_head), whether it may be
/// absent (a tied lm_head), and other names it may be stored under.
public struct WeightTemplate: Sendable, Equatable {
    public var name: String
    public var vocabularyAxis: Int?
    public var optional = false
    public var aliases: [String] = []

    func at(layer: Int) -> WeightTemplate {
        var w = self
        w.name = name.replacingOccurrences(of: "{L}", with: String(layer))
        w.aliases = aliases.map { $0.replacingOccurrences(of: "{L}", with: String(layer)) }
        return w
    }
}

/// Architecture knowledge as data: which tensors come before the layers, which repeat per layer, which
/// come after, and the config key holding the layer count.
public struct ArchitectureInfo: Sendable {
    public var name: String
    public var architectures: [String]
    public var modelTypes: [String]
    public var pre: [WeightTemplate]
    public var layer: [WeightTemplate]
    public var post: [WeightTemplate]
    /// Config key of the layer count; a dotted path (`vision_config.depth`) reaches into sub-configs.
    public var layerCountKey: String
    /// A fixed layer count instead of a config key (mergekit `override_num_layers`).
    public var layerCountOverride: Int? = nil

    public func layerWeights(_ index: Int) -> [WeightTemplate] { layer.map { $0.at(layer: index) } }
}

/// One module of a multi-module ("modular") architecture, such as the text decoder, vision tower and
/// projector of a vision-language model (mergekit `_data/architectures/*.json` with `"kind": "modular"`).
/// The module's templates already carry its weight prefix.
public struct ArchitectureModule: Sendable {
    public var name: String
    public var info: ArchitectureInfo
}

/// A modular architecture: the modules in mergekit's order. A config's `models:` or single-module
/// `slices:` apply to every module; `modules:` gives each module its own models, slices and parameters.
public struct ModularArchitecture: Sendable {
    public var name: String
    public var architectures: [String]
    public var modules: [ArchitectureModule]

    public static let known: [ModularArchitecture] = [
        // mergekit _data/architectures/qwen2_vl.json
        ModularArchitecture(name: "qwen2_vl", architectures: ["Qwen2VLForConditionalGeneration"], modules: [
            ArchitectureModule(name: "text_decoder", info: ArchitectureInfo(
                name: "qwen2_vl.text_decoder", architectures: [], modelTypes: [],
                pre: [WeightTemplate(name: "model.embed_tokens.weight", vocabularyAxis: 0)],
                layer: ["input_layernorm.weight", "mlp.down_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                        "post_attention_layernorm.weight", "self_attn.k_proj.bias", "self_attn.k_proj.weight",
                        "self_attn.o_proj.weight", "self_attn.q_proj.bias", "self_attn.q_proj.weight",
                        "self_attn.v_proj.bias", "self_attn.v_proj.weight"].map { WeightTemplate(name: "model.layers.{L}.\($0)") },
                post: [WeightTemplate(name: "model.norm.weight"),
                       WeightTemplate(name: "lm_head.weight", vocabularyAxis: 0, optional: true)],
                layerCountKey: "num_hidden_layers")),
            // mergekit lists the merger MLP as "layer" weights without a layer index and overrides the count to
            // 2, so they are planned twice; the second plan wins, as in mergekit's writer.
            ArchitectureModule(name: "multi_modal_projector", info: ArchitectureInfo(
                name: "qwen2_vl.multi_modal_projector", architectures: [], modelTypes: [],
                pre: ["visual.merger.ln_q.weight", "visual.merger.ln_q.bias"].map { WeightTemplate(name: $0) },
                layer: ["visual.merger.mlp.0.weight", "visual.merger.mlp.0.bias", "visual.merger.mlp.2.weight",
                        "visual.merger.mlp.2.bias"].map { WeightTemplate(name: $0) },
                post: [], layerCountKey: "", layerCountOverride: 2)),
            ArchitectureModule(name: "vision_tower", info: ArchitectureInfo(
                name: "qwen2_vl.vision_tower", architectures: [], modelTypes: [],
                pre: [WeightTemplate(name: "visual.patch_embed.proj.weight")],
                layer: ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.qkv.weight", "attn.qkv.bias",
                        "attn.proj.weight", "attn.proj.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                        "mlp.fc2.bias"].map { WeightTemplate(name: "visual.blocks.{L}.\($0)") },
                post: [], layerCountKey: "vision_config.depth")),
        ]),
    ]

    /// The modular architecture named by a config.json's `architectures`, or nil.
    public static func lookup(config: JSON?) -> ModularArchitecture? {
        let archs = config?["architectures"]?.array?.compactMap(\.string) ?? []
        return known.first { m in archs.contains { m.architectures.contains($0) } }
    }
}

/// The value at a dotted key path of a JSON object (`vision_config.depth`).
func jsonValue(_ json: JSON?, path: String) -> JSON? {
    var node = json
    for part in path.split(separator: ".") { node = node?[String(part)] }
    return node
}

extension ArchitectureInfo {
    private static func llamaLike(_ name: String, _ archs: [String], _ types: [String], layer: [String]) -> ArchitectureInfo {
        ArchitectureInfo(
            name: name, architectures: archs, modelTypes: types,
            pre: [WeightTemplate(name: "model.embed_tokens.weight", vocabularyAxis: 0)],
            layer: layer.map { WeightTemplate(name: "model.layers.{L}.\($0)") },
            post: [WeightTemplate(name: "model.norm.weight"),
                   WeightTemplate(name: "lm_head.weight", vocabularyAxis: 0, optional: true)],
            layerCountKey: "num_hidden_layers")
    }

    static let llamaLayer = ["input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                             "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                             "mlp.up_proj.weight", "mlp.gate_proj.weight", "mlp.down_proj.weight"]

    public static let known: [ArchitectureInfo] = [
        llamaLike("llama", ["LlamaForCausalLM", "LLaMaForCausalLM"], ["llama"], layer: llamaLayer),
        llamaLike("mistral", ["MistralForCausalLM"], ["mistral"], layer: llamaLayer),
        llamaLike("qwen2", ["Qwen2ForCausalLM"], ["qwen2"], layer: [
            "input_layernorm.weight", "mlp.down_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
            "post_attention_layernorm.weight", "self_attn.k_proj.bias", "self_attn.k_proj.weight",
            "self_attn.o_proj.weight", "self_attn.q_proj.bias", "self_attn.q_proj.weight",
            "self_attn.v_proj.bias", "self_attn.v_proj.weight"]),
        llamaLike("qwen3", ["Qwen3ForCausalLM"], ["qwen3"], layer: [
            "input_layernorm.weight", "mlp.down_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
            "post_attention_layernorm.weight", "self_attn.k_norm.weight", "self_attn.k_proj.weight",
            "self_attn.q_norm.weight", "self_attn.q_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight"]),
        llamaLike("gemma2", ["Gemma2ForCausalLM"], ["gemma2"], layer: [
            "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
            "self_attn.o_proj.weight", "post_attention_layernorm.weight", "pre_feedforward_layernorm.weight",
            "mlp.up_proj.weight", "mlp.gate_proj.weight", "mlp.down_proj.weight", "post_feedforward_layernorm.weight"]),
        llamaLike("gemma3", ["Gemma3ForCausalLM"], ["gemma3_text"], layer: [
            "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_norm.weight", "self_attn.k_proj.weight",
            "self_attn.k_norm.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
            "post_attention_layernorm.weight", "pre_feedforward_layernorm.weight", "mlp.up_proj.weight",
            "mlp.gate_proj.weight", "mlp.down_proj.weight", "post_feedforward_layernorm.weight"]),
        ArchitectureInfo(
            name: "gpt2", architectures: ["GPT2LMHeadModel"], modelTypes: ["gpt2"],
            pre: [WeightTemplate(name: "transformer.wte.weight", vocabularyAxis: 0, aliases: ["wte.weight"]),
                  WeightTemplate(name: "transformer.wpe.weight", aliases: ["wpe.weight"])],
            layer: ["attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias", "ln_1.weight",
                    "ln_1.bias", "ln_2.weight", "ln_2.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "mlp.c_fc.weight",
                    "mlp.c_fc.bias"].map { WeightTemplate(name: "transformer.h.{L}.\($0)", aliases: ["h.{L}.\($0)"]) },
            post: [WeightTemplate(name: "transformer.ln_f.weight", aliases: ["ln_f.weight"]),
                   WeightTemplate(name: "transformer.ln_f.bias", aliases: ["ln_f.bias"]),
                   WeightTemplate(name: "lm_head.weight", vocabularyAxis: 0, optional: true)],
            layerCountKey: "n_layer"),
    ]

    /// The architecture named by a config.json (`architectures[0]`, else `model_type`), or nil.
    public static func lookup(config: JSON?) -> ArchitectureInfo? {
        let archs = config?["architectures"]?.array?.compactMap(\.string) ?? []
        for a in archs { if let info = known.first(where: { $0.architectures.contains(a) }) { return info } }
        if let t = config?["model_type"]?.string { return known.first { $0.modelTypes.contains(t) } }
        return nil
    }

    /// For architectures FuseKit has no table for: tensors whose name contains `.<int>.` are layer weights
    /// (their template is the name with that integer replaced), the rest are pre-layer when they sort
    /// before the first layer tensor in file order and post-layer otherwise. Embedding-like names get a
    /// vocabulary axis.
    public static func infer(names: [String], layerCountKey: String = "num_hidden_layers") -> ArchitectureInfo {
        var pre: [WeightTemplate] = [], post: [WeightTemplate] = [], layer: [WeightTemplate] = []
        var seenLayer = false
        func vocab(_ n: String) -> Int? {
            (n.contains("embed_tokens") || n.contains("wte") || n.hasPrefix("lm_head") || n.contains("word_embeddings")) ? 0 : nil
        }
        for n in names {
            let parts = n.split(separator: ".", omittingEmptySubsequences: false)
            if let k = parts.firstIndex(where: { Int($0) != nil }), k > 0, k < parts.count - 1 {
                seenLayer = true
                if parts[k] == "0" {
                    var p = parts.map(String.init); p[k] = "{L}"
                    layer.append(WeightTemplate(name: p.joined(separator: ".")))
                }
            } else if seenLayer {
                post.append(WeightTemplate(name: n, vocabularyAxis: vocab(n), optional: n.hasPrefix("lm_head")))
            } else {
                pre.append(WeightTemplate(name: n, vocabularyAxis: vocab(n), optional: n.hasPrefix("lm_head")))
            }
        }
        return ArchitectureInfo(name: "inferred", architectures: [], modelTypes: [], pre: pre, layer: layer, post: post,
                                layerCountKey: layerCountKey)
    }
}
