// Gemma 3 text (Gemma3ForCausalLM / the text tower of Gemma3ForConditionalGeneration). Mirrors
// transformers' models/gemma3/modeling_gemma3.py: formats-and-models.md §5.2.
//
//   h0 = E[ids] * sqrt(C)  (the scale cast to the embedding dtype first)
//   per layer (sliding or full attention):
//     a = N1p(h); q, k = N1p(q; q_norm), N1p(k; k_norm) per head; RoPE (local or global base)
//     h += N1p(o_proj(Attn(q, k, v)); post_attention_layernorm)
//     h += N1p(down(gelu_tanh(gate(m)) * up(m)); post_feedforward_layernorm),  m = N1p(h; pre_feedforward_layernorm)
//   logits = N1p(h) · Eᵀ, optionally soft-capped
// where N1p is RMSNorm with (1 + w).
import Foundation
import FuseIO
import FuseNN
import FuseTensor
import CFuseKernels

/// Per-layer-type rope parameters (`rope_parameters: {full_attention: {...}, sliding_attention: {...}}`,
/// transformers 5) or one set for the global layers (transformers 4 `rope_scaling`).
struct Gemma3RopeParameters: Codable {
    var full: RopeParameters?
    var sliding: RopeParameters?
    var flat: RopeParameters?
    enum Keys: String, CodingKey { case full = "full_attention", sliding = "sliding_attention" }
    init(from decoder: Decoder) throws {
        if let c = try? decoder.container(keyedBy: Keys.self), c.contains(.full) || c.contains(.sliding) {
            full = try c.decodeIfPresent(RopeParameters.self, forKey: .full)
            sliding = try c.decodeIfPresent(RopeParameters.self, forKey: .sliding)
        } else {
            flat = try RopeParameters(from: decoder)
        }
    }
    func encode(to encoder: Encoder) throws {}
}

public struct Gemma3Config: Codable, Sendable {
    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vocabSize: Int
    var maxPositionsRaw: Int?
    var rmsNormEpsRaw: Float?
    var ropeThetaRaw: Double?
    var ropeLocalBaseFreqRaw: Double?
    var ropeScaling: RopeParameters?
    var ropeParameters: Gemma3RopeParameters?
    var slidingWindowRaw: Int?
    var layerTypesRaw: [String]?
    var patternRaw: Int?
    var patternPrivateRaw: Int?
    var queryPreAttnScalarRaw: Float?
    var finalSoftcapRaw: Float?
    var attnSoftcapRaw: Float?
    var hiddenActivationRaw: String?
    var attentionBiasRaw: Bool?
    var bos: TokenIDs?
    var eos: TokenIDs?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case layers = "num_hidden_layers", heads = "num_attention_heads", kvHeads = "num_key_value_heads"
        case headDim = "head_dim", vocabSize = "vocab_size", maxPositionsRaw = "max_position_embeddings"
        case rmsNormEpsRaw = "rms_norm_eps", ropeThetaRaw = "rope_theta", ropeLocalBaseFreqRaw = "rope_local_base_freq"
        case ropeScaling = "rope_scaling", ropeParameters = "rope_parameters", slidingWindowRaw = "sliding_window"
        case layerTypesRaw = "layer_types", patternRaw = "sliding_window_pattern", patternPrivateRaw = "_sliding_window_pattern"
        case queryPreAttnScalarRaw = "query_pre_attn_scalar", finalSoftcapRaw = "final_logit_softcapping"
        case attnSoftcapRaw = "attn_logit_softcapping", hiddenActivationRaw = "hidden_activation"
        case attentionBiasRaw = "attention_bias", bos = "bos_token_id", eos = "eos_token_id"
    }

    public var contextLength: Int { maxPositionsRaw ?? 131072 }
    public var rmsNormEps: Float { rmsNormEpsRaw ?? 1e-6 }
    public var slidingWindow: Int { slidingWindowRaw ?? 4096 }
    /// `layer_types` when given, else sliding except every `sliding_window_pattern`-th layer (6).
    public var layerIsSliding: [Bool] {
        if let types = layerTypesRaw, types.count == layers { return types.map { $0 == "sliding_attention" } }
        let pattern = patternRaw ?? patternPrivateRaw ?? 6
        return (0..<layers).map { ($0 + 1) % pattern != 0 }
    }
    public var globalRopeTheta: Double { ropeParameters?.full?.ropeTheta ?? ropeParameters?.flat?.ropeTheta ?? ropeThetaRaw ?? 1_000_000 }
    public var localRopeTheta: Double { ropeParameters?.sliding?.ropeTheta ?? ropeLocalBaseFreqRaw ?? 10_000 }
    public var attentionScale: Float { 1 / (queryPreAttnScalarRaw ?? Float(headDim)).squareRoot() }
    public var finalSoftcap: Float { finalSoftcapRaw ?? 0 }
    /// transformers 5.23's Gemma 3 attention reads `attn_logit_softcapping` but never applies it (nor does
    /// llama.cpp's gemma3 graph), so FuseKit ignores it too; Gemma 3 checkpoints set it to null anyway.
    public var attentionSoftcap: Float { 0 }
    /// q/k/v/o biases (`attention_bias`, false in every Gemma 3 checkpoint).
    public var attentionBias: Bool { attentionBiasRaw ?? false }

    /// RoPE of the full-attention and the sliding layers.
    func ropes() throws -> (global: RoPE, local: RoPE) {
        let global = try (ropeParameters?.full ?? ropeParameters?.flat ?? ropeScaling)?.scaling(key: "rope_parameters.full_attention", contextLength: contextLength) ?? .none
        let local = try ropeParameters?.sliding?.scaling(key: "rope_parameters.sliding_attention", contextLength: contextLength) ?? .none
        return (try RoPE(dim: headDim, base: globalRopeTheta, scaling: global), try RoPE(dim: headDim, base: localRopeTheta, scaling: local))
    }
}

