import FuseTensor

/// A GGUF file seen under HF tensor names and an HF-style config (formats-and-models.md §3), so the
/// runtime and converters need no GGUF knowledge. Tensors stay in their stored dtype; the two
/// transforms transformers' GGUF loader applies are reproduced:
/// - Llama-family q/k rows are un-permuted (§3.2): whole quantized rows move, nothing is dequantized;
/// - Gemma norms, stored as `1 + w`, get 1 subtracted (§3.3) (small f32 vectors).
final class GGUFWeights {
    let file: GGUFFile
    let names: [String]
    let config: JSON?
    let architecture: String
    /// HF name -> GGUF name.
    private let ggufName: [String: String]

    init(path: String) throws {
        file = try GGUFFile(path: path)
        guard let arch = file.architecture else {
            throw FuseIOError.corrupt(path: path, what: "no 'general.architecture' key; cannot map tensor names")
        }
        architecture = arch
        var map: [String: String] = [:], order: [String] = []
        for t in file.tensors {
            guard let hf = GGUFWeights.hfName(t.name, architecture: arch) else { continue }
            map[hf] = t.name
            order.append(hf)
        }
        ggufName = map
        names = order
        config = GGUFWeights.makeConfig(file, architecture: arch, hasOutput: file.info(named: "output.weight") != nil)
    }

    // MARK: - names (§3.1)

