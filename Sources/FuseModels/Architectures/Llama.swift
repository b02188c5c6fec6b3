// The Llama family: Llama 2/3, Mistral, Qwen2 (q/k/v bias) and SmolLM2. Mirrors transformers'
// models/llama/modeling_llama.py (and qwen2/, mistral/): formats-and-models.md §5.1.
//
//   h0 = E[ids]
//   per layer: h += o_proj(Attn(RoPE(q), RoPE(k), v; RMSNorm(h)))
//              h += down(silu(gate(m)) * up(m)),  m = RMSNorm(h)
//   logits = RMSNorm(h) · lm_headᵀ   (lm_head = E when tied)
import Foundation
import FuseIO
import FuseNN
import FuseTensor

/// config.json of LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM, Swift names with CodingKeys.
public struct LlamaConfig: Codable, Sendable {
    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    var kvHeadsRaw: Int?
    var headDimRaw: Int?
    public var vocabSize: Int
    var maxPositionsRaw: Int?
    public var rmsNormEps: Float
    var ropeThetaRaw: Double?
    var ropeScaling: RopeParameters?
    var ropeParameters: RopeParameters?
    var tieRaw: Bool?
    var attentionBiasRaw: Bool?
    var mlpBiasRaw: Bool?
    var slidingWindowRaw: Int?
    var useSlidingWindow: Bool?
    var maxWindowLayersRaw: Int?
    var layerTypesRaw: [String]?
    var hiddenActRaw: String?
    var bos: TokenIDs?
    var eos: TokenIDs?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case layers = "num_hidden_layers", heads = "num_attention_heads", kvHeadsRaw = "num_key_value_heads"
        case headDimRaw = "head_dim", vocabSize = "vocab_size", maxPositionsRaw = "max_position_embeddings"
        case rmsNormEps = "rms_norm_eps", ropeThetaRaw = "rope_theta", ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters", tieRaw = "tie_word_embeddings"
        case attentionBiasRaw = "attention_bias", mlpBiasRaw = "mlp_bias", slidingWindowRaw = "sliding_window"
        case useSlidingWindow = "use_sliding_window", maxWindowLayersRaw = "max_window_layers", layerTypesRaw = "layer_types"
        case hiddenActRaw = "hidden_act", bos = "bos_token_id", eos = "eos_token_id"
    }

    // Defaults resolved in one place.
    public var kvHeads: Int { kvHeadsRaw ?? heads }
    public var headDim: Int { headDimRaw ?? hiddenSize / heads }
    public var contextLength: Int { maxPositionsRaw ?? 2048 }
    public var ropeTheta: Double { ropeParameters?.ropeTheta ?? ropeScaling?.ropeTheta ?? ropeThetaRaw ?? 10000 }
    /// Qwen2 always has q/k/v biases (no key); Llama has `attention_bias` for all four projections.
    public var qkvBias: Bool { modelType == "qwen2" || (attentionBiasRaw ?? false) }
    public var outputBias: Bool { modelType != "qwen2" && (attentionBiasRaw ?? false) }
    public var mlpBias: Bool { mlpBiasRaw ?? false }
    /// The sliding window of layer `l` in positions; 0 = full attention. Mistral: every layer. Qwen2
    /// (only with `use_sliding_window`): the layers `layer_types` marks sliding, or, without that list,
    /// layers from `max_window_layers` (default 28) on, as Qwen2Config derives it. Llama has none.
    public func slidingWindow(layer l: Int) -> Int {
        switch modelType {
        case "mistral": return slidingWindowRaw ?? 0
        case "qwen2":
            guard useSlidingWindow ?? false, let window = slidingWindowRaw else { return 0 }
            if let types = layerTypesRaw, types.count == layers { return types[l] == "sliding_attention" ? window : 0 }
            return l >= (maxWindowLayersRaw ?? 28) ? window : 0
        default: return 0
        }
    }
    /// The MLP gate's activation (`hidden_act`, silu in every Llama/Mistral/Qwen2 checkpoint), or nil
    /// when FuseNN has no kernel for it.
    public var activation: Activation? {
        switch hiddenActRaw ?? "silu" {
        case "silu", "swish": return .silu
        case "gelu_pytorch_tanh", "gelu_new": return .geluTanh
        default: return nil
        }
    }
    func ropeScalingRule() throws -> RoPE.Scaling {
        try (ropeParameters ?? ropeScaling)?.scaling(key: ropeParameters != nil ? "rope_parameters" : "rope_scaling", contextLength: contextLength) ?? .none
    }
}

