// The Llama family's training forward (Llama, Mistral, Qwen2 with q/k/v biases, SmolLM2), the same
// equations as Llama.swift (formats-and-models.md §5.1) on FuseNN's differentiable ops; backward
// is the tape replaying them in reverse.
import Foundation
import FuseIO
import FuseNN
import FuseTensor

/// Parameters of one decoder layer (`model.layers.N.`).
struct LlamaTrainableLayer {
    let inputNorm: Parameter           // input_layernorm.weight [C]
    let q, k, v, o: TrainableLinear    // self_attn.{q [H*D, C], k [KVH*D, C], v [KVH*D, C], o [C, H*D]}_proj
    let postAttentionNorm: Parameter   // post_attention_layernorm.weight [C]
    let gate, up, down: TrainableLinear // mlp.{gate [F, C], up [F, C], down [C, F]}_proj
}

public final class LlamaTrainable: TrainableTransformer {
    public let config: LlamaConfig
    let embedding: Parameter           // model.embed_tokens.weight [V, C]
    let layers: [LlamaTrainableLayer]
    let finalNorm: Parameter           // model.norm.weight [C]
    let rope: RoPE
    let activation: Activation

    public init(store: WeightStore, configJSON: Data) throws {
        let c: LlamaConfig
        (c, activation, rope) = try LlamaConfig.validated(configJSON, path: store.path)
        config = c
        let (C, H, KVH, D, F, V) = (c.hiddenSize, c.heads, c.kvHeads, c.headDim, c.intermediateSize, c.vocabSize)
        let read = ParameterReader(store: store)
        embedding = try read("model.embed_tokens.weight", [V, C])
        layers = try (0..<c.layers).map { l in
            let p = "model.layers.\(l)."
            return LlamaTrainableLayer(
                inputNorm: try read(p + "input_layernorm.weight", [C]),
                q: try read.linear(p + "self_attn.q_proj", out: H * D, in: C, bias: c.qkvBias),
                k: try read.linear(p + "self_attn.k_proj", out: KVH * D, in: C, bias: c.qkvBias),
                v: try read.linear(p + "self_attn.v_proj", out: KVH * D, in: C, bias: c.qkvBias),
                o: try read.linear(p + "self_attn.o_proj", out: C, in: H * D, bias: c.outputBias),
                postAttentionNorm: try read(p + "post_attention_layernorm.weight", [C]),
                gate: try read.linear(p + "mlp.gate_proj", out: F, in: C, bias: c.mlpBias),
                up: try read.linear(p + "mlp.up_proj", out: F, in: C, bias: c.mlpBias),
                down: try read.linear(p + "mlp.down_proj", out: C, in: F, bias: c.mlpBias))
        }
        finalNorm = try read("model.norm.weight", [C])
        // An absent lm_head means tied weights unless the config says otherwise (as in Llama.swift).
        let tied = !(read.has("lm_head.weight") || c.tieRaw == false)
        let head = tied ? try TrainableLinear(module: "lm_head", weight: embedding, bias: nil, visible: false)
                        : try read.linear("lm_head", out: V, in: C)
        var parameters = [embedding]
        var linears: [TrainableLinear] = []
        for layer in layers {
            parameters += [layer.inputNorm] + [layer.q, layer.k, layer.v, layer.o].flatMap { [$0.weight] + ($0.bias.map { [$0] } ?? []) }
            parameters += [layer.postAttentionNorm] + [layer.gate, layer.up, layer.down].flatMap { [$0.weight] + ($0.bias.map { [$0] } ?? []) }
            linears += [layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down]
        }
        parameters.append(finalNorm)
        if !tied { parameters.append(head.weight); linears.append(head) }
        super.init(architecture: c.modelType, parameters: parameters, linears: linears, head: head, contextLength: c.contextLength)
    }

    override func hidden(_ tape: Tape, _ p: ParameterBinding, _ batch: TrainingBatch) throws -> Variable {
        let c = config
        let positions = trainingPositions(batch)
        // h0 = E[ids]
        var h = try tape.embedding(batch.tokens, table: p(embedding), name: embedding.name)
        for (l, layer) in layers.enumerated() {
            let shape = AttentionShape(batch: batch.batch, length: batch.length, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                                       scale: 1 / Float(c.headDim).squareRoot(), window: c.slidingWindow(layer: l))
            // h += o_proj(Attn(RoPE(q), RoPE(k), v)),  q|k|v = a Wᵀ,  a = RMSNorm(h)
            let a = try tape.rmsNorm(h, weight: p(layer.inputNorm), eps: c.rmsNormEps, kind: .llama)
            let q = try tape.rope(tape.linear(a, layer.q, p), heads: c.heads, rope: rope, positions: positions)
            let k = try tape.rope(tape.linear(a, layer.k, p), heads: c.kvHeads, rope: rope, positions: positions)
            let v = try tape.linear(a, layer.v, p)
            let attn = try tape.attention(q: q, k: k, v: v, shape)
            h = try tape.add(h, tape.linear(attn, layer.o, p))
            // h += down(silu(gate(m)) ⊙ up(m)),  m = RMSNorm(h)
            let m = try tape.rmsNorm(h, weight: p(layer.postAttentionNorm), eps: c.rmsNormEps, kind: .llama)
            let f = try tape.gated(tape.linear(m, layer.gate, p), tape.linear(m, layer.up, p), activation)
            h = try tape.add(h, tape.linear(f, layer.down, p))
        }
        // RMSNorm(h); the head (logits = · lm_headᵀ) runs with the loss in TrainableTransformer.loss
        return try tape.rmsNorm(h, weight: p(finalNorm), eps: c.rmsNormEps, kind: .llama)
    }
}
