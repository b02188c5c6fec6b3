// GPT-2 (GPT2LMHeadModel). Mirrors transformers' models/gpt2/modeling_gpt2.py: formats-and-models.md §5.3.
//
//   h0 = wte[ids] + wpe[positions]
//   per layer: h += c_proj(Attn(c_attn(LN(h; ln_1))));  h += mlp.c_proj(gelu_new(c_fc(LN(h; ln_2))))
//   logits = LN(h; ln_f) · wteᵀ
// Conv1D stores weights `[in, out]`; they are transposed once at load into `[out, in]` linears.
import Foundation
import FuseIO
import FuseNN
import FuseTensor
import CFuseKernels

public struct GPT2Config: Codable, Sendable {
    public var modelType: String
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var contextLength: Int
    public var vocabSize: Int
    var innerRaw: Int?
    var epsRaw: Float?
    var activationRaw: String?
    var scaleAttnWeightsRaw: Bool?
    var scaleByInverseLayerRaw: Bool?
    var bos: TokenIDs?
    var eos: TokenIDs?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "n_embd", layers = "n_layer", heads = "n_head"
        case contextLength = "n_positions", vocabSize = "vocab_size", innerRaw = "n_inner"
        case epsRaw = "layer_norm_epsilon", activationRaw = "activation_function", scaleAttnWeightsRaw = "scale_attn_weights"
        case scaleByInverseLayerRaw = "scale_attn_by_inverse_layer_idx"
        case bos = "bos_token_id", eos = "eos_token_id"
    }
    public var inner: Int { innerRaw ?? 4 * hiddenSize }
    public var eps: Float { epsRaw ?? 1e-5 }
    public var headDim: Int { hiddenSize / heads }
    /// Score scale of layer l: D^-0.5 (`scale_attn_weights`, default on), divided by l + 1 with
    /// `scale_attn_by_inverse_layer_idx`; in f64 as GPT2Attention computes it, then rounded once.
    public func attentionScale(layer l: Int) -> Float {
        var scale = (scaleAttnWeightsRaw ?? true) ? 1 / Double(headDim).squareRoot() : 1
        if scaleByInverseLayerRaw ?? false { scale /= Double(l + 1) }
        return Float(scale)
    }
}

struct GPT2Layer {
    let norm1: LayerNorm     // ln_1 [C]
    let qkv: Linear          // attn.c_attn [3C, C] (transposed from Conv1D [C, 3C])
    let output: Linear       // attn.c_proj [C, C]
    let norm2: LayerNorm     // ln_2 [C]
    let up: Linear           // mlp.c_fc [F, C]
    let down: Linear         // mlp.c_proj [C, F]
    let attention: Attention
}

extension GPT2Config {
    /// The config of a GPT-2 model, checked: sizes positive, n_embd a multiple of n_head, a tanh-GELU
    /// activation. Shared by inference (`GPT2`) and training (`GPT2Trainable`).
    static func validated(_ configJSON: Data, path: String) throws -> GPT2Config {
        let c = try decodeConfig(GPT2Config.self, configJSON, path: path)
        try checkPositive(["n_embd": c.hiddenSize, "n_layer": c.layers, "n_head": c.heads, "n_positions": c.contextLength,
                           "vocab_size": c.vocabSize, "n_inner": c.inner], path: path)
        guard c.hiddenSize % c.heads == 0 else { throw ModelError.badConfig(path: path, what: "n_embd \(c.hiddenSize) is not a multiple of n_head \(c.heads)") }
        if let act = c.activationRaw, !["gelu_new", "gelu_pytorch_tanh"].contains(act) {
            throw ModelError.badConfig(path: path, what: "activation_function '\(act)' is not supported (gelu_new)")
        }
        return c
    }
}

public final class GPT2: CausalLanguageModel, @unchecked Sendable {
    public let config: GPT2Config
    public let summary: ModelSummary
    let tokenEmbedding: Embedding     // wte [V, C], also the head
    let positionEmbedding: Embedding  // wpe [n_positions, C]
    let layers: [GPT2Layer]
    let finalNorm: LayerNorm          // ln_f [C]
    let head: Linear

    public init(store: WeightStore, configJSON: Data) throws {
        let c = try GPT2Config.validated(configJSON, path: store.path)
        config = c
        let (C, F, V, D) = (c.hiddenSize, c.inner, c.vocabSize, c.headDim)
        let w = WeightReader(store: store)
        let p = w.has("transformer.wte.weight") ? "transformer." : ""
        tokenEmbedding = try Embedding(name: p + "wte.weight", table: w.tensor(p + "wte.weight", shape: [V, C]))
        positionEmbedding = try Embedding(name: p + "wpe.weight", table: w.tensor(p + "wpe.weight", shape: [c.contextLength, C]))
        let ln = { (name: String) in
            try LayerNorm(name: name, weight: w.vector(name + ".weight", count: C), bias: w.vector(name + ".bias", count: C), eps: c.eps, dim: C)
        }
        layers = try (0..<c.layers).map { l in
            let q = p + "h.\(l)."
            return GPT2Layer(norm1: try ln(q + "ln_1"), qkv: try w.conv1D(q + "attn.c_attn", in: C, out: 3 * C),
                             output: try w.conv1D(q + "attn.c_proj", in: C, out: C), norm2: try ln(q + "ln_2"),
                             up: try w.conv1D(q + "mlp.c_fc", in: C, out: F), down: try w.conv1D(q + "mlp.c_proj", in: F, out: C),
                             attention: try Attention(heads: c.heads, kvHeads: c.heads, headDim: D, scale: c.attentionScale(layer: l)))
        }
        finalNorm = try ln(p + "ln_f")
        head = w.has("lm_head.weight") ? try w.linear("lm_head", out: V, in: C)
                                       : try Linear(name: "lm_head (tied to wte)", weight: tokenEmbedding.table)
        summary = ModelSummary(architecture: "gpt2", vocabularySize: V, contextLength: c.contextLength, layers: c.layers,
                               kvHeads: c.heads, headDim: D, hiddenSize: C, bosTokenID: c.bos?.ids.first, eosTokenIDs: c.eos?.ids ?? [])
    }

    public func forward(tokens: [Int], batch: Int, valid: [Bool]?, cache: KVCache, rows request: LogitRows) throws -> [Float] {
        let t = try tokensPerSequence(tokens, batch: batch, valid: valid, context: summary.contextLength, cache: cache)
        let (C, F) = (config.hiddenSize, config.inner)
        let n = batch * t
        let ws = Workspace(cache)
        let h = ws.floats(n * C), a = ws.floats(n * C), qkv = ws.floats(n * 3 * C), attn = ws.floats(n * C), f = ws.floats(n * F)
        try tokenEmbedding.forward(tokens, into: h)
        let positions = try cache.append(tokens: t, valid: valid)
        try positionEmbedding.forward(positions.map { Int($0) }, into: a)
        fk_add(h, a, n * C)
        for (l, layer) in layers.enumerated() {
            layer.norm1.forward(h, rows: n, into: a)
            layer.qkv.forward(a, rows: n, into: qkv)
            cache.store(layer: l, keys: qkv + C, values: qkv + 2 * C, ld: 3 * C, tokens: t)
            layer.attention.forward(q: qkv, ldq: 3 * C, cache: cache, layer: l, tokens: t, into: attn)
            layer.output.forward(attn, rows: n, into: a)
            fk_add(h, a, n * C)
            layer.norm2.forward(h, rows: n, into: a)
            layer.up.forward(a, rows: n, into: f)
            Activation.geluTanh.forward(f, count: n * F)
            layer.down.forward(f, rows: n, into: a)
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