    static func hfName(_ name: String, architecture arch: String) -> String? {
        switch name {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        case "rope_freqs.weight": return nil   // derived from the rope scaling config, not a parameter
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]) else { return name }
        let gemma = arch.hasPrefix("gemma")
        let suffix: String
        switch parts[2] {
        case "attn_norm.weight": suffix = "input_layernorm.weight"
        case "attn_q.weight": suffix = "self_attn.q_proj.weight"
        case "attn_k.weight": suffix = "self_attn.k_proj.weight"
        case "attn_v.weight": suffix = "self_attn.v_proj.weight"
        case "attn_q.bias": suffix = "self_attn.q_proj.bias"
        case "attn_k.bias": suffix = "self_attn.k_proj.bias"
        case "attn_v.bias": suffix = "self_attn.v_proj.bias"
        case "attn_output.weight": suffix = "self_attn.o_proj.weight"
        case "attn_q_norm.weight": suffix = "self_attn.q_norm.weight"
        case "attn_k_norm.weight": suffix = "self_attn.k_norm.weight"
        case "post_attention_norm.weight": suffix = "post_attention_layernorm.weight"
        case "ffn_norm.weight": suffix = gemma ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"
        case "post_ffw_norm.weight": suffix = "post_feedforward_layernorm.weight"
        case "ffn_gate.weight": suffix = "mlp.gate_proj.weight"
        case "ffn_up.weight": suffix = "mlp.up_proj.weight"
        case "ffn_down.weight": suffix = "mlp.down_proj.weight"
        default: return name
        }
        return "model.layers.\(layer).\(suffix)"
    }

    /// llama.cpp's LLAMA rope permutes q/k rows; Qwen2 and Gemma use NEOX rope and are stored as in HF.
    private var permutesQK: Bool { architecture == "llama" }

    // MARK: - tensors

    func info(_ name: String) -> TensorInfo? {
        guard let g = ggufName[name], let i = file.info(named: g) else { return nil }
        return TensorInfo(name: name, dtype: i.dtype, shape: i.shape)
    }

    func tensor(_ name: String) throws -> Tensor {
        guard let g = ggufName[name] else { throw FuseIOError.missingTensor(path: file.path, tensor: name) }
        let t = try file.tensor(named: g)
        if architecture.hasPrefix("gemma"), name.hasSuffix("norm.weight") {
            return try Tensor(floats: try t.floats().map { $0 - 1 }, shape: t.shape)
        }
        if permutesQK, name.hasSuffix("self_attn.q_proj.weight") || name.hasSuffix("self_attn.k_proj.weight")
            || name.hasSuffix("self_attn.q_proj.bias") || name.hasSuffix("self_attn.k_proj.bias") {
            let key = name.contains("q_proj") ? "head_count" : "head_count_kv"
            guard let heads = file.metadata["\(architecture).attention.\(key)"]?.int ?? file.metadata["\(architecture).attention.head_count"]?.int,
                  heads > 0 else {
                throw FuseIOError.corrupt(path: file.path, what: "no \(architecture).attention.\(key); cannot un-permute '\(name)'")
            }
            return try GGUFWeights.unpermuteRows(t, heads: heads, name: name, path: file.path)
        }
        return t
    }

    /// GGUF row h*D + 2j + p holds HF row h*D + p*D/2 + j (§3.2); rows move as whole byte runs.
    static func unpermuteRows(_ t: Tensor, heads: Int, name: String, path: String) throws -> Tensor {
        let rows = t.shape[0]
        guard rows % heads == 0, (rows / heads) % 2 == 0 else {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "\(rows) rows do not split into \(heads) heads of an even size")
        }
        let d = rows / heads, rowBytes = t.byteCount / max(rows, 1)
        let out = Buffer(byteCount: t.byteCount)
        for h in 0..<heads {
            for j in 0..<(d / 2) {
                for p in 0..<2 {
                    let src = h * d + 2 * j + p, dst = h * d + p * d / 2 + j
                    out.base.advanced(by: dst * rowBytes).copyMemory(from: t.buffer.base.advanced(by: src * rowBytes), byteCount: rowBytes)
                }
            }
        }
        return try Tensor(dtype: t.dtype, shape: t.shape, buffer: out)
    }

    func advise(_ name: String, willNeed: Bool) {
        guard let g = ggufName[name], let i = file.info(named: g), let mapped = file.owner as? MappedFile else { return }
        mapped.advise(offset: i.byteOffset, count: i.byteCount, willNeed: willNeed)
    }

    // MARK: - config (§3.4)

    static func makeConfig(_ f: GGUFFile, architecture a: String, hasOutput: Bool) -> JSON? {
        let m = f.metadata
        func int(_ k: String) -> JSON? { m["\(a).\(k)"]?.int.map { .int($0) } }
        func num(_ k: String) -> JSON? { m["\(a).\(k)"]?.double.map { .double($0) } }
        let vocab = m["\(a).vocab_size"]?.int ?? m["tokenizer.ggml.tokens"]?.array?.count ?? f.info(named: "token_embd.weight")?.shape.first
        var fields: [(String, JSON?)] = [
            ("max_position_embeddings", int("context_length")), ("num_hidden_layers", int("block_count")),
            ("hidden_size", int("embedding_length")), ("intermediate_size", int("feed_forward_length")),
            ("num_attention_heads", int("attention.head_count")), ("num_key_value_heads", int("attention.head_count_kv")),
            ("rms_norm_eps", num("attention.layer_norm_rms_epsilon")), ("rope_theta", num("rope.freq_base")),
            ("vocab_size", vocab.map { .int($0) }), ("tie_word_embeddings", .bool(!hasOutput)),
            ("bos_token_id", m["tokenizer.ggml.bos_token_id"]?.int.map { .int($0) }),
            ("eos_token_id", m["tokenizer.ggml.eos_token_id"]?.int.map { .int($0) }),
            ("pad_token_id", m["tokenizer.ggml.padding_token_id"]?.int.map { .int($0) }),
        ]
        switch a {
        case "gemma3":
            let headDim = int("attention.key_length")
            fields += [("model_type", .string("gemma3_text")), ("head_dim", headDim), ("query_pre_attn_scalar", headDim),
                       ("sliding_window", int("attention.sliding_window")), ("rope_local_base_freq", .double(10000)),
                       ("hidden_activation", .string("gelu_pytorch_tanh")),
                       ("final_logit_softcapping", num("final_logit_softcapping")),
                       ("eos_token_id", .array([m["tokenizer.ggml.eos_token_id"]?.int ?? 1, 106].map { .int($0) }))]
            if m["\(a).rope.scaling.type"]?.string == "linear", let factor = num("rope.scaling.factor") {
                fields.append(("rope_scaling", .object([("rope_type", .string("linear")), ("factor", factor)])))
            }
        default:
            fields += [("model_type", .string(a)), ("head_dim", int("rope.dimension_count"))]
            if m["\(a).rope.scaling.type"]?.string == "linear", let factor = num("rope.scaling.factor") {
                fields.append(("rope_scaling", .object([("rope_type", .string("linear")), ("factor", factor)])))
            }
        }
        // Later entries win (eos for Gemma: its end-of-turn token ends generation too).
        var seen = Set<String>(), out: [(String, JSON)] = []
        for (k, v) in fields.reversed() {
            guard let v, !seen.contains(k) else { continue }
            seen.insert(k); out.append((k, v))
        }
        return .object(out.reversed())
    }
}

extension WeightStore {
    func ggufRows(_ name: String) -> (any RowSource)? { nil }
}
