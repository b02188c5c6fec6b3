import FuseTensor

/// Per-architecture GGUF <-> HF facts: the tensor name table, which tensors get which transform, and
/// config.json from the metadata (transformers' `GGUF_CONFIG_MAPPING` plus the constants llama.cpp
/// hard-codes). The HF and GGUF tensor-name strings appear here and nowhere else.
struct GGUFArchitecture {
    enum Family: String { case llama, qwen2, gemma3, gpt2 }

    let family: Family
    let arch: String
    let file: GGUFFile

    init(file: GGUFFile) throws {
        self.file = file
        arch = file.architecture ?? ""
        switch arch {
        case "llama", "mistral", "granite": family = .llama
        case "qwen2": family = .qwen2
        case "gemma3": family = .gemma3
        case "gpt2": family = .gpt2
        default:
            throw FuseIOError.unsupported(path: file.path,
                what: "GGUF architecture '\(arch)' is not supported (supported: llama, mistral, qwen2, gemma3, gpt2)")
        }
    }

    // MARK: - metadata helpers

    func int(_ key: String) -> Int? { file.metadata["\(arch).\(key)"]?.int }
    func double(_ key: String) -> Double? { file.metadata["\(arch).\(key)"]?.double }
    /// A float metadata value as config.json should show it: f32 values by their shortest decimal
    /// (1e-06, not 9.999999974752427e-07).
    func number(_ key: String) -> JSON? {
        switch file.metadata["\(arch).\(key)"] {
        case let .float32(v)?: return .number(v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) + ".0" : "\(v)")
        case let v?: return v.double.map { .double($0) }
        case nil: return nil
        }
    }
    func require(_ key: String) throws -> Int {
        guard let v = int(key) else { throw FuseIOError.corrupt(path: file.path, what: "metadata key '\(arch).\(key)' is missing") }
        return v
    }

    // MARK: - names

    /// Per-layer suffixes: GGUF `blk.N.<gguf>` -> HF `<prefix>N.<hf>`.
    private var layerTable: [String: String] {
        switch family {
        case .llama, .qwen2:
            return ["attn_norm.weight": "input_layernorm.weight",
                    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
                    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
                    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
                    "attn_v.bias": "self_attn.v_proj.bias",
                    "ffn_norm.weight": "post_attention_layernorm.weight",
                    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
                    "ffn_down.weight": "mlp.down_proj.weight"]
        case .gemma3:
            return ["attn_norm.weight": "input_layernorm.weight",
                    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
                    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
                    "attn_q_norm.weight": "self_attn.q_norm.weight", "attn_k_norm.weight": "self_attn.k_norm.weight",
                    "post_attention_norm.weight": "post_attention_layernorm.weight",
                    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
                    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
                    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
                    "ffn_down.weight": "mlp.down_proj.weight"]
        case .gpt2:
            return ["attn_norm.weight": "ln_1.weight", "attn_norm.bias": "ln_1.bias",
                    "attn_qkv.weight": "attn.c_attn.weight", "attn_qkv.bias": "attn.c_attn.bias",
                    "attn_output.weight": "attn.c_proj.weight", "attn_output.bias": "attn.c_proj.bias",
                    "ffn_norm.weight": "ln_2.weight", "ffn_norm.bias": "ln_2.bias",
                    "ffn_up.weight": "mlp.c_fc.weight", "ffn_up.bias": "mlp.c_fc.bias",
                    "ffn_down.weight": "mlp.c_proj.weight", "ffn_down.bias": "mlp.c_proj.bias"]
        }
    }

    private var globalTable: [String: String] {
        switch family {
        case .llama, .qwen2, .gemma3:
            return ["token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                    "output.weight": "lm_head.weight"]
        case .gpt2:
            return ["token_embd.weight": "transformer.wte.weight", "position_embd.weight": "transformer.wpe.weight",
                    "output_norm.weight": "transformer.ln_f.weight", "output_norm.bias": "transformer.ln_f.bias",
                    "output.weight": "lm_head.weight"]
        }
    }

    private var layerPrefix: String { family == .gpt2 ? "transformer.h." : "model.layers." }

    /// The HF name and transform of a GGUF tensor; nil for tensors that are not parameters.
    func mapping(for t: GGUFTensorInfo) throws -> GGUFMapping? {
        if t.name == "rope_freqs.weight" { return nil }   // Llama 3 rope scaling: derived from config
        var hf: String?
        var suffix = t.name
        if t.name.hasPrefix("blk."), let dot = t.name.dropFirst(4).firstIndex(of: ".") {
            let layer = t.name[t.name.index(t.name.startIndex, offsetBy: 4)..<dot]
            suffix = String(t.name[t.name.index(after: dot)...])
            if let s = layerTable[suffix] { hf = layerPrefix + layer + "." + s }
        } else {
            hf = globalTable[t.name]
        }
        guard let hfName = hf else {
            throw FuseIOError.unsupported(path: file.path,
                what: "tensor '\(t.name)' has no transformers name for architecture '\(arch)'; the file may come from a newer converter")
        }
        var transform = GGUFMapping.Transform.none
        switch family {
        case .llama:
            if suffix == "attn_q.weight" || suffix == "attn_q.bias" { transform = .unpermute(heads: try require("attention.head_count")) }
            if suffix == "attn_k.weight" || suffix == "attn_k.bias" {
                transform = .unpermute(heads: try int("attention.head_count_kv") ?? require("attention.head_count"))
            }
        case .gemma3:
            if suffix.hasSuffix("norm.weight") || t.name == "output_norm.weight" { transform = .minusOne }
        case .gpt2:
            if t.ne.count == 2, ["attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight"].contains(suffix) {
                transform = .transpose
            }
        case .qwen2: break
        }
        return GGUFMapping(hfName: hfName, ggufName: t.name, transform: transform)
    }

    // MARK: - config.json

    func config(hasOutput: Bool) -> JSON {
        var c: [(String, JSON)] = []
        func put(_ k: String, _ v: JSON?) { if let v { c.append((k, v)) } }
        func i(_ key: String) -> JSON? { int(key).map { .int($0) } }
        func d(_ key: String) -> JSON? { number(key) }
        let vocab = int("vocab_size") ?? file.metadata["tokenizer.ggml.tokens"]?.array?.count
        let heads = int("attention.head_count")
        let hidden = int("embedding_length")
        switch family {
        case .llama, .qwen2:
            put("architectures", .array([.string(family == .qwen2 ? "Qwen2ForCausalLM" : (arch == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"))]))
            put("model_type", .string(family == .qwen2 ? "qwen2" : (arch == "mistral" ? "mistral" : "llama")))
            put("hidden_size", i("embedding_length")); put("intermediate_size", i("feed_forward_length"))
            put("num_hidden_layers", i("block_count")); put("num_attention_heads", i("attention.head_count"))
            put("num_key_value_heads", i("attention.head_count_kv") ?? i("attention.head_count"))
            if let hd = int("rope.dimension_count") ?? int("attention.key_length") { put("head_dim", .int(hd)) }
            else if let h = hidden, let n = heads, n > 0 { put("head_dim", .int(h / n)) }
            put("max_position_embeddings", i("context_length")); put("rms_norm_eps", d("attention.layer_norm_rms_epsilon"))
            put("rope_theta", d("rope.freq_base") ?? .double(10000)); put("hidden_act", .string("silu"))
            put("attention_bias", .bool(family == .qwen2)); put("mlp_bias", .bool(false))
            // transformers 5 reads rope_parameters; rope_theta/rope_scaling keep 4.x readers working
            var rope: [(String, JSON)] = [("rope_type", .string("default")), ("rope_theta", d("rope.freq_base") ?? .double(10000))]
            if let kind = file.metadata["\(arch).rope.scaling.type"]?.string, kind != "none",
               let factor = double("rope.scaling.factor") {
                put("rope_scaling", .object([("rope_type", .string(kind)), ("factor", .double(factor))]))
                rope[0] = ("rope_type", .string(kind))
                rope.append(("factor", .double(factor)))
            }
            put("rope_parameters", .object(rope))
            if family == .qwen2, let w = int("attention.sliding_window") { put("sliding_window", .int(w)) }
        case .gemma3:
            let layers = int("block_count") ?? 0
            let keyLength = int("attention.key_length") ?? (hidden.flatMap { h in heads.map { h / max($0, 1) } } ?? 256)
            put("architectures", .array([.string("Gemma3ForCausalLM")])); put("model_type", .string("gemma3_text"))
            put("hidden_size", i("embedding_length")); put("intermediate_size", i("feed_forward_length"))
            put("num_hidden_layers", i("block_count")); put("num_attention_heads", i("attention.head_count"))
            put("num_key_value_heads", i("attention.head_count_kv")); put("head_dim", .int(keyLength))
            put("max_position_embeddings", i("context_length")); put("rms_norm_eps", d("attention.layer_norm_rms_epsilon"))
            put("rope_theta", d("rope.freq_base") ?? .double(1_000_000))
            put("rope_local_base_freq", .double(10000))       // llama.cpp constant, not in the file
            put("sliding_window", i("attention.sliding_window"))
            put("query_pre_attn_scalar", .int(keyLength))
            put("layer_types", .array((0..<layers).map { .string(($0 + 1) % 6 == 0 ? "full_attention" : "sliding_attention") }))
            put("hidden_activation", .string("gelu_pytorch_tanh"))
            put("final_logit_softcapping", d("final_logit_softcapping") ?? .null)
            put("attn_logit_softcapping", .null)
            put("attention_bias", .bool(false))
            // generation ends at <eos> or <end_of_turn> (formats-and-models.md §4.2)
            if let eos = file.metadata["tokenizer.ggml.eos_token_id"]?.int, let eot = file.metadata["tokenizer.ggml.tokens"]?.stringArray?.firstIndex(of: "<end_of_turn>") {
                put("eos_token_id", .array([.int(eos), .int(eot)]))
            }
            var global: [(String, JSON)] = [("rope_type", .string("default")), ("rope_theta", d("rope.freq_base") ?? .double(1_000_000))]
            if let kind = file.metadata["\(arch).rope.scaling.type"]?.string, kind == "linear", let factor = double("rope.scaling.factor") {
                put("rope_scaling", .object([("rope_type", .string("linear")), ("factor", .double(factor))]))
                global = [("rope_type", .string("linear")), ("rope_theta", global[1].1), ("factor", .double(factor))]
            }
            put("rope_parameters", .object([
                ("sliding_attention", .object([("rope_type", .string("default")), ("rope_theta", .double(10000))])),
                ("full_attention", .object(global)),
            ]))
        case .gpt2:
            put("architectures", .array([.string("GPT2LMHeadModel")])); put("model_type", .string("gpt2"))
            put("n_embd", i("embedding_length")); put("n_layer", i("block_count")); put("n_head", i("attention.head_count"))
            put("n_positions", i("context_length")); put("n_ctx", i("context_length"))
            put("n_inner", i("feed_forward_length")); put("layer_norm_epsilon", d("attention.layer_norm_epsilon") ?? .double(1e-5))
            put("activation_function", .string("gelu_new"))
        }
        put("vocab_size", vocab.map { .int($0) })
        put("tie_word_embeddings", .bool(!hasOutput))
        for (key, hfKey) in [("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"), ("padding_token_id", "pad_token_id")]
            where !c.contains(where: { $0.0 == hfKey }) {
            if let v = file.metadata["tokenizer.ggml.\(key)"]?.int { put(hfKey, .int(v)) }
        }
        return .object(c)
    }
}
