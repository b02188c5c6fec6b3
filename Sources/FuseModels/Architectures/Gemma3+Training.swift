// Gemma 3's training forward: the equations of Gemma3.swift (formats-and-models.md §5.2) on FuseNN's
// differentiable ops: √C-scaled embedding, (1 + w) RMSNorms (also per head on q and k, before RoPE),
// sliding and global layers with their own RoPE bases, GeGLU, tied head, optional logit soft-capping.
import Foundation
import FuseIO
import FuseNN
import FuseTensor

/// Parameters of one decoder layer (`model.layers.N.`).
struct Gemma3TrainableLayer {
    let inputNorm: Parameter            // input_layernorm.weight [C]
    let q, k, v, o: TrainableLinear     // self_attn.{q [H*D, C], k [KVH*D, C], v [KVH*D, C], o [C, H*D]}_proj
    let queryNorm, keyNorm: Parameter   // self_attn.{q,k}_norm.weight [D]
    let postAttentionNorm: Parameter    // post_attention_layernorm.weight [C]
    let preFeedforwardNorm: Parameter   // pre_feedforward_layernorm.weight [C]
    let gate, up, down: TrainableLinear // mlp.{gate [F, C], up [F, C], down [C, F]}_proj
    let postFeedforwardNorm: Parameter  // post_feedforward_layernorm.weight [C]
    let sliding: Bool
}

public final class Gemma3Trainable: TrainableTransformer {
    public let config: Gemma3Config
    let embedding: Parameter            // embed_tokens.weight [V, C], also the head
    let embedScale: Float
    let layers: [Gemma3TrainableLayer]
    let finalNorm: Parameter            // norm.weight [C]
    let globalRope: RoPE, localRope: RoPE

    public init(store: WeightStore, configJSON: Data) throws {
        let c = try Gemma3Config.validated(configJSON, path: store.path)
        config = c
        let (C, H, KVH, D, F, V) = (c.hiddenSize, c.heads, c.kvHeads, c.headDim, c.intermediateSize, c.vocabSize)
        let read = ParameterReader(store: store)
        let root = read.has("model.language_model.embed_tokens.weight") ? "model.language_model." : "model."
        do {
            (globalRope, localRope) = try c.ropes()
        } catch let e as RopeConfigError { throw ModelError.badConfig(path: store.path, what: e.description) }
        embedding = try read(root + "embed_tokens.weight", [V, C])
        // transformers casts √C to the embedding's dtype before multiplying (25.25 for bf16 weights).
        embedScale = roundedToStorage(Float(C).squareRoot(), store.info(root + "embed_tokens.weight")?.dtype ?? .f32)
        let sliding = c.layerIsSliding
        layers = try (0..<c.layers).map { l in
            let p = root + "layers.\(l)."
            return Gemma3TrainableLayer(
                inputNorm: try read(p + "input_layernorm.weight", [C]),
                q: try read.linear(p + "self_attn.q_proj", out: H * D, in: C, bias: c.attentionBias),
                k: try read.linear(p + "self_attn.k_proj", out: KVH * D, in: C, bias: c.attentionBias),
                v: try read.linear(p + "self_attn.v_proj", out: KVH * D, in: C, bias: c.attentionBias),
                o: try read.linear(p + "self_attn.o_proj", out: C, in: H * D, bias: c.attentionBias),
                queryNorm: try read(p + "self_attn.q_norm.weight", [D]), keyNorm: try read(p + "self_attn.k_norm.weight", [D]),
                postAttentionNorm: try read(p + "post_attention_layernorm.weight", [C]),
                preFeedforwardNorm: try read(p + "pre_feedforward_layernorm.weight", [C]),
                gate: try read.linear(p + "mlp.gate_proj", out: F, in: C),
                up: try read.linear(p + "mlp.up_proj", out: F, in: C),
                down: try read.linear(p + "mlp.down_proj", out: C, in: F),
                postFeedforwardNorm: try read(p + "post_feedforward_layernorm.weight", [C]),
                sliding: sliding[l])
        }
        finalNorm = try read(root + "norm.weight", [C])
        let tied = !read.has("lm_head.weight")
        let head = tied ? try TrainableLinear(module: "lm_head", weight: embedding, bias: nil, visible: false)
                        : try read.linear("lm_head", out: V, in: C)
        var parameters = [embedding]
        var linears: [TrainableLinear] = []
        for layer in layers {
            parameters += [layer.inputNorm] + [layer.q, layer.k, layer.v, layer.o].flatMap { [$0.weight] + ($0.bias.map { [$0] } ?? []) }
            parameters += [layer.queryNorm, layer.keyNorm, layer.postAttentionNorm, layer.preFeedforwardNorm, layer.gate.weight, layer.up.weight,
                           layer.down.weight, layer.postFeedforwardNorm]
            linears += [layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down]
        }
        parameters.append(finalNorm)
        if !tied { parameters.append(head.weight); linears.append(head) }
        super.init(architecture: c.modelType, parameters: parameters, linears: linears, head: head, logitSoftcap: c.finalSoftcap, contextLength: c.contextLength)
    }