/// Weights of one decoder layer (names as in HF checkpoints, `model.layers.N.`).
struct LlamaLayer {
    let inputNorm: RMSNorm          // input_layernorm [C]
    let qkv: [Linear]               // q_proj [H*D, C] | k_proj [KVH*D, C] | v_proj [KVH*D, C], fused when dtypes agree
    let output: Linear              // o_proj [C, H*D]
    let postAttentionNorm: RMSNorm  // post_attention_layernorm [C]
    let gateUp: [Linear]            // gate_proj [F, C] | up_proj [F, C], fused when dtypes agree
    let down: Linear                // down_proj [C, F]
    let attention: Attention        // full causal, or with this layer's sliding window
}

extension LlamaConfig {
    /// The config of a Llama-family model, checked (sizes positive, heads a multiple of the KV heads, a
    /// supported activation and rope scaling), with the activation and rotary embedding it names.
    /// Shared by inference (`Llama`) and training (`LlamaTrainable`).
    static func validated(_ configJSON: Data, path: String) throws -> (LlamaConfig, Activation, RoPE) {
        let c = try decodeConfig(LlamaConfig.self, configJSON, path: path)
        try checkPositive(["hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize, "num_hidden_layers": c.layers,
                           "num_attention_heads": c.heads, "num_key_value_heads": c.kvHeads, "head_dim": c.headDim,
                           "vocab_size": c.vocabSize, "max_position_embeddings": c.contextLength], path: path)
        guard c.heads % c.kvHeads == 0 else {
            throw ModelError.badConfig(path: path, what: "num_attention_heads \(c.heads) is not a multiple of num_key_value_heads \(c.kvHeads)")
        }
        guard let activation = c.activation else {
            throw ModelError.badConfig(path: path, what: "hidden_act '\(c.hiddenActRaw ?? "")' is not supported (silu, gelu_pytorch_tanh, gelu_new)")
        }
        do {
            return (c, activation, try RoPE(dim: c.headDim, base: c.ropeTheta, scaling: c.ropeScalingRule()))
        } catch let e as RopeConfigError {
            throw ModelError.badConfig(path: path, what: e.description)
        }
    }
}

public final class Llama: CausalLanguageModel, @unchecked Sendable {
    public let config: LlamaConfig
    public let summary: ModelSummary
    let embedding: Embedding        // model.embed_tokens [V, C]
    let layers: [LlamaLayer]
    let finalNorm: RMSNorm          // model.norm [C]
    let head: Linear                // lm_head [V, C] (or the embedding when tied)
    let rope: RoPE
    let activation: Activation