struct Gemma3Layer {
    let inputNorm: RMSNorm          // input_layernorm [C]
    let qkv: [Linear]               // q_proj [H*D, C] | k_proj [KVH*D, C] | v_proj [KVH*D, C]
    let queryNorm: RMSNorm          // self_attn.q_norm [D]
    let keyNorm: RMSNorm            // self_attn.k_norm [D]
    let output: Linear              // o_proj [C, H*D]
    let postAttentionNorm: RMSNorm  // post_attention_layernorm [C]
    let preFeedforwardNorm: RMSNorm // pre_feedforward_layernorm [C]
    let gateUp: [Linear]            // gate_proj [F, C] | up_proj [F, C]
    let down: Linear                // down_proj [C, F]
    let postFeedforwardNorm: RMSNorm // post_feedforward_layernorm [C]
    let sliding: Bool
}

extension Gemma3Config {
    /// The config of a Gemma 3 text model, checked: a multimodal config's `text_config` is read as the
    /// text model's; sizes must be positive, the activation gelu_pytorch_tanh and the heads a multiple of
    /// the KV heads. Shared by inference (`Gemma3`) and training (`Gemma3Trainable`).
    static func validated(_ configJSON: Data, path: String) throws -> Gemma3Config {
        var data = configJSON
        if let json = try? JSON.parse(Array(configJSON)), let text = json["text_config"] {
            var fields = text.object ?? []
            if !fields.contains(where: { $0.0 == "model_type" }) { fields.append(("model_type", .string("gemma3_text"))) }
            data = Data(JSON.object(fields).serialized().utf8)
        }
        let c = try decodeConfig(Gemma3Config.self, data, path: path)
        try checkPositive(["hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize, "num_hidden_layers": c.layers,
                           "num_attention_heads": c.heads, "num_key_value_heads": c.kvHeads, "head_dim": c.headDim,
                           "vocab_size": c.vocabSize, "max_position_embeddings": c.contextLength], path: path)
        if let act = c.hiddenActivationRaw, act != "gelu_pytorch_tanh" {
            throw ModelError.badConfig(path: path, what: "hidden_activation '\(act)' is not supported (gelu_pytorch_tanh)")
        }
        guard c.heads % c.kvHeads == 0 else {
            throw ModelError.badConfig(path: path, what: "num_attention_heads \(c.heads) is not a multiple of num_key_value_heads \(c.kvHeads)")
        }
        return c
    }
}