    override func hidden(_ tape: Tape, _ p: ParameterBinding, _ batch: TrainingBatch) throws -> Variable {
        let c = config
        let (n, H, KVH, D, eps) = (batch.batch * batch.length, c.heads, c.kvHeads, c.headDim, c.rmsNormEps)
        let positions = trainingPositions(batch)
        // h0 = E[ids] · √C
        var h = try tape.embedding(batch.tokens, table: p(embedding), scale: embedScale, name: embedding.name)
        for layer in layers {
            let a = try tape.rmsNorm(h, weight: p(layer.inputNorm), eps: eps, kind: .onePlusWeight)
            // q, k = N1p(q; q_norm), N1p(k; k_norm) per head over D, then RoPE (local or global base)
            let rope = layer.sliding ? localRope : globalRope
            let q0 = try tape.linear(a, layer.q, p), k0 = try tape.linear(a, layer.k, p)
            let qn = try tape.rmsNorm(q0.reshaped(rows: n * H, cols: D), weight: p(layer.queryNorm), eps: eps, kind: .onePlusWeight)
            let kn = try tape.rmsNorm(k0.reshaped(rows: n * KVH, cols: D), weight: p(layer.keyNorm), eps: eps, kind: .onePlusWeight)
            let q = try tape.rope(qn.reshaped(rows: n, cols: H * D), heads: H, rope: rope, positions: positions)
            let k = try tape.rope(kn.reshaped(rows: n, cols: KVH * D), heads: KVH, rope: rope, positions: positions)
            let v = try tape.linear(a, layer.v, p)
            let shape = AttentionShape(batch: batch.batch, length: batch.length, heads: H, kvHeads: KVH, headDim: D,
                                       scale: c.attentionScale, window: layer.sliding ? c.slidingWindow : 0)
            let attn = try tape.attention(q: q, k: k, v: v, shape)
            // h += N1p(o_proj(attn); post_attention_layernorm)
            let o = try tape.rmsNorm(tape.linear(attn, layer.o, p), weight: p(layer.postAttentionNorm), eps: eps, kind: .onePlusWeight)
            h = try tape.add(h, o)
            // h += N1p(down(gelu_tanh(gate(m)) ⊙ up(m)); post_feedforward_layernorm),  m = N1p(h; pre_feedforward_layernorm)
            let m = try tape.rmsNorm(h, weight: p(layer.preFeedforwardNorm), eps: eps, kind: .onePlusWeight)
            let f = try tape.gated(tape.linear(m, layer.gate, p), tape.linear(m, layer.up, p), .geluTanh)
            h = try tape.add(h, tape.rmsNorm(tape.linear(f, layer.down, p), weight: p(layer.postFeedforwardNorm), eps: eps, kind: .onePlusWeight))
        }
        // N1p(h); the head (logits = · Eᵀ, soft-capped when final_logit_softcapping is set) runs with the loss
        return try tape.rmsNorm(h, weight: p(finalNorm), eps: eps, kind: .onePlusWeight)
    }
}