    public init(store: WeightStore, configJSON: Data) throws {
        let c: LlamaConfig
        (c, activation, rope) = try LlamaConfig.validated(configJSON, path: store.path)
        config = c
        let (C, H, KVH, D, F, V) = (c.hiddenSize, c.heads, c.kvHeads, c.headDim, c.intermediateSize, c.vocabSize)
        let w = WeightReader(store: store)
        let eps = c.rmsNormEps
        embedding = try Embedding(name: "model.embed_tokens.weight", table: w.tensor("model.embed_tokens.weight", shape: [V, C]))
        layers = try (0..<c.layers).map { l in
            let p = "model.layers.\(l)."
            let q = try w.linear(p + "self_attn.q_proj", out: H * D, in: C, bias: c.qkvBias)
            let k = try w.linear(p + "self_attn.k_proj", out: KVH * D, in: C, bias: c.qkvBias)
            let v = try w.linear(p + "self_attn.v_proj", out: KVH * D, in: C, bias: c.qkvBias)
            let gate = try w.linear(p + "mlp.gate_proj", out: F, in: C, bias: c.mlpBias)
            let up = try w.linear(p + "mlp.up_proj", out: F, in: C, bias: c.mlpBias)
            return LlamaLayer(
                inputNorm: try RMSNorm(name: p + "input_layernorm", weight: w.vector(p + "input_layernorm.weight", count: C), eps: eps, dim: C),
                qkv: try w.fused([q, k, v], name: p + "self_attn.qkv"),
                output: try w.linear(p + "self_attn.o_proj", out: C, in: H * D, bias: c.outputBias),
                postAttentionNorm: try RMSNorm(name: p + "post_attention_layernorm", weight: w.vector(p + "post_attention_layernorm.weight", count: C), eps: eps, dim: C),
                gateUp: try w.fused([gate, up], name: p + "mlp.gate_up"),
                down: try w.linear(p + "mlp.down_proj", out: C, in: F, bias: c.mlpBias),
                attention: try Attention(heads: H, kvHeads: KVH, headDim: D, scale: 1 / Float(D).squareRoot(), window: c.slidingWindow(layer: l)))
        }
        finalNorm = try RMSNorm(name: "model.norm", weight: w.vector("model.norm.weight", count: C), eps: eps, dim: C)
        // An absent lm_head means tied weights unless the config says otherwise (GGUF files omit output.weight).
        if w.has("lm_head.weight") || c.tieRaw == false {
            head = try w.linear("lm_head", out: V, in: C)
        } else {
            head = try Linear(name: "lm_head (tied to model.embed_tokens)", weight: embedding.table)
        }
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
        try embedding.forward(tokens, into: h)
        let positions = try cache.append(tokens: t, valid: valid)
        for (l, layer) in layers.enumerated() {
            // a = RMSNorm(h); q|k|v = a Wᵀ; RoPE(q), RoPE(k); cache k, v; attention; h += o_proj(attn)
            layer.inputNorm.forward(h, rows: n, into: a)
            var col = 0
            for part in layer.qkv { part.forward(a, rows: n, into: qkv + col, ldy: qkvWidth); col += part.outFeatures }
            rope.forward(qkv, rows: n, ld: qkvWidth, heads: H, positions: positions)
            rope.forward(qkv + H * D, rows: n, ld: qkvWidth, heads: KVH, positions: positions)
            cache.store(layer: l, keys: qkv + H * D, values: qkv + (H + KVH) * D, ld: qkvWidth, tokens: t)
            layer.attention.forward(q: qkv, ldq: qkvWidth, cache: cache, layer: l, tokens: t, into: attn)
            layer.output.forward(attn, rows: n, into: a)
            fk_add(h, a, n * C)
            // m = RMSNorm(h); h += down(silu(gate(m)) * up(m))
            layer.postAttentionNorm.forward(h, rows: n, into: a)
            col = 0
            for part in layer.gateUp { part.forward(a, rows: n, into: gateUp + col, ldy: 2 * F); col += part.outFeatures }
            for r in 0..<n { activation.gatedForward(gate: gateUp + r * 2 * F, up: gateUp + r * 2 * F + F, count: F) }
            layer.down.forward(gateUp, rows: n, ldx: 2 * F, into: a)
            fk_add(h, a, n * C)
        }
        let out = OutputRows(request, batch: batch, tokens: t, valid: valid)
        let last = out.gather(h, width: C, ws: ws)
        finalNorm.forward(last, rows: out.rows.count, into: last)
        var logits = [Float](repeating: 0, count: out.rows.count * config.vocabSize)
        logits.withUnsafeMutableBufferPointer { head.forward(last, rows: out.rows.count, into: $0.baseAddress!) } // invariant: V > 0
        refineHead(head, last, rows: out.rows.count, &logits)
        return logits
    }
}
import CFuseKernels