public final class Gemma3: CausalLanguageModel, @unchecked Sendable {
    public let config: Gemma3Config
    public let summary: ModelSummary
    let embedding: Embedding        // model.embed_tokens [V, C], also the head
    let embedScale: Float
    let layers: [Gemma3Layer]
    let finalNorm: RMSNorm          // model.norm [C]
    let head: Linear
    let globalRope: RoPE, localRope: RoPE
    let globalAttention: Attention, localAttention: Attention

    public init(store: WeightStore, configJSON: Data) throws {
        let c = try Gemma3Config.validated(configJSON, path: store.path)
        config = c
        let (C, H, KVH, D, F, V) = (c.hiddenSize, c.heads, c.kvHeads, c.headDim, c.intermediateSize, c.vocabSize)
        let w = WeightReader(store: store)
        let eps = c.rmsNormEps
        // Text-tower names: model.language_model.* in multimodal checkpoints, model.* otherwise.
        let root = w.has("model.language_model.embed_tokens.weight") ? "model.language_model." : "model."
        do {
            (globalRope, localRope) = try c.ropes()
        } catch let e as RopeConfigError { throw ModelError.badConfig(path: store.path, what: e.description) }
        globalAttention = try Attention(heads: H, kvHeads: KVH, headDim: D, scale: c.attentionScale)
        localAttention = try Attention(heads: H, kvHeads: KVH, headDim: D, scale: c.attentionScale, window: c.slidingWindow)
        embedding = try Embedding(name: root + "embed_tokens.weight", table: w.tensor(root + "embed_tokens.weight", shape: [V, C]))
        embedScale = roundedToStorage(Float(C).squareRoot(), embedding.table.dtype)
        let norm = { (name: String, dim: Int) in
            try RMSNorm(name: name, weight: w.vector(name + ".weight", count: dim), eps: eps, kind: .onePlusWeight, dim: dim)
        }
        let sliding = c.layerIsSliding
        layers = try (0..<c.layers).map { l in
            let p = root + "layers.\(l)."
            let q = try w.linear(p + "self_attn.q_proj", out: H * D, in: C, bias: c.attentionBias)
            let k = try w.linear(p + "self_attn.k_proj", out: KVH * D, in: C, bias: c.attentionBias)
            let v = try w.linear(p + "self_attn.v_proj", out: KVH * D, in: C, bias: c.attentionBias)
            let gate = try w.linear(p + "mlp.gate_proj", out: F, in: C)
            let up = try w.linear(p + "mlp.up_proj", out: F, in: C)
            return Gemma3Layer(
                inputNorm: try norm(p + "input_layernorm", C),
                qkv: try w.fused([q, k, v], name: p + "self_attn.qkv"),
                queryNorm: try norm(p + "self_attn.q_norm", D), keyNorm: try norm(p + "self_attn.k_norm", D),
                output: try w.linear(p + "self_attn.o_proj", out: C, in: H * D, bias: c.attentionBias),
                postAttentionNorm: try norm(p + "post_attention_layernorm", C),
                preFeedforwardNorm: try norm(p + "pre_feedforward_layernorm", C),
                gateUp: try w.fused([gate, up], name: p + "mlp.gate_up"),
                down: try w.linear(p + "mlp.down_proj", out: C, in: F),
                postFeedforwardNorm: try norm(p + "post_feedforward_layernorm", C),
                sliding: sliding[l])
        }
        finalNorm = try norm(root + "norm", C)
        head = w.has("lm_head.weight") ? try w.linear("lm_head", out: V, in: C)
                                       : try Linear(name: "lm_head (tied to embed_tokens)", weight: embedding.table)
        summary = ModelSummary(architecture: c.modelType, vocabularySize: V, contextLength: c.contextLength, layers: c.layers,
                               kvHeads: KVH, headDim: D, hiddenSize: C, bosTokenID: c.bos?.ids.first, eosTokenIDs: c.eos?.ids ?? [])
    }

