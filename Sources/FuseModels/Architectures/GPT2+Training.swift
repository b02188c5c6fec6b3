// GPT-2's training forward: the equations of GPT2.swift (formats-and-models.md §5.3) on FuseNN's
// differentiable ops. Conv1D weights stay in their HF layout `[in, out]` (the linear op reads them as
// y = x·W + b), so parameters, checkpoints and PEFT adapters keep transformers' names and shapes.
import Foundation
import FuseIO
import FuseNN
import FuseTensor

/// Parameters of one block (`h.N.`).
struct GPT2TrainableLayer {
    let norm1Weight, norm1Bias: Parameter   // ln_1.{weight, bias} [C]
    let qkv: TrainableLinear                // attn.c_attn weight [C, 3C], bias [3C]
    let output: TrainableLinear             // attn.c_proj weight [C, C]
    let norm2Weight, norm2Bias: Parameter   // ln_2.{weight, bias} [C]
    let up: TrainableLinear                 // mlp.c_fc weight [C, F]
    let down: TrainableLinear               // mlp.c_proj weight [F, C]
}

public final class GPT2Trainable: TrainableTransformer {
    public let config: GPT2Config
    let tokenEmbedding: Parameter           // wte.weight [V, C], also the head
    let positionEmbedding: Parameter        // wpe.weight [n_positions, C]
    let layers: [GPT2TrainableLayer]
    let finalNormWeight, finalNormBias: Parameter  // ln_f.{weight, bias} [C]

    public init(store: WeightStore, configJSON: Data) throws {
        let c = try GPT2Config.validated(configJSON, path: store.path)
        config = c
        let (C, F, V) = (c.hiddenSize, c.inner, c.vocabSize)
        let read = ParameterReader(store: store)
        let p = read.has("transformer.wte.weight") ? "transformer." : ""
        tokenEmbedding = try read(p + "wte.weight", [V, C])
        positionEmbedding = try read(p + "wpe.weight", [c.contextLength, C])
        layers = try (0..<c.layers).map { l in
            let q = p + "h.\(l)."
            return GPT2TrainableLayer(
                norm1Weight: try read(q + "ln_1.weight", [C]), norm1Bias: try read(q + "ln_1.bias", [C]),
                qkv: try read.conv1D(q + "attn.c_attn", in: C, out: 3 * C),
                output: try read.conv1D(q + "attn.c_proj", in: C, out: C),
                norm2Weight: try read(q + "ln_2.weight", [C]), norm2Bias: try read(q + "ln_2.bias", [C]),
                up: try read.conv1D(q + "mlp.c_fc", in: C, out: F),
                down: try read.conv1D(q + "mlp.c_proj", in: F, out: C))
        }
        finalNormWeight = try read(p + "ln_f.weight", [C])
        finalNormBias = try read(p + "ln_f.bias", [C])
        let tied = !read.has("lm_head.weight")
        let head = tied ? try TrainableLinear(module: "lm_head", weight: tokenEmbedding, bias: nil, visible: false)
                        : try read.linear("lm_head", out: V, in: C)
        var parameters = [tokenEmbedding, positionEmbedding]
        var linears: [TrainableLinear] = []
        for layer in layers {
            parameters += [layer.norm1Weight, layer.norm1Bias, layer.qkv.weight, layer.qkv.bias, layer.output.weight, layer.output.bias,
                           layer.norm2Weight, layer.norm2Bias, layer.up.weight, layer.up.bias, layer.down.weight, layer.down.bias].compactMap { $0 }
            linears += [layer.qkv, layer.output, layer.up, layer.down]
        }
        parameters += [finalNormWeight, finalNormBias]
        if !tied { parameters.append(head.weight); linears.append(head) }
        super.init(architecture: "gpt2", parameters: parameters, linears: linears, head: head, contextLength: c.contextLength)
    }

    override func hidden(_ tape: Tape, _ p: ParameterBinding, _ batch: TrainingBatch) throws -> Variable {
        let c = config, C = c.hiddenSize, eps = c.eps
        // h0 = wte[ids] + wpe[positions]
        let positions = trainingPositions(batch).map { Int($0) }
        var h = try tape.add(tape.embedding(batch.tokens, table: p(tokenEmbedding), name: tokenEmbedding.name),
                             tape.embedding(positions, table: p(positionEmbedding), name: positionEmbedding.name))
        for (l, layer) in layers.enumerated() {
            let shape = AttentionShape(batch: batch.batch, length: batch.length, heads: c.heads, kvHeads: c.heads, headDim: c.headDim,
                                       scale: c.attentionScale(layer: l))
            // h += c_proj(Attn(q | k | v = c_attn(LN(h; ln_1))))
            let a = try tape.layerNorm(h, weight: p(layer.norm1Weight), bias: p(layer.norm1Bias), eps: eps)
            let qkv = try tape.linear(a, layer.qkv, p)
            let attn = try tape.attention(q: tape.columns(qkv, 0..<C), k: tape.columns(qkv, C..<(2 * C)), v: tape.columns(qkv, (2 * C)..<(3 * C)), shape)
            h = try tape.add(h, tape.linear(attn, layer.output, p))
            // h += mlp.c_proj(gelu_new(c_fc(LN(h; ln_2))))
            let m = try tape.layerNorm(h, weight: p(layer.norm2Weight), bias: p(layer.norm2Bias), eps: eps)
            h = try tape.add(h, tape.linear(tape.activation(tape.linear(m, layer.up, p), .geluTanh), layer.down, p))
        }
        // LN(h; ln_f); the head (logits = · wteᵀ) runs with the loss in TrainableTransformer.loss
        return try tape.layerNorm(h, weight: p(finalNormWeight), bias: p(finalNormBias), eps: eps)
    }
}