    public func forward(tokens: [Int], batch: Int, valid: [Bool]?, cache: KVCache, rows request: LogitRows) throws -> [Float] {
        let t = try tokensPerSequence(tokens, batch: batch, valid: valid, context: summary.contextLength, cache: cache)
        let (C, H, KVH, D, F) = (config.hiddenSize, config.heads, config.kvHeads, config.headDim, config.intermediateSize)
        let n = batch * t, qkvWidth = (H + 2 * KVH) * D
        let ws = Workspace(cache)
        let h = ws.floats(n * C), a = ws.floats(n * C), qkv = ws.floats(n * qkvWidth)
        let attn = ws.floats(n * H * D), gateUp = ws.floats(n * 2 * F)
        try embedding.forward(tokens, scale: embedScale, into: h)
        let positions = try cache.append(tokens: t, valid: valid)
        for (l, layer) in layers.enumerated() {
            layer.inputNorm.forward(h, rows: n, into: a)
            var col = 0
            for part in layer.qkv { part.forward(a, rows: n, into: qkv + col, ldy: qkvWidth); col += part.outFeatures }
            for r in 0..<n {   // q_norm and k_norm per head, over D, before RoPE
                layer.queryNorm.forward(qkv + r * qkvWidth, rows: H, into: qkv + r * qkvWidth)
                layer.keyNorm.forward(qkv + r * qkvWidth + H * D, rows: KVH, into: qkv + r * qkvWidth + H * D)
            }
            let rope = layer.sliding ? localRope : globalRope
            rope.forward(qkv, rows: n, ld: qkvWidth, heads: H, positions: positions)
            rope.forward(qkv + H * D, rows: n, ld: qkvWidth, heads: KVH, positions: positions)
            cache.store(layer: l, keys: qkv + H * D, values: qkv + (H + KVH) * D, ld: qkvWidth, tokens: t)
            (layer.sliding ? localAttention : globalAttention).forward(q: qkv, ldq: qkvWidth, cache: cache, layer: l, tokens: t, into: attn)
            layer.output.forward(attn, rows: n, into: a)
            layer.postAttentionNorm.forward(a, rows: n, into: a)
            fk_add(h, a, n * C)
            layer.preFeedforwardNorm.forward(h, rows: n, into: a)
            col = 0
            for part in layer.gateUp { part.forward(a, rows: n, into: gateUp + col, ldy: 2 * F); col += part.outFeatures }
            for r in 0..<n { Activation.geluTanh.gatedForward(gate: gateUp + r * 2 * F, up: gateUp + r * 2 * F + F, count: F) }
            layer.down.forward(gateUp, rows: n, ldx: 2 * F, into: a)
            layer.postFeedforwardNorm.forward(a, rows: n, into: a)
            fk_add(h, a, n * C)
        }
        let out = OutputRows(request, batch: batch, tokens: t, valid: valid)
        let last = out.gather(h, width: C, ws: ws)
        finalNorm.forward(last, rows: out.rows.count, into: last)
        var logits = [Float](repeating: 0, count: out.rows.count * config.vocabSize)
        logits.withUnsafeMutableBufferPointer { head.forward(last, rows: out.rows.count, into: $0.baseAddress!) } // invariant: V > 0
        refineHead(head, last, rows: out.rows.count, &logits)
        if config.finalSoftcap > 0 {
            let cap = config.finalSoftcap
            for i in logits.indices { logits[i] = tanh(logits[i] / cap) * cap }
        }
        return logits
    }
}
